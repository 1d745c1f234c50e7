// Package store is inkorg's durable state behind one interface: the settings of every procedure, the
// audit log of settings changes, and (as later parts land) messages, cursors and the outbox.
//
// Implementations live in subpackages (sqlite today; PostgreSQL follows with the same interface) and
// must pass the conformance suite in storetest. Secrets are sealed by the implementation with the
// Sealer it was opened with, so no plain-text secret reaches the database files.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"inkorg/internal/secrets"
	"inkorg/internal/settings"
)

// ErrNotFound means the named user or account does not exist.
var ErrNotFound = errors.New("not found")

// ErrRawDamaged means a stored message's bytes are missing or are not the bytes that were stored
// (a segment file lost or damaged on disk): reported, never served.
var ErrRawDamaged = errors.New("the message's stored bytes are missing or damaged")

// ErrExists means an incoming account with that address is already registered.
var ErrExists = errors.New("already exists")

// Store is inkorg's durable state. All methods are safe for concurrent use.
type Store interface {
	Settings
	Mail
	Tokens
	Webhooks
	Outbox
	Operators
	Close() error
}

// Settings is the settings half of the store: the seeds' procedures and the audit log.
type Settings interface {
	// Config reads every procedure's settings in one consistent snapshot.
	Config(ctx context.Context) (settings.Config, error)

	System(ctx context.Context) (settings.System, error)
	PutSystem(ctx context.Context, s settings.System, actor string) error

	// User returns ErrNotFound for a user without e-mail settings.
	User(ctx context.Context, name string) (settings.User, error)
	Users(ctx context.Context) ([]settings.User, error)
	// PutUser creates or replaces a user's e-mail settings.
	PutUser(ctx context.Context, u settings.User, actor string) error
	DeleteUser(ctx context.Context, name, actor string) error

	IncomingAccounts(ctx context.Context) ([]settings.IncomingAccount, error)
	// IncomingAccount finds an account by address (case-insensitive); ErrNotFound when there is none.
	IncomingAccount(ctx context.Context, address string) (settings.IncomingAccount, error)
	// AddIncomingAccount registers a new account and returns it with its ID; ErrExists for a taken address.
	AddIncomingAccount(ctx context.Context, a settings.IncomingAccount, actor string) (settings.IncomingAccount, error)
	// PutIncomingAccount replaces the account with a.ID.
	PutIncomingAccount(ctx context.Context, a settings.IncomingAccount, actor string) error
	RemoveIncomingAccount(ctx context.Context, address, actor string) error

	Webshop(ctx context.Context) (settings.Webshop, error)
	PutWebshop(ctx context.Context, w settings.Webshop, actor string) error

	// Audit returns the newest settings changes first, at most limit of them.
	Audit(ctx context.Context, limit int) ([]AuditEntry, error)
}

// AuditEntry is one changed field of one settings record. Secrets appear only as "set", "not set" or
// "changed".
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Entity string    `json:"entity"` // "system", "users[ANNA]", "incoming[m2m@…]", "webshop"
	Field  string    `json:"field"`
	Old    string    `json:"old"`
	New    string    `json:"new"`
}

// KeyFunc gives an implementation the Sealer for its database. storedKeyID is the id of the key the
// database's secrets were sealed with, or "" for a database that has none yet.
type KeyFunc func(storedKeyID string) (*secrets.Sealer, error)

// WrongKeyError says that the key file does not open this database's secrets.
type WrongKeyError struct {
	StoredKeyID, LoadedKeyID string
}

func (e *WrongKeyError) Error() string {
	return "the database's secrets were sealed with key " + e.StoredKeyID + ", but the key file holds key " + e.LoadedKeyID +
		": point INKORG_KEY_FILE at the key file that belongs to this database (restore it from the backup taken with the database)"
}

// The names secrets are sealed under. Each is bound into its ciphertext, so that a sealed value opens
// only as the field it was sealed for; they are part of the stored format, the same in every
// implementation (a database's secrets open whichever store wrote them), and renaming one makes the
// secrets already sealed under it unreadable.
const (
	SystemPasswordField     = "system.password"
	SystemClientSecretField = "system.clientSecret"
	SystemClientKeyField    = "system.clientKey"
)

// UserPasswordField is the name a user's Exchange password is sealed under (by the name in lower case).
func UserPasswordField(name string) string {
	return "users[" + strings.ToLower(name) + "].exchangePassword"
}

// AccountPasswordField is the name an incoming account's Exchange password is sealed under (by the
// account's id, not its address).
func AccountPasswordField(id int64) string { return fmt.Sprintf("incoming[%d].exchangePassword", id) }

// AccountClientSecretField is the name an incoming account's own client secret is sealed under.
func AccountClientSecretField(id int64) string { return fmt.Sprintf("incoming[%d].clientSecret", id) }

// WebhookSecretField is the name a webhook's HMAC key is sealed under.
func WebhookSecretField(t settings.IncomingType) string { return "webhooks[" + string(t) + "].secret" }

// Seal seals a secret for the database under its field name; nil for a secret that is not set.
func Seal(sealer *secrets.Sealer, sec settings.Secret, field string) ([]byte, error) {
	if !sec.IsSet() {
		return nil, nil
	}
	return sealer.Seal([]byte(sec.Reveal()), field)
}

// Unseal opens a secret that Seal sealed under the field name; the unset Secret for nil.
func Unseal(sealer *secrets.Sealer, sealed []byte, field string) (settings.Secret, error) {
	if sealed == nil {
		return settings.Secret{}, nil
	}
	p, err := sealer.Open(sealed, field)
	if err != nil {
		return settings.Secret{}, fmt.Errorf("open sealed %w", err)
	}
	return settings.NewSecret(string(p)), nil
}
