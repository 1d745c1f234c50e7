package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// commitLockSpace is the first key of the transaction-scoped advisory lock (two int4 keys: this and
// the account id's low 32 bits) that serializes the commits of one account across processes ("ink1").
// The two-key locks do not overlap the one-key locks of postgres.go.
const commitLockSpace int32 = 0x696e6b31

// stamp is the store's clock at the precision TIMESTAMPTZ keeps, so that a time handed back is the
// time later read back.
func (s *Store) stamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// tsParam is a nullable TIMESTAMPTZ parameter: NULL for the zero time.
func tsParam(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// tsOf reads a nullable TIMESTAMPTZ column, in UTC; the zero time for NULL.
func tsOf(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

// msgDateParam is a message's Date as the SQLite store keeps it: whole seconds, UTC, and none for a zero
// date or one outside the years 1–9999 (which RFC 3339 cannot write).
func msgDateParam(t time.Time) any {
	if t.IsZero() || t.Year() < 1 || t.Year() > 9999 {
		return nil
	}
	return t.UTC().Truncate(time.Second)
}

// clean makes a string storable in a TEXT column: PostgreSQL refuses a NUL character and invalid
// UTF-8 (SQLite keeps both), and refusing them would make one hostile message stop its account's
// every batch. Each such byte becomes U+FFFD.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == 0 || r == utf8.RuneError && n == 1 {
			r = utf8.RuneError // each byte, as encoding/json writes invalid UTF-8
		}
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

// cleanAll cleans each string of a list, and makes a nil list empty.
func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

// jsonb encodes v for a JSONB column. encoding/json already writes invalid UTF-8 as U+FFFD; JSONB
// also refuses the escape \u0000, so a value holding a NUL goes round once more with every string
// cleaned.
func jsonb(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || !bytes.Contains(b, []byte(`\u0000`)) {
		return b, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var tree any
	if err := d.Decode(&tree); err != nil {
		return nil, err
	}
	return json.Marshal(cleanTree(tree))
}

func cleanTree(v any) any {
	switch v := v.(type) {
	case string:
		return clean(v)
	case []any:
		for i := range v {
			v[i] = cleanTree(v[i])
		}
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[clean(k)] = cleanTree(e)
		}
		return out
	}
	return v
}

// Cursor implements store.Mail.
func (s *Store) Cursor(ctx context.Context, accountID int64, folder string) (store.Cursor, error) {
	var c store.Cursor
	err := s.pool.QueryRow(ctx, `SELECT uidvalidity, last_uid, moved_uid FROM cursors WHERE account_id = $1 AND folder = $2`, accountID, folder).Scan(&c.UIDValidity, &c.LastUID, &c.MovedUID)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Cursor{}, nil
	}
	if err != nil {
		return store.Cursor{}, fmt.Errorf("read cursor: %w", err)
	}
	return c, nil
}

