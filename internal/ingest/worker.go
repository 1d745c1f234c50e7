package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"inkorg/internal/diag"
	"inkorg/internal/imapsource"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// worker reads one account.
type worker struct {
	cfg   *Config
	t     Target
	log   *slog.Logger
	state store.AccountState
}

func newWorker(cfg *Config, sys settings.System, a settings.IncomingAccount) *worker {
	return &worker{cfg: cfg, t: Target{System: sys, Account: a, Eff: settings.ResolveAccount(sys, a)},
		log:   cfg.Logger.With("account", a.Address, "account_id", a.ID),
		state: store.AccountState{AccountID: a.ID}}
}

// report records the worker's state for the dashboard.
func (w *worker) report(ctx context.Context, state, detail string, err error) {
	w.state.State, w.state.Detail = state, detail
	if err != nil {
		w.state.LastError = record(err, w.cfg.Clock())
	}
	if perr := w.cfg.Store.PutAccountState(context.WithoutCancel(ctx), w.state); perr != nil {
		w.log.Error("recording the worker's state failed", "err", perr)
	}
}

func record(err error, now time.Time) *store.ErrorRecord {
	e := diag.As(err)
	if e == nil {
		return &store.ErrorRecord{At: now, Stage: "internal", Kind: string(diag.KindTransient), Summary: err.Error()}
	}
	return &store.ErrorRecord{At: now, Stage: string(e.Stage), Kind: string(e.Kind), Code: e.Code, Summary: e.Summary, Remedy: e.Remedy,
		Actions: e.Actions, Server: e.Server, TraceID: e.TraceID}
}

