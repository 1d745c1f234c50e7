package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// commitModel is what CommitBatch must have done, worked out message by message: the first message
// of an account with some bytes is stored, every later one is a Duplicate of it.
type commitModel struct {
	ids  map[string]string // account/sha256 → id
	msgs map[string]store.NewMessage
	seq  int64 // the last message checked
}

// commitMsg makes message n (its bytes decided by body) with metadata that varies with n: lists nil,
// empty or not, text that JSON escapes, an M2M part, a date or none.
func commitMsg(n, body int, uid uint32) store.NewMessage {
	raw := fmt.Appendf(nil, "Subject: m %d\r\n\r\nbody %d\r\n", body, body)
	sum := sha256.Sum256(raw)
	m := store.Message{MessageID: fmt.Sprintf("<%d@example.com>", body), SHA256: hex.EncodeToString(sum[:]), From: "a@example.com",
		Subject: fmt.Sprintf("message %d", n)}
	switch n % 7 {
	case 0:
		m.To = []string{"x@example.com", "y@example.com"}
		m.Date = time.Date(2026, 11, 22, 10, 0, n%60, 0, time.FixedZone("x", 3600))
	case 1:
		m.To, m.Cc, m.Problems = []string{}, []string{}, []string{}
		m.Attachments = []store.Attachment{}
	case 2:
		m.To = []string{`"Ünïcode" <u@example.com>`, "a<b>&c@example.com", "tab\there", "quote\"back\\slash", "\x7f", "bad \xff utf-8"}
		m.Cc = []string{"c@example.com"}
		m.Problems = []string{"no body", "<html>"}
	case 3:
		m.Attachments = []store.Attachment{{Index: 1, Filename: "order.xml", ContentType: "application/xml", Size: 10, SHA256: "ab", Inline: true}}
		m.M2M = &store.M2M{Kind: "purchase-order", XMLIndex: 1, PDFIndex: -1, DocumentNumber: "PO-1"}
	case 4:
		m.Failed = "could not parse"
		m.Subject = "bad \xff utf-8 subject"
	}
	return store.NewMessage{UID: uid, Raw: raw, Dest: fmt.Sprintf("dest-%d", n%3), Meta: m}
}

// check compares what CommitBatch returned and stored for the batch with the model, and updates it.
func (md *commitModel) check(t *testing.T, s *Store, b store.Batch, got []store.Committed, hooked bool, stamp string) {
	t.Helper()
	ctx := context.Background()
	if len(got) != len(b.Messages) {
		t.Fatalf("%d results for %d messages", len(got), len(b.Messages))
	}
	type uidRow struct{ id, dest string }
	uids := map[uint32]uidRow{}
	rows, err := s.db.QueryContext(ctx, `SELECT uid, message, dest FROM message_uids WHERE account_id = ? AND folder = ? AND uidvalidity = ?`,
		b.AccountID, b.Folder, b.UIDValidity)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var uid uint32
		var r uidRow
		if err := rows.Scan(&uid, &r.id, &r.dest); err != nil {
			t.Fatal(err)
		}
		uids[uid] = r
	}
	rows.Close()
	stored := md.rows(t, s)
	for i, m := range b.Messages {
		c := got[i]
		key := fmt.Sprint(b.AccountID, "/", m.Meta.SHA256)
		if c.UID != m.UID {
			t.Fatalf("message %d: uid %d, want %d", i, c.UID, m.UID)
		}
		if id, ok := md.ids[key]; ok {
			if !c.Duplicate || c.ID != id {
				t.Fatalf("message %d (uid %d): %+v, want a duplicate of %s", i, m.UID, c, id)
			}
		} else {
			if c.Duplicate || !store.ValidMessageID(c.ID) {
				t.Fatalf("message %d (uid %d): %+v, want a new message", i, m.UID, c)
			}
			md.ids[key], md.msgs[c.ID] = c.ID, m
			if got, want := stored[c.ID], md.want(b, c.ID, stamp); got != want {
				t.Fatalf("message %s stored as\n%s\nwant\n%s", c.ID, got, want)
			}
			if i%50 == 0 {
				if raw, err := s.Raw(ctx, c.ID); err != nil || !bytes.Equal(raw, m.Raw) {
					t.Fatalf("message %s: raw %q %v", c.ID, raw, err)
				}
			}
		}
		if r := uids[m.UID]; r.id != c.ID || r.dest != m.Dest {
			t.Fatalf("message %d: uid row %+v, want %s %q", i, r, c.ID, m.Dest)
		}
	}
	var n int
	s.db.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&n)
	if n != len(md.ids) {
		t.Fatalf("%d messages stored, want %d", n, len(md.ids))
	}
	s.db.QueryRowContext(ctx, `SELECT count(*) FROM deliveries`).Scan(&n)
	if want := len(md.ids); hooked && n != want || !hooked && n != 0 {
		t.Fatalf("%d deliveries (webhook %v), %d messages", n, hooked, want)
	}
	if hooked {
		var bad int
		s.db.QueryRowContext(ctx, `SELECT count(*) FROM deliveries d LEFT JOIN messages m ON m.id = d.message WHERE m.id IS NULL OR d.type != m.type OR d.next_at != m.received_at`).Scan(&bad)
		if bad != 0 {
			t.Fatalf("%d deliveries not of a message of theirs", bad)
		}
	}
	if c, err := s.Cursor(ctx, b.AccountID, b.Folder); err != nil || c.LastUID < b.LastUID || c.UIDValidity != b.UIDValidity {
		t.Fatalf("cursor %+v %v after batch up to %d", c, err, b.LastUID)
	}
}

