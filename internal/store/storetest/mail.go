package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// RawMessage makes a small message whose bytes differ by n.
func RawMessage(n int) []byte {
	return fmt.Appendf(nil, "From: a@example.com\r\nTo: m2m@contoso.example\r\nSubject: message %d\r\nMessage-ID: <%d@example.com>\r\n\r\nBody %d\r\n", n, n, n)
}

// NewMessage makes a batch entry for RawMessage(n) at uid.
func NewMessage(n int, uid uint32, dest string) store.NewMessage {
	raw := RawMessage(n)
	sum := sha256.Sum256(raw)
	return store.NewMessage{UID: uid, Raw: raw, Dest: dest, Meta: store.Message{
		MessageID: fmt.Sprintf("%d@example.com", n), SHA256: hex.EncodeToString(sum[:]), From: "a@example.com", To: []string{"m2m@contoso.example"},
		Subject: fmt.Sprintf("message %d", n), Date: time.Date(2026, 11, 22, 10, 0, n%60, 0, time.UTC),
		Attachments: []store.Attachment{{Index: 0, Filename: "order.xml", ContentType: "application/xml", Size: 10, SHA256: "ab"}},
		M2M:         &store.M2M{Kind: "purchase-order", XMLIndex: 0, PDFIndex: -1}}}
}

func batch(account int64, validity, last uint32, ms ...store.NewMessage) store.Batch {
	return store.Batch{AccountID: account, Account: fmt.Sprintf("acct%d@contoso.example", account), Type: settings.TypeMonitorToMonitor,
		Folder: "INBOX", UIDValidity: validity, LastUID: last, Messages: ms}
}