// run reads the account until ctx ends: sessions, with backoff between them, or a pause on a
// configuration problem.
func (w *worker) run(ctx context.Context) {
	if ps := settings.CheckAccount(w.t.System, w.t.Account, nil).Errors(); len(ps) > 0 {
		err := &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings", Summary: ps[0].Message, Remedy: "correct " + ps[0].Path}
		w.pause(ctx, err)
		return
	}
	backoff := w.cfg.MinBackoff
	for ctx.Err() == nil {
		progressed, err := w.session(ctx)
		if ctx.Err() != nil {
			w.report(ctx, "stopped", "", nil)
			return
		}
		if progressed {
			backoff = w.cfg.MinBackoff
		}
		e := diag.As(err)
		var wait time.Duration
		switch {
		case e != nil && e.Kind == diag.KindConfig:
			w.pause(ctx, err)
			return
		case e != nil && e.Kind == diag.KindThrottled:
			wait = max(time.Duration(e.RetryAfterMS)*time.Millisecond, time.Second)
		default:
			// Full jitter: a thousand workers that lost the same server do not come back in step.
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(backoff*2, w.cfg.MaxBackoff)
		}
		w.log.Warn("mailbox session ended; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		w.report(ctx, "backoff", fmt.Sprintf("retrying in %s", wait.Round(time.Second)), err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	w.report(ctx, "stopped", "", nil)
}

// pause waits for the settings to change (the Manager then starts a new worker).
func (w *worker) pause(ctx context.Context, err error) {
	w.log.Error("account paused until its settings change", "err", err)
	w.report(ctx, "paused", "paused until the settings change", err)
	<-ctx.Done()
}

// session connects, catches up and waits for new mail until an error or ctx ends. It reports whether
// it stored or moved anything (so the backoff starts again from the bottom).
func (w *worker) session(ctx context.Context) (progressed bool, err error) {
	w.report(ctx, "connecting", "", nil)
	c, err := w.cfg.Dial(ctx, w.t)
	if err != nil {
		return false, err
	}
	defer c.Session.Close()
	w.state.TokenExpires = c.TokenExpires
	s, m := c.Session, w.t.Eff.Mailbox
	folder := m.Folder.Value
	mb, err := s.Select(folder)
	if err != nil {
		return false, err
	}
	if !m.LeaveInPlace.Value {
		for _, f := range []string{m.ProcessedFolder.Value, m.FailedFolder.Value} {
			if err := s.EnsureFolder(f); err != nil {
				return false, err
			}
		}
	}
	moved, err := w.finishMoves(ctx, s, folder, mb.UIDValidity)
	if err != nil {
		return moved, err
	}
	progressed = moved
	for {
		n, err := w.catchUp(ctx, s, folder, mb.UIDValidity)
		progressed = progressed || n > 0
		if err != nil {
			return progressed, err
		}
		w.state.LastPoll, w.state.Backlog, w.state.LastError = w.cfg.Clock(), 0, nil
		w.report(ctx, "idle", "", nil)
		if _, err := s.Wait(ctx, time.Duration(m.PollSeconds.Value)*time.Second); err != nil {
			return progressed, err
		}
		if ctx.Err() != nil {
			return progressed, nil
		}
	}
}

// finishMoves moves what an earlier session stored but did not get to move.
func (w *worker) finishMoves(ctx context.Context, s Session, folder string, validity uint32) (bool, error) {
	pm, err := w.cfg.Store.PendingMoves(ctx, w.t.Account.ID)
	if err != nil || len(pm) == 0 {
		return false, err
	}
	groups := map[[2]string][]uint32{}
	var stale []store.PendingMove
	for _, p := range pm {
		if p.Folder != folder || p.UIDValidity != validity {
			stale = append(stale, p) // numbered under an old UIDVALIDITY: re-fetched, deduplicated and moved anew
			continue
		}
		k := [2]string{p.Dest, ""}
		groups[k] = append(groups[k], p.UID)
	}
	for _, p := range stale {
		if err := w.cfg.Store.MarkMoved(ctx, w.t.Account.ID, p.Folder, p.UIDValidity, []uint32{p.UID}); err != nil {
			return false, err
		}
	}
	for k, uids := range groups {
		if err := s.Move(uids, k[0]); err != nil {
			return false, err
		}
		if err := w.cfg.Store.MarkMoved(ctx, w.t.Account.ID, folder, validity, uids); err != nil {
			return true, err
		}
		w.log.Info("moved messages stored by an earlier session", "count", len(uids), "to", k[0])
	}
	return true, nil
}

// catchUp stores every message newer than the cursor, batch by batch, and moves each batch after it
// is committed. It returns how many messages it committed.
//
// The batches are pipelined: while batch N is being committed (the database), batch N+1 is fetched and
// parsed (the network, the other core); then N is moved. A batch is still never moved before its
// commit has returned, so the crash rules are those of the sequential loop.
func (w *worker) catchUp(ctx context.Context, s Session, folder string, validity uint32) (int, error) {
	cur, err := w.cfg.Store.Cursor(ctx, w.t.Account.ID, folder)
	if err != nil {
		return 0, err
	}
	if cur.UIDValidity != validity {
		if cur.UIDValidity != 0 {
			w.log.Warn("the server renumbered the folder (UIDVALIDITY changed); reading it again, known messages are not stored twice",
				"folder", folder, "old", cur.UIDValidity, "new", validity)
		}
		if err := w.cfg.Store.ResetCursor(ctx, w.t.Account.ID, folder, validity); err != nil {
			return 0, err
		}
		cur = store.Cursor{UIDValidity: validity}
	}
	uids, err := s.SearchNewer(cur.LastUID)
	if err != nil || len(uids) == 0 {
		return 0, err
	}
	w.state.Backlog = len(uids)
	w.report(ctx, "fetching", fmt.Sprintf("%d new messages", len(uids)), nil)
	// A large backlog gets a second connection that moves each committed batch while the first one
	// fetches the next: on a real server MOVE costs about as much as FETCH.
	var mover Session
	if len(uids) > 2*w.cfg.BatchSize && !w.t.Eff.Mailbox.LeaveInPlace.Value {
		mover = w.openMover(ctx, folder, validity)
		if mover != nil {
			defer mover.Close()
		}
	}
	total := 0
	var pending *commit
	// settle waits for the batch being committed and, when move is set, moves it.
	settle := func(move bool) error {
		if pending == nil {
			return nil
		}
		c := pending
		pending = nil
		<-c.done
		if c.err != nil {
			return c.err
		}
		total += len(c.batch.Messages)
		if !move || !c.move || c.moved {
			return nil
		}
		return w.move(ctx, s, folder, validity, c.batch.Messages)
	}
	defer settle(false) // never leave a commit running behind the caller's back
	for len(uids) > 0 && ctx.Err() == nil {
		n := min(len(uids), w.cfg.BatchSize)
		ms, last, consumed, ferr := w.fetch(s, uids[:n])
		if ferr != nil {
			// The connection is gone: commit what arrived (the previous batch's commit first), move it
			// in the next session.
			if err := settle(false); err != nil {
				return total, err
			}
			if last != 0 {
				pending = w.commitAsync(ctx, folder, validity, last, ms, false, nil)
				if err := settle(false); err != nil {
					return total, err
				}
			}
			return total, ferr
		}
		if err := settle(true); err != nil {
			return total, err
		}
		if last != 0 {
			pending = w.commitAsync(ctx, folder, validity, last, ms, true, mover)
		}
		if consumed == 0 {
			return total, fmt.Errorf("fetch returned none of %d messages", n)
		}
		uids = uids[consumed:]
		w.state.Backlog = len(uids)
	}
	return total, settle(true)
}

// commit is a batch being committed in the background (and, with a mover, moved after its commit).
type commit struct {
	batch store.Batch
	move  bool
	moved bool // moved by the mover connection
	done  chan struct{}
	err   error
}

// openMover opens the second connection, or returns nil (the first one then moves too) when it cannot
// be opened or sees another UIDVALIDITY.
func (w *worker) openMover(ctx context.Context, folder string, validity uint32) Session {
	c, err := w.cfg.Dial(ctx, w.t)
	if err != nil {
		w.log.Info("no second connection for moving; moving on the first", "err", err)
		return nil
	}
	mb, err := c.Session.Select(folder)
	if err != nil || mb.UIDValidity != validity {
		c.Session.Close()
		w.log.Info("no second connection for moving; moving on the first", "err", err)
		return nil
	}
	return c.Session
}

// commitAsync commits a batch in the background. The commit is not cut short by a shutdown: it is one
// transaction either way, and a finished fetch is worth keeping.
func (w *worker) commitAsync(ctx context.Context, folder string, validity, last uint32, ms []store.NewMessage, move bool, mover Session) *commit {
	c := &commit{batch: store.Batch{AccountID: w.t.Account.ID, Account: w.t.Account.Address, Type: w.t.Account.Type, Folder: folder,
		UIDValidity: validity, LastUID: last, Messages: ms}, move: move, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		committed, err := w.cfg.Store.CommitBatch(context.WithoutCancel(ctx), c.batch)
		if err != nil {
			c.err = fmt.Errorf("commit batch: %w", err)
			return
		}
		dups := 0
		for _, r := range committed {
			if r.Duplicate {
				dups++
			}
		}
		w.log.Info("batch stored", "messages", len(ms), "duplicates", dups, "last_uid", last)
		if move && mover != nil {
			if err := w.move(ctx, mover, folder, validity, ms); err != nil {
				// Committed, not moved: the next session finds the moves pending and does them.
				c.err = err
				return
			}
			c.moved = true
		}
	}()
	return c
}

// fetch fetches some UIDs and parses them (in parallel with the fetch, on the other cores). It
// returns the messages that arrived complete as far as the UIDs are contiguous from the start — so
// the cursor never jumps over one that did not arrive — the last UID dealt with, and how many UIDs
// that is. A batch ends early when it holds BatchBytes.
func (w *worker) fetch(s Session, uids []uint32) (ms []store.NewMessage, last uint32, consumed int, err error) {
	var (
		mu   sync.Mutex
		got  = map[uint32]store.NewMessage{}
		wg   sync.WaitGroup
		sem  = make(chan struct{}, runtime.GOMAXPROCS(0))
		size int
	)
	ferr := s.Fetch(uids, func(f imapsource.Fetched) error {
		raw, err := io.ReadAll(f.Body)
		if err != nil {
			return err
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(uid uint32) {
			defer func() { <-sem; wg.Done() }()
			nm := w.route(uid, raw)
			mu.Lock()
			got[uid] = nm
			mu.Unlock()
		}(f.UID)
		if size += len(raw); size >= w.cfg.BatchBytes {
			return errBatchFull
		}
		return nil
	})
	wg.Wait()
	complete := ferr == nil
	if errors.Is(ferr, errBatchFull) {
		ferr = nil
	}
	for _, u := range uids {
		nm, ok := got[u]
		if !ok {
			if !complete {
				break
			}
			last, consumed = u, consumed+1 // gone from the server between SEARCH and FETCH
			continue
		}
		ms, last, consumed = append(ms, nm), u, consumed+1
	}
	return ms, last, consumed, ferr
}

// errBatchFull stops a FETCH when the batch holds enough bytes.
var errBatchFull = errors.New("batch full")

// move moves a committed batch's messages on the server and records the moves.
func (w *worker) move(ctx context.Context, s Session, folder string, validity uint32, ms []store.NewMessage) error {
	byDest := map[string][]uint32{}
	for _, m := range ms {
		if m.Dest != "" {
			byDest[m.Dest] = append(byDest[m.Dest], m.UID)
		}
	}
	for dest, uids := range byDest {
		if err := s.Move(uids, dest); err != nil {
			return err
		}
		if err := w.cfg.Store.MarkMoved(context.WithoutCancel(ctx), w.t.Account.ID, folder, validity, uids); err != nil {
			return err
		}
	}
	return nil
}
