package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"inkorg/internal/emulator/exo"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

func TestIngestRoutesAndMoves(t *testing.T) {
	w := newWorld(t, nil)
	w.configure(settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor},
		settings.IncomingAccount{Address: "info@contoso.example", Type: settings.TypeGeneral})
	for i := range 250 {
		w.deliver("m2m@contoso.example", m2mMessage(i))
	}
	for i := range 20 {
		w.deliver("info@contoso.example", plainMessage(i))
	}
	w.deliver("info@contoso.example", []byte("this is not an e-mail message at all"))
	w.manager(nil)
	waitFor(t, 30*time.Second, "271 messages stored and moved", func() bool {
		return len(w.messages(store.MessageQuery{})) == 271 && w.count("m2m@contoso.example", "INBOX") == 0 && w.count("info@contoso.example", "INBOX") == 0
	})
	if n := w.count("m2m@contoso.example", settings.DefaultProcessedFolder); n != 250 {
		t.Errorf("processed folder of m2m holds %d", n)
	}
	if n, f := w.count("info@contoso.example", settings.DefaultProcessedFolder), w.count("info@contoso.example", settings.DefaultFailedFolder); n != 20 || f != 1 {
		t.Errorf("info: processed %d, failed %d", n, f)
	}
	m2m := w.messages(store.MessageQuery{Type: settings.TypeMonitorToMonitor})
	if len(m2m) != 250 {
		t.Fatalf("%d M2M messages", len(m2m))
	}
	for _, m := range m2m {
		if m.M2M == nil || m.M2M.Kind != "purchase-order" || m.M2M.XMLIndex < 0 || m.M2M.PDFIndex < 0 || !strings.HasPrefix(m.M2M.DocumentNumber, "PO-") {
			t.Fatalf("M2M not recognised: %+v", m.M2M)
		}
	}
	general := w.messages(store.MessageQuery{Type: settings.TypeGeneral})
	failed := 0
	for _, m := range general {
		if m.Failed != "" {
			failed++
		}
	}
	if len(general) != 21 || failed != 1 {
		t.Errorf("general %d, failed %d", len(general), failed)
	}
	// Nothing was marked read on the server: the worker peeks.
	ms, _ := w.emu.Store().Messages("m2m@contoso.example", settings.DefaultProcessedFolder)
	for _, m := range ms {
		for _, f := range m.Flags {
			if f == `\Seen` {
				t.Fatal("a message was marked read")
			}
		}
	}
	// New mail is noticed (IDLE) and stored.
	w.deliver("m2m@contoso.example", m2mMessage(1000))
	waitFor(t, 10*time.Second, "the new message", func() bool { return len(w.messages(store.MessageQuery{})) == 272 })
	raw, err := w.store.Raw(context.Background(), w.messages(store.MessageQuery{})[271].ID)
	if err != nil || string(raw) != string(m2mMessage(1000)) {
		t.Errorf("raw bytes differ: %v", err)
	}
	if s := w.state(1); s.State != "idle" || s.LastPoll.IsZero() || s.TokenExpires.IsZero() {
		t.Errorf("state %+v", s)
	}
}

func TestIngestSurvivesADroppedFetch(t *testing.T) {
	w := newWorld(t, nil)
	w.configure(settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor})
	for i := range 300 {
		w.deliver("m2m@contoso.example", m2mMessage(i))
	}
	w.emu.IMAP().SetFaults(exo.IMAPFaults{DropAfterFetch: 130})
	w.manager(nil)
	waitFor(t, 30*time.Second, "300 messages", func() bool {
		return len(w.messages(store.MessageQuery{})) == 300 && w.count("m2m@contoso.example", "INBOX") == 0
	})
	if n := w.count("m2m@contoso.example", settings.DefaultProcessedFolder); n != 300 {
		t.Errorf("processed %d", n)
	}
	// Every message's stored bytes are one delivered message's, each once (bodies are read ahead
	// of the worker, and the connection broke in the middle of a FETCH).
	delivered := map[string]bool{}
	for i := range 300 {
		delivered[string(m2mMessage(i))] = true
	}
	for _, m := range w.messages(store.MessageQuery{}) {
		raw, err := w.store.Raw(context.Background(), m.ID)
		if err != nil {
			t.Fatalf("message %s: %v", m.ID, err)
		}
		if !delivered[string(raw)] {
			t.Fatalf("message %s: stored bytes are none of the delivered messages (or stored twice)", m.ID)
		}
		delete(delivered, string(raw))
	}
}

