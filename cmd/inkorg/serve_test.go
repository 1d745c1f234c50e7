package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"inkorg/internal/emulator"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
)

// TestServeSurvivesKillAnywhere kills "inkorg serve" (SIGKILL: no clean-up of any kind) at random
// moments while it works through a backlog, restarts it, and checks that in the end every message is
// in the store exactly once and in the processed folder exactly once, with none left behind.
func TestServeSurvivesKillAnywhere(t *testing.T) {
	emu, err := emulator.New(emulator.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	info := emu.Info()
	c := newCLI(t)
	db := filepath.Join(c.dir, "inkorg.db")
	var app emulator.InfoApp
	for _, a := range info.Apps {
		if !a.PublicClient {
			app = a
		}
	}
	c.file("secret", app.ClientSecret)
	c.want(0, []string{"settings", "system", "set", "--db", db, "--email-method", "exchange-online", "--client-id", app.ClientID,
		"--tenant-id", info.TenantID, "--auth-flow", "client-secret", "--client-secret-file", filepath.Join(c.dir, "secret")}, "Saved")
	c.want(0, []string{"settings", "incoming", "add", "--db", db, "--address", "m2m@contoso.example", "--type", "monitor-to-monitor"}, "Saved")
	c.want(0, []string{"settings", "incoming", "add", "--db", db, "--address", "info@contoso.example", "--type", "general"}, "Saved")

	c.want(0, []string{"token", "create", "erp", "--db", db})
	const n = 6000
	for i := range n {
		to := "m2m@contoso.example"
		if i%5 == 0 {
			to = "info@contoso.example"
		}
		raw := fmt.Appendf(nil, "From: sender%d@example.com\r\nTo: %s\r\nSubject: crash test %d\r\nMessage-ID: <crash-%d@example.com>\r\n\r\n%s\r\n",
			i, to, i, i, strings.Repeat("x", 1000+i%500))
		if _, err := emu.Store().Deliver(to, "INBOX", raw); err != nil {
			t.Fatal(err)
		}
	}
	serve := func() *exec.Cmd {
		cmd := exec.Command(binary, "serve", "--db", db, "--cloud", emu.InfoFile(), "--addr", "127.0.0.1:0", "--log-level", "warn")
		cmd.Env = c.env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 8 {
		cmd := serve()
		time.Sleep(time.Duration(30+rng.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("round %d: killed; INBOX m2m %d, info %d", round, inboxCount(t, emu, "m2m@contoso.example", "INBOX"), inboxCount(t, emu, "info@contoso.example", "INBOX"))
	}
	cmd := serve()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for inboxCount(t, emu, "m2m@contoso.example", "INBOX")+inboxCount(t, emu, "info@contoso.example", "INBOX") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the backlog was not worked off")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Give the last MarkMoved a moment, then stop cleanly and look at the store.
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve did not stop cleanly on SIGTERM: %v", err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: db, Key: func(string) (*secrets.Sealer, error) {
		return secrets.LoadKeyFile(filepath.Join(c.dir, "inkorg.key"))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := map[string]int{}
	q := store.MessageQuery{}
	for {
		page, err := st.Messages(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			seen[m.MessageID]++
		}
		q.After = page[len(page)-1].Seq
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages stored, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s stored %d times", id, k)
		}
	}
	processed := inboxCount(t, emu, "m2m@contoso.example", settings.DefaultProcessedFolder) + inboxCount(t, emu, "info@contoso.example", settings.DefaultProcessedFolder)
	if processed != n {
		t.Errorf("%d messages in the processed folders, want %d", processed, n)
	}
	for _, id := range []int64{1, 2} {
		if pm, _ := st.PendingMoves(context.Background(), id); len(pm) != 0 {
			t.Errorf("account %d has %d moves pending", id, len(pm))
		}
	}
}

func inboxCount(t *testing.T, emu *emulator.Emulator, mailbox, folder string) int {
	fs, err := emu.Store().Folders(mailbox)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if strings.EqualFold(f.Name, folder) {
			return int(f.Messages)
		}
	}
	return 0
}

// TestServeSendsMail posts a message to the served API as the webshop and finds it in the recipient's
// emulated mailbox.
func TestServeSendsMail(t *testing.T) {
	emu, err := emulator.New(emulator.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	info := emu.Info()
	c := newCLI(t)
	db := filepath.Join(c.dir, "inkorg.db")
	var app emulator.InfoApp
	for _, a := range info.Apps {
		if !a.PublicClient {
			app = a
		}
	}
	c.file("secret", app.ClientSecret)
	c.want(0, []string{"settings", "system", "set", "--db", db, "--email-method", "exchange-online", "--client-id", app.ClientID,
		"--tenant-id", info.TenantID, "--auth-flow", "client-secret", "--client-secret-file", filepath.Join(c.dir, "secret")}, "Saved")
	c.want(0, []string{"settings", "user", "set", "WEBSHOP", "--db", db, "--email-method", "exchange-online", "--email-address", "webshop@contoso.example"}, "Saved")
	c.want(0, []string{"settings", "webshop", "set", "--db", db, "--email-method", "according-to-user-settings"}, "Saved")
	token := strings.TrimSpace(c.want(0, []string{"token", "create", "erp", "--db", db}).stdout)

	cmd := exec.Command(binary, "serve", "--db", db, "--cloud", emu.InfoFile(), "--addr", "127.0.0.1:0")
	cmd.Env = c.env
	var logs lockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	re := regexp.MustCompile(`api=(http://\S+/api/v1/)`)
	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs.String())
		}
	}
	body := `{"asWebshop": true, "to": ["anna@contoso.example"], "subject": "Your order 1203", "text": "Thank you for your order."}`
	req, _ := http.NewRequest("POST", base+"mail", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var queued struct{ ID, State string }
	json.NewDecoder(resp.Body).Decode(&queued)
	resp.Body.Close()
	if resp.StatusCode != 202 || queued.ID == "" {
		t.Fatalf("POST /mail: %d %+v\n%s", resp.StatusCode, queued, logs.String())
	}
	var state struct{ State string }
	for deadline := time.Now().Add(20 * time.Second); state.State != "sent"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not sent: %+v\n%s", state, logs.String())
		}
		req, _ := http.NewRequest("GET", base+"mail/"+queued.ID, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&state)
		resp.Body.Close()
	}
	ms, err := emu.Store().Messages("anna@contoso.example", "INBOX")
	if err != nil || len(ms) != 1 || ms[0].Subject != "Your order 1203" || ms[0].From != "webshop@contoso.example" {
		t.Fatalf("anna's INBOX: %+v %v", ms, err)
	}
}
