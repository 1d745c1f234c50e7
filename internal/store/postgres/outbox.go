package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"inkorg/internal/store"
)

const outgoingColumns = `id, sender, webshop, from_addr, recipients, bcc, subject, message_id, related_record, size, state, transport, attempts,
	created_at, next_at, lease_until, sent_at, server_reply, last_error`

func scanOutgoing(row pgx.Row) (store.Outgoing, error) {
	var m store.Outgoing
	var lease, sent *time.Time
	var lastErr []byte
	if err := row.Scan(&m.ID, &m.Sender, &m.Webshop, &m.From, &m.Recipients, &m.Bcc, &m.Subject, &m.MessageID, &m.RelatedRecord, &m.Size, &m.State,
		&m.Transport, &m.Attempts, &m.CreatedAt, &m.NextAt, &lease, &sent, &m.ServerReply, &lastErr); err != nil {
		return m, err
	}
	m.CreatedAt, m.NextAt, m.LeaseUntil, m.SentAt = m.CreatedAt.UTC(), m.NextAt.UTC(), tsOf(lease), tsOf(sent)
	m.Recipients, m.Bcc = nonNil(m.Recipients), nonNil(m.Bcc)
	if lastErr != nil {
		m.LastError = new(store.ErrorRecord)
		if err := json.Unmarshal(lastErr, m.LastError); err != nil {
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
	now := s.stamp()
	m.State, m.CreatedAt, m.NextAt, m.Size, m.Attempts = store.OutQueued, now, now, int64(len(m.Raw)), 0
	m.Recipients, m.Bcc = cleanAll(m.Recipients), cleanAll(m.Bcc)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, sender, webshop, from_addr, recipients, bcc, subject, message_id, related_record, size, state,
				created_at, next_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12)`,
			m.ID, clean(m.Sender), m.Webshop, clean(m.From), m.Recipients, m.Bcc, clean(m.Subject), clean(m.MessageID), clean(m.RelatedRecord),
			m.Size, string(m.State), now); err != nil {
			return fmt.Errorf("store outgoing message: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outbox_raw (id, raw) VALUES ($1, $2)`, m.ID, m.Raw); err != nil {
			return fmt.Errorf("store outgoing message bytes: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.Outgoing{}, mapErr(err)
	}
	m.Raw = nil
	return m, nil
}

// Outgoing implements store.Outbox.
func (s *Store) Outgoing(ctx context.Context, id string) (store.Outgoing, error) {
	m, err := scanOutgoing(s.pool.QueryRow(ctx, `SELECT `+outgoingColumns+` FROM outbox WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	err := s.pool.QueryRow(ctx, `SELECT raw FROM outbox_raw WHERE id = $1`, id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("outgoing message %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read outgoing message %s: %w", id, err)
	}
	return raw, nil
}

func (s *Store) queryOutgoing(ctx context.Context, query string, args ...any) ([]store.Outgoing, error) {
	rows, err := s.pool.Query(ctx, query, args...)
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
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// OutgoingList implements store.Outbox.
func (s *Store) OutgoingList(ctx context.Context, state store.OutgoingState, limit int) ([]store.Outgoing, error) {
	limit = store.PageLimit(limit)
	if state == "" {
		return s.queryOutgoing(ctx, `SELECT `+outgoingColumns+` FROM outbox ORDER BY seq DESC LIMIT $1`, limit)
	}
	return s.queryOutgoing(ctx, `SELECT `+outgoingColumns+` FROM outbox WHERE state = $1 ORDER BY seq DESC LIMIT $2`, string(state), limit)
}

// DueOutgoing implements store.Outbox.
func (s *Store) DueOutgoing(ctx context.Context, now time.Time, limit int) ([]store.Outgoing, error) {
	limit = store.PageLimit(limit)
	return s.queryOutgoing(ctx, `SELECT `+outgoingColumns+` FROM outbox WHERE state = 'queued' AND next_at <= $1 ORDER BY next_at, seq LIMIT $2`,
		now.UTC(), limit)
}

// transition runs one conditional update and reports ErrOutgoingState when no row was in the state.
func (s *Store) transition(ctx context.Context, id string, query string, args ...any) error {
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("update outgoing message %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return s.notInState(ctx, id)
	}
	return nil
}

// notInState says why a conditional update of an outgoing message changed nothing: there is no such
// message (store.ErrNotFound), or it is not in the state the update needs (store.ErrOutgoingState).
func (s *Store) notInState(ctx context.Context, id string) error {
	if _, err := s.Outgoing(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("outgoing message %s: %w", id, store.ErrOutgoingState)
}

// ClaimOutgoing implements store.Outbox.
func (s *Store) ClaimOutgoing(ctx context.Context, id, transport string, now, leaseUntil time.Time) (store.Outgoing, error) {
	m, err := scanOutgoing(s.pool.QueryRow(ctx, `UPDATE outbox SET state = 'sending', attempts = attempts + 1, transport = $1, lease_until = $2, updated_at = $3
		WHERE id = $4 AND state = 'queued' RETURNING `+outgoingColumns, transport, leaseUntil.UTC(), now.UTC(), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Outgoing{}, s.notInState(ctx, id)
	}
	if err != nil {
		return store.Outgoing{}, fmt.Errorf("claim outgoing message %s: %w", id, err)
	}
	return m, nil
}

// OutgoingSent implements store.Outbox.
func (s *Store) OutgoingSent(ctx context.Context, id string, at time.Time, reply string) error {
	return s.transition(ctx, id, `UPDATE outbox SET state = 'sent', sent_at = $1, server_reply = $2, lease_until = NULL, updated_at = $1
		WHERE id = $3 AND state = 'sending'`, at.UTC(), clean(reply), id)
}

// OutgoingRetry implements store.Outbox.
func (s *Store) OutgoingRetry(ctx context.Context, id string, next time.Time, e store.ErrorRecord) error {
	b, err := jsonb(e)
	if err != nil {
		return err
	}
	return s.transition(ctx, id, `UPDATE outbox SET state = 'queued', next_at = $1, last_error = $2, lease_until = NULL, updated_at = $3
		WHERE id = $4 AND state = 'sending'`, next.UTC(), b, s.stamp(), id)
}

// OutgoingFailed implements store.Outbox.
func (s *Store) OutgoingFailed(ctx context.Context, id string, e store.ErrorRecord) error {
	b, err := jsonb(e)
	if err != nil {
		return err
	}
	return s.transition(ctx, id, `UPDATE outbox SET state = 'failed', last_error = $1, lease_until = NULL, updated_at = $2
		WHERE id = $3 AND state = 'sending'`, b, s.stamp(), id)
}

// OutgoingUnknown implements store.Outbox.
func (s *Store) OutgoingUnknown(ctx context.Context, id string, e store.ErrorRecord) error {
	b, err := jsonb(e)
	if err != nil {
		return err
	}
	return s.transition(ctx, id, `UPDATE outbox SET state = 'unknown', last_error = $1, lease_until = NULL, updated_at = $2
		WHERE id = $3 AND state = 'sending'`, b, s.stamp(), id)
}

// RecoverOutgoing implements store.Outbox.
func (s *Store) RecoverOutgoing(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `UPDATE outbox SET state = 'unknown', updated_at = $1 WHERE state = 'sending' AND lease_until <= $1 RETURNING id`, now.UTC())
	if err != nil {
		return nil, fmt.Errorf("recover outbox: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("recover outbox: %w", err)
	}
	return ids, nil
}

// ResolveOutgoing implements store.Outbox.
func (s *Store) ResolveOutgoing(ctx context.Context, id string, resend bool, at time.Time) error {
	if resend {
		return s.transition(ctx, id, `UPDATE outbox SET state = 'queued', next_at = $1, updated_at = $1 WHERE id = $2 AND state IN ('unknown', 'failed')`,
			at.UTC(), id)
	}
	return s.transition(ctx, id, `UPDATE outbox SET state = 'sent', sent_at = $1, server_reply = 'confirmed by an operator', updated_at = $1
		WHERE id = $2 AND state = 'unknown'`, at.UTC(), id)
}