func testMail(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.Cursor(ctx, 1, "INBOX")
	must(t, err)
	if c != (store.Cursor{}) {
		t.Fatalf("new cursor %+v", c)
	}
	// A malformed batch writes nothing.
	for _, b := range []store.Batch{batch(0, 7, 3), batch(1, 0, 3), batch(1, 7, 1, NewMessage(1, 2, ""))} {
		if _, err := s.CommitBatch(ctx, b); !errors.Is(err, store.ErrBatch) {
			t.Errorf("malformed batch %+v: %v", b, err)
		}
	}
	got, err := s.CommitBatch(ctx, batch(1, 7, 3, NewMessage(1, 1, "inkorg/Processed"), NewMessage(2, 3, "inkorg/Processed")))
	must(t, err)
	if len(got) != 2 || got[0].Duplicate || got[1].Duplicate || !store.ValidMessageID(got[0].ID) || got[0].ID == got[1].ID {
		t.Fatalf("committed %+v", got)
	}
	if c, _ = s.Cursor(ctx, 1, "INBOX"); c != (store.Cursor{UIDValidity: 7, LastUID: 3}) {
		t.Errorf("cursor %+v", c)
	}
	// The same bytes again (a copy, or after a crash and a renumbering) are not a second message.
	again, err := s.CommitBatch(ctx, batch(1, 7, 9, NewMessage(2, 9, "inkorg/Processed")))
	must(t, err)
	if !again[0].Duplicate || again[0].ID != got[1].ID {
		t.Errorf("duplicate %+v", again)
	}
	// Another account may hold the same bytes.
	other, err := s.CommitBatch(ctx, batch(2, 5, 1, NewMessage(2, 1, "")))
	must(t, err)
	if other[0].Duplicate {
		t.Error("a message of another account counted as a duplicate")
	}
	// A different UIDVALIDITY needs a reset first.
	if _, err := s.CommitBatch(ctx, batch(1, 8, 1, NewMessage(3, 1, ""))); !errors.Is(err, store.ErrUIDValidity) {
		t.Errorf("UIDVALIDITY change: %v", err)
	}

	pm, err := s.PendingMoves(ctx, 1)
	must(t, err)
	if len(pm) != 3 || pm[0].UID != 1 || pm[2].UID != 9 || pm[0].Dest != "inkorg/Processed" {
		t.Fatalf("pending %+v", pm)
	}
	must(t, s.MovedThrough(ctx, 1, "INBOX", 7, 3))
	must(t, s.MovedThrough(ctx, 1, "INBOX", 7, 1)) // lower: changes nothing
	must(t, s.MovedThrough(ctx, 1, "INBOX", 6, 9)) // another UIDVALIDITY: changes nothing
	must(t, s.MovedThrough(ctx, 1, "Archive", 7, 9))
	if pm, _ = s.PendingMoves(ctx, 1); len(pm) != 1 || pm[0].UID != 9 {
		t.Errorf("pending after moves through 3: %+v", pm)
	}
	if c, _ = s.Cursor(ctx, 1, "INBOX"); c != (store.Cursor{UIDValidity: 7, LastUID: 9, MovedUID: 3}) {
		t.Errorf("cursor after moves through 3: %+v", c)
	}
	if pm, _ = s.PendingMoves(ctx, 2); len(pm) != 0 {
		t.Errorf("leave-in-place messages are pending moves: %+v", pm)
	}

	// Another folder of the account has moves of its own.
	other2 := batch(1, 4, 5, NewMessage(5, 5, "inkorg/Processed"))
	other2.Folder = "Orders"
	_, err = s.CommitBatch(ctx, other2)
	must(t, err)
	if pm, _ = s.PendingMoves(ctx, 1); len(pm) != 2 || pm[0].Folder != "INBOX" || pm[0].UID != 9 || pm[1].Folder != "Orders" || pm[1].UIDValidity != 4 || pm[1].UID != 5 {
		t.Errorf("pending in two folders: %+v", pm)
	}
	must(t, s.MovedThrough(ctx, 1, "Orders", 4, 5))

	must(t, s.ResetCursor(ctx, 1, "INBOX", 8))
	if c, _ = s.Cursor(ctx, 1, "INBOX"); c != (store.Cursor{UIDValidity: 8}) {
		t.Errorf("reset cursor %+v", c)
	}
	// UID 9 was numbered under the old UIDVALIDITY: not a pending move any more (it is read again).
	if pm, _ = s.PendingMoves(ctx, 1); len(pm) != 0 {
		t.Errorf("pending after a renumbering: %+v", pm)
	}
	_, err = s.CommitBatch(ctx, batch(1, 8, 1, NewMessage(3, 1, "")))
	must(t, err)

	// The ERP's side.
	all, err := s.Messages(ctx, store.MessageQuery{})
	must(t, err)
	if len(all) != 5 || all[0].ID != got[0].ID || all[0].Seq >= all[1].Seq {
		t.Fatalf("messages %+v", all)
	}
	m := all[0]
	if m.Account != "acct1@contoso.example" || m.Type != settings.TypeMonitorToMonitor || m.Subject != "message 1" || m.To[0] != "m2m@contoso.example" ||
		m.M2M == nil || m.M2M.Kind != "purchase-order" || len(m.Attachments) != 1 || m.Attachments[0].Filename != "order.xml" ||
		!m.Date.Equal(time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)) || m.ReceivedAt.IsZero() || m.Size != int64(len(RawMessage(1))) || m.AckedAt != nil {
		t.Errorf("message %+v", m)
	}
	page, _ := s.Messages(ctx, store.MessageQuery{After: all[0].Seq, Limit: 2})
	if len(page) != 2 || page[0].ID != all[1].ID {
		t.Errorf("page after %d: %+v", all[0].Seq, page)
	}
	if byAcct, _ := s.Messages(ctx, store.MessageQuery{Account: "ACCT2@contoso.example"}); len(byAcct) != 1 {
		t.Errorf("by account: %d", len(byAcct))
	}
	if byType, _ := s.Messages(ctx, store.MessageQuery{Type: settings.TypeGeneral}); len(byType) != 0 {
		t.Errorf("by type: %d", len(byType))
	}
	raw, err := s.Raw(ctx, m.ID)
	must(t, err)
	if string(raw) != string(RawMessage(1)) {
		t.Errorf("raw %q", raw)
	}
	at, err := s.Ack(ctx, m.ID)
	must(t, err)
	at2, err := s.Ack(ctx, m.ID)
	must(t, err)
	if at.IsZero() || !at.Equal(at2) {
		t.Errorf("ack times %v %v", at, at2)
	}
	if un, _ := s.Messages(ctx, store.MessageQuery{Unacked: true}); len(un) != 4 {
		t.Errorf("unacked %d", len(un))
	}
	for _, f := range []func() error{
		func() error { _, err := s.Message(ctx, "m_aaaaaaaaaaaaaaaaaaaa"); return err },
		func() error { _, err := s.Raw(ctx, "m_aaaaaaaaaaaaaaaaaaaa"); return err },
		func() error { _, err := s.Ack(ctx, "m_aaaaaaaaaaaaaaaaaaaa"); return err },
	} {
		if err := f(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing message: %v", err)
		}
	}

	// Workers' states.
	st := store.AccountState{AccountID: 1, State: "paused", Detail: "authentication failed", Backlog: 3, LastPoll: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		LastError: &store.ErrorRecord{Stage: "authenticate", Code: "IMAP NO", Summary: "refused", Actions: []string{"Add-MailboxPermission …"}}}
	must(t, s.PutAccountState(ctx, st))
	st.State = "idle"
	must(t, s.PutAccountState(ctx, st))
	states, err := s.AccountStates(ctx)
	must(t, err)
	if len(states) != 1 || states[0].State != "idle" || states[0].LastError == nil || states[0].LastError.Actions[0] != "Add-MailboxPermission …" ||
		!states[0].LastPoll.Equal(st.LastPoll) || states[0].UpdatedAt.IsZero() {
		t.Errorf("states %+v", states)
	}
}

