package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"inkorg/internal/store"
)

const outgoingColumns = `id, sender, webshop, from_addr, recipients, bcc, subject, message_id, related_record, size, state, transport, attempts,
	created_at, next_at, lease_until, sent_at, server_reply, last_error`

func scanOutgoing(row interface{ Scan(...any) error }) (store.Outgoing, error) {
	var m store.Outgoing
	var rcpts, bcc, created, next string
	var lease, sent, lastErr sql.NullString
	if err := row.Scan(&m.ID, &m.Sender, &m.Webshop, &m.From, &rcpts, &bcc, &m.Subject, &m.MessageID, &m.RelatedRecord, &m.Size, &m.State,
		&m.Transport, &m.Attempts, &created, &next, &lease, &sent, &m.ServerReply, &lastErr); err != nil {
		return m, err
	}
	if err := json.Unmarshal([]byte(rcpts), &m.Recipients); err != nil {
		return m, fmt.Errorf("outgoing %s: recipients: %w", m.ID, err)
	}
	if err := json.Unmarshal([]byte(bcc), &m.Bcc); err != nil {
		return m, fmt.Errorf("outgoing %s: bcc: %w", m.ID, err)
	}
	m.CreatedAt, m.NextAt = parseStamp(created), parseStamp(next)
	m.LeaseUntil, m.SentAt = parseStamp(lease.String), parseStamp(sent.String)
	if lastErr.Valid && lastErr.String != "" {
		m.LastError = new(store.ErrorRecord)
		if err := json.Unmarshal([]byte(lastErr.String), m.LastError); err != nil {
			return m, fmt.Errorf("outgoing %s: last error: %w", m.ID, err)
		}
	}
	return m, nil
}

