package store

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// sortable is base32 in ASCII order: ids made later sort after ids made earlier.
const sortable = "234567abcdefghijklmnopqrstuvwxyz"

// NewMessageID makes a message's stable id: "m_", 9 characters of the time in milliseconds (in an
// alphabet whose text order is their numeric order) and 11 random base32 characters (55 bits). Ids
// made one after the other sort together, so the database adds them to the end of its index instead of
// rewriting pages all over it (at a million messages, random ids made each batch's commit write a
// page per message).
func NewMessageID(now time.Time) string {
	var b [22]byte
	b[0], b[1] = 'm', '_'
	ms := uint64(now.UnixMilli())
	for i := 10; i >= 2; i-- {
		b[i] = sortable[ms&31]
		ms >>= 5
	}
	var r [7]byte
	rand.Read(r[:])
	copy(b[11:], idEncoding.EncodeToString(r[:])[:11])
	return string(b[:])
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
