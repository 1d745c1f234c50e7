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

// CreateOperator implements store.Operators.
func (s *Store) CreateOperator(ctx context.Context, op store.Operator, passwordHash []byte) (store.Operator, error) {
	op.Name, op.CreatedAt, op.PasswordHash = strings.TrimSpace(op.Name), s.now().UTC(), nil
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM operators WHERE name = ?`, op.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("operator %s: %w", op.Name, store.ErrExists)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO operators (name, role, erp_user, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			op.Name, string(op.Role), op.User, passwordHash, stampOf(op.CreatedAt))
		if err != nil {
			return fmt.Errorf("store operator: %w", err)
		}
		op.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return store.Operator{}, err
	}
	return op, nil
}

const operatorColumns = `o.id, o.name, o.role, o.erp_user, o.created_at`

func scanOperator(sc interface{ Scan(...any) error }, extra ...any) (store.Operator, error) {
	var op store.Operator
	var role, created string
	if err := sc.Scan(append([]any{&op.ID, &op.Name, &role, &op.User, &created}, extra...)...); err != nil {
		return op, err
	}
	op.Role = store.Role(role)
	op.CreatedAt = parseStamp(created)
	return op, nil
}

// Operator implements store.Operators.
func (s *Store) Operator(ctx context.Context, name string) (store.Operator, error) {
	var hash []byte
	op, err := scanOperator(s.db.QueryRowContext(ctx, `SELECT `+operatorColumns+`, o.password_hash FROM operators o WHERE o.name = ?`,
		strings.TrimSpace(name)), &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Operator{}, fmt.Errorf("operator %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Operator{}, fmt.Errorf("read operator: %w", err)
	}
	op.PasswordHash = hash
	return op, nil
}

// Operators implements store.Operators.
func (s *Store) Operators(ctx context.Context) ([]store.Operator, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+operatorColumns+` FROM operators o ORDER BY o.name`)
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

// RemoveOperator implements store.Operators.
func (s *Store) RemoveOperator(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM operators WHERE name = ?`, strings.TrimSpace(name)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("operator %s: %w", name, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM operator_sessions WHERE operator_id = ?`, id); err != nil {
			return fmt.Errorf("remove operator's sessions: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM operators WHERE id = ?`, id); err != nil {
			return fmt.Errorf("remove operator: %w", err)
		}
		return nil
	})
}

// CreateSession implements store.Operators.
func (s *Store) CreateSession(ctx context.Context, ss store.Session) error {
	_, err := s.exec(ctx, `INSERT INTO operator_sessions (hash, operator_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		ss.Hash, ss.OperatorID, stampOf(ss.CreatedAt), stampOf(ss.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	return nil
}

// SessionByHash implements store.Operators.
func (s *Store) SessionByHash(ctx context.Context, hash []byte, now time.Time) (store.Session, store.Operator, error) {
	var ss store.Session
	var created, expires string
	op, err := scanOperator(s.db.QueryRowContext(ctx, `SELECT `+operatorColumns+`, x.created_at, x.expires_at FROM operator_sessions x
		JOIN operators o ON o.id = x.operator_id WHERE x.hash = ? AND x.expires_at > ?`, hash, stampOf(now)), &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return ss, store.Operator{}, fmt.Errorf("session: %w", store.ErrNotFound)
	}
	if err != nil {
		return ss, store.Operator{}, fmt.Errorf("read session: %w", err)
	}
	ss.Hash, ss.OperatorID = hash, op.ID
	ss.CreatedAt = parseStamp(created)
	ss.ExpiresAt = parseStamp(expires)
	return ss, op, nil
}

// DeleteSession implements store.Operators.
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.exec(ctx, `DELETE FROM operator_sessions WHERE hash = ?`, hash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions implements store.Operators.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := s.exec(ctx, `DELETE FROM operator_sessions WHERE expires_at <= ?`, stampOf(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
