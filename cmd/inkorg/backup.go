package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"inkorg/internal/store/sqlite"
)

const backupUsage = `usage: inkorg backup --to FILE [--db …]

Writes a consistent copy of the SQLite database to FILE while "inkorg serve" keeps running (SQLite's
VACUUM INTO: one read transaction, so the copy is the database as of one instant, compacted). The
messages' bytes, which the service keeps in segment files beside the database (DATABASE-raw/), are
copied into it, each checked against its SHA-256: FILE is one file that holds everything. The copy
is checked (integrity_check) before it gets its name; an existing FILE is never overwritten. Progress
is shown on standard error for large databases.

The key file (inkorg.key beside the database, or $INKORG_KEY_FILE) is not in the copy: back it up once,
separately and safely. Without it the copy's secrets cannot be opened. To restore: stop the service,
copy FILE over the database, keep the key file, start the service (docs/operations.md).
With PostgreSQL, use pg_dump instead.

Example:
  inkorg backup --db /var/lib/inkorg/inkorg.db --to /var/backups/inkorg-$(date +%F).db
`

// backupProgressAfter is how long a backup runs silently before it shows progress.
const backupProgressAfter = time.Second

func cmdBackup(e *env, args []string) error {
	f := newFlags(e, "backup", backupUsage)
	dbf := dbFlag(f)
	to := f.String("to", "", "the file to write (required; must not exist)")
	if err := f.parse(args); err != nil {
		return err
	}
	if *to == "" {
		return f.usageErr("--to FILE is required")
	}
	db, err := resolveDB(e, *dbf)
	if err != nil {
		return err
	}
	if db.postgresDSN != "" {
		return errors.New("backup copies a SQLite database; for PostgreSQL use pg_dump (and keep the key file, $INKORG_KEY_FILE)")
	}
	if same, _ := sameFile(db.sqlitePath, *to); same {
		return fmt.Errorf("--to %s is the database itself", *to)
	}
	if _, err := os.Lstat(*to); err == nil {
		return fmt.Errorf("%s already exists: backup never overwrites; choose a new name or remove it first", *to)
	}
	// Opening through the store checks that the key file opens the database, as a restore will need.
	st, err := openStore(e, *dbf, true)
	if err != nil {
		return err
	}
	defer st.Close()
	sq, ok := st.(*sqlite.Store)
	if !ok {
		return errors.New("backup copies a SQLite database")
	}
	start := time.Now()
	size, err := backupSQLite(e, sq, *to)
	if err != nil {
		return err
	}
	kp, _ := keyPath(e, db)
	fmt.Fprintf(e.stdout, "Backed up %s to %s (%s, %s).\n", db.sqlitePath, *to, mib(size), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "The key file %s is not in the backup: keep a copy of it too (it does not change).\n", kp)
	return nil
}

// sameFile reports whether a and b are the same existing file.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// backupSQLite writes a consistent copy of db to a temporary file beside to, checks it, and links it
// to its name (which fails if to appeared meanwhile). It returns the copy's size.
func backupSQLite(e *env, st *sqlite.Store, to string) (int64, error) {
	db := st.DB()
	var pages, free, pageSize, raw int64
	for q, v := range map[string]*int64{"PRAGMA page_count": &pages, "PRAGMA freelist_count": &free, "PRAGMA page_size": &pageSize,
		"SELECT coalesce(sum(size), 0) FROM messages WHERE raw_segment IS NOT NULL": &raw} {
		if err := db.QueryRowContext(e.ctx, q).Scan(v); err != nil {
			return 0, fmt.Errorf("backup: %s: %w", q, err)
		}
	}
	total := (pages-free)*pageSize + raw
	tmp := filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+fmt.Sprintf(".partial-%d", os.Getpid()))
	os.Remove(tmp) // a leftover of an interrupted backup by this same pid number
	defer os.Remove(tmp)

	done := make(chan error, 1)
	go func() {
		// VACUUM INTO reads in one transaction: the copy is the database as of one instant, even
		// while serve commits batches. The messages' bytes kept in segment files beside the database
		// are then copied into it (segments are only ever appended to: what the copy refers to is
		// there), so that the copy is one file that stands alone.
		if _, err := db.ExecContext(e.ctx, "VACUUM INTO ?", tmp); err != nil {
			done <- fmt.Errorf("copy the database: %w", err)
			return
		}
		if err := st.EmbedRaw(e.ctx, tmp, nil); err != nil {
			done <- fmt.Errorf("copy the messages' bytes from %s: %w", st.RawDir(), err)
			return
		}
		done <- nil
	}()
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	shown := false
wait:
	for {
		select {
		case err := <-done:
			if err != nil {
				return 0, fmt.Errorf("backup: %w", err)
			}
			break wait
		case <-tick.C:
			if time.Since(start) < backupProgressAfter {
				continue
			}
			var n int64
			if fi, err := os.Stat(tmp); err == nil {
				n = fi.Size()
			}
			pct := 0.0
			if total > 0 {
				pct = min(99, 100*float64(n)/float64(total))
			}
			fmt.Fprintf(e.stderr, "backup: %3.0f%% (%s of about %s)\n", pct, mib(n), mib(total))
			shown = true
		}
	}
	if shown {
		fmt.Fprintf(e.stderr, "backup: 100%%, checking the copy …\n")
	}
	// The copy holds the mail and the sealed secrets: readable by its owner only.
	if err := os.Chmod(tmp, 0o600); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := checkCopy(e.ctx, tmp); err != nil {
		return 0, err
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if err := os.Link(tmp, to); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("%s already exists: backup never overwrites", to)
		}
		return 0, fmt.Errorf("backup: name the copy %s: %w", to, err)
	}
	if d, err := os.Open(filepath.Dir(to)); err == nil {
		d.Sync() // the new name survives a power cut
		d.Close()
	}
	return fi.Size(), nil
}

// checkCopy runs SQLite's integrity check on the copy and syncs it to disk.
func checkCopy(ctx context.Context, path string) error {
	c, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("backup: open the copy: %w", err)
	}
	defer c.Close()
	var res []string
	rows, err := c.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("backup: check the copy: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("backup: check the copy: %w", err)
		}
		res = append(res, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("backup: check the copy: %w", err)
	}
	if len(res) != 1 || res[0] != "ok" {
		return fmt.Errorf("backup: the copy fails SQLite's integrity check: %s", strings.Join(res, "; "))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: sync the copy: %w", err)
	}
	return nil
}
