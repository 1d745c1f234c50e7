package store

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewMessageID makes a message's stable id: "m_" and 20 random base32 characters (100 bits).
func NewMessageID() string {
	b := make([]byte, 13)
	rand.Read(b)
	return "m_" + idEncoding.EncodeToString(b)[:20]
}

// ValidMessageID reports whether s has the shape of a message id, so a malformed id in a URL is
// refused before the database is asked.
func ValidMessageID(s string) bool {
	if len(s) != 22 || !strings.HasPrefix(s, "m_") {
		return false
	}
	for _, c := range s[2:] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// CheckBatch refuses a malformed batch before anything is written.
func CheckBatch(b Batch) error {
	if b.AccountID == 0 || b.Folder == "" || b.UIDValidity == 0 {
		return ErrBatch
	}
	for _, m := range b.Messages {
		if m.UID == 0 || m.UID > b.LastUID || m.Meta.SHA256 == "" {
			return ErrBatch
		}
	}
	return nil
}