func TestIngestPausesOnConfigErrorAndResumes(t *testing.T) {
	w := newWorld(t, func(s *scenario.Scenario) { s.ServicePrincipals[0].FullAccess = nil })
	w.configure(settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor})
	w.deliver("m2m@contoso.example", m2mMessage(1))
	w.manager(nil)
	waitFor(t, 10*time.Second, "the account paused", func() bool { return w.state(1).State == "paused" })
	s := w.state(1)
	if s.LastError == nil || !strings.Contains(strings.Join(s.LastError.Actions, "\n"), "Add-MailboxPermission") {
		t.Fatalf("paused without the remedy: %+v", s.LastError)
	}
	// The tenant admin fixes it and the administrator saves the settings again: the worker resumes.
	w.emu.Scenario().ServicePrincipals[0].FullAccess = []string{scenario.All}
	a, _ := w.store.IncomingAccount(context.Background(), "m2m@contoso.example")
	a.PollInterval = 30 * time.Second
	if err := w.store.PutIncomingAccount(context.Background(), a, "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the message after the fix", func() bool { return len(w.messages(store.MessageQuery{})) == 1 })
}

func TestIngestUIDValidityChangeStoresNothingTwice(t *testing.T) {
	w := newWorld(t, nil)
	w.configure(settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor, LeaveInPlace: true})
	for i := range 50 {
		w.deliver("m2m@contoso.example", m2mMessage(i))
	}
	w.manager(nil)
	waitFor(t, 20*time.Second, "50 messages", func() bool { return len(w.messages(store.MessageQuery{})) == 50 })
	// The server rebuilds the mailbox: new UIDVALIDITY, new UIDs for the same messages; then new mail.
	if _, err := w.emu.Store().RenumberFolder("m2m@contoso.example", "INBOX"); err != nil {
		t.Fatal(err)
	}
	for i := 50; i < 60; i++ {
		w.deliver("m2m@contoso.example", m2mMessage(i))
	}
	waitFor(t, 20*time.Second, "the 10 new messages", func() bool { return len(w.messages(store.MessageQuery{})) == 60 })
	time.Sleep(300 * time.Millisecond) // a second look must not add anything
	if n := len(w.messages(store.MessageQuery{})); n != 60 {
		t.Fatalf("%d messages after the UIDVALIDITY change, want 60", n)
	}
	if n := w.count("m2m@contoso.example", "INBOX"); n != 60 {
		t.Errorf("leave in place: INBOX holds %d", n)
	}
}

func TestIngestHonoursThrottling(t *testing.T) {
	w := newWorld(t, nil)
	w.configure(settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor})
	for i := range 20 {
		w.deliver("m2m@contoso.example", m2mMessage(i))
	}
	w.emu.IMAP().SetFaults(exo.IMAPFaults{Throttle: 1500 * time.Millisecond})
	start := time.Now()
	w.manager(nil)
	waitFor(t, 10*time.Second, "the backoff state", func() bool {
		s := w.state(1)
		return s.LastError != nil && s.LastError.Kind == "throttled"
	})
	waitFor(t, 20*time.Second, "20 messages after the throttling", func() bool { return len(w.messages(store.MessageQuery{})) == 20 })
	if d := time.Since(start); d < time.Second {
		t.Errorf("the worker did not wait for the suggested backoff (done in %s)", d)
	}
}

