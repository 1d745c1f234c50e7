package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"inkorg/internal/diag"
	"inkorg/internal/imapsource"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// worker reads one account.
type worker struct {
	cfg   *Config
	slots *batchSlots
	t     Target
	log   *slog.Logger
	state store.AccountState
	// lost is set when another process has the account's claim: this worker's last words are
	// then not written over that process's state.
	lost atomic.Bool
}

func newWorker(cfg *Config, slots *batchSlots, sys settings.System, a settings.IncomingAccount) *worker {
	return &worker{cfg: cfg, slots: slots, t: Target{System: sys, Account: a, Eff: settings.ResolveAccount(sys, a)},
		log:   cfg.Logger.With("account", a.Address, "account_id", a.ID),
		state: store.AccountState{AccountID: a.ID}}
}

// report records the worker's state for the dashboard.
func (w *worker) report(ctx context.Context, state, detail string, err error) {
	if w.lost.Load() {
		return
	}
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

// run reads the account until ctx ends, while this process holds the account's claim (see
// store.Mail.ClaimAccount): with several inkorg processes on one database, one reads each account and
// the others stand by, taking over when its claim lapses. The claim is renewed every third of its
// time to live; a worker that cannot renew it stops reading before it lapses.
func (w *worker) run(ctx context.Context) {
	ttl := w.cfg.ClaimTTL
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := w.cfg.Store.ReleaseAccount(rctx, w.t.Account.ID, w.cfg.Holder); err != nil {
			w.log.Warn("releasing the account's claim failed; another process takes over when it lapses", "err", err)
		}
	}()
	standingBy := ""
	for ctx.Err() == nil {
		c, err := w.cfg.Store.ClaimAccount(ctx, w.t.Account.ID, w.cfg.Holder, ttl)
		if err != nil {
			w.log.Error("claiming the account failed; trying again", "err", err)
			sleep(ctx, ttl/3)
			continue
		}
		if !c.Held {
			if standingBy != c.Holder {
				w.log.Info("another inkorg process reads this account; standing by to take over if it stops", "holder", c.Holder, "until", c.Until)
				standingBy = c.Holder
			}
			sleep(ctx, min(ttl/3, max(time.Until(c.Until), 100*time.Millisecond)))
			continue
		}
		standingBy = ""
		w.lost.Store(false)
		w.log.Info("reading the account", "holder", w.cfg.Holder)
		sctx, cancel := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			w.keepClaim(sctx, cancel, c.Until, ttl)
		}()
		w.serve(sctx)
		cancel()
		<-renewed
	}
}