// rows reads the columns of the messages stored since the last call, by id.
func (md *commitModel) rows(t *testing.T, s *Store) map[string]string {
	t.Helper()
	rows, err := s.db.Query(`SELECT seq, id, account_id, account, type, message_id, sha256, size, from_addr, to_addrs, cc_addrs, subject, date, received_at,
		attachments, m2m, problems, failed FROM messages WHERE seq > ? ORDER BY seq`, md.seq)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id string
		var accountID, size int64
		var account, typ, msgID, sum, from, to, cc, subject, date, received, atts, problems, failed string
		var m2m sql.NullString
		if err := rows.Scan(&md.seq, &id, &accountID, &account, &typ, &msgID, &sum, &size, &from, &to, &cc, &subject, &date, &received, &atts, &m2m,
			&problems, &failed); err != nil {
			t.Fatal(err)
		}
		out[id] = fmt.Sprintf("%#v", []any{accountID, account, typ, msgID, sum, size, from, to, cc, subject, date, received, atts, m2m, problems, failed})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// want is the row the code before several rows a statement stored for message id (json.Marshal of
// the lists, [] for nil, and so on), as rows gives it.
func (md *commitModel) want(b store.Batch, id, stamp string) string {
	m := md.msgs[id]
	js := func(v any) string { j, _ := json.Marshal(v); return string(j) }
	date := ""
	if !m.Meta.Date.IsZero() {
		date = m.Meta.Date.UTC().Format(time.RFC3339)
	}
	var m2m sql.NullString
	if m.Meta.M2M != nil {
		m2m = sql.NullString{String: js(m.Meta.M2M), Valid: true}
	}
	return fmt.Sprintf("%#v", []any{b.AccountID, b.Account, string(b.Type), m.Meta.MessageID, m.Meta.SHA256, int64(len(m.Raw)), m.Meta.From,
		js(nonNil(m.Meta.To)), js(nonNil(m.Meta.Cc)), m.Meta.Subject, date, stamp, js(nonNil(m.Meta.Attachments)), m2m,
		js(nonNil(m.Meta.Problems)), m.Meta.Failed})
}

// TestCommitBatchRows: batches of many sizes (across the shapes of the statements), with copies in
// the batch (in one statement and across statements), messages the account has already, the folder
// read again under a new UIDVALIDITY, with and without a webhook: each message is stored or a
// Duplicate exactly as one statement a message did, and its row holds the same text.
func TestCommitBatchRows(t *testing.T) {
	for _, hooked := range []bool{false, true} {
		t.Run(fmt.Sprint("webhook=", hooked), func(t *testing.T) {
			dir := t.TempDir()
			clock := time.Date(2026, 11, 23, 4, 0, 0, 123456789, time.UTC)
			s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "inkorg.db"), Key: keyFunc(t, filepath.Join(dir, "inkorg.key")),
				Now: func() time.Time { return clock }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if hooked {
				if _, err := s.db.Exec(`INSERT INTO webhooks (type, url, secret, updated_at) VALUES (?, 'https://erp.example/hook', x'00', 'now')`,
					string(settings.TypeGeneral)); err != nil {
					t.Fatal(err)
				}
			}
			md := &commitModel{ids: map[string]string{}, msgs: map[string]store.NewMessage{}}
			body, uid := 0, uint32(0)
			commit := func(acct int64, folder string, validity uint32, ms []store.NewMessage) {
				t.Helper()
				b := store.Batch{AccountID: acct, Account: fmt.Sprintf("acct%d@contoso.example", acct), Type: settings.TypeGeneral, Folder: folder,
					UIDValidity: validity, LastUID: ms[len(ms)-1].UID, Messages: ms}
				got, err := s.CommitBatch(ctx, b)
				if err != nil {
					t.Fatal(err)
				}
				md.check(t, s, b, got, hooked, stampOf(clock))
			}
			newBatch := func(n int, copyEvery int) []store.NewMessage {
				var ms []store.NewMessage
				for i := range n {
					uid++
					if copyEvery > 0 && i > 0 && i%copyEvery == 0 { // a copy of a message some way back in the batch
						prev := ms[(i*37+11)%i]
						c := commitMsg(i, 0, uid)
						c.Raw, c.Meta = prev.Raw, prev.Meta
						ms = append(ms, c)
						continue
					}
					body++
					ms = append(ms, commitMsg(i, body, uid))
				}
				return ms
			}
			var all []store.NewMessage
			for _, tc := range []struct{ n, copyEvery int }{{1, 0}, {2, 1}, {3, 0}, {64, 5}, {65, 0}, {127, 9}, {513, 13}} {
				ms := newBatch(tc.n, tc.copyEvery)
				commit(1, "INBOX", 7, ms)
				all = append(all, ms...)
			}
			// Known already, in the batch with new ones and copies of both.
			var mixed []store.NewMessage
			for i := range 200 {
				uid++
				switch {
				case i%3 == 0:
					m := all[(i*31)%len(all)]
					m.UID = uid
					mixed = append(mixed, m)
				case i%5 == 0 && i > 0:
					m := mixed[i/2]
					m.UID = uid
					mixed = append(mixed, m)
				default:
					body++
					mixed = append(mixed, commitMsg(i, body, uid))
				}
			}
			commit(1, "INBOX", 7, mixed)
			all = append(all, mixed...)
			// The same bytes for another account are its own messages.
			commit(2, "INBOX", 3, all[:300])
			// The folder read again under a new UIDVALIDITY: all known.
			if err := s.ResetCursor(ctx, 1, "INBOX", 8); err != nil {
				t.Fatal(err)
			}
			renumbered := make([]store.NewMessage, len(all))
			for i, m := range all {
				m.UID = uint32(i + 1)
				renumbered[i] = m
			}
			commit(1, "INBOX", 8, renumbered)
		})
	}
}

