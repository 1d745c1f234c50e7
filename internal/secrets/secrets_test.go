package secrets

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	s, err := NewSealer(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("Qx48Q~client-secret-value")
	a, err := s.Seal(plain, "system.clientSecret")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Seal(plain, "system.clientSecret")
	if bytes.Equal(a, b) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	if bytes.Contains(a, plain) {
		t.Error("sealed value contains the plain text")
	}
	got, err := s.Open(a, "system.clientSecret")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(a, "users[ANNA].exchangePassword"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("moved to another field: %v", err)
	}
	a[len(a)-1] ^= 1
	if _, err := s.Open(a, "system.clientSecret"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped bit: %v", err)
	}
	if _, err := s.Open([]byte{1, 2}, "x"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short: %v", err)
	}
	other, _ := NewSealer(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(b, "system.clientSecret"); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), other.KeyID()) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inkorg.key")
	if _, _, err := LoadOrCreateKeyFile(path, false); err == nil {
		t.Fatal("missing key file loaded without create")
	}
	s1, created, err := LoadOrCreateKeyFile(path, true)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	s2, created, err := LoadOrCreateKeyFile(path, true)
	if err != nil || created || s2.KeyID() != s1.KeyID() {
		t.Fatalf("reload: %v %v", created, err)
	}
	if _, err := CreateKeyFile(path); err == nil {
		t.Error("CreateKeyFile overwrote a key")
	}
	os.Chmod(path, 0o644)
	var kfe *KeyFileError
	if _, err := LoadKeyFile(path); !errors.As(err, &kfe) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("hello"), 0o600)
	if _, err := LoadKeyFile(bad); err == nil || !strings.Contains(err.Error(), "not an inkorg key file") {
		t.Errorf("bad key: %v", err)
	}
	os.WriteFile(bad, []byte(filePfx+"AAAA\n"), 0o600)
	if _, err := LoadKeyFile(bad); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged key: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	s, _ := NewSealer(bytes.Repeat([]byte{7}, KeySize))
	good, _ := s.Seal([]byte("x"), "c")
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := s.Open(b, "c"); err == nil && !bytes.Equal(b, good) && string(p) != "x" {
			t.Fatalf("opened forged input")
		}
	})
}
