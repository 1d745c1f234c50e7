package ingest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
	"inkorg/internal/store/storetest"
)

// movingSession moves until its failAt-th Move, which fails as a dropped connection would.
type movingSession struct {
	Session
	calls, failAt int
}

func (s *movingSession) Move(uids []uint32, dest string) error {
	if s.calls++; s.calls == s.failAt {
		return errors.New("connection reset by peer")
	}
	return nil
}

// TestMovesRecordedOnceAllAreDone: a batch going to two folders is recorded as moved only when both
// MOVEs have succeeded. When the second fails, the first folder's UIDs stay pending too (moved again
// next time: a MOVE of a UID no longer there does nothing), so none is left behind.
func TestMovesRecordedOnceAllAreDone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, "inkorg.db"), Key: func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dir, "inkorg.key"), true)
		return s, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms := []store.NewMessage{storetest.NewMessage(1, 1, "Processed"), storetest.NewMessage(2, 2, "Failed"), storetest.NewMessage(3, 4, "Processed")}
	if _, err := st.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "acct1@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX",
		UIDValidity: 7, LastUID: 5, Messages: ms}); err != nil {
		t.Fatal(err)
	}
	w := &worker{cfg: &Config{Store: st}, t: Target{Account: settings.IncomingAccount{ID: 1}}}
	mv := moves{byDest(ms), 5}

	if err := w.moveUIDs(ctx, &movingSession{failAt: 2}, "INBOX", 7, mv); err == nil {
		t.Fatal("a failed MOVE was not reported")
	}
	if c, _ := st.Cursor(ctx, 1, "INBOX"); c.MovedUID != 0 {
		t.Errorf("moves recorded through UID %d while one folder's MOVE failed", c.MovedUID)
	}
	if pm, _ := st.PendingMoves(ctx, 1); len(pm) != 3 {
		t.Errorf("pending after a failed MOVE: %+v", pm)
	}

	if err := w.moveUIDs(ctx, &movingSession{}, "INBOX", 7, mv); err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Cursor(ctx, 1, "INBOX"); c.MovedUID != 5 {
		t.Errorf("moves recorded through UID %d, want 5", c.MovedUID)
	}
	if pm, _ := st.PendingMoves(ctx, 1); len(pm) != 0 {
		t.Errorf("pending after the moves: %+v", pm)
	}
}
