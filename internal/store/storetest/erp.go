package storetest

import (
	"context"
	"errors"
	"strings"
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