// ResetCursor implements store.Mail. The upsert takes the cursor's row lock, so it waits for a
// CommitBatch of the same folder in progress, which then either committed under the old UIDVALIDITY
// before the reset or is refused after it.
func (s *Store) ResetCursor(ctx context.Context, accountID int64, folder string, uidValidity uint32) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO cursors (account_id, folder, uidvalidity, last_uid, moved_uid, updated_at) VALUES ($1, $2, $3, 0, 0, $4)
		ON CONFLICT (account_id, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = 0, moved_uid = 0, updated_at = excluded.updated_at`,
		accountID, folder, uidValidity, s.stamp())
	if err != nil {
		return fmt.Errorf("reset cursor: %w", err)
	}
	return nil
}

// CommitBatch implements store.Mail: one transaction that
//
//   - takes the account's advisory lock, so that two processes committing for the same account (a
//     lease taken over while the old holder still runs) take turns and the later one sees the
//     earlier one's messages;
//   - advances the folder's cursor to the greater of its LastUID and the batch's, only while the
//     cursor's UIDVALIDITY is the batch's (else store.ErrUIDValidity); doing this first also locks
//     the cursor's row until the commit, so a concurrent ResetCursor cannot slip in between;
//   - stores each message whose bytes the account does not have yet (ON CONFLICT on
//     (account_id, sha256) DO NOTHING), its raw bytes, and a webhook delivery when its type has a
//     webhook, and records every UID of the batch with its destination (once: a UID already recorded
//     stays): one statement per message (commitMessage), all of them sent in one round trip.
//
// Begin, lock and cursor, messages, commit: four round trips, whatever the batch's size.
func (s *Store) CommitBatch(ctx context.Context, b store.Batch) ([]store.Committed, error) {
	if err := store.CheckBatch(b); err != nil {
		return nil, err
	}
	now := s.stamp()
	account, typ := clean(b.Account), clean(string(b.Type))
	msgs := &pgx.Batch{}
	for _, m := range b.Messages {
		meta := m.Meta
		var m2m []byte
		if meta.M2M != nil {
			var err error
			if m2m, err = jsonb(meta.M2M); err != nil {
				return nil, fmt.Errorf("store message uid %d: %w", m.UID, err)
			}
		}
		attsJSON, err := jsonb(nonNil(meta.Attachments))
		if err != nil {
			return nil, fmt.Errorf("store message uid %d: %w", m.UID, err)
		}
		msgs.Queue(commitMessage, store.NewMessageID(s.now()), b.AccountID, account, typ, clean(meta.MessageID), clean(meta.SHA256), int64(len(m.Raw)),
			clean(meta.From), cleanAll(meta.To), cleanAll(meta.Cc), clean(meta.Subject), msgDateParam(meta.Date), now, attsJSON, m2m,
			cleanAll(meta.Problems), clean(meta.Failed), nonNil(m.Raw), b.Folder, b.UIDValidity, m.UID, m.Dest)
	}
	var out []store.Committed
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out = make([]store.Committed, 0, len(b.Messages))
		first := &pgx.Batch{}
		first.Queue(`SELECT pg_advisory_xact_lock($1::int4, $2::int4)`, commitLockSpace, int32(uint32(b.AccountID)))
		// With nothing to move, the moves' watermark follows (see store.Mail.CommitBatch).
		first.Queue(`INSERT INTO cursors (account_id, folder, uidvalidity, last_uid, moved_uid, updated_at)
				VALUES ($1, $2, $3, $4, CASE WHEN $6 THEN $4::bigint ELSE 0 END, $5)
			ON CONFLICT (account_id, folder) DO UPDATE SET last_uid = greatest(cursors.last_uid, excluded.last_uid), updated_at = excluded.updated_at,
				moved_uid = CASE WHEN $6 AND cursors.moved_uid >= cursors.last_uid THEN greatest(cursors.moved_uid, excluded.last_uid) ELSE cursors.moved_uid END
				WHERE cursors.uidvalidity = excluded.uidvalidity
			RETURNING last_uid`, b.AccountID, b.Folder, b.UIDValidity, b.LastUID, now, !store.HasMoves(b))
		br := tx.SendBatch(ctx, first)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("take the account's commit lock: %w", err)
		}
		var last uint32
		err := br.QueryRow().Scan(&last)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, pgx.ErrNoRows) {
			var validity uint32
			if err := tx.QueryRow(ctx, `SELECT uidvalidity FROM cursors WHERE account_id = $1 AND folder = $2`, b.AccountID, b.Folder).Scan(&validity); err != nil {
				return fmt.Errorf("read cursor: %w", err)
			}
			return fmt.Errorf("folder %s: %w (cursor %d, batch %d)", b.Folder, store.ErrUIDValidity, validity, b.UIDValidity)
		}
		if err != nil {
			return fmt.Errorf("advance cursor: %w", err)
		}
		if msgs.Len() == 0 {
			return nil
		}
		br = tx.SendBatch(ctx, msgs)
		defer br.Close()
		for _, m := range b.Messages {
			c := store.Committed{UID: m.UID}
			// Under the account's lock a conflicting row is always a committed (or this
			// transaction's) one that the statement sees, so it returns exactly one row.
			err := br.QueryRow().Scan(&c.ID, &c.Duplicate)
			if errors.Is(err, pgx.ErrNoRows) {
				err = errors.New("its bytes are held by a transaction that does not hold the account's lock; commit the batch again")
			}
			if err != nil {
				return fmt.Errorf("store message uid %d: %w", m.UID, err)
			}
			out = append(out, c)
		}
		return br.Close()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// commitMessage stores one message of a batch and records its UID, returning its id and whether the
// account already had its bytes. The statement's snapshot does not hold the row that ins inserts,
// so "got" finds an existing copy only when ins inserted nothing. Parameters: $1–$17 the messages
// row, $18 the raw bytes, $19–$22 folder, UIDVALIDITY, UID and destination.
const commitMessage = `WITH ins AS (
	INSERT INTO messages (id, account_id, account, type, message_id, sha256, size, from_addr, to_addrs, cc_addrs,
		subject, date, received_at, attachments, m2m, problems, failed)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
	ON CONFLICT (account_id, sha256) DO NOTHING
	RETURNING id
), got AS (
	SELECT id, false AS duplicate FROM ins
	UNION ALL
	SELECT id, true FROM messages WHERE account_id = $2 AND sha256 = $6 AND NOT EXISTS (SELECT FROM ins)
), raw AS (
	INSERT INTO message_raw (id, raw) SELECT id, $18 FROM ins
), delivery AS (
	INSERT INTO deliveries (message, type, next_at) SELECT ins.id, webhooks.type, $13 FROM ins JOIN webhooks ON webhooks.type = $4
), uid AS (
	INSERT INTO message_uids (account_id, folder, uidvalidity, uid, message, dest) SELECT $2, $19, $20, $21, id, $22 FROM got
	ON CONFLICT DO NOTHING
)
SELECT id, duplicate FROM got`

// nonNil makes a nil list empty: an empty message an empty BYTEA rather than NULL, an empty list
// '[]' rather than null, and a NULL array read back the empty list the SQLite store's '[]' gives.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// PendingMoves implements store.Mail: for each of the account's cursors (LATERAL: cursor by cursor),
// a range of message_uids' primary key. Folders sort by their bytes, as SQLite's BINARY collation does.
func (s *Store) PendingMoves(ctx context.Context, accountID int64) ([]store.PendingMove, error) {
	rows, err := s.pool.Query(ctx, `SELECT u.folder, u.uidvalidity, u.uid, u.dest FROM cursors c,
		LATERAL (SELECT * FROM message_uids u WHERE u.account_id = c.account_id AND u.folder = c.folder AND u.uidvalidity = c.uidvalidity
			AND u.uid > c.moved_uid AND u.dest <> '') u
		WHERE c.account_id = $1 ORDER BY u.folder COLLATE "C", u.uid`, accountID)
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
	if _, err := s.pool.Exec(ctx, `UPDATE cursors SET moved_uid = $1, updated_at = $2 WHERE account_id = $3 AND folder = $4 AND uidvalidity = $5 AND moved_uid < $1`,
		int64(uid), s.stamp(), accountID, folder, int64(uidValidity)); err != nil {
		return fmt.Errorf("record moves through UID %d: %w", uid, err)
	}
	return nil
}

const messageColumns = `seq, id, account_id, account, type, message_id, sha256, size, from_addr, to_addrs, cc_addrs, subject, date, received_at,
	attachments, m2m, problems, failed, acked_at`

func scanMessage(row pgx.Row) (store.Message, error) {
	var m store.Message
	var typ string
	var atts, m2m []byte
	var date, acked *time.Time
	if err := row.Scan(&m.Seq, &m.ID, &m.AccountID, &m.Account, &typ, &m.MessageID, &m.SHA256, &m.Size, &m.From, &m.To, &m.Cc, &m.Subject,
		&date, &m.ReceivedAt, &atts, &m2m, &m.Problems, &m.Failed, &acked); err != nil {
		return m, err
	}
	m.Type = settings.IncomingType(typ)
	if err := json.Unmarshal(atts, &m.Attachments); err != nil {
		return m, fmt.Errorf("message %s: attachments: %w", m.ID, err)
	}
	if m2m != nil {
		m.M2M = &store.M2M{}
		if err := json.Unmarshal(m2m, m.M2M); err != nil {
			return m, fmt.Errorf("message %s: m2m: %w", m.ID, err)
		}
	}
	// The lists come back non-nil, as the SQLite store's '[]' does.
	m.To, m.Cc, m.Problems, m.Attachments = nonNil(m.To), nonNil(m.Cc), nonNil(m.Problems), nonNil(m.Attachments)
	m.Date = tsOf(date)
	m.ReceivedAt = m.ReceivedAt.UTC()
	if acked != nil {
		t := acked.UTC()
		m.AckedAt = &t
	}
	return m, nil
}

// Messages implements store.Mail.
func (s *Store) Messages(ctx context.Context, q store.MessageQuery) ([]store.Message, error) {
	where, args := []string{"seq > $1"}, []any{q.After}
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if q.Type != "" {
		arg("type = ?", string(q.Type))
	}
	if q.Account != "" {
		arg("lower(account) = lower(?)", q.Account)
	}
	if q.Unacked {
		where = append(where, "acked_at IS NULL")
	}
	args = append(args, store.PageLimit(q.Limit))
	rows, err := s.pool.Query(ctx, `SELECT `+messageColumns+` FROM messages WHERE `+strings.Join(where, " AND ")+` ORDER BY seq`+order(q.Newest)+` LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	out := []store.Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return out, nil
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
	m, err := scanMessage(s.pool.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Message{}, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("read message %s: %w", id, err)
	}
	return m, nil
}