// EnqueueOutgoing implements store.Outbox: the record and the bytes in one transaction.
func (s *Store) EnqueueOutgoing(ctx context.Context, m store.Outgoing) (store.Outgoing, error) {
	if m.ID == "" {
		m.ID = store.NewOutgoingID()
	}
	now := s.now().UTC()
	m.State, m.CreatedAt, m.NextAt, m.Size, m.Attempts = store.OutQueued, now, now, int64(len(m.Raw)), 0
	m.Recipients, m.Bcc = nonNil(m.Recipients), nonNil(m.Bcc)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, sender, webshop, from_addr, recipients, bcc, subject, message_id, related_record, size, state,
				created_at, next_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.Sender, m.Webshop, m.From, jsonText(m.Recipients), jsonText(m.Bcc), m.Subject, m.MessageID, m.RelatedRecord, m.Size, m.State,
			stampOf(now), stampOf(now), stampOf(now)); err != nil {
			return fmt.Errorf("store outgoing message: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox_raw (id, raw) VALUES (?, ?)`, m.ID, m.Raw); err != nil {
			return fmt.Errorf("store outgoing message bytes: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.Outgoing{}, err
	}
	m.Raw = nil
	return m, nil
}

// Outgoing implements store.Outbox.
func (s *Store) Outgoing(ctx context.Context, id string) (store.Outgoing, error) {
	m, err := scanOutgoing(s.db.QueryRowContext(ctx, `SELECT `+outgoingColumns+` FROM outbox WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("outgoing message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("read outgoing message %s: %w", id, err)
	}
	return m, nil
}

// OutgoingRaw implements store.Outbox.
func (s *Store) OutgoingRaw(ctx context.Context, id string) ([]byte, error) {
	var raw []byte
	err := s.db.QueryRowContext(ctx, `SELECT raw FROM outbox_raw WHERE id = ?`, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("outgoing message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read outgoing message %s: %w", id, err)
	}
	return raw, nil
}

func (s *Store) queryOutgoing(ctx context.Context, query string, args ...any) ([]store.Outgoing, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []store.Outgoing
	for rows.Next() {
		m, err := scanOutgoing(rows)
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// OutgoingList implements store.Outbox.
func (s *Store) OutgoingList(ctx context.Context, state store.OutgoingState, limit int) ([]store.Outgoing, error) {
	limit = store.PageLimit(limit)
	if state == "" {
		return s.queryOutgoing(ctx, `SELECT `+outgoingColumns+` FROM outbox ORDER BY seq DESC LIMIT ?`, limit)
	}
	return s.queryOutgoing(ctx, `SELECT `+outgoingColumns+` FROM outbox WHERE state = ? ORDER BY seq DESC LIMIT ?`, state, limit)
}

// DueOutgoing implements store.Outbox.
func (s *Store) DueOutgoing(ctx context.Context, now time.Time, limit int) ([]store.Outgoing, error) {
	limit = store.PageLimit(limit)
	return s.queryOutgoing(ctx, `SELECT `+outgoingColumns+` FROM outbox WHERE state = 'queued' AND next_at <= ? ORDER BY next_at, seq LIMIT ?`,
		stampOf(now), limit)
}

// transition runs one conditional update and reports ErrOutgoingState when no row was in the state.
func (s *Store) transition(ctx context.Context, id string, query string, args ...any) error {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("update outgoing message %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Outgoing(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("outgoing message %s: %w", id, store.ErrOutgoingState)
	}
	return nil
}

// ClaimOutgoing implements store.Outbox.
func (s *Store) ClaimOutgoing(ctx context.Context, id, transport string, now, leaseUntil time.Time) (store.Outgoing, error) {
	if err := s.transition(ctx, id, `UPDATE outbox SET state = 'sending', attempts = attempts + 1, transport = ?, lease_until = ?, updated_at = ?
		WHERE id = ? AND state = 'queued'`, transport, stampOf(leaseUntil), stampOf(now), id); err != nil {
		return store.Outgoing{}, err
	}
	return s.Outgoing(ctx, id)
}

// OutgoingSent implements store.Outbox.
func (s *Store) OutgoingSent(ctx context.Context, id string, at time.Time, reply string) error {
	return s.transition(ctx, id, `UPDATE outbox SET state = 'sent', sent_at = ?, server_reply = ?, lease_until = NULL, updated_at = ?
		WHERE id = ? AND state = 'sending'`, stampOf(at), reply, stampOf(at), id)
}

// OutgoingRetry implements store.Outbox.
func (s *Store) OutgoingRetry(ctx context.Context, id string, next time.Time, e store.ErrorRecord) error {
	return s.transition(ctx, id, `UPDATE outbox SET state = 'queued', next_at = ?, last_error = ?, lease_until = NULL, updated_at = ?
		WHERE id = ? AND state = 'sending'`, stampOf(next), jsonText(e), s.stamp(), id)
}

// OutgoingFailed implements store.Outbox.
func (s *Store) OutgoingFailed(ctx context.Context, id string, e store.ErrorRecord) error {
	return s.transition(ctx, id, `UPDATE outbox SET state = 'failed', last_error = ?, lease_until = NULL, updated_at = ?
		WHERE id = ? AND state = 'sending'`, jsonText(e), s.stamp(), id)
}

// OutgoingUnknown implements store.Outbox.
func (s *Store) OutgoingUnknown(ctx context.Context, id string, e store.ErrorRecord) error {
	return s.transition(ctx, id, `UPDATE outbox SET state = 'unknown', last_error = ?, lease_until = NULL, updated_at = ?
		WHERE id = ? AND state = 'sending'`, jsonText(e), s.stamp(), id)
}

// RecoverOutgoing implements store.Outbox.
func (s *Store) RecoverOutgoing(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE outbox SET state = 'unknown', updated_at = ? WHERE state = 'sending' AND lease_until <= ? RETURNING id`,
			stampOf(now), stampOf(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("recover outbox: %w", err)
	}
	return ids, nil
}

// ResolveOutgoing implements store.Outbox.
func (s *Store) ResolveOutgoing(ctx context.Context, id string, resend bool, at time.Time) error {
	if resend {
		return s.transition(ctx, id, `UPDATE outbox SET state = 'queued', next_at = ?, updated_at = ? WHERE id = ? AND state IN ('unknown', 'failed')`,
			stampOf(at), stampOf(at), id)
	}
	return s.transition(ctx, id, `UPDATE outbox SET state = 'sent', sent_at = ?, server_reply = 'confirmed by an operator', updated_at = ?
		WHERE id = ? AND state = 'unknown'`, stampOf(at), stampOf(at), id)
}
