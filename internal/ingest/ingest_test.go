package ingest

import (
	"context"
	"strings"
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
