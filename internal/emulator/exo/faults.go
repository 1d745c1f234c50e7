package exo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
)

// IMAPFaults are the failures the IMAP front end injects on demand (the emulator's admin API sets
// them at run time). The zero value injects nothing; each SetFaults replaces the previous set.
type IMAPFaults struct {
	// DropAfterFetch > 0 closes the connection, in the middle of a FETCH, right after it has sent the
	// Nth FETCH response since the fault was set (counted per connection). One-shot: the first
	// connection that reaches N is dropped and the fault disarms itself, so a client that reconnects
	// can finish.
	DropAfterFetch int
	// Stall > 0 makes every command received in the next Stall go unanswered until that window ends.
	Stall time.Duration
	// Throttle > 0 answers every command of an authenticated session received in the next Throttle
	// with Exchange's "BAD Request is throttled. Suggested Backoff Time: N milliseconds", N being the
	// time left in the window.
	Throttle time.Duration
	// RefuseLogins answers every AUTHENTICATE with "NO AUTHENTICATE failed." (DenyLoginRefused).
	RefuseLogins bool
}

// faultState holds the armed faults. Windows run on wall-clock time, since they are about real waiting.
type faultState struct {
	mu            sync.Mutex
	f             IMAPFaults
	gen           uint64 // bumped by every set, restarts the per-connection FETCH counts
	stallUntil    time.Time
	throttleUntil time.Time
}

func (fs *faultState) set(f IMAPFaults) {
	now := time.Now()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.f = f
	fs.gen++
	fs.stallUntil, fs.throttleUntil = time.Time{}, time.Time{}
	if f.Stall > 0 {
		fs.stallUntil = now.Add(f.Stall)
	}
	if f.Throttle > 0 {
		fs.throttleUntil = now.Add(f.Throttle)
	}
}

func (fs *faultState) get() IMAPFaults {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.f
}

func (fs *faultState) refuseLogins() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.f.RefuseLogins
}

// stall blocks while a stall window is open, or until ctx ends.
func (fs *faultState) stall(ctx context.Context) {
	fs.mu.Lock()
	d := time.Until(fs.stallUntil)
	fs.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// throttled returns Exchange's throttling reply while the throttle window is open.
func (fs *faultState) throttled() error {
	fs.mu.Lock()
	d := time.Until(fs.throttleUntil)
	fs.mu.Unlock()
	if d <= 0 {
		return nil
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return &imap.Error{Type: imap.StatusResponseTypeBad, Text: fmt.Sprintf("Request is throttled. Suggested Backoff Time: %d milliseconds", ms)}
}

// fetchCounter is one connection's count of FETCH responses under the current fault set.
type fetchCounter struct {
	gen uint64
	n   int
}

// countFetch records one FETCH response and reports whether the connection must be dropped now.
func (fs *faultState) countFetch(c *fetchCounter) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.f.DropAfterFetch <= 0 {
		return false
	}
	if c.gen != fs.gen {
		c.gen, c.n = fs.gen, 0
	}
	c.n++
	if c.n < fs.f.DropAfterFetch {
		return false
	}
	fs.f.DropAfterFetch = 0
	return true
}