// TestCommitBatchRaced: messages whose bytes were new when they were written to the segment but
// were stored by another process before the transaction (two processes on one database) are
// Duplicates of those; messages counted as known when the bytes were looked for but not in the
// database by the transaction are stored with their bytes in the database.
func TestCommitBatchRaced(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	defer s.Close()
	other := openAt(t, dir)
	defer other.Close()
	ctx := context.Background()
	var ms []store.NewMessage
	for i := range 150 {
		ms = append(ms, commitMsg(i, i, uint32(i+1)))
	}
	ms = append(ms, commitMsg(1, 1, 151)) // a copy in the batch of one stored by the other process
	b := store.Batch{AccountID: 1, Account: "acct1@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX", UIDValidity: 7, LastUID: 151, Messages: ms}
	refs, err := s.appendRaw(ctx, b, true)
	if err != nil || len(refs) != 150 {
		t.Fatalf("%d refs, %v", len(refs), err)
	}
	// Meanwhile the other process stores messages 1, 70 and 149.
	theirs, err := other.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "acct1@contoso.example", Type: settings.TypeGeneral, Folder: "Other",
		UIDValidity: 1, LastUID: 3, Messages: []store.NewMessage{commitMsg(1, 1, 1), commitMsg(70, 70, 2), commitMsg(149, 149, 3)}})
	if err != nil {
		t.Fatal(err)
	}
	// And messages 10 and 11 were "known" when the bytes were looked for, but are not.
	delete(refs, ms[10].Meta.SHA256)
	delete(refs, ms[11].Meta.SHA256)
	var got []store.Committed
	var stored bool
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		got, stored, err = s.commitBatch(ctx, tx, b, refs, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !stored {
		t.Error("commitBatch does not say that some of the messages were stored already")
	}
	want := map[int]string{1: theirs[0].ID, 70: theirs[1].ID, 149: theirs[2].ID, 150: theirs[0].ID}
	seen := map[string]bool{}
	for i, c := range got {
		if id, ok := want[i]; ok {
			if !c.Duplicate || c.ID != id {
				t.Errorf("message %d: %+v, want a duplicate of %s", i, c, id)
			}
			continue
		}
		if c.Duplicate || seen[c.ID] {
			t.Errorf("message %d: %+v, want new", i, c)
		}
		seen[c.ID] = true
		raw, err := s.Raw(ctx, c.ID)
		if err != nil || !bytes.Equal(raw, ms[i].Raw) {
			t.Errorf("message %d: raw %q %v", i, raw, err)
		}
	}
	var inDB int
	s.db.QueryRow(`SELECT count(*) FROM message_raw`).Scan(&inDB)
	if inDB != 2 {
		t.Errorf("%d messages' bytes in the database, want 2", inDB)
	}
}

