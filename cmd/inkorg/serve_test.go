package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"inkorg/internal/emulator"
	"inkorg/internal/settings"
)

// TestServeSurvivesKillAnywhere kills "inkorg serve" (SIGKILL: no clean-up of any kind) at random
// moments while it works through a backlog, restarts it, and checks that in the end every message is
// in the store exactly once and in the processed folder exactly once, with none left behind.
func TestServeSurvivesKillAnywhere(t *testing.T) {
	b := newBacklog(t, 0)
	const n = 6000
	for i := range n {
		to := backlogBoxes[0]
		if i%5 == 0 {
			to = backlogBoxes[1]
		}
		raw := fmt.Appendf(nil, "From: sender%d@example.com\r\nTo: %s\r\nSubject: crash test %d\r\nMessage-ID: <crash-%d@example.com>\r\n\r\n%s\r\n",
			i, to, i, i, strings.Repeat("x", 1000+i%500))
		if _, err := b.emu.Store().Deliver(to, "INBOX", raw); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 8 {
		cmd, _ := b.serve("--log-level", "warn")
		time.Sleep(time.Duration(30+rng.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Logf("round %d: killed; %d messages still in INBOX", round, b.count("INBOX"))
	}
	cmd, out := b.serve("--log-level", "warn")
	waitFor(t, "the backlog to be worked off", 90*time.Second, func() bool { return b.count("INBOX") == 0 })
	// Give the last MovedThrough a moment, then stop cleanly and look at the store.
	time.Sleep(300 * time.Millisecond)
	stop(t, cmd, out)
	st := b.open(b.db)
	seen := stored(t, st)
	if len(seen) != n {
		t.Errorf("%d distinct messages stored, want %d", len(seen), n)
	}
	for s, k := range seen {
		if k != 1 {
			t.Errorf("%q stored %d times", s, k)
		}
	}
	if processed := b.count(settings.DefaultProcessedFolder); processed != n {
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
	tn := newTenant(t, nil)
	c, db, emu := tn.c, tn.db, tn.emu
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
