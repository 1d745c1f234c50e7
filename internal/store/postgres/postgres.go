// Package postgres is the PostgreSQL implementation of store.Store, for a hosting provider that runs
// several inkorg processes on one PostgreSQL server. It behaves exactly as the SQLite store (the same
// conformance suite, storetest, runs on both): secrets sealed with the Sealer from the key function
// and bound to the same field names, case-insensitive user names and account addresses, and the audit
// rows written in the transaction of the change.
//
// It uses pgx/v5's native pool (pgxpool) rather than database/sql: typed errors (*pgconn.PgError),
// session-pinned connections for advisory locks, and LISTEN/NOTIFY and COPY for the parts that follow,
// without a second pool on top of pgx's. Versioned migrations are embedded (migrations/*.sql) and
// recorded in schema_migrations; the whole run holds pg_advisory_lock, so processes starting together
// do not race. Settings writes (webhooks included) take a transaction-scoped advisory lock, so that
// each one reads the old value and writes the new one and its audit rows as one step, as SQLite's
// BEGIN IMMEDIATE does.
//
// Incoming mail keeps SQLite's exactly-once rules across processes. CommitBatch is one transaction
// that takes a transaction-scoped advisory lock per account (two processes that both believe they own
// an account take turns instead of racing), advances the cursor with greatest() only while its
// UIDVALIDITY is the batch's (else store.ErrUIDValidity; the upsert also holds the cursor's row, so a
// ResetCursor from another process lands wholly before or after), and stores each message with
// INSERT … ON CONFLICT (account_id, sha256) DO NOTHING, its raw bytes, its UID and, for a type with a
// webhook, its delivery, one statement per message, all pipelined in one round trip. API token hashes
// are BYTEA with names unique case-insensitively (a unique index on lower(name)); webhook secrets are
// sealed under "webhooks[<type>].secret", as in SQLite.
//
// Types are PostgreSQL's own: BIGSERIAL message seq, BYTEA for raw messages, hashes and sealed
// secrets, TIMESTAMPTZ (microseconds; a message's Date kept in whole seconds as SQLite keeps it), BIGINT
// for IMAP's unsigned 32-bit numbers, TEXT[] for lists of strings and JSONB for structured values
// (attachments, M2M, a worker's last error). PostgreSQL refuses NUL characters and invalid UTF-8 in
// text, which SQLite keeps: the store writes each such character of a message's or a worker's text as
// U+FFFD, so that one hostile message cannot stop its account.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"inkorg/internal/secrets"
	"inkorg/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys ("inkorg" in ASCII, then a number): one for the migration run, one that
// serializes settings writers across processes.
const (
	migrateLockKey  int64 = 0x696e6b6f72670001
	settingsLockKey int64 = 0x696e6b6f72670002
)

// uniqueViolation is PostgreSQL's SQLSTATE for a unique constraint violation.
const uniqueViolation = "23505"

// Options configure Open.
type Options struct {
	// DSN is a pgx connection string: a URL (postgres://user:password@host:5432/db?sslmode=disable) or
	// key=value pairs (host=... user=... dbname=...); PG* environment variables and ~/.pgpass fill in
	// what it leaves out, and pool_max_conns etc. tune the pool.
	DSN    string
	Key    store.KeyFunc    // gives the Sealer for the database's secrets
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Store is the PostgreSQL store.
type Store struct {
	pool   *pgxpool.Pool
	sealer *secrets.Sealer
	log    *slog.Logger
	now    func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by opts.DSN, applies pending migrations and loads the key.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("postgres: no DSN")
	}
	if opts.Key == nil {
		return nil, errors.New("postgres: no key function")
	}
	s := &Store{log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgconn redacts the password from its parse errors.
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	where := describe(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", where, err)
	}
	s.pool = pool
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open database %s: %w", where, err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate database %s: %w", where, err)
	}
	if err := s.loadKey(ctx, opts.Key); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// describe names a database for messages without its password.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool exposes the connection pool for tests and maintenance commands in this module.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// loadMigrations reads the embedded migrations in order (see store.Migrations).