// TestJSONLists: the lists' text is json.Marshal's, [] for nil.
func TestJSONLists(t *testing.T) {
	for _, v := range [][]string{nil, {}, {""}, {"a@example.com"}, {"a", "b"}, {`"x"`}, {"<a>"}, {"&"}, {"\\"}, {"\x00"}, {"\x7f"}, {"é"}, {"\xff"}, {"\u2028"}} {
		want, _ := json.Marshal(nonNil(v))
		if got := jsonStrings(v); got != string(want) {
			t.Errorf("jsonStrings(%q) = %s, want %s", v, got, want)
		}
	}
	for _, v := range [][]store.Attachment{nil, {}, {{Filename: "a<b>.pdf", Inline: true}}} {
		want, _ := json.Marshal(nonNil(v))
		if got := jsonList(v); got != string(want) {
			t.Errorf("jsonList(%+v) = %s, want %s", v, got, want)
		}
	}
}

// FuzzJSONStrings: jsonStrings writes what json.Marshal writes, for any strings.
func FuzzJSONStrings(f *testing.F) {
	for _, s := range []string{"", "a@example.com", "x\x00y", `"q"`, "<&>", "é\xff", "a\nb"} {
		f.Add(s, "second@example.com")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, v := range [][]string{{a}, {a, b}, {b, a, strings.ToUpper(a)}} {
			want, _ := json.Marshal(v)
			if got := jsonStrings(v); got != string(want) {
				t.Fatalf("jsonStrings(%q) = %s, want %s", v, got, want)
			}
		}
	})
}

