package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// tokenNameIndex is the unique index that keeps API token names unique case-insensitively.
const tokenNameIndex = "api_tokens_name_lower"

// CreateAPIToken implements store.Tokens. The unique index on lower(name) is the check, so two
// processes creating the same name at once get one token and one store.ErrExists.
func (s *Store) CreateAPIToken(ctx context.Context, name string, hash []byte) (store.APIToken, error) {
	t := store.APIToken{Name: strings.TrimSpace(name), CreatedAt: s.stamp()}
	err := s.pool.QueryRow(ctx, `INSERT INTO api_tokens (name, hash, created_at) VALUES ($1, $2, $3) RETURNING id`, t.Name, hash, t.CreatedAt).Scan(&t.ID)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == uniqueViolation && pe.ConstraintName == tokenNameIndex {
		return store.APIToken{}, fmt.Errorf("API token %s: %w", t.Name, store.ErrExists)
	}
	if err != nil {
		return store.APIToken{}, fmt.Errorf("store API token: %w", err)
	}
	return t, nil
}

// APITokenByHash implements store.Tokens: finding the token and recording its use is one statement.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (store.APIToken, error) {
	t := store.APIToken{LastUsed: s.stamp()}
	err := s.pool.QueryRow(ctx, `UPDATE api_tokens SET last_used = $1 WHERE hash = $2 RETURNING id, name, created_at`, t.LastUsed, hash).
		Scan(&t.ID, &t.Name, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.APIToken{}, fmt.Errorf("API token: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.APIToken{}, fmt.Errorf("read API token: %w", err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

// APITokens implements store.Tokens, ordered by name ignoring case (SQLite's NOCASE).
func (s *Store) APITokens(ctx context.Context) ([]store.APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, created_at, last_used FROM api_tokens ORDER BY lower(name) COLLATE "C", name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("read API tokens: %w", err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		var t store.APIToken
		var used *time.Time
		if err := rows.Scan(&t.ID, &t.Name, &t.CreatedAt, &used); err != nil {
			return nil, fmt.Errorf("read API tokens: %w", err)
		}
		t.CreatedAt, t.LastUsed = t.CreatedAt.UTC(), tsOf(used)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read API tokens: %w", err)
	}
	return out, nil
}

// RevokeAPIToken implements store.Tokens.
func (s *Store) RevokeAPIToken(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_tokens WHERE lower(name) = lower($1)`, strings.TrimSpace(name))
	if err != nil {
		return fmt.Errorf("revoke API token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("API token %s: %w", name, store.ErrNotFound)
	}
	return nil
}

// PutWebhook implements store.Webhooks: the change and its audit rows in one transaction, under the
// settings lock like every settings write.
func (s *Store) PutWebhook(ctx context.Context, w store.Webhook, actor string) error {
	secret, err := store.Seal(s.sealer, w.Secret, store.WebhookSecretField(w.Type))
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx pgx.Tx) error {
		var oldURL string
		var oldSecret []byte
		err := tx.QueryRow(ctx, `SELECT url, secret FROM webhooks WHERE type = $1`, string(w.Type)).Scan(&oldURL, &oldSecret)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read webhook: %w", err)
		}
		if w.URL == "" {
			_, err = tx.Exec(ctx, `DELETE FROM webhooks WHERE type = $1`, string(w.Type))
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO webhooks (type, url, secret, updated_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (type) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at`,
				string(w.Type), w.URL, secret, s.now())
		}
		if err != nil {
			return fmt.Errorf("write webhook: %w", err)
		}
		return s.audit(ctx, tx, actor, "webhooks["+string(w.Type)+"]", store.WebhookChanges(oldURL, oldSecret != nil, w.URL))
	})
}

