package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"inkorg/internal/store"
	"inkorg/internal/store/segments"
)

// Cursor implements store.Mail.
func (s *Store) Cursor(ctx context.Context, accountID int64, folder string) (store.Cursor, error) {
	var c store.Cursor
	err := s.db.QueryRowContext(ctx, `SELECT uidvalidity, last_uid FROM cursors WHERE account_id = ? AND folder = ?`, accountID, folder).Scan(&c.UIDValidity, &c.LastUID)
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
	_, err := s.exec(ctx, `INSERT INTO cursors (account_id, folder, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, 0, ?)
		ON CONFLICT (account_id, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = 0, updated_at = excluded.updated_at`,
		accountID, folder, uidValidity, s.stamp())
	if err != nil {
		return fmt.Errorf("reset cursor: %w", err)
	}
	return nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// CommitBatch implements store.Mail.
func (s *Store) CommitBatch(ctx context.Context, b store.Batch) ([]store.Committed, error) {
	if err := store.CheckBatch(b); err != nil {
		return nil, err
	}
	// The bytes first, synced, outside the transaction: only the new ones (a folder read again after a
	// UIDVALIDITY change writes nothing), each once.
	refs, err := s.appendRaw(ctx, b)
	if err != nil {
		return nil, err
	}
	out := make([]store.Committed, 0, len(b.Messages))
	err = s.tx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		out = out[:0]
		var validity uint32
		switch err := tx.QueryRowContext(ctx, `SELECT uidvalidity FROM cursors WHERE account_id = ? AND folder = ?`, b.AccountID, b.Folder).Scan(&validity); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read cursor: %w", err)
		case validity != b.UIDValidity:
			return fmt.Errorf("folder %s: %w (cursor %d, batch %d)", b.Folder, store.ErrUIDValidity, validity, b.UIDValidity)
		}
		// Prepared once per batch: parsing the SQL again for every message cost a fifth of the CPU.
		var stmts [3]*sql.Stmt
		for i, q := range []string{
			`SELECT id FROM messages WHERE account_id = ? AND sha256 = ?`,
			`INSERT INTO messages (id, account_id, account, type, message_id, sha256, size, from_addr, to_addrs, cc_addrs,
				subject, date, received_at, attachments, m2m, problems, failed, raw_segment, raw_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (account_id, sha256) DO NOTHING`,
			`INSERT INTO message_raw (id, raw) VALUES (?, ?)`,
		} {
			st, err := tx.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare: %w", err)
			}
			defer st.Close()
			stmts[i] = st
		}
		dupStmt, msgStmt, rawStmt := stmts[0], stmts[1], stmts[2]
		uidRows := make([]any, 0, 6*len(b.Messages))
		var hooked int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM webhooks WHERE type = ?`, b.Type).Scan(&hooked); err != nil {
			return fmt.Errorf("read webhooks: %w", err)
		}
		var hookStmt *sql.Stmt // the type has a webhook: each new message owes a delivery
		if hooked > 0 {
			st, err := tx.PrepareContext(ctx, `INSERT INTO deliveries (message, type, next_at) VALUES (?, ?, ?)`)
			if err != nil {
				return fmt.Errorf("prepare: %w", err)
			}
			defer st.Close()
			hookStmt = st
		}
		for _, m := range b.Messages {
			c := store.Committed{UID: m.UID}
			ref, inSegment := refs[m.Meta.SHA256]
			var err error
			if !inSegment { // known before this batch, most likely: look first
				err = dupStmt.QueryRowContext(ctx, b.AccountID, m.Meta.SHA256).Scan(&c.ID)
			} else { // new, most likely: insert first (a conflict below means a copy after all)
				err = sql.ErrNoRows
			}
			switch {
			case err == nil:
				c.Duplicate = true
			case errors.Is(err, sql.ErrNoRows):
				c.ID = store.NewMessageID(s.now())
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
				if inSegment {
					seg, off = ref.Segment, ref.Offset
				}
				res, err := msgStmt.ExecContext(ctx, c.ID, b.AccountID, b.Account, b.Type, meta.MessageID, meta.SHA256, len(m.Raw), meta.From,
					jsonText(nonNil(meta.To)), jsonText(nonNil(meta.Cc)), meta.Subject, date, now, jsonText(nonNil(meta.Attachments)), m2m,
					jsonText(nonNil(meta.Problems)), meta.Failed, seg, off)
				if err != nil {
					return fmt.Errorf("store message uid %d: %w", m.UID, err)
				}
				if n, err := res.RowsAffected(); err != nil {
					return fmt.Errorf("store message uid %d: %w", m.UID, err)
				} else if n == 0 { // the same bytes earlier in this batch
					if err := dupStmt.QueryRowContext(ctx, b.AccountID, meta.SHA256).Scan(&c.ID); err != nil {
						return fmt.Errorf("store message uid %d: %w", m.UID, err)
					}
					c.Duplicate = true
					break
				}
				if !inSegment {
					// Counted as stored by an earlier commit when the bytes were written, but gone
					// since: kept in the database instead.
					if _, err := rawStmt.ExecContext(ctx, c.ID, m.Raw); err != nil {
						return fmt.Errorf("store message uid %d: %w", m.UID, err)
					}
				}
				if hookStmt != nil {
					if _, err := hookStmt.ExecContext(ctx, c.ID, b.Type, now); err != nil {
						return fmt.Errorf("queue webhook delivery: %w", err)
					}
				}
			default:
				return fmt.Errorf("store message uid %d: %w", m.UID, err)
			}
			uidRows = append(uidRows, b.AccountID, b.Folder, b.UIDValidity, m.UID, c.ID, m.Dest)
			out = append(out, c)
		}
		// Where each message was found: many rows per statement (one statement per row cost a
		// tenth of the commit).
		for len(uidRows) > 0 {
			n := min(len(uidRows)/6, 100)
			q := `INSERT INTO message_uids (account_id, folder, uidvalidity, uid, message, dest) VALUES (?, ?, ?, ?, ?, ?)` +
				strings.Repeat(`, (?, ?, ?, ?, ?, ?)`, n-1) + ` ON CONFLICT DO NOTHING`
			if _, err := tx.ExecContext(ctx, q, uidRows[:6*n]...); err != nil {
				return fmt.Errorf("record uids: %w", err)
			}
			uidRows = uidRows[6*n:]
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO cursors (account_id, folder, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account_id, folder) DO UPDATE SET last_uid = max(cursors.last_uid, excluded.last_uid), updated_at = excluded.updated_at`,
			b.AccountID, b.Folder, b.UIDValidity, b.LastUID, now)
		if err != nil {
			return fmt.Errorf("advance cursor: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendRaw writes the bytes of the batch's messages that the account does not have yet to the segment
// files, synced, and returns where each one went by its sha256.
func (s *Store) appendRaw(ctx context.Context, b store.Batch) (map[string]segments.Ref, error) {
	have := map[string]bool{}
	for i := 0; i < len(b.Messages); i += 500 {
		part := b.Messages[i:min(i+500, len(b.Messages))]
		args := make([]any, 0, len(part)+1)
		args = append(args, b.AccountID)
		for _, m := range part {
			args = append(args, m.Meta.SHA256)
		}
		rows, err := s.db.QueryContext(ctx, `SELECT sha256 FROM messages WHERE account_id = ? AND sha256 IN (?`+strings.Repeat(", ?", len(part)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("look for duplicates: %w", err)
		}
		for rows.Next() {
			var h string
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look for duplicates: %w", err)
			}
			have[h] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("look for duplicates: %w", err)
		}
	}
	var bodies [][]byte
	var sums []string
	for _, m := range b.Messages {
		if !have[m.Meta.SHA256] {
			have[m.Meta.SHA256] = true
			bodies, sums = append(bodies, m.Raw), append(sums, m.Meta.SHA256)
		}
	}
	if len(bodies) == 0 {
		return nil, nil
	}
	refs, err := s.raw.Append(bodies)
	if err != nil {
		return nil, fmt.Errorf("store the messages' bytes: %w", err)
	}
	out := make(map[string]segments.Ref, len(refs))
	for i, r := range refs {
		out[sums[i]] = r
	}
	return out, nil
}

// nonNil makes a nil list empty, so that it is stored as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// PendingMoves implements store.Mail.
func (s *Store) PendingMoves(ctx context.Context, accountID int64) ([]store.PendingMove, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT folder, uidvalidity, uid, dest FROM message_uids WHERE account_id = ? AND moved_at IS NULL AND dest != ''
		ORDER BY folder, uidvalidity, uid`, accountID)
	if err != nil {
		return nil, fmt.Errorf("read pending moves: %w", err)
	}
	defer rows.Close()
	var out []store.PendingMove
	for rows.Next() {
		var p store.PendingMove
		if err := rows.Scan(&p.Folder, &p.UIDValidity, &p.UID, &p.Dest); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// MarkMoved implements store.Mail. The UIDs are recorded run by run (uid BETWEEN first AND last for
// each run of consecutive UIDs): a batch of 500 is usually one statement instead of 500.
func (s *Store) MarkMoved(ctx context.Context, accountID int64, folder string, uidValidity uint32, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	sorted := slices.Clone(uids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	return s.tx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		st, err := tx.PrepareContext(ctx, `UPDATE message_uids SET moved_at = ? WHERE account_id = ? AND folder = ? AND uidvalidity = ?
			AND uid BETWEEN ? AND ? AND moved_at IS NULL`)
		if err != nil {
			return fmt.Errorf("mark moved: %w", err)
		}
		defer st.Close()
		for i := 0; i < len(sorted); {
			j := i + 1
			for j < len(sorted) && sorted[j] == sorted[j-1]+1 {
				j++
			}
			if _, err := st.ExecContext(ctx, now, accountID, folder, uidValidity, sorted[i], sorted[j-1]); err != nil {
				return fmt.Errorf("mark moved: %w", err)
			}
			i = j
		}
		return nil
	})
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
