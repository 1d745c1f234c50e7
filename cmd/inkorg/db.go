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
	"inkorg/internal/store/sqlite"
)

const defaultDB = "inkorg.db"

// dbFlag adds --db to a command.
func dbFlag(f *cmdFlags) *string {
	return f.String("db", "", "the database: sqlite:PATH or PATH (default $INKORG_DB, else ./"+defaultDB+")")
}

// dbPath resolves --db, $INKORG_DB and the default to a SQLite file path.
func dbPath(e *env, flagValue string) (string, error) {
	dsn := flagValue
	if dsn == "" {
		dsn = e.getenv("INKORG_DB")
	}
	if dsn == "" {
		dsn = defaultDB
	}
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		dsn = strings.TrimPrefix(dsn, "sqlite:")
	case strings.HasPrefix(dsn, "postgres:"), strings.HasPrefix(dsn, "postgresql:"):
		return "", errors.New("PostgreSQL is not supported by this version yet; use sqlite:PATH")
	case strings.Contains(dsn, "://"):
		return "", fmt.Errorf("unknown database %q: use sqlite:PATH or a file path", dsn)
	}
	if dsn == "" {
		return "", errors.New("--db sqlite: needs a path")
	}
	return dsn, nil
}

// keyPath is $INKORG_KEY_FILE, else the database's path with the extension .key.
func keyPath(e *env, db string) string {
	if p := e.getenv("INKORG_KEY_FILE"); p != "" {
		return p
	}
	return strings.TrimSuffix(db, filepath.Ext(db)) + ".key"
}

// openStore opens the settings database. When mustExist is set (commands that only read), a missing
// database is an error rather than a new empty one, so a mistyped --db is noticed.
func openStore(e *env, flagValue string, mustExist bool) (store.Store, error) {
	path, err := dbPath(e, flagValue)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); mustExist && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no database at %s: give --db, or create it with \"inkorg settings system set …\"", path)
	}
	kp := keyPath(e, path)
	return sqlite.Open(e.ctx, sqlite.Options{Path: path, Now: e.now, Key: func(stored string) (*secrets.Sealer, error) {
		s, created, err := secrets.LoadOrCreateKeyFile(kp, stored == "")
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the database %s holds secrets sealed with key %s, but the key file %s does not exist: restore it from your backup, or set INKORG_KEY_FILE to its path", path, stored, kp)
		}
		if err != nil {
			return nil, err
		}
		if created {
			fmt.Fprintf(e.stderr, "Created the key file %s (mode 0600). Back it up with the database: without it the stored secrets cannot be opened.\n", kp)
		}
		return s, nil
	}})
}