// Webhooks implements store.Webhooks.
func (s *Store) Webhooks(ctx context.Context) ([]store.Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT type, url, secret FROM webhooks ORDER BY type COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("read webhooks: %w", err)
	}
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		var w store.Webhook
		var typ string
		var secret []byte
		if err := rows.Scan(&typ, &w.URL, &secret); err != nil {
			return nil, fmt.Errorf("read webhooks: %w", err)
		}
		w.Type = settings.IncomingType(typ)
		if w.Secret, err = store.Unseal(s.sealer, secret, store.WebhookSecretField(w.Type)); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read webhooks: %w", err)
	}
	return out, nil
}

// ClaimDeliveries implements store.Webhooks. Rows another transaction is claiming are skipped (SKIP
// LOCKED): two processes claiming at once get different deliveries.
func (s *Store) ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]store.Delivery, error) {
	rows, err := s.pool.Query(ctx, `UPDATE deliveries d SET next_at = $2
		FROM (SELECT message, type, next_at AS was, seq FROM deliveries WHERE delivered_at IS NULL AND next_at <= $1
			ORDER BY next_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED) due
		WHERE d.message = due.message AND d.type = due.type
		RETURNING d.message, d.type, d.attempts, due.was, d.last_error, due.seq`, now, until, limit)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	defer rows.Close()
	type claimed struct {
		d   store.Delivery
		seq int64
	}
	var got []claimed
	for rows.Next() {
		var c claimed
		var typ string
		if err := rows.Scan(&c.d.MessageID, &typ, &c.d.Attempts, &c.d.NextAt, &c.d.LastError, &c.seq); err != nil {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		c.d.Type, c.d.NextAt = settings.IncomingType(typ), c.d.NextAt.UTC()
		got = append(got, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	sort.Slice(got, func(i, j int) bool {
		if !got[i].d.NextAt.Equal(got[j].d.NextAt) {
			return got[i].d.NextAt.Before(got[j].d.NextAt)
		}
		return got[i].seq < got[j].seq
	})
	out := make([]store.Delivery, len(got))
	for i, c := range got {
		out[i] = c.d
	}
	return out, nil
}

// UnclaimDelivery implements store.Webhooks.
func (s *Store) UnclaimDelivery(ctx context.Context, d store.Delivery) error {
	if _, err := s.pool.Exec(ctx, `UPDATE deliveries SET next_at = $1 WHERE message = $2 AND type = $3 AND delivered_at IS NULL`,
		d.NextAt, d.MessageID, string(d.Type)); err != nil {
		return fmt.Errorf("give back delivery: %w", err)
	}
	return nil
}

// DueDeliveries implements store.Webhooks: oldest first, and in the order they were owed among those
// due at the same moment. A negative limit is no limit, as in SQLite.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT message, type, attempts, next_at, last_error FROM deliveries WHERE delivered_at IS NULL AND next_at <= $1
		ORDER BY next_at, seq LIMIT $2`, now, limitParam(limit))
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var d store.Delivery
		var typ string
		if err := rows.Scan(&d.MessageID, &typ, &d.Attempts, &d.NextAt, &d.LastError); err != nil {
			return nil, fmt.Errorf("read deliveries: %w", err)
		}
		d.Type, d.NextAt = settings.IncomingType(typ), d.NextAt.UTC()
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return out, nil
}

// DeliveryDone implements store.Webhooks.
func (s *Store) DeliveryDone(ctx context.Context, d store.Delivery, ok bool, next time.Time, errText string) error {
	var err error
	if ok {
		_, err = s.pool.Exec(ctx, `UPDATE deliveries SET attempts = attempts + 1, delivered_at = $1, last_error = '' WHERE message = $2 AND type = $3`,
			s.stamp(), d.MessageID, string(d.Type))
	} else {
		_, err = s.pool.Exec(ctx, `UPDATE deliveries SET attempts = attempts + 1, next_at = $1, last_error = $2 WHERE message = $3 AND type = $4`,
			next, clean(errText), d.MessageID, string(d.Type))
	}
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return nil
}
