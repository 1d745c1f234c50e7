package store

import (
	"context"
	"time"
)

// Role is what an operator of the admin web UI may do.
type Role string

// The roles.
const (
	RoleAdmin Role = "admin" // everything
	RoleUser  Role = "user"  // only the e-mail settings of one ERP user (Operator.User)
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleUser }

// Operators are the people who sign in to the admin web UI, and their sessions. Only a password's
// hash (argon2id or bcrypt, encoded by the caller) and a session token's SHA-256 are stored.
type Operators interface {
	// CreateOperator stores a new operator with the password hash; ErrExists when the name is taken
	// (case-insensitively).
	CreateOperator(ctx context.Context, op Operator, passwordHash []byte) (Operator, error)
	// Operator finds an operator by name (case-insensitive), with the password hash; ErrNotFound.
	Operator(ctx context.Context, name string) (Operator, error)
	Operators(ctx context.Context) ([]Operator, error)
	// RemoveOperator deletes an operator and all of its sessions; ErrNotFound.
	RemoveOperator(ctx context.Context, name string) error

	// CreateSession stores a session under the SHA-256 of its token.
	CreateSession(ctx context.Context, s Session) error
	// SessionByHash finds an unexpired session (expiry after now) and its operator; ErrNotFound.
	SessionByHash(ctx context.Context, hash []byte, now time.Time) (Session, Operator, error)
	// DeleteSession ends a session; deleting one that does not exist is not an error.
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteExpiredSessions removes the sessions that expired at or before now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}

// Operator is one operator's record. PasswordHash is filled only by Operator(ctx, name).
type Operator struct {
	ID           int64     `json:"id"`
	Name         string    `json:"name"`
	Role         Role      `json:"role"`
	User         string    `json:"user,omitempty"` // role user: the ERP user whose e-mail settings they may edit
	CreatedAt    time.Time `json:"createdAt"`
	PasswordHash []byte    `json:"-"`
}

// Session is a signed-in operator's session, stored by the SHA-256 of its token.
type Session struct {
	Hash       []byte    `json:"-"`
	OperatorID int64     `json:"operatorId"`
	CreatedAt  time.Time `json:"createdAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}
