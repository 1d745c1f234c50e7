package ingest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"inkorg/internal/diag"
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

// TestSecondConnection: a large backlog is moved on a second connection, opened while the first batch
// is fetched; when the server refuses it (Exchange limits a mailbox's connections), the first
// connection moves too. Either way every message is stored and moved in one session.
func TestSecondConnection(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprint("refused=", refuse), func(t *testing.T) {
			w := newWorld(t, nil)
			w.configure(settings.IncomingAccount{Address: "info@contoso.example", Type: settings.TypeGeneral})
			for i := range 60 {
				w.deliver("info@contoso.example", plainMessage(i))
			}
			var dials atomic.Int32
			var moves [2]atomic.Int32 // MOVE commands on the first and on the second connection
			w.manager(func(c *Config) {
				c.BatchSize = 10
				dial := imapDialer(c)
				c.Dial = func(ctx context.Context, tg Target) (Connected, error) {
					n := dials.Add(1)
					if n > 2 || refuse && n == 2 {
						return Connected{}, &diag.Error{Stage: diag.StageConnect, Kind: diag.KindTransient, Summary: "too many connections"}
					}
					conn, err := dial(ctx, tg)
					if err == nil {
						conn.Session = countMoves{conn.Session, &moves[n-1]}
					}
					return conn, err
				}
			})
			waitFor(t, 30*time.Second, "60 messages stored and moved", func() bool {
				return len(w.messages(store.MessageQuery{})) == 60 && w.count("info@contoso.example", settings.DefaultProcessedFolder) == 60
			})
			if n := dials.Load(); n != 2 {
				t.Errorf("%d dials, want 2", n)
			}
			first, second := moves[0].Load(), moves[1].Load()
			if refuse && (first == 0 || second != 0) || !refuse && (first != 0 || second == 0) {
				t.Errorf("MOVE commands: %d on the first connection, %d on the second", first, second)
			}
		})
	}
}

// countMoves is a Session that counts its Move calls.
type countMoves struct {
	Session
	n *atomic.Int32
}

func (c countMoves) Move(uids []uint32, dest string) error {
	c.n.Add(1)
	return c.Session.Move(uids, dest)
}
