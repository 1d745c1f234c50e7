package outbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"inkorg/internal/entra"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// dyingStore is the store of a process that dies at the worst moment: the server has accepted the
// message (250 after DATA), and the process is gone before the acceptance reaches the disk.
type dyingStore struct {
	store.Store
	died chan string
}

func (d *dyingStore) OutgoingSent(ctx context.Context, id string, at time.Time, reply string) error {
	d.died <- id
	return errors.New("the process died")
}

func TestCrashAtTheMomentOfAcceptance(t *testing.T) {
	w := startEmulator(t, nil)
	w.configure(t, settings.SendSMTP)
	clk := &clock{}
	ds := &dyingStore{Store: w.st, died: make(chan string, 1)}
	lease := time.Minute
	first := New(Config{Store: ds, Tokens: entra.New(entra.Config{Cloud: w.cloud}), Cloud: w.cloud, Clock: clk.now, PollInterval: 10 * time.Millisecond,
		Timeout: 10 * time.Second, Lease: lease})
	must(t, first.Start(context.Background()))
	res, err := first.Submit(context.Background(), Request{AsWebshop: true, To: []string{"anna@contoso.example"}, Subject: "Invoice 99", Text: "Pay."})
	must(t, err)
	select {
	case id := <-ds.died:
		if id != res.ID {
			t.Fatalf("died on %s", id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the message was never sent")
	}
	first.Close() // the process is gone

	m, _ := w.st.Outgoing(context.Background(), res.ID)
	if m.State != store.OutSending {
		t.Fatalf("after the crash: %s", m.State)
	}
	if ms, _ := w.emu.Store().Messages("anna@contoso.example", "INBOX"); len(ms) != 1 {
		t.Fatalf("the server has %d copies", len(ms))
	}

	// A restart within the lease leaves it alone (its sender might still be alive, on another process).
	second := w.outbox(t, func(c *Config) { c.Clock, c.Lease = clk.now, lease })
	time.Sleep(100 * time.Millisecond)
	if m, _ := w.st.Outgoing(context.Background(), res.ID); m.State != store.OutSending {
		t.Fatalf("within the lease: %s", m.State)
	}
	// Once the lease has run out, recovery marks it unknown and never resends it.
	clk.advance(2 * lease)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ = w.st.Outgoing(context.Background(), res.ID)
		if m.State == store.OutUnknown || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m.State != store.OutUnknown || m.Attempts != 1 {
		t.Fatalf("after recovery: %s, %d attempts", m.State, m.Attempts)
	}
	time.Sleep(100 * time.Millisecond) // several sender rounds
	if ms, _ := w.emu.Store().Messages("anna@contoso.example", "INBOX"); len(ms) != 1 {
		t.Fatalf("sent twice: the server has %d copies", len(ms))
	}
	if l, _ := w.st.OutgoingList(context.Background(), store.OutUnknown, 10); len(l) != 1 || l[0].ID != res.ID {
		t.Errorf("unknown messages are not listed: %+v", l)
	}
	// An operator who checked the recipient's mailbox records it as sent.
	must(t, second.Resolve(context.Background(), res.ID, false))
	if m, _ := second.Status(context.Background(), res.ID); m.State != store.OutSent {
		t.Errorf("resolved: %s", m.State)
	}
}
