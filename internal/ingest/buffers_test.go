package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"inkorg/internal/emulator/scenario"
	"inkorg/internal/imapsource"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// TestBatchSlots: no more than n slots are out at once (waiting ends with the context); a buffer
// given back to be kept is reused, the last one first, when it is big enough; none is kept once no
// slot is out.
func TestBatchSlots(t *testing.T) {
	s := newBatchSlots(3)
	ctx := context.Background()
	take := func(size int) *batchBuffer {
		t.Helper()
		b, err := s.take(ctx, size, nil)
		if err != nil || len(b.block) < size || uintptrOf(b.block)%bufferAlign != 0 || b.used != 0 || b.asked != 0 {
			t.Fatalf("take(%d): %d bytes at %x, used %d, %v", size, len(b.block), uintptrOf(b.block), b.used, err)
		}
		return b
	}
	a, b, c := take(1000), take(1000), take(1000)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := s.take(short, 10, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("a fourth slot out of three: %v (waiting called: %v)", err, waited)
	}
	a.Get(300)
	s.give(a, true)
	s.give(b, true)
	if got := take(500); got != b {
		t.Error("the buffer given back last was not the one reused")
	}
	if got := take(5000); got == a || len(got.block) < 5000 {
		t.Errorf("a buffer too small was reused (%d bytes)", len(got.block))
	} else {
		s.give(got, false)
	}
	s.give(c, true)
	s.give(b, true)
	if n := len(s.free); n != 0 {
		t.Errorf("%d buffers kept with no slot out", n)
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// TestMaxBatches: many mailboxes catching up at once keep no more than MaxBatches batches in flight
// (from the start of a batch's FETCH to the end of its commit), and every message is stored and moved.
func TestMaxBatches(t *testing.T) {
	const boxes, each, limit = 10, 60, 3
	var addrs []string
	w := newWorld(t, func(s *scenario.Scenario) {
		for i := range boxes {
			a := fmt.Sprintf("box%d@contoso.example", i)
			addrs = append(addrs, a)
			s.Mailboxes = append(s.Mailboxes, scenario.Mailbox{Address: a, DisplayName: a})
		}
	})
	var accts []settings.IncomingAccount
	for _, a := range addrs {
		accts = append(accts, settings.IncomingAccount{Address: a, Type: settings.TypeGeneral})
	}
	w.configure(accts...)
	for i, a := range addrs {
		for j := range each {
			w.deliver(a, plainMessage(i*1000+j))
		}
	}
	var flight inFlight
	w.manager(func(c *Config) {
		c.BatchSize, c.MaxBatches = 10, limit
		dial := imapDialer(c)
		c.Dial = func(ctx context.Context, tg Target) (Connected, error) {
			conn, err := dial(ctx, tg)
			if err == nil {
				conn.Session = countFetches{conn.Session, &flight}
			}
			return conn, err
		}
		c.Store = countCommits{c.Store, &flight}
	})
	waitFor(t, 60*time.Second, "every message stored and moved", func() bool {
		if len(w.messages(store.MessageQuery{})) != boxes*each {
			return false
		}
		for _, a := range addrs {
			if w.count(a, "INBOX") != 0 {
				return false
			}
		}
		return true
	})
	if m := flight.max.Load(); m > limit || m < 2 {
		t.Errorf("at most %d batches were in flight at once, want %d or fewer (and more than one)", m, limit)
	}
	if flight.waits.Load() == 0 {
		t.Error("no mailbox reported waiting for its turn")
	}
}

// inFlight counts the batches between the start of their FETCH and the end of their commit.
type inFlight struct {
	mu    sync.Mutex
	n     int64
	max   atomic.Int64
	waits atomic.Int64 // reports of a mailbox waiting for its turn
}

func (f *inFlight) add(d int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n += d
	if f.n > f.max.Load() {
		f.max.Store(f.n)
	}
}

type countFetches struct {
	Session
	f *inFlight
}

func (c countFetches) FetchInto(uids []uint32, bufs imapsource.Buffers, fn func(imapsource.Fetched) error) error {
	c.f.add(1)
	return c.Session.FetchInto(uids, bufs, fn)
}

type countCommits struct {
	store.Store
	f *inFlight
}

// PutAccountState counts the reports of a mailbox waiting for its turn.
func (c countCommits) PutAccountState(ctx context.Context, st store.AccountState) error {
	if strings.Contains(st.Detail, "waiting for its turn") {
		c.f.waits.Add(1)
	}
	return c.Store.PutAccountState(ctx, st)
}

func (c countCommits) CommitBatch(ctx context.Context, b store.Batch) ([]store.Committed, error) {
	defer c.f.add(-1)
	return c.Store.CommitBatch(ctx, b)
}