func TestIngestSecretExpiringMidRun(t *testing.T) {
	w := newWorld(t, nil)
	w.configure(settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor})
	w.deliver("m2m@contoso.example", m2mMessage(1))
	w.manager(nil)
	waitFor(t, 10*time.Second, "the first message", func() bool { return len(w.messages(store.MessageQuery{})) == 1 })
	// The secret expires; the next connection finds Exchange refusing the old token and Entra ID
	// refusing the secret.
	if err := w.emu.Entra().ExpireSecret(scenario.DefaultAppClientID, ""); err != nil {
		t.Fatal(err)
	}
	w.emu.IMAP().SetFaults(exo.IMAPFaults{RefuseLogins: true, DropAfterFetch: 1})
	w.deliver("m2m@contoso.example", m2mMessage(2))
	waitFor(t, 15*time.Second, "the account paused", func() bool { return w.state(1).State == "paused" })
	s := w.state(1)
	if s.LastError == nil || s.LastError.Code != "AADSTS7000222" || !strings.Contains(s.LastError.Remedy, "create a new client secret") {
		t.Fatalf("paused with %+v", s.LastError)
	}
	// The administrator makes a new secret and pastes it: the worker resumes and nothing is lost.
	w.emu.IMAP().SetFaults(exo.IMAPFaults{})
	app := &w.emu.Scenario().Apps[0]
	app.Secrets = append(app.Secrets, scenario.Secret{ID: "77777777-1111-4222-8333-444444444444", Value: "New8Q~RotatedSecretValue000000000000000", Expires: time.Now().Add(24 * time.Hour)})
	sys, _ := w.store.System(context.Background())
	sys.ClientSecret = settings.NewSecret("New8Q~RotatedSecretValue000000000000000")
	if err := w.store.PutSystem(context.Background(), sys, "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the second message", func() bool { return len(w.messages(store.MessageQuery{})) == 2 })
}

// TestBatchBytesEndsABatch: batches hold about BatchBytes — planned with the sizes the server gives,
// or, when those were wrong, ended by stopping the FETCH — and the next one goes on on the same
// connection: every message stored and moved with one session.
func TestBatchBytesEndsABatch(t *testing.T) {
	for _, understate := range []bool{false, true} {
		t.Run(fmt.Sprint("sizes understated=", understate), func(t *testing.T) {
			w := newWorld(t, nil)
			w.configure(settings.IncomingAccount{Address: "info@contoso.example", Type: settings.TypeGeneral})
			var size int
			for i := range 120 {
				m := plainMessage(i)
				size = max(size, len(m))
				w.deliver("info@contoso.example", m)
			}
			const limit = 8 << 10
			var dials atomic.Int32
			var mu sync.Mutex
			var batches []int
			w.manager(func(c *Config) {
				c.BatchBytes = limit
				dial := imapDialer(c)
				c.Dial = func(ctx context.Context, tg Target) (Connected, error) {
					dials.Add(1)
					conn, err := dial(ctx, tg)
					if err == nil && understate {
						conn.Session = smallSizes{conn.Session}
					}
					return conn, err
				}
				c.Store = batchSizes{c.Store, func(b store.Batch) {
					mu.Lock()
					defer mu.Unlock()
					n := 0
					for _, m := range b.Messages {
						n += len(m.Raw)
					}
					batches = append(batches, n)
				}}
			})
			waitFor(t, 30*time.Second, "120 messages stored and moved", func() bool {
				return len(w.messages(store.MessageQuery{})) == 120 && w.count("info@contoso.example", "INBOX") == 0
			})
			if n := dials.Load(); n != 1 {
				t.Errorf("%d connections opened, want 1 (a full batch must not end the session)", n)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, n := range batches {
				if n > limit+size || !understate && n > limit {
					t.Errorf("a batch of %d bytes (limit %d, messages up to %d)", n, limit, size)
				}
			}
			if len(batches) < 120*size/limit/2 {
				t.Errorf("%d batches", len(batches))
			}
		})
	}
}

// smallSizes is a Session whose server says every message has 1 byte.
type smallSizes struct{ Session }

func (s smallSizes) Sizes(uids []uint32) (map[uint32]int64, error) {
	out := map[uint32]int64{}
	for _, u := range uids {
		out[u] = 1
	}
	return out, nil
}

// batchSizes is a store that tells seen about each batch committed.
type batchSizes struct {
	store.Store
	seen func(store.Batch)
}

func (s batchSizes) CommitBatch(ctx context.Context, b store.Batch) ([]store.Committed, error) {
	s.seen(b)
	return s.Store.CommitBatch(ctx, b)
}