// TestCommitBatchOneConnection: the transaction never waits for a second connection (to prepare a
// statement, say), so a store held to one connection still commits.
func TestCommitBatchOneConnection(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	s.db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ms []store.NewMessage
	for i := range 70 {
		ms = append(ms, commitMsg(i, i, uint32(i+1)))
	}
	b := store.Batch{AccountID: 1, Account: "acct1@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX", UIDValidity: 7, LastUID: 70, Messages: ms}
	if _, err := s.CommitBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.MovedThrough(ctx, 1, "INBOX", 7, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetCursor(ctx, 1, "INBOX", 8); err != nil {
		t.Fatal(err)
	}
	b.UIDValidity = 8
	got, err := s.CommitBatch(ctx, b)
	if err != nil || !got[69].Duplicate {
		t.Fatalf("%v %v", got, err)
	}
}

// TestCommitBatchUnchecked: after a batch of new messages only, the next batch's bytes are written
// without asking the database which it has: messages stored already (moved back into the folder by a
// user, with new UIDs) are still Duplicates of the stored ones, and only their bytes are left unused
// in the segments; the batch after that is checked again and writes nothing for known messages.
func TestCommitBatchUnchecked(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	defer s.Close()
	ctx := context.Background()
	size := func(ms ...store.NewMessage) (n int64) {
		for _, m := range ms {
			n += int64(len(m.Raw))
		}
		return n
	}
	commit := func(last uint32, ms ...store.NewMessage) []store.Committed {
		t.Helper()
		got, err := s.CommitBatch(ctx, rawBatch(7, last, ms...))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := []store.NewMessage{commitMsg(0, 0, 1), commitMsg(1, 1, 2), commitMsg(2, 2, 3)}
	a := commit(3, first...)
	if segSize(t, dir) != size(first...) {
		t.Fatalf("first batch: segments hold %d bytes, want %d", segSize(t, dir), size(first...))
	}
	// Messages 0 and 2 come back with new UIDs, beside two new ones: written unchecked.
	second := []store.NewMessage{commitMsg(0, 0, 4), commitMsg(3, 3, 5), commitMsg(2, 2, 6), commitMsg(4, 4, 7)}
	b := commit(7, second...)
	if !b[0].Duplicate || b[0].ID != a[0].ID || !b[2].Duplicate || b[2].ID != a[2].ID || b[1].Duplicate || b[3].Duplicate {
		t.Fatalf("second batch: %+v", b)
	}
	if got, want := segSize(t, dir), size(first...)+size(second...); got != want {
		t.Fatalf("second batch (unchecked): segments hold %d bytes, want %d", got, want)
	}
	for i, c := range b {
		if raw, err := s.Raw(ctx, c.ID); err != nil || !bytes.Equal(raw, second[i].Raw) {
			t.Fatalf("message %d of the second batch reads %q, %v", i, raw, err)
		}
	}
	// The second batch held known messages: the third is checked, known bytes are not written again.
	before := segSize(t, dir)
	third := []store.NewMessage{commitMsg(1, 1, 8), commitMsg(5, 5, 9)}
	c := commit(9, third...)
	if !c[0].Duplicate || c[0].ID != a[1].ID || c[1].Duplicate {
		t.Fatalf("third batch: %+v", c)
	}
	if got, want := segSize(t, dir), before+size(third[1]); got != want {
		t.Fatalf("third batch (checked): segments hold %d bytes, want %d", got, want)
	}
	var n int
	s.db.QueryRow(`SELECT count(*) FROM messages`).Scan(&n)
	if n != 6 {
		t.Fatalf("%d messages stored, want 6", n)
	}
}

// TestPendingMovesPlan: PendingMoves reads a range of message_uids' primary key per cursor, not every
// row of the account (which is what SQLite's planner chose for a plain JOIN).
func TestPendingMovesPlan(t *testing.T) {
	s := openAt(t, t.TempDir())
	defer s.Close()
	rows, err := s.db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+qPendingMoves, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	got := strings.Join(plan, "\n")
	if !strings.Contains(got, "SEARCH u USING INDEX sqlite_autoindex_message_uids_1 (account_id=? AND folder=? AND uidvalidity=? AND uid>?)") {
		t.Errorf("PendingMoves does not read message_uids by range:\n%s", got)
	}
}
