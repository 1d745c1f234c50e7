package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"inkorg/internal/store"
)

func testOperators(t *testing.T, s store.Store) {
	ctx := context.Background()
	if ops, err := s.Operators(ctx); err != nil || len(ops) != 0 {
		t.Fatalf("Operators on an empty store = %v, %v", ops, err)
	}
	admin, err := s.CreateOperator(ctx, store.Operator{Name: "Alice", Role: store.RoleAdmin}, []byte("hash-a"))
	must(t, err)
	if admin.ID == 0 || admin.Name != "Alice" || admin.CreatedAt.IsZero() {
		t.Errorf("CreateOperator = %+v", admin)
	}
	if _, err := s.CreateOperator(ctx, store.Operator{Name: "ALICE", Role: store.RoleUser}, []byte("x")); !errors.Is(err, store.ErrExists) {
		t.Errorf("a second ALICE: %v, want ErrExists", err)
	}
	bob, err := s.CreateOperator(ctx, store.Operator{Name: "bob", Role: store.RoleUser, User: "ANNA"}, []byte("hash-b"))
	must(t, err)
	got, err := s.Operator(ctx, "BOB")
	must(t, err)
	if got.ID != bob.ID || got.Role != store.RoleUser || got.User != "ANNA" || string(got.PasswordHash) != "hash-b" {
		t.Errorf("Operator(BOB) = %+v", got)
	}
	if _, err := s.Operator(ctx, "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Operator(carol): %v, want ErrNotFound", err)
	}
	ops, err := s.Operators(ctx)
	must(t, err)
	if len(ops) != 2 || ops[0].Name != "Alice" || ops[1].Name != "bob" || ops[0].PasswordHash != nil {
		t.Errorf("Operators = %+v", ops)
	}

	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h1, h2 := sha256.Sum256([]byte("token-1")), sha256.Sum256([]byte("token-2"))
	must(t, s.CreateSession(ctx, store.Session{Hash: h1[:], OperatorID: admin.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	must(t, s.CreateSession(ctx, store.Session{Hash: h2[:], OperatorID: bob.ID, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}))
	ss, op, err := s.SessionByHash(ctx, h1[:], now.Add(30*time.Minute))
	must(t, err)
	if op.Name != "Alice" || op.Role != store.RoleAdmin || !ss.ExpiresAt.Equal(now.Add(time.Hour)) || ss.OperatorID != admin.ID {
		t.Errorf("SessionByHash = %+v, %+v", ss, op)
	}
	if _, _, err := s.SessionByHash(ctx, h2[:], now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an expired session: %v, want ErrNotFound", err)
	}
	if n, err := s.DeleteExpiredSessions(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Errorf("DeleteExpiredSessions = %d, %v; want 1", n, err)
	}
	must(t, s.DeleteSession(ctx, h1[:]))
	must(t, s.DeleteSession(ctx, h1[:]))
	if _, _, err := s.SessionByHash(ctx, h1[:], now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deleted session: %v, want ErrNotFound", err)
	}
	must(t, s.CreateSession(ctx, store.Session{Hash: h1[:], OperatorID: bob.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	must(t, s.RemoveOperator(ctx, "BOB"))
	if _, _, err := s.SessionByHash(ctx, h1[:], now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session of a removed operator: %v, want ErrNotFound", err)
	}
	if err := s.RemoveOperator(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removing bob twice: %v, want ErrNotFound", err)
	}
}
