package sqlite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

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
			if enc := storetest.FindSecret(b); enc != nil {
				t.Errorf("%s (%s): a secret is in the file as %q", filepath.Base(f), when, enc)
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
