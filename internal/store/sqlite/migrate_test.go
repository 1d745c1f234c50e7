package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"inkorg/internal/store/storetest"
)

// TestUpgradeToMovedWatermark: a database of schema 7, whose moves were recorded per message, opens
// with each folder's watermark below its first message not moved, and the same pending moves.
func TestUpgradeToMovedWatermark(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, "inkorg.db"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v, name := range names[:7] {
		body, err := migrations.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			t.Fatal(name, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (?, ?, '2026-11-01T00:00:00Z')`, v+1, strings.TrimPrefix(name, "migrations/")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(storetest.BeforeMovedWatermark); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := openAt(t, dir)
	defer s.Close()
	if v, err := s.SchemaVersion(context.Background()); err != nil || v != len(names) {
		t.Errorf("schema version %d, %v; want %d", v, err, len(names))
	}
	storetest.CheckMovedWatermark(t, s)
}
