package sqlite

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"inkorg/internal/secrets"
	"inkorg/internal/store"
	"inkorg/internal/store/storetest"
)

func keyFunc(t testing.TB, path string) store.KeyFunc {
	return func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(path, true)
		return s, err
	}
}

func openAt(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: filepath.Join(dir, "inkorg.db"), Key: keyFunc(t, filepath.Join(dir, "inkorg.key"))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openAt(t, t.TempDir()) })
}

// encodings are the ways a secret could show up in a file.
func encodings(s string) [][]byte {
	u16 := utf16.Encode([]rune(s))
	le := make([]byte, 0, 2*len(u16))
	for _, r := range u16 {
		le = append(le, byte(r), byte(r>>8))
	}
	return [][]byte{
		[]byte(s), le,
		[]byte(base64.StdEncoding.EncodeToString([]byte(s))), []byte(base64.RawStdEncoding.EncodeToString([]byte(s))),
		[]byte(base64.URLEncoding.EncodeToString([]byte(s))), []byte(base64.RawURLEncoding.EncodeToString([]byte(s))),
		[]byte(hex.EncodeToString([]byte(s))), bytes.ToUpper([]byte(hex.EncodeToString([]byte(s)))),
	}
}

func TestNoSecretInTheFiles(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	storetest.Fill(t, s)
	scan := func(when string) {
		files, _ := filepath.Glob(filepath.Join(dir, "inkorg.db*"))
		segs, _ := filepath.Glob(filepath.Join(dir, "inkorg.db-raw", "*.seg"))
		if len(files) < 2 && when == "open" {
			t.Fatalf("expected the main file and the WAL, found %v", files)
		}
		files = append(files, segs...)
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.IsDir() {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, sec := range storetest.Secrets {
				for _, enc := range encodings(sec) {
					if bytes.Contains(b, enc) {
						t.Errorf("%s (%s): a secret is in the file as %q", filepath.Base(f), when, enc)
					}
				}
			}
		}
	}
	scan("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("closed")
	// The scan itself can fail: the non-secret values are there.
	b, _ := os.ReadFile(filepath.Join(dir, "inkorg.db"))
	if !bytes.Contains(b, []byte("m2m@contoso.example")) {
		t.Fatal("the scan reads the wrong file: the account address is not in it")
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	storetest.Fill(t, s)
	v1, err := s.SchemaVersion(context.Background())
	if err != nil || v1 < 1 {
		t.Fatalf("schema version %d, %v", v1, err)
	}
	s.Close()
	s = openAt(t, dir)
	defer s.Close()
	v2, _ := s.SchemaVersion(context.Background())
	sys, err := s.System(context.Background())
	if err != nil || v2 != v1 || sys.ClientSecret.Reveal() != storetest.Secrets[0] {
		t.Fatalf("after reopen: version %d→%d, %v, secret %s", v1, v2, err, sys.ClientSecret)
	}
}

func TestWrongKeyIsNamed(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir)
	storetest.Fill(t, s)
	s.Close()
	other := filepath.Join(t.TempDir(), "other.key")
	_, err := Open(context.Background(), Options{Path: filepath.Join(dir, "inkorg.db"), Key: keyFunc(t, other)})
	var wk *store.WrongKeyError
	if !errors.As(err, &wk) || wk.StoredKeyID == wk.LoadedKeyID {
		t.Fatalf("opening with another key: %v", err)
	}
	// The key function learns which key the database wants.
	var asked string
	_, err = Open(context.Background(), Options{Path: filepath.Join(dir, "inkorg.db"), Key: func(id string) (*secrets.Sealer, error) {
		asked = id
		return nil, errors.New("no key here")
	}})
	if err == nil || asked == "" {
		t.Fatalf("key function asked for %q, err %v", asked, err)
	}
}