// Raw implements store.Mail.
func (s *Store) Raw(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT raw FROM message_raw WHERE id = $1`, id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read message %s: %w", id, err)
	}
	return b, nil
}

// Ack implements store.Mail: the first acknowledgement's time stays.
func (s *Store) Ack(ctx context.Context, id string) (time.Time, error) {
	var at time.Time
	err := s.pool.QueryRow(ctx, `UPDATE messages SET acked_at = coalesce(acked_at, $1) WHERE id = $2 RETURNING acked_at`, s.stamp(), id).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, fmt.Errorf("message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("acknowledge message %s: %w", id, err)
	}
	return at.UTC(), nil
}

// AccountStates implements store.Mail.
func (s *Store) AccountStates(ctx context.Context) ([]store.AccountState, error) {
	rows, err := s.pool.Query(ctx, `SELECT account_id, state, detail, last_error, last_poll, backlog, token_expires, updated_at FROM account_state ORDER BY account_id`)
	if err != nil {
		return nil, fmt.Errorf("read account states: %w", err)
	}
	defer rows.Close()
	var out []store.AccountState
	for rows.Next() {
		var a store.AccountState
		var lastErr []byte
		var lastPoll, tokenExp *time.Time
		if err := rows.Scan(&a.AccountID, &a.State, &a.Detail, &lastErr, &lastPoll, &a.Backlog, &tokenExp, &a.UpdatedAt); err != nil {
			return nil, fmt.Errorf("read account states: %w", err)
		}
		if lastErr != nil {
			a.LastError = &store.ErrorRecord{}
			if err := json.Unmarshal(lastErr, a.LastError); err != nil {
				return nil, fmt.Errorf("read account state %d: last error: %w", a.AccountID, err)
			}
		}
		a.LastPoll, a.TokenExpires, a.UpdatedAt = tsOf(lastPoll), tsOf(tokenExp), a.UpdatedAt.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read account states: %w", err)
	}
	return out, nil
}

// PutAccountState implements store.Mail.
func (s *Store) PutAccountState(ctx context.Context, a store.AccountState) error {
	var lastErr []byte
	if a.LastError != nil {
		var err error
		if lastErr, err = jsonb(a.LastError); err != nil {
			return fmt.Errorf("write account state: %w", err)
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO account_state (account_id, state, detail, last_error, last_poll, backlog, token_expires, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (account_id) DO UPDATE SET state = excluded.state, detail = excluded.detail, last_error = excluded.last_error,
			last_poll = excluded.last_poll, backlog = excluded.backlog, token_expires = excluded.token_expires, updated_at = excluded.updated_at`,
		a.AccountID, clean(a.State), clean(a.Detail), lastErr, tsParam(a.LastPoll), a.Backlog, tsParam(a.TokenExpires), s.stamp())
	if err != nil {
		return fmt.Errorf("write account state: %w", err)
	}
	return nil
}