func loadMigrations() ([]store.Migration, error) { return store.Migrations(migrations) }

// migrate applies the embedded migrations not yet recorded, each in its own transaction, holding the
// session advisory lock on one connection for the whole run.
func (s *Store) migrate(ctx context.Context) (err error) {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// A session lock outlives a failed run on this connection: if it cannot be released, close
		// the connection (the server then drops the lock) rather than return it to the pool.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrateLockKey); uerr != nil {
			conn.Conn().Close(uctx)
			if err == nil {
				err = fmt.Errorf("release migration lock: %w", uerr)
			}
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, m.Version).Scan(&n); err != nil || n > 0 {
				return err
			}
			// No arguments: the simple protocol, which runs a file of several statements.
			if _, err := tx.Exec(ctx, m.Body); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, m.Version, m.Name, s.now()); err != nil {
				return fmt.Errorf("migration %s: record: %w", m.Name, err)
			}
			s.log.Info("applied migration", "version", m.Version, "name", m.Name)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// loadKey asks for the Sealer, telling the key function which key the database already uses, and
// records the key id in a database that has none. Of two processes recording a key at once, one
// wins and the other is told it holds the wrong key.
func (s *Store) loadKey(ctx context.Context, key store.KeyFunc) error {
	stored, err := s.keyID(ctx)
	if err != nil {
		return err
	}
	sealer, err := key(stored)
	if err != nil {
		return err
	}
	if stored == "" {
		if _, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('key_id', $1) ON CONFLICT (key) DO NOTHING`, sealer.KeyID()); err != nil {
			return fmt.Errorf("record key id: %w", err)
		}
		if stored, err = s.keyID(ctx); err != nil {
			return err
		}
	}
	if stored != sealer.KeyID() {
		return &store.WrongKeyError{StoredKeyID: stored, LoadedKeyID: sealer.KeyID()}
	}
	s.sealer = sealer
	return nil
}

func (s *Store) keyID(ctx context.Context) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'key_id'`).Scan(&id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("read key id: %w", err)
	}
	return id, nil
}

// write runs f in a transaction that holds the settings lock, and commits it, or rolls back when f
// fails. A unique violation comes back as store.ErrExists.
func (s *Store) write(ctx context.Context, f func(pgx.Tx) error) error {
	return mapErr(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, settingsLockKey); err != nil {
			return fmt.Errorf("take settings lock: %w", err)
		}
		return f(tx)
	}))
}

// snapshot runs f in a read-only repeatable-read transaction: every read sees the same moment.
func (s *Store) snapshot(ctx context.Context, f func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, f)
}

// mapErr makes a unique violation also match store.ErrExists.
func mapErr(err error) error {
	var pe *pgconn.PgError
	if err != nil && !errors.Is(err, store.ErrExists) && errors.As(err, &pe) && pe.Code == uniqueViolation {
		return fmt.Errorf("%w: %w", store.ErrExists, err)
	}
	return err
}

func (s *Store) audit(ctx context.Context, tx pgx.Tx, actor, entity string, changes []store.Change) error {
	at := s.now()
	for _, c := range changes {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (at, actor, entity, field, old_value, new_value) VALUES ($1, $2, $3, $4, $5, $6)`,
			at, actor, entity, c.Field, c.Old, c.New); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		s.log.Info("settings changed", "actor", actor, "entity", entity, "field", c.Field, "old", c.Old, "new", c.New)
	}
	return nil
}

// limitParam is a LIMIT parameter: NULL (no limit) for a negative limit, as SQLite reads one.
func limitParam(limit int) *int {
	if limit < 0 {
		return nil
	}
	return &limit
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor, entity, field, old_value, new_value FROM audit_log ORDER BY id DESC LIMIT $1`, limitParam(limit))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Entity, &e.Field, &e.Old, &e.New); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}
