package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
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
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(qSchemaMigrations); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > 7 {
			break
		}
		if _, err := db.Exec(m.Body); err != nil {
			t.Fatal(m.Name, err)
		}
		if _, err := db.Exec(`INSERT INTO schema_migrations VALUES (?, ?, '2026-11-01T00:00:00Z')`, m.Version, m.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(storetest.BeforeMovedWatermark); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := openAt(t, dir)
	defer s.Close()
	if v, err := s.SchemaVersion(context.Background()); err != nil || v != ms[len(ms)-1].Version {
		t.Errorf("schema version %d, %v; want %d", v, err, ms[len(ms)-1].Version)
	}
	storetest.CheckMovedWatermark(t, s)
}
