package graph

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"unicode/utf8"
)

// Graph item ids are opaque. Ours are URL-safe base64 (with padding, like Exchange's "AAMkAD…=" ids) of
// a three-byte prefix (so that every id starts with "AAMk", as Exchange's do), a kind byte and the
// fields below. A message id names (mailbox, folder, UIDVALIDITY, UID): moving a message gives it a new
// id, exactly as Graph's move does, and a folder deleted and re-created (new UIDVALIDITY) invalidates
// the old ids.

var idPrefix = []byte{0x00, 0x03, 0x24}

const (
	kindMessage byte = 'M'
	kindFolder  byte = 'F'
	kindRoot    byte = 'R'
)

var idEncoding = base64.URLEncoding.Strict()

// errBadID is returned for ids that are not ours (Graph: 400 ErrorInvalidIdMalformed).
var errBadID = errors.New("graph: malformed id")

// itemID is a decoded id.
type itemID struct {
	kind     byte
	mailbox  string // lower-cased address
	folder   string // store folder name ("" for the root)
	validity uint32
	uid      uint32
}

func (id itemID) String() string {
	b := append([]byte{}, idPrefix...)
	b = append(b, id.kind)
	b = appendString(b, strings.ToLower(id.mailbox))
	switch id.kind {
	case kindFolder:
		b = appendString(b, id.folder)
		b = binary.BigEndian.AppendUint32(b, id.validity)
	case kindMessage:
		b = appendString(b, id.folder)
		b = binary.BigEndian.AppendUint32(b, id.validity)
		b = binary.BigEndian.AppendUint32(b, id.uid)
	}
	return idEncoding.EncodeToString(b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func messageID(mailbox, folder string, validity, uid uint32) string {
	return itemID{kind: kindMessage, mailbox: mailbox, folder: folder, validity: validity, uid: uid}.String()
}

func folderID(mailbox, folder string, validity uint32) string {
	return itemID{kind: kindFolder, mailbox: mailbox, folder: folder, validity: validity}.String()
}

func rootID(mailbox string) string { return itemID{kind: kindRoot, mailbox: mailbox}.String() }

// parseID decodes an id made by itemID.String; anything else (including non-canonical encodings) is
// errBadID.
func parseID(s string) (itemID, error) {
	if len(s) > 4096 {
		return itemID{}, errBadID
	}
	b, err := idEncoding.DecodeString(s)
	if err != nil || !bytes.HasPrefix(b, idPrefix) || len(b) < len(idPrefix)+1 {
		return itemID{}, errBadID
	}
	b = b[len(idPrefix):]
	id := itemID{kind: b[0]}
	b = b[1:]
	var ok bool
	if id.mailbox, b, ok = readString(b); !ok || id.mailbox == "" {
		return itemID{}, errBadID
	}
	switch id.kind {
	case kindRoot:
	case kindFolder, kindMessage:
		if id.folder, b, ok = readString(b); !ok || id.folder == "" {
			return itemID{}, errBadID
		}
		n := 4
		if id.kind == kindMessage {
			n = 8
		}
		if len(b) < n {
			return itemID{}, errBadID
		}
		id.validity = binary.BigEndian.Uint32(b)
		if id.kind == kindMessage {
			id.uid = binary.BigEndian.Uint32(b[4:])
		}
		b = b[n:]
	default:
		return itemID{}, errBadID
	}
	if len(b) != 0 || id.String() != s {
		return itemID{}, errBadID
	}
	return id, nil
}

func readString(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, false
	}
	s := string(b[k : k+int(n)])
	if !utf8.ValidString(s) {
		return "", nil, false
	}
	return s, b[k+int(n):], true
}
