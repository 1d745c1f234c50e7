package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"inkorg/internal/store"
)

// CreateAPIToken implements store.Tokens.
func (s *Store) CreateAPIToken(ctx context.Context, name string, hash []byte) (store.APIToken, error) {
	t := store.APIToken{Name: strings.TrimSpace(name), CreatedAt: s.now().UTC()}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_tokens WHERE name = ?`, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("API token %s: %w", t.Name, store.ErrExists)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (name, hash, created_at) VALUES (?, ?, ?)`, t.Name, hash, stampOf(t.CreatedAt))
		if err != nil {
			return fmt.Errorf("store API token: %w", err)
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	return t, err
}

// APITokenByHash implements store.Tokens.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (store.APIToken, error) {
	var t store.APIToken
	var created string
	err := s.db.QueryRowContext(ctx, `SELECT id, name, created_at FROM api_tokens WHERE hash = ?`, hash).Scan(&t.ID, &t.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("API token: %w", store.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("read API token: %w", err)
	}
	t.CreatedAt = parseStamp(created)
	t.LastUsed = s.now().UTC()
	if _, err := s.exec(ctx, `UPDATE api_tokens SET last_used = ? WHERE id = ?`, stampOf(t.LastUsed), t.ID); err != nil {
		return t, fmt.Errorf("record API token use: %w", err)
	}
	return t, nil
}

// APITokens implements store.Tokens.
func (s *Store) APITokens(ctx context.Context) ([]store.APIToken, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created_at, last_used FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read API tokens: %w", err)
	}
	defer rows.Close()
	var out []store.APIToken
	for rows.Next() {
		var t store.APIToken
		var created string
		var used sql.NullString
		if err := rows.Scan(&t.ID, &t.Name, &created, &used); err != nil {
			return nil, err
		}
		t.CreatedAt = parseStamp(created)
		t.LastUsed = parseStamp(used.String)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken implements store.Tokens.
func (s *Store) RevokeAPIToken(ctx context.Context, name string) error {
	res, err := s.exec(ctx, `DELETE FROM api_tokens WHERE name = ?`, strings.TrimSpace(name))
	if err != nil {
		return fmt.Errorf("revoke API token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("API token %s: %w", name, store.ErrNotFound)
	}
	return nil
}

// PutWebhook implements store.Webhooks.
func (s *Store) PutWebhook(ctx context.Context, w store.Webhook, actor string) error {
	secret, err := store.Seal(s.sealer, w.Secret, store.WebhookSecretField(w.Type))
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var oldURL string
		var oldSecret []byte
		err := tx.QueryRowContext(ctx, `SELECT url, secret FROM webhooks WHERE type = ?`, w.Type).Scan(&oldURL, &oldSecret)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if w.URL == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM webhooks WHERE type = ?`, w.Type)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO webhooks (type, url, secret, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (type) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at`, w.Type, w.URL, secret, s.stamp())
		}
		if err != nil {
			return fmt.Errorf("write webhook: %w", err)
		}
		return s.audit(ctx, tx, actor, "webhooks["+string(w.Type)+"]", store.WebhookChanges(oldURL, oldSecret != nil, w.URL))
	})
}

// Webhooks implements store.Webhooks.
func (s *Store) Webhooks(ctx context.Context) ([]store.Webhook, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT type, url, secret FROM webhooks ORDER BY type`)
	if err != nil {
		return nil, fmt.Errorf("read webhooks: %w", err)
	}
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		var w store.Webhook
		var secret []byte
		if err := rows.Scan(&w.Type, &w.URL, &secret); err != nil {
			return nil, err
		}
		if w.Secret, err = store.Unseal(s.sealer, secret, store.WebhookSecretField(w.Type)); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// dueQuery selects the due deliveries, oldest first, then in the order they were owed.
const dueQuery = `SELECT message, type, attempts, next_at, last_error FROM deliveries WHERE delivered_at IS NULL AND next_at <= ?
	ORDER BY next_at, rowid LIMIT ?`

// DueDeliveries implements store.Webhooks.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error) {
	rows, err := s.db.QueryContext(ctx, dueQuery, stampOf(now), limit)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	out, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("read deliveries: %w", err)
	}
	return out, nil
}

func scanDeliveries(rows *sql.Rows) ([]store.Delivery, error) {
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var d store.Delivery
		var next string
		if err := rows.Scan(&d.MessageID, &d.Type, &d.Attempts, &next, &d.LastError); err != nil {
			return nil, err
		}
		d.NextAt = parseStamp(next)
		out = append(out, d)
	}
	return out, rows.Err()
}

// ClaimDeliveries implements store.Webhooks.
func (s *Store) ClaimDeliveries(ctx context.Context, now, until time.Time, limit int) ([]store.Delivery, error) {
	var out []store.Delivery
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, dueQuery, stampOf(now), limit)
		if err != nil {
			return err
		}
		if out, err = scanDeliveries(rows); err != nil {
			return err
		}
		for _, d := range out {
			if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET next_at = ? WHERE message = ? AND type = ?`, stampOf(until), d.MessageID, d.Type); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return out, nil
}

// UnclaimDelivery implements store.Webhooks.
func (s *Store) UnclaimDelivery(ctx context.Context, d store.Delivery) error {
	if _, err := s.exec(ctx, `UPDATE deliveries SET next_at = ? WHERE message = ? AND type = ? AND delivered_at IS NULL`,
		stampOf(d.NextAt), d.MessageID, d.Type); err != nil {
		return fmt.Errorf("give back delivery: %w", err)
	}
	return nil
}

// DeliveryDone implements store.Webhooks.
func (s *Store) DeliveryDone(ctx context.Context, d store.Delivery, ok bool, next time.Time, errText string) error {
	var err error
	if ok {
		_, err = s.exec(ctx, `UPDATE deliveries SET attempts = attempts + 1, delivered_at = ?, last_error = '' WHERE message = ? AND type = ?`,
			s.stamp(), d.MessageID, d.Type)
	} else {
		_, err = s.exec(ctx, `UPDATE deliveries SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE message = ? AND type = ?`,
			stampOf(next), errText, d.MessageID, d.Type)
	}
	if err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return nil
}
