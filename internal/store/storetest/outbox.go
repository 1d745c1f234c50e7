package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

func newOutgoing(subject string) store.Outgoing {
	return store.Outgoing{Sender: "WEBSHOP", Webshop: true, From: "webshop@contoso.example",
		Recipients: []string{"kund@example.com", "webshop@contoso.example"}, Bcc: []string{"webshop@contoso.example"},
		Subject: subject, MessageID: "<" + subject + "@inkorg>", RelatedRecord: "order 4711",
		Raw: []byte("From: webshop@contoso.example\r\nSubject: " + subject + "\r\n\r\nbody\x00\xff\r\n")}
}

func testOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	// The system setting "Send with" lives beside the outbox (migration 0004).
	must(t, s.PutSystem(ctx, settings.System{EmailMethod: settings.MethodExchangeOnline, SendTransport: settings.SendGraph}, "test"))
	if sys, err := s.System(ctx); err != nil || sys.SendTransport != settings.SendGraph {
		t.Fatalf("send transport %q %v", sys.SendTransport, err)
	}
	if a, _ := s.Audit(ctx, 10); !slices.ContainsFunc(a, func(e store.AuditEntry) bool { return e.Field == "sendTransport" && e.New == "graph" }) {
		t.Errorf("audit lacks sendTransport: %+v", a)
	}
	m, err := s.EnqueueOutgoing(ctx, newOutgoing("first"))
	must(t, err)
	if !store.ValidOutgoingID(m.ID) || m.State != store.OutQueued || m.CreatedAt.IsZero() || m.Size == 0 || m.Raw != nil {
		t.Fatalf("enqueued %+v", m)
	}
	got, err := s.Outgoing(ctx, m.ID)
	must(t, err)
	if got.Sender != "WEBSHOP" || !got.Webshop || !slices.Equal(got.Recipients, m.Recipients) || !slices.Equal(got.Bcc, m.Bcc) ||
		got.Subject != "first" || got.RelatedRecord != "order 4711" || got.State != store.OutQueued || got.Attempts != 0 || got.LastError != nil {
		t.Fatalf("read back %+v", got)
	}
	raw, err := s.OutgoingRaw(ctx, m.ID)
	must(t, err)
	if string(raw) != string(newOutgoing("first").Raw) {
		t.Errorf("raw bytes changed: %q", raw)
	}
	if _, err := s.Outgoing(ctx, store.NewOutgoingID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := s.OutgoingRaw(ctx, store.NewOutgoingID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown id raw: %v", err)
	}

	now := time.Now().Add(time.Second)
	due, err := s.DueOutgoing(ctx, now, 10)
	must(t, err)
	if len(due) != 1 || due[0].ID != m.ID {
		t.Fatalf("due %+v", due)
	}
	// Claim: once only.
	c, err := s.ClaimOutgoing(ctx, m.ID, "smtp-xoauth2", now, now.Add(time.Minute))
	must(t, err)
	if c.State != store.OutSending || c.Attempts != 1 || c.Transport != "smtp-xoauth2" {
		t.Fatalf("claimed %+v", c)
	}
	if _, err := s.ClaimOutgoing(ctx, m.ID, "smtp-xoauth2", now, now.Add(time.Minute)); !errors.Is(err, store.ErrOutgoingState) {
		t.Errorf("second claim: %v", err)
	}
	if due, _ := s.DueOutgoing(ctx, now, 10); len(due) != 0 {
		t.Errorf("a message in sending is due: %+v", due)
	}
	// A temporary failure: back in the queue, due later.
	rec := store.ErrorRecord{At: now, Stage: "send", Kind: "transient", Code: "SMTP 451 4.3.0", Summary: "try again", Remedy: "inkorg retries"}
	must(t, s.OutgoingRetry(ctx, m.ID, now.Add(time.Hour), rec))
	if due, _ := s.DueOutgoing(ctx, now, 10); len(due) != 0 {
		t.Errorf("postponed message due: %+v", due)
	}
	due, _ = s.DueOutgoing(ctx, now.Add(2*time.Hour), 10)
	if len(due) != 1 || due[0].LastError == nil || due[0].LastError.Code != "SMTP 451 4.3.0" || due[0].Attempts != 1 {
		t.Fatalf("after retry %+v", due)
	}
	later := now.Add(2 * time.Hour)
	_, err = s.ClaimOutgoing(ctx, m.ID, "graph", later, later.Add(time.Minute))
	must(t, err)
	must(t, s.OutgoingSent(ctx, m.ID, later, "250 2.0.0 OK"))
	got, _ = s.Outgoing(ctx, m.ID)
	if got.State != store.OutSent || got.Attempts != 2 || got.ServerReply != "250 2.0.0 OK" || got.SentAt.IsZero() || got.Transport != "graph" {
		t.Errorf("sent %+v", got)
	}
	if err := s.OutgoingSent(ctx, m.ID, later, "again"); !errors.Is(err, store.ErrOutgoingState) {
		t.Errorf("sent twice: %v", err)
	}

	// A permanent failure.
	f, err := s.EnqueueOutgoing(ctx, newOutgoing("second"))
	must(t, err)
	_, err = s.ClaimOutgoing(ctx, f.ID, "smtp-xoauth2", later, later.Add(time.Minute))
	must(t, err)
	must(t, s.OutgoingFailed(ctx, f.ID, store.ErrorRecord{At: later, Stage: "authenticate", Kind: "config", Code: "SMTP 535 5.7.139",
		Summary: "SMTP AUTH is off", Remedy: "Set-CASMailbox", Actions: []string{"Set-CASMailbox -Identity x"}}))
	got, _ = s.Outgoing(ctx, f.ID)
	if got.State != store.OutFailed || got.LastError == nil || got.LastError.Code != "SMTP 535 5.7.139" || len(got.LastError.Actions) != 1 {
		t.Errorf("failed %+v", got)
	}

	// A connection that broke after the message was handed over: unknown at once.
	b, err := s.EnqueueOutgoing(ctx, newOutgoing("broken"))
	must(t, err)
	_, err = s.ClaimOutgoing(ctx, b.ID, "smtp", later, later.Add(time.Minute))
	must(t, err)
	must(t, s.OutgoingUnknown(ctx, b.ID, store.ErrorRecord{Stage: "send", Kind: "transient", Code: "network", Summary: "broken pipe"}))
	if got, _ := s.Outgoing(ctx, b.ID); got.State != store.OutUnknown || got.LastError == nil || got.LastError.Code != "network" {
		t.Errorf("unknown after a broken connection %+v", got)
	}
	must(t, s.ResolveOutgoing(ctx, b.ID, false, later))

	// A crash while sending: the lease runs out, the message becomes unknown, never due again by itself.
	u, err := s.EnqueueOutgoing(ctx, newOutgoing("third"))
	must(t, err)
	_, err = s.ClaimOutgoing(ctx, u.ID, "smtp-xoauth2", later, later.Add(time.Minute))
	must(t, err)
	ids, err := s.RecoverOutgoing(ctx, later.Add(30*time.Second))
	must(t, err)
	if len(ids) != 0 {
		t.Errorf("recovered a message whose lease runs: %v", ids)
	}
	ids, err = s.RecoverOutgoing(ctx, later.Add(2*time.Minute))
	must(t, err)
	if len(ids) != 1 || ids[0] != u.ID {
		t.Fatalf("recovered %v", ids)
	}
	if got, _ := s.Outgoing(ctx, u.ID); got.State != store.OutUnknown {
		t.Errorf("after recovery %+v", got)
	}
	if due, _ := s.DueOutgoing(ctx, later.Add(time.Hour), 10); len(due) != 0 {
		t.Errorf("an unknown message is due: %+v", due)
	}
	list, err := s.OutgoingList(ctx, store.OutUnknown, 10)
	must(t, err)
	if len(list) != 1 || list[0].ID != u.ID {
		t.Errorf("unknown list %+v", list)
	}
	all, _ := s.OutgoingList(ctx, "", 10)
	if len(all) != 4 || all[0].ID != u.ID || all[3].ID != m.ID {
		t.Errorf("list newest first %+v", all)
	}
	// Resolving: sent (confirmed), or resend.
	if err := s.ResolveOutgoing(ctx, m.ID, false, later); !errors.Is(err, store.ErrOutgoingState) {
		t.Errorf("resolving a sent message: %v", err)
	}
	must(t, s.ResolveOutgoing(ctx, u.ID, true, later))
	if due, _ := s.DueOutgoing(ctx, later.Add(time.Second), 10); len(due) != 1 || due[0].ID != u.ID {
		t.Errorf("resent message not due: %+v", due)
	}
	must(t, s.ResolveOutgoing(ctx, f.ID, true, later))
	if err := s.ResolveOutgoing(ctx, store.NewOutgoingID(), true, later); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("resolving an unknown id: %v", err)
	}
}

// testOutboxClaimRace: many workers claim the same messages; each is claimed exactly once.
func testOutboxClaimRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		m, err := s.EnqueueOutgoing(ctx, newOutgoing("race"+string(rune('a'+i))))
		must(t, err)
		ids = append(ids, m.ID)
	}
	now := time.Now().Add(time.Second)
	var mu sync.Mutex
	claims := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range ids {
				_, err := s.ClaimOutgoing(ctx, id, "smtp", now, now.Add(time.Minute))
				if err == nil {
					mu.Lock()
					claims[id]++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrOutgoingState) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if claims[id] != 1 {
			t.Errorf("%s claimed %d times", id, claims[id])
		}
	}
}
