package ingest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// TestTwoProcessesOneAccount: two Managers on one database (as two inkorg processes would be, each with
// its own handle on the file) read an account with one worker between them: the other stands by
// without connecting, and takes over when the first stops. Every message is stored once.
func TestTwoProcessesOneAccount(t *testing.T) {
	w := newWorld(t, nil)
	w.configure(settings.IncomingAccount{Address: "info@contoso.example", Type: settings.TypeGeneral})
	for i := range 50 {
		w.deliver("info@contoso.example", plainMessage(i))
	}
	other := w.open() // the second process's handle on the same database
	t.Cleanup(func() { other.Close() })
	var dialsA, dialsB atomic.Int32
	counting := func(holder string, n *atomic.Int32, st store.Store) func(*Config) {
		return func(c *Config) {
			c.Holder, c.ClaimTTL, c.Store = holder, 900*time.Millisecond, st
			d := imapDialer(c)
			c.Dial = func(ctx context.Context, t Target) (Connected, error) {
				n.Add(1)
				return d(ctx, t)
			}
		}
	}
	a := w.manager(counting("process-a", &dialsA, w.store))
	waitFor(t, 10*time.Second, "process A to read the account", func() bool { return dialsA.Load() > 0 })
	b := w.manager(counting("process-b", &dialsB, other))
	_ = b
	waitFor(t, 20*time.Second, "50 messages stored and moved", func() bool {
		return len(w.messages(store.MessageQuery{})) == 50 && w.count("info@contoso.example", "INBOX") == 0
	})
	time.Sleep(time.Second) // more than a claim's time to live: B would have taken over by now if it could
	if n := dialsB.Load(); n != 0 {
		t.Fatalf("process B connected %d times while A held the account", n)
	}
	c, err := w.store.ClaimAccount(context.Background(), 1, "probe", time.Second)
	if err != nil || c.Held || c.Holder != "process-a" {
		t.Fatalf("claim %+v, %v: want process-a's", c, err)
	}

	// A stops (and releases the account): B takes over.
	a.Close()
	waitFor(t, 5*time.Second, "process B to take over", func() bool { return dialsB.Load() > 0 })
	for i := 50; i < 70; i++ {
		w.deliver("info@contoso.example", plainMessage(i))
	}
	waitFor(t, 20*time.Second, "70 messages stored and moved", func() bool {
		return len(w.messages(store.MessageQuery{})) == 70 && w.count("info@contoso.example", "INBOX") == 0
	})
	seen := map[string]int{}
	for _, m := range w.messages(store.MessageQuery{}) {
		seen[m.MessageID]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	if n := w.count("info@contoso.example", settings.DefaultProcessedFolder); n != 70 {
		t.Errorf("processed folder holds %d, want 70", n)
	}
}
