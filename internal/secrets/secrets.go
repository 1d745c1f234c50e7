// Package secrets seals client secrets and passwords at rest with AES-256-GCM.
//
// The key lives in a file of its own (INKORG_KEY_FILE, or inkorg.key beside the database), created with
// mode 0600 on first use. Each sealed value carries the key's id, so a database opened with the wrong key
// file is named as such instead of failing as "corrupt", and is bound to the field it belongs to (the
// GCM additional data), so a sealed value copied into another field does not open.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// KeySize is the key length in bytes (AES-256).
const KeySize = 32

const (
	version   = 1
	idSize    = 8
	nonceSize = 12
	header    = 1 + idSize + nonceSize
	filePfx   = "inkorg-key-v1:"
)

// ErrWrongKey means a value was sealed with another key than the one loaded.
var ErrWrongKey = errors.New("secrets: sealed with a different key")

// ErrCorrupt means a sealed value is damaged or was moved to another field.
var ErrCorrupt = errors.New("secrets: sealed value is damaged or belongs to another field")

// Sealer seals and opens values with one key. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
	id   [idSize]byte
	rand func([]byte) (int, error)
}

// NewSealer makes a Sealer from a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	s := &Sealer{aead: aead, rand: rand.Read}
	sum := sha256.Sum256(append([]byte("inkorg key id\x00"), key...))
	copy(s.id[:], sum[:])
	return s, nil
}

// KeyID names the key (a hash of it, not the key): stored beside the sealed data so that a wrong key
// file is recognised.
func (s *Sealer) KeyID() string { return hex.EncodeToString(s.id[:]) }

// Seal encrypts plain for the field named by context (e.g. "system.clientSecret").
func (s *Sealer) Seal(plain []byte, context string) ([]byte, error) {
	out := make([]byte, header, header+len(plain)+s.aead.Overhead())
	out[0] = version
	copy(out[1:], s.id[:])
	if _, err := s.rand(out[1+idSize : header]); err != nil {
		return nil, fmt.Errorf("secrets: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1+idSize:header], plain, []byte(context)), nil
}

// Open decrypts a value sealed for the same context. It returns ErrWrongKey or ErrCorrupt (wrapped)
// when it cannot.
func (s *Sealer) Open(sealed []byte, context string) ([]byte, error) {
	if len(sealed) < header+s.aead.Overhead() || sealed[0] != version {
		return nil, fmt.Errorf("%s: %w", context, ErrCorrupt)
	}
	if !bytes.Equal(sealed[1:1+idSize], s.id[:]) {
		return nil, fmt.Errorf("%s: %w (key id %x, the loaded key is %s)", context, ErrWrongKey, sealed[1:1+idSize], s.KeyID())
	}
	plain, err := s.aead.Open(nil, sealed[1+idSize:header], sealed[header:], []byte(context))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", context, ErrCorrupt)
	}
	return plain, nil
}

// KeyFileError says what is wrong with a key file and what to do.
type KeyFileError struct {
	Path   string
	Reason string
	Err    error
}

func (e *KeyFileError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("key file %s: %s: %v", e.Path, e.Reason, e.Err)
	}
	return fmt.Sprintf("key file %s: %s", e.Path, e.Reason)
}

func (e *KeyFileError) Unwrap() error { return e.Err }

// LoadKeyFile reads a key file. It refuses a file that others than its owner can read.
func LoadKeyFile(path string) (*Sealer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &KeyFileError{Path: path, Reason: "cannot read it", Err: err}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &KeyFileError{Path: path, Reason: fmt.Sprintf("it is readable by others (mode %v); run: chmod 600 %s", fi.Mode().Perm(), path)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &KeyFileError{Path: path, Reason: "cannot read it", Err: err}
	}
	text := strings.TrimSpace(string(b))
	if !strings.HasPrefix(text, filePfx) {
		return nil, &KeyFileError{Path: path, Reason: "it is not an inkorg key file"}
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(text, filePfx))
	if err != nil || len(key) != KeySize {
		return nil, &KeyFileError{Path: path, Reason: "the key in it is damaged"}
	}
	return NewSealer(key)
}

// CreateKeyFile writes a new random key to path with mode 0600. It never overwrites a file.
func CreateKeyFile(path string) (*Sealer, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets: new key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, &KeyFileError{Path: path, Reason: "cannot create it", Err: err}
	}
	_, werr := f.WriteString(filePfx + base64.StdEncoding.EncodeToString(key) + "\n")
	serr := f.Sync()
	if cerr := f.Close(); werr == nil && serr == nil {
		werr = cerr
	}
	if werr != nil || serr != nil {
		os.Remove(path)
		return nil, &KeyFileError{Path: path, Reason: "cannot write it", Err: errors.Join(werr, serr)}
	}
	return NewSealer(key)
}

// LoadOrCreateKeyFile loads the key file, or creates it when it does not exist and create is true.
// It reports whether it created one.
func LoadOrCreateKeyFile(path string, create bool) (*Sealer, bool, error) {
	s, err := LoadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !create {
		return s, false, err
	}
	s, err = CreateKeyFile(path)
	return s, err == nil, err
}
