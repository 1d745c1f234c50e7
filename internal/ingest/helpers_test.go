package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/entra"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
	"inkorg/internal/testutil/emutest"
)

// m2mMessage is a Monitor-to-Monitor purchase order n: a text part, a PDF and an XML.
func m2mMessage(n int) []byte {
	xml := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><PurchaseOrder><OrderNumber>PO-%05d</OrderNumber><Rows><Row>Part %d</Row></Rows></PurchaseOrder>`, n, n)
	pdf := "%PDF-1.4\n% purchase order " + fmt.Sprint(n) + "\n%%EOF\n"
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Supplier AB <orders@supplier.example>\r\nTo: m2m@contoso.example\r\nSubject: Purchase order PO-%05d\r\n", n)
	fmt.Fprintf(&b, "Message-ID: <po-%d@supplier.example>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n", n)
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMonitor-to-Monitor: purchase order attached.\r\n")
	b.WriteString("--b1\r\nContent-Type: application/pdf; name=\"order.pdf\"\r\nContent-Disposition: attachment; filename=\"order.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(base64.StdEncoding.EncodeToString([]byte(pdf)) + "\r\n")
	b.WriteString("--b1\r\nContent-Type: application/xml; name=\"order.xml\"\r\nContent-Disposition: attachment; filename=\"order.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(base64.StdEncoding.EncodeToString([]byte(xml)) + "\r\n")
	// Padding so the message is about 10 KB, like the benchmarks'.
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8; name=\"terms.txt\"\r\nContent-Disposition: attachment; filename=\"terms.txt\"\r\n\r\n")
	for range 120 {
		b.WriteString("Terms and conditions of delivery, line of filler text.\r\n")
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

// plainMessage is a general message n.
func plainMessage(n int) []byte {
	return fmt.Appendf(nil, "From: customer%d@example.com\r\nTo: info@contoso.example\r\nSubject: Question %d\r\nMessage-ID: <q-%d@example.com>\r\nDate: Sun, 22 Nov 2026 11:00:00 +0100\r\n\r\nHello %d\r\n", n, n, n, n)
}

// world is an emulated tenant, a store with settings for it, and a Manager reading it.
type world struct {
	t     *testing.T
	emu   *emulator.Emulator
	cloud cloud.Endpoints
	store store.Store
	dir   string
}

func newWorld(t *testing.T, edit func(*scenario.Scenario)) *world {
	t.Helper()
	e := emutest.Start(t, edit)
	w := &world{t: t, emu: e.Emulator, cloud: e.Cloud, dir: t.TempDir()}
	w.store = w.open()
	t.Cleanup(func() { w.store.Close() })
	return w
}

func (w *world) open() store.Store {
	w.t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(w.dir, "inkorg.db"), Key: func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(w.dir, "inkorg.key"), true)
		return s, err
	}})
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// configure enters the Client secret settings and the given accounts.
func (w *world) configure(accounts ...settings.IncomingAccount) {
	w.t.Helper()
	ctx := context.Background()
	if err := w.store.PutSystem(ctx, (&emutest.Emulator{Emulator: w.emu}).ClientSecretSystem(), "test"); err != nil {
		w.t.Fatal(err)
	}
	for _, a := range accounts {
		if _, err := w.store.AddIncomingAccount(ctx, a, "test"); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) deliver(mailbox string, msgs ...[]byte) {
	w.t.Helper()
	for _, m := range msgs {
		if _, err := w.emu.Store().Deliver(mailbox, "INBOX", m); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *world) count(mailbox, folder string) int {
	fs, err := w.emu.Store().Folders(mailbox)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, f := range fs {
		if strings.EqualFold(f.Name, folder) {
			return int(f.Messages)
		}
	}
	return 0
}

func (w *world) manager(tweak func(*Config)) *Manager {
	cfg := Config{Logger: testLogger(w.t), Store: w.store, Tokens: entra.New(entra.Config{Cloud: w.cloud}), Cloud: w.cloud, Reload: 50 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Timeout: 5 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	m := New(cfg)
	if err := m.Start(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { m.Close() })
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *world) messages(q store.MessageQuery) []store.Message {
	w.t.Helper()
	var all []store.Message
	for {
		page, err := w.store.Messages(context.Background(), q)
		if err != nil {
			w.t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		q.After = page[len(page)-1].Seq
	}
}

func (w *world) state(id int64) store.AccountState {
	ss, _ := w.store.AccountStates(context.Background())
	for _, s := range ss {
		if s.AccountID == id {
			return s
		}
	}
	return store.AccountState{}
}

// testLogger sends the workers' log to the test's log (shown when a test fails, or with -v).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
