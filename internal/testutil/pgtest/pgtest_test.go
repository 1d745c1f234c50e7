package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

var pg = New()

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

func TestNewDatabaseIsFreshAndUsable(t *testing.T) {
	ctx := context.Background()
	a, b := pg.NewDatabase(t), pg.NewDatabase(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	for _, dsn := range []string{a, b} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d tables, %v", dsn, n, err)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE x (v text)`); err != nil {
			t.Error(err)
		}
		conn.Close(ctx)
	}
	if os.Getenv(EnvDSN) == "" {
		if !strings.HasPrefix(a, "postgres://test@127.0.0.1:") {
			t.Errorf("DSN %s", a)
		}
		if _, err := os.Stat(filepath.Join(pg.DataDir(), "PG_VERSION")); err != nil {
			t.Errorf("data dir: %v", err)
		}
	}
}

func TestFindBinaries(t *testing.T) {
	if _, err := FindBinaries(filepath.Join(t.TempDir(), "*", "bin"), false); !errors.Is(err, ErrNoBinaries) ||
		err.Error() != "PostgreSQL server binaries not found: apt-get install postgresql" {
		t.Errorf("no binaries: %v", err)
	}
	root := t.TempDir()
	for _, v := range []string{"9", "15", "13"} {
		d := filepath.Join(root, v, "bin")
		os.MkdirAll(d, 0o755)
		for _, b := range []string{"initdb", "postgres"} {
			os.WriteFile(filepath.Join(d, b), []byte("#!/bin/sh\n"), 0o755)
		}
	}
	os.Remove(filepath.Join(root, "15", "bin", "postgres")) // incomplete: skipped
	if got, err := FindBinaries(filepath.Join(root, "*", "bin"), false); err != nil || got != filepath.Join(root, "13", "bin") {
		t.Errorf("newest complete version: %s, %v", got, err)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://u:p@db.example:5432/postgres?sslmode=disable", "postgres://u:p@db.example:5432/t_1?sslmode=disable"},
		{"postgresql://u@127.0.0.1", "postgresql://u@127.0.0.1/t_1"},
		{"host=127.0.0.1 user=u dbname=postgres", "host=127.0.0.1 user=u dbname=postgres dbname=t_1"},
	} {
		got, err := WithDatabase(tt.in, "t_1")
		if err != nil || got != tt.want {
			t.Errorf("WithDatabase(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil || cfg.Database != "t_1" {
			t.Errorf("%q parses to database %q, %v", got, cfg.Database, err)
		}
	}
	if _, err := WithDatabase("postgres://u:secret@[bad", "t_1"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: %v", err)
	}
}

func TestNewDatabaseOutsideRunFails(t *testing.T) {
	if os.Getenv(EnvDSN) != "" {
		return // an external server needs no stopping
	}
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }()
		New().NewDatabase(ft)
	}()
	if !strings.Contains(ft.msg, "TestMain") {
		t.Errorf("NewDatabase without Run: %q", ft.msg)
	}
}

// fakeT records a Fatal instead of ending the test.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatal(args ...any) {
	for _, a := range args {
		f.msg += a.(string)
	}
	panic("fatal")
}

func FuzzWithDatabase(f *testing.F) {
	for _, seed := range []string{
		"postgres://u:p@db.example:5432/postgres?sslmode=disable",
		"postgresql://u@127.0.0.1",
		"host=127.0.0.1 user=u dbname=postgres",
		"postgres://u@%zz",
		"host='a b' dbname='x y'",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		got, err := WithDatabase(dsn, "t_9")
		if err != nil {
			return
		}
		if cfg, err := pgx.ParseConfig(got); err != nil || cfg.Database != "t_9" {
			t.Errorf("WithDatabase(%q) = %q, which does not parse to database t_9: %v", dsn, got, err)
		}
	})
}
