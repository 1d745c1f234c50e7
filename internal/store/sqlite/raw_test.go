package sqlite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/storetest"
)

func rawBatch(validity, last uint32, ms ...store.NewMessage) store.Batch {
	return store.Batch{AccountID: 1, Account: "acct1@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX", UIDValidity: validity, LastUID: last, Messages: ms}
}

func segSize(t *testing.T, dir string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "inkorg.db-raw", "*.seg"))
	var n int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestRawInSegments: the messages' bytes go to the segment files, once each (not again for a copy in
// the same batch, nor when the folder is read again under a new UIDVALIDITY), not into the database
// files; Raw reads them back.
func TestRawInSegments(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	defer s.Close()
	ctx := context.Background()
	ms := []store.NewMessage{storetest.NewMessage(1, 1, "Processed"), storetest.NewMessage(2, 2, "Processed"), storetest.NewMessage(1, 3, "Processed")}
	got, err := s.CommitBatch(ctx, rawBatch(7, 3, ms...))
	if err != nil {
		t.Fatal(err)
	}
	if !got[2].Duplicate || got[2].ID != got[0].ID {
		t.Fatalf("the copy in the same batch: %+v", got)
	}
	want := int64(len(ms[0].Raw) + len(ms[1].Raw))
	if n := segSize(t, dir); n != want {
		t.Errorf("segments hold %d bytes, want %d (each message once)", n, want)
	}
	for i, c := range got[:2] {
		b, err := s.Raw(ctx, c.ID)
		if err != nil || !bytes.Equal(b, ms[i].Raw) {
			t.Errorf("message %d read back: %q %v", i, b, err)
		}
	}
	for _, f := range []string{"inkorg.db", "inkorg.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if bytes.Contains(b, []byte("Body 2\r\n")) {
			t.Errorf("%s holds a message's body", f)
		}
	}
	// Renumbered: read again, nothing written again.
	if err := s.ResetCursor(ctx, 1, "INBOX", 8); err != nil {
		t.Fatal(err)
	}
	again, err := s.CommitBatch(ctx, rawBatch(8, 2, storetest.NewMessage(1, 1, "Processed"), storetest.NewMessage(2, 2, "Processed")))
	if err != nil || !again[0].Duplicate || !again[1].Duplicate {
		t.Fatalf("read again: %+v %v", again, err)
	}
	if n := segSize(t, dir); n != want {
		t.Errorf("after reading the folder again the segments hold %d bytes, want still %d", n, want)
	}
	// Kept across a restart.
	s.Close()
	s2 := openAt(t, dir)
	defer s2.Close()
	if b, err := s2.Raw(ctx, got[1].ID); err != nil || !bytes.Equal(b, ms[1].Raw) {
		t.Errorf("after reopening: %q %v", b, err)
	}
	third, err := s2.CommitBatch(ctx, rawBatch(8, 3, storetest.NewMessage(3, 3, "Processed")))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s2.Raw(ctx, third[0].ID); err != nil || !bytes.Equal(b, storetest.RawMessage(3)) {
		t.Errorf("appended after reopening: %q %v", b, err)
	}
}

// TestRawDamaged: bytes changed or lost on disk are reported with ErrRawDamaged and the file, never
// served; a message stored in the database itself (before segments, or in a backup copy) still reads.
func TestRawDamaged(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	defer s.Close()
	ctx := context.Background()
	got, err := s.CommitBatch(ctx, rawBatch(7, 2, storetest.NewMessage(1, 1, ""), storetest.NewMessage(2, 2, "")))
	if err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "inkorg.db-raw", "00000001.seg")
	b, _ := os.ReadFile(seg)
	b[3] ^= 0x20
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Raw(ctx, got[0].ID)
	if !errors.Is(err, store.ErrRawDamaged) || !strings.Contains(err.Error(), "sha256 differs") {
		t.Errorf("a changed byte: %v", err)
	}
	if b, err := s.Raw(ctx, got[1].ID); err != nil || !bytes.Equal(b, storetest.RawMessage(2)) {
		t.Errorf("the other message: %v", err)
	}
	os.Remove(seg)
	_, err = s.Raw(ctx, got[1].ID)
	if !errors.Is(err, store.ErrRawDamaged) || !strings.Contains(err.Error(), seg) {
		t.Errorf("a lost segment: %v", err)
	}
	t.Logf("reported: %v", err)

	legacy := storetest.RawMessage(9)
	if _, err := s.DB().Exec(`INSERT INTO messages (id, account_id, account, type, sha256, size, received_at) VALUES ('m_legacylegacylegacyle', 1, 'a', 'general', 'x', ?, 'now')`, len(legacy)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`INSERT INTO message_raw (id, raw) VALUES ('m_legacylegacylegacyle', ?)`, legacy); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Raw(ctx, "m_legacylegacylegacyle"); err != nil || !bytes.Equal(b, legacy) {
		t.Errorf("a message kept in the database: %q %v", b, err)
	}
	if _, err := s.Raw(ctx, "m_nosuchmessagenosuchm"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no such message: %v", err)
	}
}

// TestEmbedRaw: a VACUUM INTO copy with the segments' bytes embedded stands alone (opened with no
// segment directory, every message reads); a damaged segment fails the copy, naming the message.
func TestEmbedRaw(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	defer s.Close()
	ctx := context.Background()
	var ms []store.NewMessage
	for i := range 450 {
		ms = append(ms, storetest.NewMessage(i, uint32(i+1), ""))
	}
	got, err := s.CommitBatch(ctx, rawBatch(7, 450, ms...))
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if _, err := s.DB().Exec("VACUUM INTO ?", cp); err != nil {
		t.Fatal(err)
	}
	var calls []int64
	if err := s.EmbedRaw(ctx, cp, func(n int64) { calls = append(calls, n) }); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 {
		t.Errorf("progress told %v, want three batches", calls)
	}
	c, err := Open(ctx, Options{Path: cp, RawDir: filepath.Join(t.TempDir(), "none"), Key: keyFunc(t, filepath.Join(dir, "inkorg.key"))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, g := range got {
		if b, err := c.Raw(ctx, g.ID); err != nil || !bytes.Equal(b, ms[i].Raw) {
			t.Fatalf("message %d in the copy: %v", i, err)
		}
	}
	var left int
	c.DB().QueryRow(`SELECT count(*) FROM messages WHERE raw_segment IS NOT NULL`).Scan(&left)
	if left != 0 {
		t.Errorf("%d messages of the copy still refer to segments", left)
	}

	seg := filepath.Join(dir, "inkorg.db-raw", "00000001.seg")
	os.Truncate(seg, 1000)
	cp2 := filepath.Join(t.TempDir(), "copy2.db")
	if _, err := s.DB().Exec("VACUUM INTO ?", cp2); err != nil {
		t.Fatal(err)
	}
	err = s.EmbedRaw(ctx, cp2, nil)
	named := false
	for _, g := range got[8:11] { // the message that crosses byte 1000 (about 105 bytes each)
		named = named || err != nil && strings.Contains(err.Error(), "message "+g.ID+":")
	}
	if !errors.Is(err, store.ErrRawDamaged) || !named || !strings.Contains(err.Error(), seg) {
		t.Errorf("a damaged segment: %v", err)
	}
	t.Logf("reported: %v", err)
}
