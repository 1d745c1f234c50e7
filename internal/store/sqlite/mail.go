package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"inkorg/internal/store"
	"inkorg/internal/store/segments"
)

// Cursor implements store.Mail.
func (s *Store) Cursor(ctx context.Context, accountID int64, folder string) (store.Cursor, error) {
	var c store.Cursor
	err := s.db.QueryRowContext(ctx, `SELECT uidvalidity, last_uid, moved_uid FROM cursors WHERE account_id = ? AND folder = ?`, accountID, folder).Scan(&c.UIDValidity, &c.LastUID, &c.MovedUID)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Cursor{}, nil
	}
	if err != nil {
		return c, fmt.Errorf("read cursor: %w", err)
	}
	return c, nil
}

// ResetCursor implements store.Mail.
func (s *Store) ResetCursor(ctx context.Context, accountID int64, folder string, uidValidity uint32) error {
	_, err := s.exec(ctx, `INSERT INTO cursors (account_id, folder, uidvalidity, last_uid, moved_uid, updated_at) VALUES (?, ?, ?, 0, 0, ?)
		ON CONFLICT (account_id, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = 0, moved_uid = 0, updated_at = excluded.updated_at`,
		accountID, folder, uidValidity, s.stamp())
	if err != nil {
		return fmt.Errorf("reset cursor: %w", err)
	}
	s.setFresh(accountID, false) // the folder is read again: its messages are likely stored already
	return nil
}

// isFresh and setFresh keep, per account, whether its last batch held only new messages.
func (s *Store) isFresh(accountID int64) bool {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.fresh[accountID]
}