// ClaimAccount implements store.Mail. The times are the database server's, so that processes on
// hosts whose clocks differ agree on when a claim lapses.
func (s *Store) ClaimAccount(ctx context.Context, accountID int64, holder string, ttl time.Duration) (store.Claim, error) {
	var c store.Claim
	for range 3 {
		err := s.pool.QueryRow(ctx, `INSERT INTO account_claims (account_id, holder, until) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 microsecond')
			ON CONFLICT (account_id) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE account_claims.holder = excluded.holder OR account_claims.until <= clock_timestamp()
			RETURNING holder, until`, accountID, clean(holder), ttl.Microseconds()).Scan(&c.Holder, &c.Until)
		if errors.Is(err, pgx.ErrNoRows) { // someone else's claim stands
			err = s.pool.QueryRow(ctx, `SELECT holder, until FROM account_claims WHERE account_id = $1`, accountID).Scan(&c.Holder, &c.Until)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // released meanwhile: claim again
			}
		}
		if err != nil {
			return store.Claim{}, fmt.Errorf("claim account %d: %w", accountID, err)
		}
		c.Held = c.Holder == holder
		return c, nil
	}
	return store.Claim{}, fmt.Errorf("claim account %d: the claim kept changing hands", accountID)
}

// ReleaseAccount implements store.Mail.
func (s *Store) ReleaseAccount(ctx context.Context, accountID int64, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM account_claims WHERE account_id = $1 AND holder = $2`, accountID, clean(holder)); err != nil {
		return fmt.Errorf("release account %d: %w", accountID, err)
	}
	return nil
}