// keepClaim renews the claim every ttl/3 until ctx ends; when the claim is lost, or cannot be renewed
// before it lapses, it calls stop.
func (w *worker) keepClaim(ctx context.Context, stop context.CancelFunc, until time.Time, ttl time.Duration) {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, err := w.cfg.Store.ClaimAccount(ctx, w.t.Account.ID, w.cfg.Holder, ttl)
		switch {
		case err == nil && c.Held:
			until = c.Until
		case err == nil:
			w.log.Warn("another inkorg process has taken this account over; stopping", "holder", c.Holder)
			w.lost.Store(true)
			stop()
			return
		case ctx.Err() != nil:
			return
		case time.Until(until) < ttl/3:
			w.log.Error("the account's claim cannot be renewed and is about to lapse; stopping", "err", err)
			w.lost.Store(true)
			stop()
			return
		default:
			w.log.Warn("renewing the account's claim failed; trying again", "err", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// serve reads the account until ctx ends: sessions, with backoff between them, or a pause on a
// configuration problem.
func (w *worker) serve(ctx context.Context) {
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
		sleep(ctx, wait)
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
	byDest, n := map[string][]uint32{}, 0
	type place struct {
		folder   string
		validity uint32
	}
	stale := map[place]uint32{}
	var through uint32
	for _, p := range pm {
		if p.Folder != folder || p.UIDValidity != validity {
			// Numbered under an old UIDVALIDITY: re-fetched, deduplicated and moved anew. (Or found in
			// a folder the account no longer reads: left there.)
			k := place{p.Folder, p.UIDValidity}
			stale[k] = max(stale[k], p.UID)
			continue
		}
		byDest[p.Dest] = append(byDest[p.Dest], p.UID)
		through = max(through, p.UID)
		n++
	}
	for k, uid := range stale {
		if err := w.cfg.Store.MovedThrough(ctx, w.t.Account.ID, k.folder, k.validity, uid); err != nil {
			return false, err
		}
	}
	if err := w.moveUIDs(ctx, s, folder, validity, moves{byDest, through}); err != nil {
		return false, err
	}
	if n > 0 {
		w.log.Info("moved messages stored by an earlier session", "count", n)
	}
	return true, nil
}

// catchUp stores every message newer than the cursor, batch by batch, and moves each batch after it
// is committed. It returns how many messages it committed.
//
// The batches are pipelined: while batch N is being committed (the database), batch N+1 is fetched and
// parsed (the network, the other core); then N is moved — for a large backlog on a second connection,
// while N+1 is committed and N+2 fetched. A batch is still never moved before its commit has
// returned, so the crash rules are those of the sequential loop.
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
	// fetches the next and the database commits the one after: on a real server MOVE costs about as
	// much as FETCH, so fetch, commit and move are three stages of a pipeline. It is opened while the
	// first batch is fetched (signing in takes a round trip or three; the first move comes after a
	// commit).
	var mv *mover
	var opening chan Session // the second connection on its way; nil once taken
	if len(uids) > 2*w.cfg.BatchSize && !w.t.Eff.Mailbox.LeaveInPlace.Value {
		opening = make(chan Session, 1)
		go func() { opening <- w.openMover(ctx, folder, validity) }()
		defer func() {
			if opening != nil {
				go func(ch chan Session) {
					if s2 := <-ch; s2 != nil {
						s2.Close()
					}
				}(opening)
			}
			if mv != nil {
				mv.close()
			}
		}()
	}
	// theMover is the mover, once the second connection is there (waiting for it the first time);
	// nil: the first connection moves.
	theMover := func() *mover {
		if opening != nil {
			if s2 := <-opening; s2 != nil {
				mv = w.startMover(ctx, s2, folder, validity)
			}
			opening = nil
		}
		return mv
	}
	total := 0
	sizes := newSizePlan(w.cfg.BatchBytes, imapsource.DefaultReadAhead)
	var pending *commit
	// settle waits for the batch being committed and, when move is set and there is no mover, moves
	// it on this connection.
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
		if mv != nil {
			if err := mv.failed(); err != nil {
				return err
			}
		}
		if !move || !c.move || mv != nil {
			return nil
		}
		return w.moveUIDs(ctx, s, folder, validity, moves{byDest(c.batch.Messages), c.batch.LastUID})
	}
	defer settle(false) // never leave a commit running behind the caller's back
	for len(uids) > 0 && ctx.Err() == nil {
		n := min(len(uids), w.cfg.BatchSize)
		// A batch that might not fit in BatchBytes is planned with the sizes the server gives (a FETCH
		// stopped halfway would still have to read the rest of its messages off the connection).
		if sizes.unsure(n) {
			given, err := s.Sizes(uids[:n])
			if err != nil {
				if serr := settle(false); serr != nil {
					return total, serr
				}
				return total, err
			}
			n = fitting(uids[:n], given, int64(w.cfg.BatchBytes))
		}
		buf, err := w.takeSlot(ctx, sizes.buffer(n), len(uids))
		if err != nil {
			return total, err
		}
		ms, last, consumed, ferr := w.fetch(s, uids[:n], buf)
		sizes.fetched(ms, buf)
		// The slot goes back with the batch's commit, or at once. After a broken FETCH its buffer is
		// not reused (see imapsource.Buffers), and what arrived is committed and moved in the next
		// session.
		keep := ferr == nil
		if err := settle(keep); err != nil {
			w.slots.give(buf, keep)
			return total, err
		}
		if last == 0 {
			w.slots.give(buf, keep)
		} else {
			var movedBy *mover
			if keep {
				movedBy = theMover()
			}
			pending = w.commitAsync(ctx, folder, validity, last, ms, buf, keep, movedBy)
		}
		if ferr != nil {
			if err := settle(false); err != nil {
				return total, err
			}
			return total, ferr
		}
		if consumed == 0 {
			return total, fmt.Errorf("fetch returned none of %d messages", n)
		}
		uids = uids[consumed:]
		w.state.Backlog = len(uids)
	}
	if err := settle(true); err != nil {
		return total, err
	}
	if mv != nil {
		return total, mv.close()
	}
	return total, nil
}

// commit is a batch being committed in the background (and then handed to the mover, if any).
type commit struct {
	batch store.Batch
	move  bool
	done  chan struct{}
	err   error
}

// mover moves committed batches on the second connection, one after the other, in a goroutine of its
// own. After a failed move it moves nothing more (what it was given stays pending in the store, for
// the next session) and reports the error.
type mover struct {
	s     Session
	queue chan moves
	done  chan struct{}

	mu  sync.Mutex
	err error

	closeOnce sync.Once
}

func (w *worker) startMover(ctx context.Context, s Session, folder string, validity uint32) *mover {
	m := &mover{s: s, queue: make(chan moves, 2), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for mv := range m.queue {
			if m.failed() != nil {
				continue
			}
			// Behind? Then the batches waiting go in the same MOVE: a server's cost per command
			// (index sync, expunge notices) is paid once for all of them.
		more:
			for {
				select {
				case next, ok := <-m.queue:
					if !ok {
						break more
					}
					for dest, uids := range next.byDest {
						mv.byDest[dest] = append(mv.byDest[dest], uids...)
					}
					mv.through = max(mv.through, next.through)
				default:
					break more
				}
			}
			if err := w.moveUIDs(ctx, s, folder, validity, mv); err != nil {
				m.mu.Lock()
				m.err = err
				m.mu.Unlock()
			}
		}
	}()
	return m
}

// add queues a committed batch's moves (waiting while two are queued: the mover sets the pace).
func (m *mover) add(mv moves) {
	if len(mv.byDest) > 0 {
		m.queue <- mv
	}
}

func (m *mover) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// close waits for the queued moves, closes the connection and returns the first error.
func (m *mover) close() error {
	m.closeOnce.Do(func() {
		close(m.queue)
		<-m.done
		m.s.Close()
	})
	return m.failed()
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

// commitAsync commits a batch, its bodies read into buf, in the background, gives its slot back once
// the store has returned, and then, with a mover, queues its moves. move says the batch is to be moved
// (in this session), and its buffer may be reused; a batch of a broken FETCH is neither. The commit
// is not cut short by a shutdown: it is one transaction either way, and a finished fetch is worth
// keeping.
func (w *worker) commitAsync(ctx context.Context, folder string, validity, last uint32, ms []store.NewMessage, buf *batchBuffer, move bool, mv *mover) *commit {
	var bodies []byte
	if move {
		bodies = buf.bodies()
	}
	c := &commit{batch: store.Batch{AccountID: w.t.Account.ID, Account: w.t.Account.Address, Type: w.t.Account.Type, Folder: folder,
		UIDValidity: validity, LastUID: last, Messages: ms, Bodies: bodies}, move: move, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		committed, err := w.cfg.Store.CommitBatch(context.WithoutCancel(ctx), c.batch)
		w.slots.give(buf, move)
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
		if move && mv != nil {
			mv.add(moves{byDest(ms), last})
		}
	}()
	return c
}

// fetch fetches some UIDs, the bodies read into buf, and parses them (in parallel with the fetch, on
// the other cores). It returns the messages that arrived complete as far as the UIDs are contiguous
// from the start — so the cursor never jumps over one that did not arrive — the last UID dealt with,
// and how many UIDs that is. A batch ends early when it holds BatchBytes.
func (w *worker) fetch(s Session, uids []uint32, buf *batchBuffer) (ms []store.NewMessage, last uint32, consumed int, err error) {
	// Messages are parsed while the next ones are read, by one goroutine per core that lives as long as
	// the fetch (a goroutine per message grew a new stack for each).
	type fetched struct {
		uid uint32
		raw []byte
	}
	var (
		mu    sync.Mutex
		got   = map[uint32]store.NewMessage{}
		wg    sync.WaitGroup
		procs = runtime.GOMAXPROCS(0)
		todo  = make(chan fetched, procs)
		size  int
		full  bool
	)
	for range procs {
		wg.Go(func() {
			for f := range todo {
				nm := w.route(f.uid, f.raw)
				mu.Lock()
				got[f.uid] = nm
				mu.Unlock()
			}
		})
	}
	ferr := s.FetchInto(uids, buf, func(f imapsource.Fetched) error {
		raw := f.Raw
		if raw == nil {
			var err error
			if raw, err = readAll(f.Body, f.Size); err != nil {
				return err
			}
		}
		todo <- fetched{f.UID, raw}
		if size += len(raw); size >= w.cfg.BatchBytes {
			full = true
			return imapsource.ErrStop
		}
		return nil
	})
	close(todo)
	wg.Wait()
	complete := ferr == nil && !full
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

// readAll reads a body whose length the server announced: one allocation of about the right size
// instead of io.ReadAll's doublings (the announced size is only a hint: Exchange's is at times off).
func readAll(r io.Reader, size int64) ([]byte, error) {
	b := make([]byte, 0, min(max(size, 0), 64<<20)+512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// takeSlot waits for a batch slot (see batchSlots) and returns its buffer, of size bytes at least;
// while it waits, the dashboard says so.
func (w *worker) takeSlot(ctx context.Context, size, backlog int) (*batchBuffer, error) {
	waited := false
	buf, err := w.slots.take(ctx, size, func() {
		waited = true
		w.report(ctx, "fetching", fmt.Sprintf("%d new messages; waiting for its turn (%d batches in flight, the most max-batches allows)",
			backlog, w.cfg.MaxBatches), nil)
	})
	if waited && err == nil {
		w.report(ctx, "fetching", fmt.Sprintf("%d new messages", backlog), nil)
	}
	return buf, err
}

// fitting is how many of uids, from the first, fit in limit bytes by the sizes the server gave (at
// least one; a UID it gave none for is gone and counts nothing).
func fitting(uids []uint32, sizes map[uint32]int64, limit int64) int {
	var sum int64
	for i, u := range uids {
		if sum += sizes[u]; sum > limit {
			return max(i, 1)
		}
	}
	return len(uids)
}

// byDest groups a batch's UIDs by the folder they go to.
func byDest(ms []store.NewMessage) map[string][]uint32 {
	out := map[string][]uint32{}
	for _, m := range ms {
		if m.Dest != "" {
			out[m.Dest] = append(out[m.Dest], m.UID)
		}
	}
	return out
}

// moves are what a committed batch (or several, or an earlier session's leftovers) moves on the
// server: its UIDs by destination folder, and the UID through which every stored message will then
// have been moved (the batch's last; batches are moved in the order of their UIDs).
type moves struct {
	byDest  map[string][]uint32
	through uint32
}

// moveUIDs moves UIDs on the server and then records, once all of them are moved, the watermark (a
// crash in between repeats the moves: a MOVE of a UID no longer in the folder does nothing).
func (w *worker) moveUIDs(ctx context.Context, s Session, folder string, validity uint32, mv moves) error {
	for dest, uids := range mv.byDest {
		if err := s.Move(uids, dest); err != nil {
			return err
		}
	}
	if len(mv.byDest) == 0 {
		return nil
	}
	return w.cfg.Store.MovedThrough(context.WithoutCancel(ctx), w.t.Account.ID, folder, validity, mv.through)
}
