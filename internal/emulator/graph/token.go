package graph

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// A delta round's links carry a $skiptoken (the next page of a round in progress) or a $deltatoken
// (the state at the end of a round). Both are opaque to clients: URL-safe unpadded base64 of
//
//	version (1) | kind ('S' skip, 'D' delta) | epoch (4 bytes) | uvarint state id | uvarint offset (skip only)
//
// The epoch is random per Handler, so that a token from an earlier emulator run is "not found" (410)
// rather than silently naming another run's state. Only canonical encodings parse: re-formatting a
// parsed token gives back the same string.

const tokenVersion = 1

// Token kinds.
const (
	tokenSkip  byte = 'S'
	tokenDelta byte = 'D'
)

var tokenEncoding = base64.RawURLEncoding.Strict()

// errBadToken is a token that is not one of ours.
var errBadToken = errors.New("graph: malformed sync token")

// syncToken is a decoded $skiptoken or $deltatoken.
type syncToken struct {
	kind   byte
	epoch  [4]byte
	state  uint64
	offset uint64 // skip tokens only
}

func (t syncToken) String() string {
	b := []byte{tokenVersion, t.kind}
	b = append(b, t.epoch[:]...)
	b = binary.AppendUvarint(b, t.state)
	if t.kind == tokenSkip {
		b = binary.AppendUvarint(b, t.offset)
	}
	return tokenEncoding.EncodeToString(b)
}

// parseSyncToken decodes a token made by syncToken.String.
func parseSyncToken(s string) (syncToken, error) {
	if s == "" || len(s) > 64 {
		return syncToken{}, errBadToken
	}
	b, err := tokenEncoding.DecodeString(s)
	if err != nil || len(b) < 2+4+1 || b[0] != tokenVersion {
		return syncToken{}, errBadToken
	}
	t := syncToken{kind: b[1]}
	if t.kind != tokenSkip && t.kind != tokenDelta {
		return syncToken{}, errBadToken
	}
	copy(t.epoch[:], b[2:6])
	b = b[6:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return syncToken{}, errBadToken
	}
	t.state, b = n, b[k:]
	if t.kind == tokenSkip {
		if n, k = binary.Uvarint(b); k <= 0 {
			return syncToken{}, errBadToken
		}
		t.offset, b = n, b[k:]
	}
	if len(b) != 0 || t.String() != s {
		return syncToken{}, errBadToken
	}
	return t, nil
}
