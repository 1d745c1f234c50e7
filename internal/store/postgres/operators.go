package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"inkorg/internal/store"
)

// operatorNameIndex is the unique index that keeps operator names unique case-insensitively.
const operatorNameIndex = "operators_name_lower"

// CreateOperator implements store.Operators; the unique index on lower(name) is the check.
func (s *Store) CreateOperator(ctx context.Context, op store.Operator, passwordHash []byte) (store.Operator, error) {
	op.Name, op.CreatedAt, op.PasswordHash = strings.TrimSpace(op.Name), s.stamp(), nil
	err := s.pool.QueryRow(ctx, `INSERT INTO operators (name, role, erp_user, password_hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		op.Name, string(op.Role), op.User, passwordHash, op.CreatedAt).Scan(&op.ID)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == uniqueViolation && pe.ConstraintName == operatorNameIndex {
		return store.Operator{}, fmt.Errorf("operator %s: %w", op.Name, store.ErrExists)
	}
	if err != nil {
		return store.Operator{}, fmt.Errorf("store operator: %w", err)
	}
	return op, nil
}

const operatorColumns = `o.id, o.name, o.role, o.erp_user, o.created_at`

func scanOperator(row pgx.Row, extra ...any) (store.Operator, error) {
	var op store.Operator
	var role string
	if err := row.Scan(append([]any{&op.ID, &op.Name, &role, &op.User, &op.CreatedAt}, extra...)...); err != nil {
		return op, err
	}
	op.Role, op.CreatedAt = store.Role(role), op.CreatedAt.UTC()
	return op, nil
}

// Operator implements store.Operators.
func (s *Store) Operator(ctx context.Context, name string) (store.Operator, error) {
	var hash []byte
	op, err := scanOperator(s.pool.QueryRow(ctx, `SELECT `+operatorColumns+`, o.password_hash FROM operators o WHERE lower(o.name) = lower($1)`,
		strings.TrimSpace(name)), &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Operator{}, fmt.Errorf("operator %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Operator{}, fmt.Errorf("read operator: %w", err)
	}
	op.PasswordHash = hash
	return op, nil
}

// Operators implements store.Operators, ordered by name ignoring case (SQLite's NOCASE).
func (s *Store) Operators(ctx context.Context) ([]store.Operator, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+operatorColumns+` FROM operators o ORDER BY lower(o.name) COLLATE "C", o.name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("read operators: %w", err)
	}
	defer rows.Close()
	var out []store.Operator
	for rows.Next() {
		op, err := scanOperator(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, op)
	}
	return out, rows.Err()
}

// RemoveOperator implements store.Operators; its sessions go with it (ON DELETE CASCADE).
func (s *Store) RemoveOperator(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM operators WHERE lower(name) = lower($1)`, strings.TrimSpace(name))
	if err != nil {
		return fmt.Errorf("remove operator: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("operator %s: %w", name, store.ErrNotFound)
	}
	return nil
}

// CreateSession implements store.Operators.
func (s *Store) CreateSession(ctx context.Context, ss store.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO operator_sessions (hash, operator_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		ss.Hash, ss.OperatorID, ss.CreatedAt.UTC(), ss.ExpiresAt.UTC())
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	return nil
}

// SessionByHash implements store.Operators.
func (s *Store) SessionByHash(ctx context.Context, hash []byte, now time.Time) (store.Session, store.Operator, error) {
	var ss store.Session
	op, err := scanOperator(s.pool.QueryRow(ctx, `SELECT `+operatorColumns+`, x.created_at, x.expires_at FROM operator_sessions x
		JOIN operators o ON o.id = x.operator_id WHERE x.hash = $1 AND x.expires_at > $2`, hash, now.UTC()), &ss.CreatedAt, &ss.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return ss, store.Operator{}, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	if err != nil {
		return ss, store.Operator{}, fmt.Errorf("read session: %w", err)
	}
	ss.Hash, ss.OperatorID = hash, op.ID
	ss.CreatedAt, ss.ExpiresAt = ss.CreatedAt.UTC(), ss.ExpiresAt.UTC()
	return ss, op, nil
}

// DeleteSession implements store.Operators.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM operator_sessions WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions implements store.Operators.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM operator_sessions WHERE expires_at <= $1`, now.UTC())
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