// testMailConcurrent commits batches of several accounts at once.
// testLeftInPlace: a batch with nothing to move takes the moves' watermark along, but only over
// messages that are moved already, so that PendingMoves never reads a folder left in place again.
func testLeftInPlace(t *testing.T, s store.Store) {
	ctx := context.Background()
	watermark := func(step string, want uint32) {
		t.Helper()
		if c, _ := s.Cursor(ctx, 1, "INBOX"); c.MovedUID != want {
			t.Errorf("%s: watermark %d, want %d", step, c.MovedUID, want)
		}
	}
	commit := func(b store.Batch) {
		t.Helper()
		if _, err := s.CommitBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	commit(batch(1, 5, 1, NewMessage(1, 1, "")))
	watermark("after a batch left in place", 1)
	commit(batch(1, 5, 2, NewMessage(2, 2, "inkorg/Failed")))
	commit(batch(1, 5, 3, NewMessage(3, 3, "")))
	watermark("with a message still to move", 1)
	if pm, _ := s.PendingMoves(ctx, 1); len(pm) != 1 || pm[0].UID != 2 {
		t.Errorf("pending: %+v", pm)
	}
	must(t, s.MovedThrough(ctx, 1, "INBOX", 5, 3))
	commit(batch(1, 5, 4, NewMessage(4, 4, "")))
	watermark("once it is moved", 4)
	if pm, _ := s.PendingMoves(ctx, 1); len(pm) != 0 {
		t.Errorf("pending at the end: %+v", pm)
	}
}

func testMailConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for a := int64(1); a <= 4; a++ {
		wg.Go(func() {
			for i := 1; i <= 10; i++ {
				_, err := s.CommitBatch(ctx, batch(a, 1, uint32(i), NewMessage(int(a)*100+i, uint32(i), "x")))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	all, _ := s.Messages(ctx, store.MessageQuery{})
	if len(all) != 40 {
		t.Errorf("%d messages after 40 concurrent commits", len(all))
	}
	for a := int64(1); a <= 4; a++ {
		if c, _ := s.Cursor(ctx, a, "INBOX"); c.LastUID != 10 {
			t.Errorf("account %d cursor %+v", a, c)
		}
	}
}

// testClaims: one holder at a time per account; renewing keeps it; another takes over when it lapses
// or is released, and the old holder then learns it has lost it; claims race safely.
func testClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	const ttl = 400 * time.Millisecond
	a, err := s.ClaimAccount(ctx, 1, "host-a:1", ttl)
	must(t, err)
	if !a.Held || a.Holder != "host-a:1" || time.Until(a.Until) <= 0 || time.Until(a.Until) > ttl+time.Second {
		t.Fatalf("first claim %+v", a)
	}
	b, err := s.ClaimAccount(ctx, 1, "host-b:2", ttl)
	must(t, err)
	if b.Held || b.Holder != "host-a:1" {
		t.Fatalf("a second process claimed a held account: %+v", b)
	}
	other, err := s.ClaimAccount(ctx, 2, "host-b:2", ttl)
	must(t, err)
	if !other.Held {
		t.Fatalf("another account: %+v", other)
	}
	// Renewed, it stays; lapsed, it goes.
	time.Sleep(ttl / 2)
	again, err := s.ClaimAccount(ctx, 1, "host-a:1", ttl)
	must(t, err)
	if !again.Held || !again.Until.After(a.Until) {
		t.Fatalf("renewal %+v after %+v", again, a)
	}
	time.Sleep(ttl/2 + 50*time.Millisecond)
	if b, _ = s.ClaimAccount(ctx, 1, "host-b:2", ttl); b.Held {
		t.Fatalf("taken over before the renewed claim lapsed: %+v", b)
	}
	time.Sleep(ttl)
	b, err = s.ClaimAccount(ctx, 1, "host-b:2", ttl)
	must(t, err)
	if !b.Held || b.Holder != "host-b:2" {
		t.Fatalf("not taken over after the claim lapsed: %+v", b)
	}
	lost, err := s.ClaimAccount(ctx, 1, "host-a:1", ttl)
	must(t, err)
	if lost.Held || lost.Holder != "host-b:2" {
		t.Fatalf("the old holder still holds it: %+v", lost)
	}
	// Released by someone else: nothing; by the holder: free at once.
	must(t, s.ReleaseAccount(ctx, 1, "host-a:1"))
	if c, _ := s.ClaimAccount(ctx, 1, "host-a:1", ttl); c.Held {
		t.Fatal("a release by a non-holder freed the account")
	}
	must(t, s.ReleaseAccount(ctx, 1, "host-b:2"))
	if c, _ := s.ClaimAccount(ctx, 1, "host-a:1", ttl); !c.Held {
		t.Fatalf("not free after its holder released it: %+v", c)
	}
	// A race for a free account: exactly one winner.
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := range 8 {
		wg.Go(func() {
			c, err := s.ClaimAccount(ctx, 3, fmt.Sprintf("racer-%d", i), ttl)
			if err != nil {
				t.Error(err)
				return
			}
			if c.Held {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if winners != 1 {
		t.Errorf("%d processes won the claim race", winners)
	}
}

// testNewestFirst: Newest lists the greatest Seq first, with the filters and the cursor as usual.
func testNewestFirst(t *testing.T, s store.Store) {
	ctx := context.Background()
	var ms []store.NewMessage
	for i := range 30 {
		ms = append(ms, NewMessage(i, uint32(i+1), ""))
	}
	_, err := s.CommitBatch(ctx, batch(1, 1, 30, ms...))
	must(t, err)
	all, err := s.Messages(ctx, store.MessageQuery{})
	must(t, err)
	newest, err := s.Messages(ctx, store.MessageQuery{Newest: true, Limit: 5})
	must(t, err)
	if len(all) != 30 || len(newest) != 5 {
		t.Fatalf("%d messages, %d newest", len(all), len(newest))
	}
	for i, m := range newest {
		if m.ID != all[29-i].ID {
			t.Fatalf("newest[%d] = seq %d, want seq %d", i, m.Seq, all[29-i].Seq)
		}
	}
	after, err := s.Messages(ctx, store.MessageQuery{Newest: true, After: all[27].Seq, Type: settings.TypeMonitorToMonitor})
	must(t, err)
	if len(after) != 2 || after[0].ID != all[29].ID || after[1].ID != all[28].ID {
		t.Errorf("newest after a cursor: %+v", after)
	}
	if none, _ := s.Messages(ctx, store.MessageQuery{Newest: true, Type: settings.TypeGeneral}); len(none) != 0 {
		t.Errorf("another type: %d", len(none))
	}
}

// BeforeMovedWatermark is data of a database from before moves were a watermark (message_uids.moved_at;
// SQLite's schema 7, PostgreSQL's 6), in SQL both accept. Account 1's INBOX (UIDVALIDITY 7, read
// through 10) has UIDs 1-4 and 6 moved, 5 and 7-10 not, and UID 20 of an older UIDVALIDITY not; its
// Orders folder is all moved; its Leave folder's messages stay where they are.
const BeforeMovedWatermark = `
INSERT INTO messages (id, account_id, account, type, sha256, size, received_at) VALUES ('m_1', 1, 'a@contoso.example', 'general', 'x', 1, '2026-11-01T00:00:00Z');
INSERT INTO cursors (account_id, folder, uidvalidity, last_uid, updated_at) VALUES
	(1, 'INBOX', 7, 10, '2026-11-01T00:00:00Z'), (1, 'Orders', 3, 2, '2026-11-01T00:00:00Z'), (1, 'Leave', 2, 12, '2026-11-01T00:00:00Z');
INSERT INTO message_uids (account_id, folder, uidvalidity, uid, message, dest, moved_at) VALUES
	(1, 'INBOX', 7, 1, 'm_1', 'Processed', '2026-11-01T00:00:00Z'), (1, 'INBOX', 7, 2, 'm_1', 'Processed', '2026-11-01T00:00:00Z'),
	(1, 'INBOX', 7, 3, 'm_1', 'Processed', '2026-11-01T00:00:00Z'), (1, 'INBOX', 7, 4, 'm_1', 'Failed', '2026-11-01T00:00:00Z'),
	(1, 'INBOX', 7, 5, 'm_1', 'Processed', NULL), (1, 'INBOX', 7, 6, 'm_1', 'Processed', '2026-11-01T00:00:00Z'),
	(1, 'INBOX', 7, 7, 'm_1', 'Processed', NULL), (1, 'INBOX', 7, 8, 'm_1', 'Failed', NULL),
	(1, 'INBOX', 7, 9, 'm_1', 'Processed', NULL), (1, 'INBOX', 7, 10, 'm_1', 'Processed', NULL),
	(1, 'INBOX', 6, 20, 'm_1', 'Processed', NULL),
	(1, 'Orders', 3, 1, 'm_1', 'Processed', '2026-11-01T00:00:00Z'), (1, 'Orders', 3, 2, 'm_1', 'Processed', '2026-11-01T00:00:00Z'),
	(1, 'Leave', 2, 11, 'm_1', '', NULL), (1, 'Leave', 2, 12, 'm_1', '', NULL);
`

// CheckMovedWatermark checks a store upgraded from BeforeMovedWatermark: each folder's watermark is
// below its first message not moved (or its last UID), and the pending moves are the INBOX's from
// UID 5 (6 again: a MOVE of a UID no longer there does nothing).
func CheckMovedWatermark(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	for folder, want := range map[string]store.Cursor{"INBOX": {UIDValidity: 7, LastUID: 10, MovedUID: 4}, "Orders": {UIDValidity: 3, LastUID: 2, MovedUID: 2},
		"Leave": {UIDValidity: 2, LastUID: 12, MovedUID: 12}} {
		if c, err := s.Cursor(ctx, 1, folder); err != nil || c != want {
			t.Errorf("cursor of %s after the upgrade: %+v, %v; want %+v", folder, c, err, want)
		}
	}
	pm, err := s.PendingMoves(ctx, 1)
	must(t, err)
	var got []string
	for _, p := range pm {
		got = append(got, fmt.Sprintf("%s/%d/%d>%s", p.Folder, p.UIDValidity, p.UID, p.Dest))
	}
	want := []string{"INBOX/7/5>Processed", "INBOX/7/6>Processed", "INBOX/7/7>Processed", "INBOX/7/8>Failed", "INBOX/7/9>Processed", "INBOX/7/10>Processed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pending moves after the upgrade:\n got %v\nwant %v", got, want)
	}
}
