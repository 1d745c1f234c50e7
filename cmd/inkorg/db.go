package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"inkorg/internal/secrets"
	"inkorg/internal/store"
	"inkorg/internal/store/postgres"
	"inkorg/internal/store/sqlite"
)

const defaultDB = "inkorg.db"

// dbFlag adds --db to a command.
func dbFlag(f *cmdFlags) *string {
	return f.String("db", "", "the database: sqlite:PATH, PATH or postgres://user@host/db (default $INKORG_DB, else ./"+defaultDB+")")
}

// database is a resolved --db: a SQLite file or a PostgreSQL DSN.
type database struct {
	sqlitePath  string
	postgresDSN string
}

// resolveDB resolves --db, $INKORG_DB and the default.
func resolveDB(e *env, flagValue string) (database, error) {
	dsn := flagValue
	if dsn == "" {
		dsn = e.getenv("INKORG_DB")
	}
	if dsn == "" {
		dsn = defaultDB
	}
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return database{postgresDSN: dsn}, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		dsn = strings.TrimPrefix(dsn, "sqlite:")
	case strings.Contains(dsn, "://"):
		return database{}, fmt.Errorf("unknown database %q: use sqlite:PATH, a file path or postgres://…", dsn)
	}
	if dsn == "" {
		return database{}, errors.New("--db sqlite: needs a path")
	}
	return database{sqlitePath: dsn}, nil
}

// keyPath is $INKORG_KEY_FILE, else (SQLite) the database's path with the extension .key.
func keyPath(e *env, db database) (string, error) {
	if p := e.getenv("INKORG_KEY_FILE"); p != "" {
		return p, nil
	}
	if db.sqlitePath == "" {
		return "", errors.New("with PostgreSQL, set INKORG_KEY_FILE to the key file that seals the secrets (the same file on every inkorg process)")
	}
	return strings.TrimSuffix(db.sqlitePath, filepath.Ext(db.sqlitePath)) + ".key", nil
}

// openStore opens the settings database. When mustExist is set (commands that only read), a missing
// SQLite file is an error rather than a new empty database, so a mistyped --db is noticed.
func openStore(e *env, flagValue string, mustExist bool) (store.Store, error) {
	db, err := resolveDB(e, flagValue)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(db.sqlitePath); db.sqlitePath != "" && mustExist && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no database at %s: give --db, or create it with \"inkorg settings system set …\"", db.sqlitePath)
	}
	kp, err := keyPath(e, db)
	if err != nil {
		return nil, err
	}
	where := db.sqlitePath
	if where == "" {
		where = "the PostgreSQL database"
	}
	key := func(stored string) (*secrets.Sealer, error) {
		s, created, err := secrets.LoadOrCreateKeyFile(kp, stored == "")
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s holds secrets sealed with key %s, but the key file %s does not exist: restore it from your backup, or set INKORG_KEY_FILE to its path", where, stored, kp)
		}
		if err != nil {
			return nil, err
		}
		if created {
			fmt.Fprintf(e.stderr, "Created the key file %s (mode 0600). Back it up with the database: without it the stored secrets cannot be opened.\n", kp)
		}
		return s, nil
	}
	if db.postgresDSN != "" {
		return postgres.Open(e.ctx, postgres.Options{DSN: db.postgresDSN, Key: key})
	}
	return sqlite.Open(e.ctx, sqlite.Options{Path: db.sqlitePath, Now: e.now, Key: key})
}