func (s *Store) setFresh(accountID int64, fresh bool) {
	s.smu.Lock()
	defer s.smu.Unlock()
	if s.fresh == nil {
		s.fresh = map[int64]bool{}
	}
	s.fresh[accountID] = fresh
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonStrings is jsonText(v), with [] for nil rather than null. The usual lists are written without
// encoding/json (a tenth of the cost): none, or addresses of printable ASCII that JSON writes as
// they are, between quotes; any other list is left to json.Marshal, so the text is always its.
func jsonStrings(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	n := 1 + len(v)*3
	for _, s := range v {
		if !plainJSON(s) {
			return jsonText(v)
		}
		n += len(s)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('[')
	for i, s := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return b.String()
}

// plainJSON reports whether json.Marshal writes s as it is, between quotes: printable ASCII
// without the characters it escapes (" \ and, for HTML, < > &).
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// jsonList is jsonText(v), with [] for nil rather than null (and for none without encoding/json).
func jsonList[T any](v []T) string {
	if len(v) == 0 {
		return "[]"
	}
	return jsonText(v)
}

// The statements of CommitBatch and appendRaw, prepared once (see prepared).
const (
	qCursorValidity = `SELECT uidvalidity FROM cursors WHERE account_id = ? AND folder = ?`
	qHooked         = `SELECT count(*) FROM webhooks WHERE type = ?`
	qFindSHA        = `SELECT id FROM messages WHERE account_id = ? AND sha256 = ?`
	qInsertRaw      = `INSERT INTO message_raw (id, raw) VALUES (?, ?)`
	// qAdvanceCursor takes account_id, folder, uidvalidity, last_uid, updated_at and whether the batch
	// has nothing to move (see store.Mail.CommitBatch).
	qAdvanceCursor = `INSERT INTO cursors (account_id, folder, uidvalidity, last_uid, moved_uid, updated_at) VALUES (?1, ?2, ?3, ?4, CASE WHEN ?6 THEN ?4 ELSE 0 END, ?5)
			ON CONFLICT (account_id, folder) DO UPDATE SET last_uid = max(cursors.last_uid, excluded.last_uid), updated_at = excluded.updated_at,
				moved_uid = CASE WHEN ?6 AND cursors.moved_uid >= cursors.last_uid THEN max(cursors.moved_uid, excluded.last_uid) ELSE cursors.moved_uid END`
	qPendingMoves = `SELECT u.folder, u.uidvalidity, u.uid, u.dest FROM cursors c
		CROSS JOIN message_uids u ON u.account_id = c.account_id AND u.folder = c.folder AND u.uidvalidity = c.uidvalidity AND u.uid > c.moved_uid
		WHERE c.account_id = ? AND u.dest != '' ORDER BY u.folder, u.uid`
	qMovedThrough = `UPDATE cursors SET moved_uid = ?, updated_at = ? WHERE account_id = ? AND folder = ? AND uidvalidity = ? AND moved_uid < ?`
)

// commitQueries are the statements of fixed text of commitBatch (read-only).
var commitQueries = []string{qCursorValidity, qHooked, qFindSHA, qInsertRaw, qAdvanceCursor}

// The statements of several rows (read-only).
var (
	// insertMessages writes new messages, several a statement, after the arguments the batch's
	// messages share: account_id, account, type, received_at. A message whose bytes the account has
	// already (earlier in the statement or before) is not written, nor counted in RowsAffected. OR IGNORE rather than ON CONFLICT
	// (account_id, sha256) DO NOTHING, the same here (no value is NULL; an id taken already, which
	// the random part of the ids rules out, would be caught as a message not written): a statement
	// that can fail half-way has SQLite copy every page it changes that an earlier statement of
	// the transaction changed too to a statement journal (a temporary file; a third of the CPU).
	insertMessages = multiRow{
		head: `INSERT OR IGNORE INTO messages (account_id, account, type, received_at, id, message_id, sha256, size, from_addr, to_addrs, cc_addrs,
				subject, date, attachments, m2m, problems, failed, raw_segment, raw_offset) VALUES `,
		row: `(?1, ?2, ?3, ?4, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		max: 64,
	}
	// insertUIDs records where each message was found, after account_id, folder, uidvalidity.
	insertUIDs = multiRow{
		head: `INSERT INTO message_uids (account_id, folder, uidvalidity, uid, message, dest) VALUES `,
		row:  `(?1, ?2, ?3, ?, ?, ?)`,
		tail: ` ON CONFLICT DO NOTHING`,
		max:  128,
	}
	// insertDeliveries queues webhook deliveries, after type and next_at.
	insertDeliveries = multiRow{
		head: `INSERT INTO deliveries (type, next_at, message) VALUES `,
		row:  `(?1, ?2, ?)`,
		max:  128,
	}
	// findSHAs and findIDs take the account's id, then the sha256 values.
	findSHAs = multiRow{head: `SELECT sha256 FROM messages WHERE account_id = ? AND sha256 IN (`, row: `?`, tail: `)`, max: 512}
	findIDs  = multiRow{head: `SELECT sha256, id FROM messages WHERE account_id = ? AND sha256 IN (`, row: `?`, tail: `)`, max: 512}
)

// msgWidth is the number of arguments of a row of insertMessages (after the shared ones).
const msgWidth = 15

// CommitBatch implements store.Mail.
func (s *Store) CommitBatch(ctx context.Context, b store.Batch) ([]store.Committed, error) {
	if err := store.CheckBatch(b); err != nil {
		return nil, err
	}
	// The bytes first, synced, outside the transaction, each once: only the new ones (a folder read
	// again after a UIDVALIDITY change writes nothing), unless the account's last batch held only new
	// messages (see appendRaw).
	checked := !s.isFresh(b.AccountID)
	refs, err := s.appendRaw(ctx, b, checked)
	if err != nil {
		s.setFresh(b.AccountID, false)
		return nil, err
	}
	if err := s.prepareAll(ctx, commitQueries, insertMessages, insertUIDs, insertDeliveries, findIDs); err != nil {
		return nil, err
	}
	out := make([]store.Committed, 0, len(b.Messages))
	var stored bool
	err = s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		var err error
		out, stored, err = s.commitBatch(ctx, tx, b, refs, out)
		return err
	})
	s.setFresh(b.AccountID, err == nil && !stored)
	if err != nil {
		return nil, err
	}
	if stored && !checked {
		s.log.Info("a batch held messages stored already; their bytes, written unchecked, are left unused in the segment files",
			"account_id", b.AccountID, "folder", b.Folder, "last_uid", b.LastUID)
	}
	return out, nil
}

// commitBatch records the batch in tx. The statements are prepared once per Store (parsing them for
// every batch cost a tenth of the CPU), and the rows are written many a statement (with the
// statement journal avoided, see insertMessages, this halved the transaction's CPU): the result is
// the same as looking at and writing each message in turn — the first of the batch's messages with
// some bytes is stored unless the account had them already; every other is a Duplicate of the
// message that has them. stored says whether the account had any of them already.
func (s *Store) commitBatch(ctx context.Context, tx *sql.Tx, b store.Batch, refs map[string]segments.Ref, out []store.Committed) (_ []store.Committed, stored bool, err error) {
	now := s.stamp()
	st := s.txStmts(tx)
	cur, err := st.query(ctx, qCursorValidity)
	if err != nil {
		return nil, false, err
	}
	var validity uint32
	switch err := cur.QueryRowContext(ctx, b.AccountID, b.Folder).Scan(&validity); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, false, fmt.Errorf("read cursor: %w", err)
	case validity != b.UIDValidity:
		return nil, false, fmt.Errorf("folder %s: %w (cursor %d, batch %d)", b.Folder, store.ErrUIDValidity, validity, b.UIDValidity)
	}
	hooks, err := st.query(ctx, qHooked)
	if err != nil {
		return nil, false, err
	}
	var hooked int
	if err := hooks.QueryRowContext(ctx, b.Type).Scan(&hooked); err != nil {
		return nil, false, fmt.Errorf("read webhooks: %w", err)
	}
	// The messages whose bytes were not written to a segment are most likely known already: their
	// ids, all at once.
	var old []any
	for _, m := range b.Messages {
		if _, ok := refs[m.Meta.SHA256]; !ok {
			old = append(old, m.Meta.SHA256)
		}
	}
	known := map[string]string{}
	if len(old) > 0 {
		get := func(k stmtKey, q func() string) (*sql.Stmt, error) { return st.get(ctx, k, q) }
		if err := queryRows(ctx, get, findIDs, []any{b.AccountID}, old, func(r *sql.Rows) error {
			var sum, id string
			if err := r.Scan(&sum, &id); err != nil {
				return err
			}
			known[sum] = id
			return nil
		}); err != nil {
			return nil, false, fmt.Errorf("look for duplicates: %w", err)
		}
		stored = len(known) > 0
	}
	// Each message: a Duplicate of a known one, or of one earlier in the batch (whose id is known
	// once it is written), or new.
	first := map[string]int{} // sha256 → the index in out of the batch's first message with it
	var copies [][2]int       // (index, the index of the first) of the copies in the batch
	var added []int           // the indexes of the new messages, in order
	args := make([]any, 0, msgWidth*len(b.Messages))
	typ := string(b.Type)
	for i, m := range b.Messages {
		c := store.Committed{UID: m.UID}
		sum := m.Meta.SHA256
		if id, ok := known[sum]; ok {
			c.ID, c.Duplicate = id, true
		} else if j, ok := first[sum]; ok {
			c.Duplicate = true
			copies = append(copies, [2]int{i, j})
		} else {
			first[sum] = i
			c.ID = store.NewMessageID(s.now())
			added = append(added, i)
			meta := m.Meta
			var m2m any
			if meta.M2M != nil {
				m2m = jsonText(meta.M2M)
			}
			date := ""
			if !meta.Date.IsZero() {
				date = meta.Date.UTC().Format(time.RFC3339)
			}
			var seg, off any
			if ref, ok := refs[sum]; ok {
				seg, off = ref.Segment, ref.Offset
			}
			args = append(args, c.ID, meta.MessageID, sum, int64(len(m.Raw)), meta.From, jsonStrings(meta.To), jsonStrings(meta.Cc),
				meta.Subject, date, jsonList(meta.Attachments), m2m, jsonStrings(meta.Problems), meta.Failed, seg, off)
		}
		out = append(out, c)
	}
	var find *sql.Stmt
	if err := st.execRows(ctx, insertMessages, []any{b.AccountID, b.Account, typ, now}, msgWidth, args, func(from, n int, res sql.Result) error {
		if k, err := res.RowsAffected(); err != nil {
			return err
		} else if k == int64(n) {
			return nil
		}
		// Some were there after all (stored since the bytes were written, by another process, or
		// their bytes were written unchecked, see appendRaw): which, and their ids.
		if find == nil {
			var err error
			if find, err = st.query(ctx, qFindSHA); err != nil {
				return err
			}
		}
		for _, i := range added[from : from+n] {
			var id string
			if err := find.QueryRowContext(ctx, b.AccountID, b.Messages[i].Meta.SHA256).Scan(&id); err != nil {
				return err
			}
			if id != out[i].ID {
				out[i].ID, out[i].Duplicate = id, true
				stored = true
			}
		}
		return nil
	}); err != nil {
		return nil, false, fmt.Errorf("store messages (uids %d to %d): %w", b.Messages[0].UID, b.Messages[len(b.Messages)-1].UID, err)
	}
	for _, c := range copies {
		out[c[0]].ID = out[c[1]].ID
	}
	var hookRows []any // the type has a webhook: each new message owes a delivery
	for _, i := range added {
		c := out[i]
		if c.Duplicate {
			continue
		}
		m := b.Messages[i]
		if _, ok := refs[m.Meta.SHA256]; !ok {
			// Counted as stored by an earlier commit when the bytes were written, but gone
			// since: kept in the database instead.
			raw, err := st.query(ctx, qInsertRaw)
			if err != nil {
				return nil, false, err
			}
			if _, err := raw.ExecContext(ctx, c.ID, m.Raw); err != nil {
				return nil, false, fmt.Errorf("store message uid %d: %w", m.UID, err)
			}
		}
		if hooked > 0 {
			hookRows = append(hookRows, c.ID)
		}
	}
	if err := st.execRows(ctx, insertDeliveries, []any{typ, now}, 1, hookRows, nil); err != nil {
		return nil, false, fmt.Errorf("queue webhook delivery: %w", err)
	}
	// Where each message was found.
	uidRows := make([]any, 0, 3*len(out))
	for i, c := range out {
		uidRows = append(uidRows, int64(c.UID), c.ID, b.Messages[i].Dest)
	}
	if err := st.execRows(ctx, insertUIDs, []any{b.AccountID, b.Folder, int64(b.UIDValidity)}, 3, uidRows, nil); err != nil {
		return nil, false, fmt.Errorf("record uids: %w", err)
	}
	adv, err := st.query(ctx, qAdvanceCursor)
	if err != nil {
		return nil, false, err
	}
	if _, err := adv.ExecContext(ctx, b.AccountID, b.Folder, int64(b.UIDValidity), int64(b.LastUID), now, !store.HasMoves(b)); err != nil {
		return nil, false, fmt.Errorf("advance cursor: %w", err)
	}
	return out, stored, nil
}

// appendRaw writes the bytes of the batch's messages to the segment files, synced, each once, and
// returns where each one went by its sha256. With check, only those the account does not have yet:
// the database is asked first. Without (when the account's last batch held only new messages, as
// almost every batch does, the question costs a tenth of a commit), the bytes of a message stored
// already are written too and left unused: at most one batch's worth, as the next batch checks.
// A folder read again after a UIDVALIDITY change (ResetCursor) is checked from its first batch.
func (s *Store) appendRaw(ctx context.Context, b store.Batch, check bool) (map[string]segments.Ref, error) {
	have := make(map[string]bool, len(b.Messages))
	if check {
		sums := make([]any, len(b.Messages))
		for i, m := range b.Messages {
			sums[i] = m.Meta.SHA256
		}
		get := func(k stmtKey, q func() string) (*sql.Stmt, error) { return s.prepared(ctx, k, q) }
		if err := queryRows(ctx, get, findSHAs, []any{b.AccountID}, sums, func(r *sql.Rows) error {
			var h string
			if err := r.Scan(&h); err != nil {
				return err
			}
			have[h] = true
			return nil
		}); err != nil {
			return nil, fmt.Errorf("look for duplicates: %w", err)
		}
	}
	var bodies [][]byte
	var news []string
	for _, m := range b.Messages {
		if !have[m.Meta.SHA256] {
			have[m.Meta.SHA256] = true
			bodies, news = append(bodies, m.Raw), append(news, m.Meta.SHA256)
		}
	}
	if len(bodies) == 0 {
		return nil, nil
	}
	refs, err := s.raw.AppendFrom(b.Bodies, bodies)
	if err != nil {
		return nil, fmt.Errorf("store the messages' bytes: %w", err)
	}
	out := make(map[string]segments.Ref, len(refs))
	for i, r := range refs {
		out[news[i]] = r
	}
	return out, nil
}

// PendingMoves implements store.Mail: for each of the account's cursors, a range of message_uids'
// primary key. CROSS JOIN keeps SQLite's planner to that order: left to itself it read every one of
// the account's message_uids rows and looked up its cursor (milliseconds at 10,000 messages).
func (s *Store) PendingMoves(ctx context.Context, accountID int64) ([]store.PendingMove, error) {
	rows, err := s.db.QueryContext(ctx, qPendingMoves, accountID)
	if err != nil {
		return nil, fmt.Errorf("read pending moves: %w", err)
	}
	defer rows.Close()
	var out []store.PendingMove
	for rows.Next() {
		var p store.PendingMove
		if err := rows.Scan(&p.Folder, &p.UIDValidity, &p.UID, &p.Dest); err != nil {
			return nil, fmt.Errorf("read pending moves: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pending moves: %w", err)
	}
	return out, nil
}

// MovedThrough implements store.Mail: one row's update.
func (s *Store) MovedThrough(ctx context.Context, accountID int64, folder string, uidValidity, uid uint32) error {
	if _, err := s.exec(ctx, qMovedThrough, int64(uid), s.stamp(), accountID, folder, int64(uidValidity), int64(uid)); err != nil {
		return fmt.Errorf("record moves through UID %d: %w", uid, err)
	}
	return nil
}

const messageColumns = `seq, id, account_id, account, type, message_id, sha256, size, from_addr, to_addrs, cc_addrs, subject, date, received_at, attachments, m2m, problems, failed, acked_at`

func scanMessage(row interface{ Scan(...any) error }) (store.Message, error) {
	var m store.Message
	var to, cc, atts, problems, date, received string
	var m2m, acked sql.NullString
	if err := row.Scan(&m.Seq, &m.ID, &m.AccountID, &m.Account, &m.Type, &m.MessageID, &m.SHA256, &m.Size, &m.From, &to, &cc, &m.Subject, &date, &received,
		&atts, &m2m, &problems, &m.Failed, &acked); err != nil {
		return m, err
	}
	for _, j := range []struct {
		text string
		v    any
	}{{to, &m.To}, {cc, &m.Cc}, {atts, &m.Attachments}, {problems, &m.Problems}} {
		if err := json.Unmarshal([]byte(j.text), j.v); err != nil {
			return m, fmt.Errorf("message %s: %w", m.ID, err)
		}
	}
	if m2m.Valid {
		m.M2M = &store.M2M{}
		if err := json.Unmarshal([]byte(m2m.String), m.M2M); err != nil {
			return m, fmt.Errorf("message %s: %w", m.ID, err)
		}
	}
	m.Date, _ = time.Parse(time.RFC3339, date)
	m.ReceivedAt = parseStamp(received)
	if acked.Valid {
		t := parseStamp(acked.String)
		m.AckedAt = &t
	}
	return m, nil
}

// Messages implements store.Mail.
func (s *Store) Messages(ctx context.Context, q store.MessageQuery) ([]store.Message, error) {
	where, args := []string{"seq > ?"}, []any{q.After}
	if q.Type != "" {
		where, args = append(where, "type = ?"), append(args, q.Type)
	}
	if q.Account != "" {
		where, args = append(where, "account = ? COLLATE NOCASE"), append(args, q.Account)
	}
	if q.Unacked {
		where = append(where, "acked_at IS NULL")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE `+strings.Join(where, " AND ")+` ORDER BY seq`+order(q.Newest)+` LIMIT ?`, append(args, store.PageLimit(q.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	out := []store.Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// order is the ORDER BY direction of a listing.
func order(newest bool) string {
	if newest {
		return " DESC"
	}
	return ""
}

// Message implements store.Mail.
func (s *Store) Message(ctx context.Context, id string) (store.Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	}
	return m, err
}

// Raw implements store.Mail. Bytes read from a segment are checked against the message's sha256, so a
// damaged or mismatched segment file is reported, never served.
func (s *Store) Raw(ctx context.Context, id string) ([]byte, error) {
	var seg, off sql.NullInt64
	var size int64
	var sum string
	err := s.db.QueryRowContext(ctx, `SELECT raw_segment, raw_offset, size, sha256 FROM messages WHERE id = ?`, id).Scan(&seg, &off, &size, &sum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	if !seg.Valid {
		var b []byte
		err := s.db.QueryRowContext(ctx, `SELECT raw FROM message_raw WHERE id = ?`, id).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("message %s: its bytes are not in the database: %w", id, store.ErrRawDamaged)
		}
		return b, err
	}
	b, err := s.raw.Read(segments.Ref{Segment: seg.Int64, Offset: off.Int64, Length: size})
	if err != nil {
		return nil, fmt.Errorf("message %s: %w: %w", id, store.ErrRawDamaged, err)
	}
	if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
		return nil, fmt.Errorf("message %s: the %d bytes at offset %d of segment %d in %s are not the message's (sha256 differs): %w",
			id, size, off.Int64, seg.Int64, s.raw.Path(), store.ErrRawDamaged)
	}
	return b, nil
}

// Ack implements store.Mail.
func (s *Store) Ack(ctx context.Context, id string) (time.Time, error) {
	var at string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET acked_at = ? WHERE id = ? AND acked_at IS NULL`, s.stamp(), id); err != nil {
			return err
		}
		var acked sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT acked_at FROM messages WHERE id = ?`, id).Scan(&acked); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("message %s: %w", id, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		at = acked.String
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return parseStamp(at), nil
}

// AccountStates implements store.Mail.
func (s *Store) AccountStates(ctx context.Context) ([]store.AccountState, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT account_id, state, detail, last_error, last_poll, backlog, token_expires, updated_at FROM account_state ORDER BY account_id`)
	if err != nil {
		return nil, fmt.Errorf("read account states: %w", err)
	}
	defer rows.Close()
	var out []store.AccountState
	for rows.Next() {
		var a store.AccountState
		var lastErr, lastPoll, tokenExp sql.NullString
		var updated string
		if err := rows.Scan(&a.AccountID, &a.State, &a.Detail, &lastErr, &lastPoll, &a.Backlog, &tokenExp, &updated); err != nil {
			return nil, err
		}
		if lastErr.Valid && lastErr.String != "" {
			a.LastError = &store.ErrorRecord{}
			if err := json.Unmarshal([]byte(lastErr.String), a.LastError); err != nil {
				return nil, err
			}
		}
		a.LastPoll = parseStamp(lastPoll.String)
		a.TokenExpires = parseStamp(tokenExp.String)
		a.UpdatedAt = parseStamp(updated)
		out = append(out, a)
	}
	return out, rows.Err()
}

// PutAccountState implements store.Mail.
func (s *Store) PutAccountState(ctx context.Context, a store.AccountState) error {
	var lastErr any
	if a.LastError != nil {
		lastErr = jsonText(a.LastError)
	}
	stamp := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return stampOf(t)
	}
	_, err := s.exec(ctx, `INSERT INTO account_state (account_id, state, detail, last_error, last_poll, backlog, token_expires, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET state = excluded.state, detail = excluded.detail, last_error = excluded.last_error,
			last_poll = excluded.last_poll, backlog = excluded.backlog, token_expires = excluded.token_expires, updated_at = excluded.updated_at`,
		a.AccountID, a.State, a.Detail, lastErr, stamp(a.LastPoll), a.Backlog, stamp(a.TokenExpires), s.stamp())
	if err != nil {
		return fmt.Errorf("write account state: %w", err)
	}
	return nil
}

// EmbedRaw copies into the database file at path — a copy of this store's database made with VACUUM
// INTO — the bytes its messages keep in this store's segment files, so that the copy stands alone:
// one file holding everything, which restores by being copied back. Each message's bytes are checked
// against its sha256 on the way; a message whose bytes are missing or damaged fails the copy with its
// id and the file. progress, when not nil, is told the bytes copied so far.
func (s *Store) EmbedRaw(ctx context.Context, path string, progress func(int64)) error {
	c, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("open the copy: %w", err)
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	var done, after int64
	for {
		// 200 at a time, after the last one embedded (by seq, the primary key: each query starts
		// where the previous one ended instead of passing over the messages embedded already).
		refs, err := embedRefs(ctx, c, after)
		if err != nil {
			return fmt.Errorf("the copy's messages: %w", err)
		}
		if len(refs) == 0 {
			return nil
		}
		n, err := s.embed(ctx, c, refs)
		if err != nil {
			return err
		}
		done += n
		after = refs[len(refs)-1].seq
		if progress != nil {
			progress(done)
		}
	}
}

// embedRef is a message of the copy whose bytes are still in a segment.
type embedRef struct {
	seq     int64
	id, sum string
	seg     segments.Ref
}

// embedRefs reads the next 200 messages of the copy, after seq after, whose bytes are in a segment.
func embedRefs(ctx context.Context, c *sql.DB, after int64) ([]embedRef, error) {
	rows, err := c.QueryContext(ctx, `SELECT seq, id, raw_segment, raw_offset, size, sha256 FROM messages WHERE raw_segment IS NOT NULL AND seq > ?
		ORDER BY seq LIMIT 200`, after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var refs []embedRef
	for rows.Next() {
		var r embedRef
		if err := rows.Scan(&r.seq, &r.id, &r.seg.Segment, &r.seg.Offset, &r.seg.Length, &r.sum); err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, rows.Err()
}

// embed copies the messages' bytes into the copy in one transaction, and returns how many bytes.
func (s *Store) embed(ctx context.Context, c *sql.DB, refs []embedRef) (int64, error) {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("write the copy: %w", err)
	}
	defer tx.Rollback() // after Commit, a no-op
	var n int64
	for _, r := range refs {
		b, err := s.raw.Read(r.seg)
		if err == nil {
			if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != r.sum {
				err = fmt.Errorf("the bytes in segment %d at offset %d are not the message's (sha256 differs)", r.seg.Segment, r.seg.Offset)
			}
		}
		if err != nil {
			return 0, fmt.Errorf("message %s: %w: %w", r.id, store.ErrRawDamaged, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO message_raw (id, raw) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET raw = excluded.raw`, r.id, b); err != nil {
			return 0, fmt.Errorf("write the copy: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET raw_segment = NULL, raw_offset = NULL WHERE id = ?`, r.id); err != nil {
			return 0, fmt.Errorf("write the copy: %w", err)
		}
		n += int64(len(b))
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("write the copy: %w", err)
	}
	return n, nil
}

// ClaimAccount implements store.Mail.
func (s *Store) ClaimAccount(ctx context.Context, accountID int64, holder string, ttl time.Duration) (store.Claim, error) {
	var c store.Claim
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO account_claims (account_id, holder, until) VALUES (?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE account_claims.holder = excluded.holder OR account_claims.until <= ?`,
			accountID, holder, stampOf(now.Add(ttl)), stampOf(now)); err != nil {
			return err
		}
		var until string
		if err := tx.QueryRowContext(ctx, `SELECT holder, until FROM account_claims WHERE account_id = ?`, accountID).Scan(&c.Holder, &until); err != nil {
			return err
		}
		c.Until = parseStamp(until)
		c.Held = c.Holder == holder
		return nil
	})
	if err != nil {
		return store.Claim{}, fmt.Errorf("claim account %d: %w", accountID, err)
	}
	return c, nil
}

// ReleaseAccount implements store.Mail.
func (s *Store) ReleaseAccount(ctx context.Context, accountID int64, holder string) error {
	if _, err := s.exec(ctx, `DELETE FROM account_claims WHERE account_id = ? AND holder = ?`, accountID, holder); err != nil {
		return fmt.Errorf("release account %d: %w", accountID, err)
	}
	return nil
}

// nonNil makes a nil list empty, so that it is stored as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
