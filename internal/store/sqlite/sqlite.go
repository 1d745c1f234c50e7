// Package sqlite is the embedded SQLite implementation of store.Store (modernc.org/sqlite, no cgo):
// one database file in WAL mode with synchronous=FULL, so a committed transaction survives a crash or a
// power cut; versioned migrations embedded in the binary and recorded in schema_migrations. The raw
// bytes of incoming messages live beside it in append-only segment files (internal/store/segments,
// the directory DATABASE-raw), synced before the transaction that refers to them commits.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"inkorg/internal/secrets"
	"inkorg/internal/store"
	"inkorg/internal/store/segments"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configure Open.
type Options struct {
	Path   string           // the database file; created when missing
	RawDir string           // where the messages' raw bytes go; "" = Path + "-raw"
	Key    store.KeyFunc    // gives the Sealer for the database's secrets
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Store is the SQLite store.
type Store struct {
	db  *sql.DB
	raw *segments.Dir
	// wmu lets one of this process's writers at a time at the database: the others wait here and
	// go on the moment it is free, instead of in SQLite's busy handler, which sleeps 1, 2, 5, 10 …
	// ms between tries (busy_timeout still covers other processes, such as the CLI).
	wmu sync.Mutex
	// stmts are the statements of the ingestion path, prepared once (see prepared).
	smu   sync.Mutex
	stmts map[stmtKey]*sql.Stmt
	// fresh holds the accounts whose last batch in this process held only new messages (see
	// appendRaw), under smu.
	fresh  map[int64]bool
	sealer *secrets.Sealer
	log    *slog.Logger
	now    func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at opts.Path, applies pending migrations and loads the key.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("sqlite: no database path")
	}
	if opts.Key == nil {
		return nil, errors.New("sqlite: no key function")
	}
	s := &Store{log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.RawDir == "" {
		opts.RawDir = opts.Path + "-raw"
	}
	raw, err := segments.Open(segments.Options{Dir: opts.RawDir, Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.raw = raw
	q := url.Values{}
	// SQLite's default 4 KiB pages: the messages' bytes are in the segment files, so rows are small,
	// and a page the sha256 index's random inserts touch is written whole to the WAL (16 KiB pages
	// measured no faster at 10,000 messages and would write four times the bytes into a large index).
	// The page_size(16384) this list used to start with never took effect: with journal_mode in the
	// same list the file is created with 4 KiB pages anyway. The WAL's fsync at each commit keeps a
	// commit durable.
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(FULL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+opts.Path+"?"+q.Encode())
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("open database %s: %w", opts.Path, err)
	}
	s.db = db
	if err := db.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open database %s: %w", opts.Path, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate database %s: %w", opts.Path, err)
	}
	if err := s.loadKey(ctx, opts.Key); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	serr := s.closeStatements()
	err := s.db.Close()
	if err == nil {
		err = serr
	}
	if rerr := s.raw.Close(); err == nil {
		err = rerr
	}
	return err
}

// RawDir is the directory of the messages' raw bytes.
func (s *Store) RawDir() string { return s.raw.Path() }

// DB exposes the handle for tests and maintenance commands in this module.
func (s *Store) DB() *sql.DB { return s.db }

// qSchemaMigrations makes the table of the applied migrations.
const qSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`

// loadMigrations reads the embedded migrations in order (see store.Migrations).
func loadMigrations() ([]store.Migration, error) { return store.Migrations(migrations) }

// migrate applies the embedded migrations not yet recorded, each in its own transaction.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, qSchemaMigrations); err != nil {
		return err
	}
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil || n > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, m.Body); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, m.Version, m.Name, s.stamp())
			if err == nil {
				s.log.Info("applied migration", "version", m.Version, "name", m.Name)
			}
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// loadKey asks for the Sealer, telling the key function which key the database already uses, and
// records the key id in a database that has none.
func (s *Store) loadKey(ctx context.Context, key store.KeyFunc) error {
	var stored string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'key_id'`).Scan(&stored)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read key id: %w", err)
	}
	sealer, err := key(stored)
	if err != nil {
		return err
	}
	if stored != "" && stored != sealer.KeyID() {
		return &store.WrongKeyError{StoredKeyID: stored, LoadedKeyID: sealer.KeyID()}
	}
	if stored == "" {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('key_id', ?)`, sealer.KeyID()); err != nil {
			return fmt.Errorf("record key id: %w", err)
		}
	}
	s.sealer = sealer
	return nil
}

// timeLayout is how times are stored: fixed width, so text order is time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func (s *Store) stamp() string { return s.now().UTC().Format(timeLayout) }

func stampOf(t time.Time) string { return t.UTC().Format(timeLayout) }

// parseStamp reads a time stored by stamp or stampOf; the zero time for "" (NULL).
func parseStamp(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// exec runs one writing statement (under wmu, as tx does).
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.db.ExecContext(ctx, query, args...)
}

// tx runs f in an immediate transaction and commits it, or rolls back when f fails.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *Store) audit(ctx context.Context, tx *sql.Tx, actor, entity string, changes []store.Change) error {
	at := s.stamp()
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (at, actor, entity, field, old_value, new_value) VALUES (?, ?, ?, ?, ?, ?)`,
			at, actor, entity, c.Field, c.Old, c.New); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		s.log.Info("settings changed", "actor", actor, "entity", entity, "field", c.Field, "old", c.Old, "new", c.New)
	}
	return nil
}

// Audit implements store.Store.
func (s *Store) Audit(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, actor, entity, field, old_value, new_value FROM audit_log ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Entity, &e.Field, &e.Old, &e.New); err != nil {
			return nil, err
		}
		e.At = parseStamp(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
