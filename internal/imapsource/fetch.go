package imapsource

import (
	"bytes"
	"errors"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"inkorg/internal/diag"
)

// SearchNewer returns the UIDs above lastUID in the selected mailbox, ascending (UID SEARCH UID
// lastUID+1:*). "n:*" always matches the highest message even when its UID is below n, so that one
// is dropped here.
func (c *Conn) SearchNewer(lastUID uint32) ([]uint32, error) {
	if lastUID == math.MaxUint32 {
		return nil, nil
	}
	var data *imap.SearchData
	err := c.guard(StageSearch, "UID SEARCH", func() error {
		var err error
		data, err = c.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{{Start: imap.UID(lastUID + 1), Stop: 0}}}}, nil).Wait()
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, u := range data.AllUIDs() {
		if uint32(u) > lastUID {
			out = append(out, uint32(u))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Fetched is one message as FetchInto hands it over.
type Fetched struct {
	UID uint32
	// Size is RFC822.SIZE as the server reports it, with Config.SizeAndDate (Exchange's is known to
	// differ from the length of the body at times; the body's own length is what Body yields).
	// Without it, or when a server leaves it out, it is the body's length.
	Size         int64
	InternalDate time.Time // with Config.SizeAndDate; zero when the server left it out
	// Body is the raw message (RFC 5322 bytes, unchanged). It is valid only during the call to fn.
	// A read error from Body is a transient *diag.Error (the connection broke in the middle of the
	// message): fn must then return an error and must not keep what it read.
	Body io.Reader
	// Raw, when not nil, is the whole body, read ahead of the call to fn (see Config.ReadAhead); Body
	// reads the same bytes. Unlike Body, it is fn's to keep.
	Raw []byte
}

// Sizes returns the sizes the server gives for the UIDs (UID FETCH … (UID RFC822.SIZE)), by UID; a UID
// no longer there is missing. Exchange's sizes can be a little off the bodies' (they are for
// planning, not for reading).
func (c *Conn) Sizes(uids []uint32) (map[uint32]int64, error) {
	out := make(map[uint32]int64, len(uids))
	if len(uids) == 0 {
		return out, nil
	}
	err := c.guard(StageFetch, "UID FETCH (RFC822.SIZE)", func() error {
		msgs, err := c.c.Fetch(setOf(uids), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		for _, m := range msgs {
			if m.UID != 0 {
				out[uint32(m.UID)] = m.RFC822Size
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ErrStop, returned by FetchInto's fn, ends the fetch without breaking the connection: no message is
// handed over after it, no further UID FETCH command is sent, and the rest of the running one is read
// and dropped (its bodies are not kept); FetchInto then returns nil. Asking for fewer UIDs costs less:
// what the server sends is read either way. The message fn was given when it returned ErrStop counts as
// handed over.
var ErrStop = errors.New("imapsource: stop fetching")

// Buffers hands out the memory that bodies read ahead are read into: Get(n) returns n bytes (a slice
// of length n, which the body then fills). It is called from one goroutine at a time.
//
// A body read ahead may be dropped after all (fn returned ErrStop before it was handed over): its
// bytes were handed out all the same. The bytes belong to the caller of FetchInto again once it has
// returned nil. After it returned an error they are best not reused: in the one case where FetchInto
// gives up waiting for go-imap's reader (see below), a body may still be read into them.
type Buffers interface {
	Get(n int) []byte
}

// FetchInto fetches the given UIDs of the selected mailbox with UID FETCH (UID BODY.PEEK[], and with
// Config.SizeAndDate RFC822.SIZE INTERNALDATE) in batches of Config.FetchBatch, and calls fn once per
// message, one call at a time, in the server's order (a message whose body had to be spooled, see
// below, may come after the one that followed it). BODY.PEEK never sets \Seen. UIDs that no longer
// exist are skipped (fn is not called for them).
//
// When the server sends UID (and RFC822.SIZE and INTERNALDATE) before the body (in the order they are
// asked for, as Dovecot and go-imap's server, hence the emulator, do), a body of up to
// Config.ReadAhead bytes is read ahead: off the connection while fn works on the messages before it,
// at most ReadAheadMessages of them and ReadAheadBytes held (Fetched.Raw has it whole), into memory
// from bufs (nil: an allocation each); a larger body is streamed, Body reading the literal straight
// off the connection with nothing buffered here. A server that sends any of them after the body
// makes buffering necessary (the body cannot be bound to its UID before the end of the response):
// such a body is spooled, in memory up to Config.SpoolThreshold and in a temporary file in
// Config.SpoolDir beyond that. At most two spooled bodies exist at any time (one being read by fn,
// one arriving). So memory stays under about ReadAheadBytes + ReadAhead + 2 × SpoolThreshold plus
// go-imap's small buffers, whatever the message sizes.
//
// If fn returns an error other than ErrStop, FetchInto stops and returns it; the connection is then
// closed (the rest of the batch would otherwise have to be read off the wire first), so the Conn
// must be replaced. A connection dropped or stalled (no progress for Config.Timeout) mid-FETCH
// returns a transient *diag.Error at stage "fetch"; fn has then returned nil only for complete
// messages. Throttling returns a *diag.Error of kind throttled with RetryAfterMS.
func (c *Conn) FetchInto(uids []uint32, bufs Buffers, fn func(m Fetched) error) error {
	if len(uids) == 0 {
		return nil
	}
	var batches []imap.UIDSet
	for i := 0; i < len(uids); i += c.cfg.FetchBatch {
		batches = append(batches, setOf(uids[i:min(i+c.cfg.FetchBatch, len(uids))]))
	}
	st := &fetchState{want: setOf(uids), delivered: make(map[uint32]bool, len(uids)), late: make(chan lateMsg),
		abort: make(chan struct{}), sem: make(chan struct{}, 1)}
	st.progress.Store(time.Now().UnixNano())
	c.mu.Lock()
	c.active = st
	c.mu.Unlock()

	// The pump sends the UID FETCH commands one after the other and hands their messages over, so
	// that the loop below can also listen to late messages and to the stall timer. A body of up to
	// Config.ReadAhead bytes whose UID came first is read off the connection by the pump itself and
	// handed over whole, up to ReadAheadMessages bodies and ReadAheadBytes ahead of fn (ahead): the
	// connection keeps flowing while fn works. Any other message is handed over as it is, and the pump waits until the loop is done
	// with it (go-imap discards a message's unread data when the next one is taken). The next command
	// is not sent ahead: Dovecot runs pipelined FETCHes in parallel and may send the second one's data
	// before the first one's completion, while go-imap's reader waits for each literal to be
	// consumed, which would deadlock.
	msgs := make(chan pumped, ReadAheadMessages)
	ahead := &aheadGate{freed: make(chan struct{}, 1)}
	next := make(chan struct{})
	cmdDone := make(chan error, 1)
	go func() {
		var cmdErr error
		defer close(msgs)
		defer func() { cmdDone <- cmdErr }()
		opts := &imap.FetchOptions{UID: true, RFC822Size: c.cfg.SizeAndDate, InternalDate: c.cfg.SizeAndDate,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
		hand := func(p pumped) bool {
			select {
			case msgs <- p:
				return true
			case <-st.abort:
				return false
			}
		}
		for _, set := range batches {
			if st.stop.Load() {
				return
			}
			cmd := c.c.Fetch(set, opts)
			aborted := false
			for m := cmd.Next(); m != nil; m = cmd.Next() {
				if st.stop.Load() {
					drain(m) // go-imap reads the body and drops it
					continue
				}
				p := pumped{m: m}
				p.body = c.scanToBody(m, &p.msgState)
				if c.readsAhead(&p) {
					if !ahead.take(p.body.Literal.Size(), st.abort) {
						aborted = true
						break
					}
					p.raw, p.err = c.readBody(p.body, bufs)
					p.m, p.body = nil, nil
					if p.err == nil {
						drain(m)
					}
					// After an error the connection is broken: the loop returns it.
					if aborted = !hand(p) || p.err != nil; aborted {
						break
					}
					continue
				}
				if aborted = !hand(p); !aborted {
					select {
					case <-next:
					case <-st.abort:
						aborted = true
					}
				}
				if aborted {
					break
				}
			}
			if err := cmd.Close(); err != nil || aborted {
				cmdErr = err
				return
			}
		}
	}()

	stall := time.NewTimer(c.timeout)
	defer stall.Stop()
	var (
		drained chan struct{} // closed when the commands are done and every late message handed over
		err     error
	)
	// call is fn, with ErrStop turned into a stop: nothing is handed over after it.
	call := func(f Fetched) error {
		err := fn(f)
		if errors.Is(err, ErrStop) {
			st.stop.Store(true)
			return nil
		}
		return err
	}
loop:
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				c.mu.Lock()
				c.active = nil
				c.mu.Unlock()
				drained = make(chan struct{})
				go func() { st.wg.Wait(); close(drained) }()
				break
			}
			if m.err != nil {
				err = m.err
				break loop
			}
			if m.m == nil {
				ahead.give(int64(len(m.raw)))
			}
			switch {
			case st.stop.Load(): // dropped
			case m.m == nil:
				err = c.deliverRaw(st, m, call)
			default:
				err = c.fetchOne(st, m, call)
			}
			if err != nil {
				break loop
			}
			if m.m != nil {
				next <- struct{}{}
			}
		case lm := <-st.late:
			if st.stop.Load() {
				lm.sp.close()
				break
			}
			if err = c.deliverLate(st, lm, call); err != nil {
				break loop
			}
		case <-drained:
			break loop
		case <-stall.C:
			if idle := time.Since(time.Unix(0, st.progress.Load())); idle < c.timeout {
				stall.Reset(c.timeout - idle)
				continue
			}
			err = c.stallError(StageFetch, "UID FETCH", errors.New("no FETCH data"))
			break loop
		}
		stall.Reset(c.timeout)
	}

	if err == nil {
		if cerr := <-cmdDone; cerr != nil {
			return c.imapError(StageFetch, cerr)
		}
		return nil
	}
	// Stop: close the connection rather than read the rest of the batch, let the pump and the
	// handlers finish (every pending read fails at once), and leave no goroutine behind.
	close(st.abort)
	c.raw.Close()
	wait := time.NewTimer(c.timeout)
	defer wait.Stop()
	select {
	case <-cmdDone:
	case <-wait.C:
		// Only a go-imap reader stuck on a literal nobody reads could cause this; leave the
		// goroutines rather than hang the caller.
		c.cfg.Logger.Warn("imapsource: FETCH did not wind down after the connection was closed", "addr", c.cfg.Addr)
		return err
	}
	c.c.Close()
	c.mu.Lock()
	if c.active == st {
		c.active = nil
	}
	c.mu.Unlock()
	st.wg.Wait()
	return err
}

// fetchState is one running FetchInto (all its UID FETCH commands), shared with the unilateral FETCH
// handler (onFetch).
//
// go-imap (beta.8) routes a FETCH response to the FetchCommand only when the UID comes before the
// first literal; otherwise it hands the message to Options.UnilateralDataHandler.Fetch in a new
// goroutine. onFetch spools such a body and passes it to FetchInto's loop through late. One handler
// spools at a time (sem); while it holds sem, go-imap's reader waits for the next literal to be
// consumed, which bounds memory. A handler registers in wg before it reads its literal, and go-imap
// reads the tagged completion only after that literal, so when the last command is done every
// handler is counted.
type fetchState struct {
	want      imap.UIDSet
	delivered map[uint32]bool // touched by FetchInto's goroutine only
	late      chan lateMsg
	abort     chan struct{}
	stop      atomic.Bool // fn returned ErrStop: no more commands are sent, the rest is dropped unspooled
	sem       chan struct{}
	wg        sync.WaitGroup
	progress  atomic.Int64 // unix nanos of the last byte spooled by a handler
}

// lateMsg is a message that came through the unilateral handler: complete and spooled, or an error.
type lateMsg struct {
	f   Fetched
	sp  *spool
	err error
}

// msgState is what the items of one FETCH response said so far.
type msgState struct {
	f                  Fetched
	haveSize, haveDate bool
}

// pumped is what the pump hands to FetchInto's loop: a body read ahead (raw; m is nil), a message to go
// on with (m, and body when the pump stopped at its body), or the error that broke the connection
// while a body was read ahead.
type pumped struct {
	msgState
	m    *imapclient.FetchMessageData
	body *imapclient.FetchItemDataBodySection
	raw  []byte
	err  error
}

// scanToBody takes m's items up to its first body section with a literal, which it returns (nil
// when m has none).
func (c *Conn) scanToBody(m *imapclient.FetchMessageData, ms *msgState) *imapclient.FetchItemDataBodySection {
	for item := m.Next(); item != nil; item = m.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			ms.f.UID = uint32(it.UID)
		case imapclient.FetchItemDataRFC822Size:
			ms.f.Size, ms.haveSize = it.Size, true
		case imapclient.FetchItemDataInternalDate:
			ms.f.InternalDate, ms.haveDate = it.Time, true
		case imapclient.FetchItemDataBodySection:
			if it.Literal != nil {
				return &it
			}
		}
	}
	return nil
}

// aheadGate counts the bytes read ahead and not yet handed to fn, so that they stay under
// ReadAheadBytes.
type aheadGate struct {
	mu    sync.Mutex
	bytes int64
	freed chan struct{} // poked (never blocking) when bytes are handed over
}

// take waits until n more bytes may be read ahead (at once when none are), or until abort.
func (g *aheadGate) take(n int64, abort <-chan struct{}) bool {
	for {
		g.mu.Lock()
		if g.bytes == 0 || g.bytes+n <= ReadAheadBytes {
			g.bytes += n
			g.mu.Unlock()
			return true
		}
		g.mu.Unlock()
		select {
		case <-g.freed:
		case <-abort:
			return false
		}
	}
}

// give counts n bytes as handed over.
func (g *aheadGate) give(n int64) {
	g.mu.Lock()
	g.bytes -= n
	g.mu.Unlock()
	select {
	case g.freed <- struct{}{}:
	default:
	}
}

// known says whether a message's UID (and size and date, when asked for) came before its body, so that
// the body can be handed over as it is read.
func (c *Conn) known(ms msgState) bool {
	return ms.f.UID != 0 && (ms.haveSize && ms.haveDate || !c.cfg.SizeAndDate)
}

// readsAhead says whether the pump reads p's body itself: a known message's body, small enough.
func (c *Conn) readsAhead(p *pumped) bool {
	return p.body != nil && c.known(p.msgState) && c.cfg.ReadAhead > 0 && p.body.Literal.Size() <= c.cfg.ReadAhead
}

// readBody reads a whole literal. An early end is the connection breaking: a transient *diag.Error,
// returned once go-imap's reader has stopped (see awaitReaderExit).
func (c *Conn) readBody(b *imapclient.FetchItemDataBodySection, bufs Buffers) ([]byte, error) {
	var raw []byte
	if bufs != nil {
		raw = bufs.Get(int(b.Literal.Size()))
	}
	if int64(len(raw)) != b.Literal.Size() {
		raw = make([]byte, b.Literal.Size())
	}
	if _, err := io.ReadFull(b.Literal, raw); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		c.awaitReaderExit()
		return nil, c.brokenError(StageFetch, err)
	}
	return raw, nil
}

// setOf is the UIDs as an IMAP set.
func setOf(uids []uint32) imap.UIDSet {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	return set
}

// drain takes the rest of m's items (go-imap discards any further literal).
func drain(m *imapclient.FetchMessageData) {
	for item := m.Next(); item != nil; item = m.Next() {
	}
}

// deliverRaw hands over a body the pump read ahead.
func (c *Conn) deliverRaw(st *fetchState, p pumped, fn func(Fetched) error) error {
	f := p.f
	if st.delivered[f.UID] || !st.want.Contains(imap.UID(f.UID)) {
		return nil
	}
	if !p.haveSize {
		f.Size = int64(len(p.raw))
	}
	f.Body, f.Raw = bytes.NewReader(p.raw), p.raw
	if err := fn(f); err != nil {
		return err
	}
	st.delivered[f.UID] = true
	return nil
}

// fetchOne goes on with a message the pump did not read ahead, stopped at its body: streamed to fn
// when its UID (and size and date, when asked for) came first, otherwise spooled until the items after
// it say which message it is.
func (c *Conn) fetchOne(st *fetchState, p pumped, fn func(Fetched) error) error {
	if p.body == nil {
		return nil // no body (a flags update): the pump took all its items
	}
	ms, lit := p.msgState, p.body.Literal
	if c.known(ms) {
		f := ms.f
		if !ms.haveSize {
			f.Size = lit.Size()
		}
		if st.delivered[f.UID] || !st.want.Contains(imap.UID(f.UID)) {
			return nil // the rest is discarded when the pump takes the next message
		}
		br := &bodyReader{r: lit, left: lit.Size(), c: c}
		f.Body = br
		err := fn(f)
		if br.err != nil {
			c.awaitReaderExit()
			return br.err
		}
		if err != nil {
			return err
		}
		st.delivered[f.UID] = true
		return nil
	}
	sp, err := newSpool(lit, lit.Size(), c.cfg.SpoolThreshold, c.cfg.SpoolDir)
	if err != nil {
		return c.spoolFailed(err)
	}
	defer sp.close()
	for c.scanToBody(p.m, &ms) != nil {
		// The items after the body (UID, size, date); a second body is discarded.
	}
	if !ms.haveSize {
		ms.f.Size = sp.size
	}
	return c.deliver(st, ms.f, sp, fn)
}

// deliverLate hands over a message that came through the unilateral handler.
func (c *Conn) deliverLate(st *fetchState, lm lateMsg, fn func(Fetched) error) error {
	defer lm.sp.close()
	if lm.err != nil {
		return lm.err
	}
	return c.deliver(st, lm.f, lm.sp, fn)
}

func (c *Conn) deliver(st *fetchState, f Fetched, sp *spool, fn func(Fetched) error) error {
	if f.UID == 0 || st.delivered[f.UID] || !st.want.Contains(imap.UID(f.UID)) {
		return nil
	}
	f.Body = sp.reader()
	if err := fn(f); err != nil {
		return err
	}
	st.delivered[f.UID] = true
	return nil
}

// onFetch receives the FETCH responses go-imap did not route to a command: flag updates, and the
// messages whose UID came after the body (see fetchState). It runs in its own goroutine and must
// consume every item, or go-imap's reader would wait forever.
func (c *Conn) onFetch(m *imapclient.FetchMessageData) {
	var (
		st       *fetchState
		f        Fetched
		haveSize bool
		sp       *spool
		err      error
	)
	for item := m.Next(); item != nil; item = m.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			f.UID = uint32(it.UID)
		case imapclient.FetchItemDataRFC822Size:
			f.Size, haveSize = it.Size, true
		case imapclient.FetchItemDataInternalDate:
			f.InternalDate = it.Time
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil || st != nil {
				continue
			}
			c.mu.Lock()
			st = c.active
			if st != nil {
				st.wg.Add(1)
			}
			c.mu.Unlock()
			if st == nil {
				continue // no FetchInto running: discarded by Next
			}
			if st.stop.Load() { // the fetch was stopped: discarded by Next, not spooled
				st.wg.Done()
				st = nil
				continue
			}
			select {
			case st.sem <- struct{}{}:
			case <-st.abort:
				st.wg.Done()
				st = nil
				continue
			}
			sp, err = newSpool(&progressReader{r: it.Literal, p: &st.progress}, it.Literal.Size(), c.cfg.SpoolThreshold, c.cfg.SpoolDir)
			if err != nil {
				err = c.spoolFailed(err)
			}
		}
	}
	if st == nil {
		return
	}
	defer st.wg.Done()
	defer func() { <-st.sem }()
	if err == nil && (f.UID == 0 || !st.want.Contains(imap.UID(f.UID))) {
		sp.close() // not ours
		return
	}
	if err == nil && !haveSize {
		f.Size = sp.size
	}
	select {
	case st.late <- lateMsg{f: f, sp: sp, err: err}:
	case <-st.abort:
		sp.close()
	}
}

// spoolFailed turns an error while spooling a body into a *diag.Error: a local write failure names
// the spool directory, anything else is the connection breaking.
func (c *Conn) spoolFailed(err error) error {
	var se *spoolError
	if errors.As(err, &se) {
		return &diag.Error{Stage: StageFetch, Kind: diag.KindTransient, Code: "spool",
			Summary: "a message body could not be written to the spool directory: " + se.err.Error(),
			Remedy:  "check that the spool directory exists, is writable and has free space", Err: err}
	}
	c.awaitReaderExit()
	return c.brokenError(StageFetch, err)
}

// awaitReaderExit waits until go-imap's reader goroutine has stopped, after a literal ended early.
// go-imap lets its reader go on as soon as a literal read fails, and discards the rest of that
// literal later by reading it again, from the same buffered reader: both must not run at once. The
// connection is broken by then, so the reader stops on its own; the timeout is a safety net.
func (c *Conn) awaitReaderExit() {
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-c.c.Closed():
		return
	case <-t.C:
	}
	c.raw.Close()
	<-c.c.Closed()
}

// bodyReader streams a literal to fn and turns an early end (go-imap's literal reader reports a
// dropped connection as a plain io.EOF) into a transient *diag.Error.
type bodyReader struct {
	r    io.Reader
	left int64
	c    *Conn
	err  error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	switch {
	case err == io.EOF && b.left > 0:
		err = io.ErrUnexpectedEOF
	case err == io.EOF || (err == nil && b.left == 0):
		return n, nil
	}
	if err != nil {
		b.err = b.c.brokenError(StageFetch, err)
		return n, b.err
	}
	return n, nil
}

// progressReader records when bytes last arrived, for the stall timer.
type progressReader struct {
	r io.Reader
	p *atomic.Int64
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.p.Store(time.Now().UnixNano())
	}
	return n, err
}
