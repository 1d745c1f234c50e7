package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	tok, err := s.CreateAPIToken(ctx, "erp", []byte("hash-1"))
	must(t, err)
	if tok.ID == 0 || tok.Name != "erp" || tok.CreatedAt.IsZero() {
		t.Fatalf("created %+v", tok)
	}
	if _, err := s.CreateAPIToken(ctx, "ERP", []byte("hash-2")); !errors.Is(err, store.ErrExists) {
		t.Errorf("a taken name: %v", err)
	}
	got, err := s.APITokenByHash(ctx, []byte("hash-1"))
	must(t, err)
	if got.ID != tok.ID || got.LastUsed.IsZero() {
		t.Errorf("by hash %+v", got)
	}
	if _, err := s.APITokenByHash(ctx, []byte("hash-9")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	list, err := s.APITokens(ctx)
	must(t, err)
	if len(list) != 1 || list[0].LastUsed.IsZero() {
		t.Errorf("list %+v", list)
	}
	must(t, s.RevokeAPIToken(ctx, "erp"))
	if err := s.RevokeAPIToken(ctx, "erp"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke twice: %v", err)
	}
	if _, err := s.APITokenByHash(ctx, []byte("hash-1")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoked token still works: %v", err)
	}
}

func testWebhooks(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.PutWebhook(ctx, store.Webhook{Type: settings.TypeMonitorToMonitor, URL: "https://erp.example/hooks/m2m", Secret: settings.NewSecret(Secrets[0])}, "test"))
	ws, err := s.Webhooks(ctx)
	must(t, err)
	if len(ws) != 1 || ws[0].URL != "https://erp.example/hooks/m2m" || ws[0].Secret.Reveal() != Secrets[0] {
		t.Fatalf("webhooks %+v", ws)
	}
	// Storing a message of a type with a webhook owes a delivery; of another type, none.
	got, err := s.CommitBatch(ctx, batch(1, 1, 2, NewMessage(1, 1, ""), NewMessage(2, 2, "")))
	must(t, err)
	b := batch(2, 1, 1, NewMessage(3, 1, ""))
	b.Type = settings.TypeGeneral
	_, err = s.CommitBatch(ctx, b)
	must(t, err)
	now := time.Now().Add(time.Second)
	due, err := s.DueDeliveries(ctx, now, 10)
	must(t, err)
	if len(due) != 2 || due[0].MessageID != got[0].ID || due[0].Type != settings.TypeMonitorToMonitor || due[0].Attempts != 0 {
		t.Fatalf("due %+v", due)
	}
	// A duplicate owes nothing new.
	_, err = s.CommitBatch(ctx, batch(1, 1, 3, NewMessage(1, 3, "")))
	must(t, err)
	if due, _ = s.DueDeliveries(ctx, now, 10); len(due) != 2 {
		t.Errorf("a duplicate queued a delivery: %d", len(due))
	}
	must(t, s.DeliveryDone(ctx, due[0], true, time.Time{}, ""))
	must(t, s.DeliveryDone(ctx, due[1], false, now.Add(time.Hour), "HTTP 503"))
	if later, _ := s.DueDeliveries(ctx, now, 10); len(later) != 0 {
		t.Errorf("delivered or postponed deliveries still due: %+v", later)
	}
	later, _ := s.DueDeliveries(ctx, now.Add(2*time.Hour), 10)
	if len(later) != 1 || later[0].Attempts != 1 || later[0].LastError != "HTTP 503" {
		t.Errorf("after a failure %+v", later)
	}
	must(t, s.PutWebhook(ctx, store.Webhook{Type: settings.TypeMonitorToMonitor}, "test"))
	if ws, _ = s.Webhooks(ctx); len(ws) != 0 {
		t.Errorf("removed webhook %+v", ws)
	}
	audit, _ := s.Audit(ctx, 10)
	for _, a := range audit {
		if strings.Contains(a.Old+a.New, Secrets[0]) {
			t.Errorf("the webhook secret is in the audit log: %+v", a)
		}
	}
}

// testDeliveryClaims: claimed deliveries are not due again until the claim's end (another process
// would not deliver them), are due again after it (a process that died holding them loses nothing),
// and claims racing each other share the deliveries out without overlap.
func testDeliveryClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.PutWebhook(ctx, store.Webhook{Type: settings.TypeMonitorToMonitor, URL: "https://erp.example/hooks/m2m", Secret: settings.NewSecret(Secrets[0])}, "test"))
	var ms []store.NewMessage
	for i := range 40 {
		ms = append(ms, NewMessage(i, uint32(i+1), ""))
	}
	got, err := s.CommitBatch(ctx, batch(1, 1, 40, ms...))
	must(t, err)
	now := time.Now().Add(time.Second)
	until := now.Add(time.Minute)
	first, err := s.ClaimDeliveries(ctx, now, until, 5)
	must(t, err)
	if len(first) != 5 || first[0].MessageID != got[0].ID || first[4].MessageID != got[4].ID || first[0].Attempts != 0 {
		t.Fatalf("first claim %+v", first)
	}
	if due, _ := s.DueDeliveries(ctx, now, 100); len(due) != 35 {
		t.Errorf("%d due after claiming 5 of 40, want 35", len(due))
	}
	// Racing claims: every remaining delivery exactly once.
	var mu sync.Mutex
	var wg sync.WaitGroup
	claimed := map[string]int{}
	for range 5 {
		wg.Go(func() {
			for {
				c, err := s.ClaimDeliveries(ctx, now, until, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(c) == 0 {
					return
				}
				mu.Lock()
				for _, d := range c {
					claimed[d.MessageID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != 35 {
		t.Errorf("the racing claims got %d deliveries, want 35", len(claimed))
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("delivery of %s claimed %d times", id, n)
		}
	}
	// Given back (a shutdown cut the attempt short): due again as it was.
	must(t, s.UnclaimDelivery(ctx, first[2]))
	back, err := s.ClaimDeliveries(ctx, now, until, 100)
	must(t, err)
	if len(back) != 1 || back[0].MessageID != first[2].MessageID || back[0].Attempts != 0 || !back[0].NextAt.Equal(first[2].NextAt) {
		t.Errorf("given back: %+v, want %+v", back, first[2])
	}
	// Done, failed, or abandoned by a process that died.
	must(t, s.DeliveryDone(ctx, first[0], true, time.Time{}, ""))
	must(t, s.DeliveryDone(ctx, first[1], false, now.Add(30*time.Second), "HTTP 503"))
	again, err := s.ClaimDeliveries(ctx, now.Add(31*time.Second), until, 100)
	must(t, err)
	if len(again) != 1 || again[0].MessageID != first[1].MessageID || again[0].Attempts != 1 {
		t.Errorf("the failed one, due again: %+v", again)
	}
	after, err := s.ClaimDeliveries(ctx, until.Add(time.Second), until.Add(time.Hour), 100)
	must(t, err)
	if len(after) != 39 {
		t.Errorf("%d due again after the claims ended, want 39 (all but the one delivered)", len(after))
	}
}
