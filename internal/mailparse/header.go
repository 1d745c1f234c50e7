package mailparse

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

// header is the top-level header as read: its fields in order, each key canonical (canonicalKey).
// A slice rather than go-message's textproto.Header, which canonicalises every key again on Add and
// on each Get and keeps a map: a fifth of the parse of a small message. A part's header is
// go-message's (the multipart reader's); the walk reads either through fieldGetter.
type header struct{ fields []field }

type field struct{ key, value string }

// fieldGetter is what the walk reads of a header: header, or go-message's *textproto.Header.
type fieldGetter interface{ Get(key string) string }

// Get is the value of the last field named key (canonical), "" when none: as textproto.Header.Get for
// fields added in order. (Only a repeatable field, which the parser does not read, can occur twice.)
func (h *header) Get(key string) string {
	if i := h.last(key); i >= 0 {
		return h.fields[i].value
	}
	return ""
}

func (h *header) has(key string) bool { return h.last(key) >= 0 }

// last is the index of the last field named key, -1 when none.
func (h *header) last(key string) int {
	for i := len(h.fields) - 1; i >= 0; i-- {
		if h.fields[i].key == key {
			return i
		}
	}
	return -1
}

// one is a go-message header of a single field, for its parsers of field values (msg-id lists,
// address lists).
func one(key, value string) mail.Header {
	var h mail.Header
	h.Set(key, value)
	return h
}

// singleFields may appear once (RFC 5322 §3.6, RFC 2045); for a repeated one the first is kept.
func singleField(key string) bool {
	switch key {
	case "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-Id", "In-Reply-To", "References",
		"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Mime-Version":
		return true
	}
	return false
}

// readHeader reads the top-level header leniently: an mbox "From " line is skipped, a continuation
// line without a field is ignored, 8-bit values that are not UTF-8 are read as windows-1252, and a line
// that is not a header field ends the header and starts the body (returned as rest). It fails only
// when there is no header field at all.
func (p *parser) readHeader(br source) (h header, rest []byte, err error) {
	budget := p.lim.MaxHeaderBytes
	var key string
	var val []byte
	nfields := 0
	// A message in memory stays put while it is read: a value can be a slice of it until a
	// continuation line is appended (which copies it).
	_, inPlace := br.(*byteSource)
	h.fields = make([]field, 0, 16) // a message's usual count: one allocation
	flush := func() {
		if key == "" {
			return
		}
		v := unfold(val)
		if !utf8.ValidString(v) {
			v = p.toUTF8(v, "header "+key)
		}
		switch {
		case singleField(key) && h.has(key):
			p.problemf("header %s: repeated; the first is kept", key)
		default:
			h.fields = append(h.fields, field{key, v})
		}
		nfields++
		key, val = "", nil
	}
	for first := true; ; first = false {
		line, over, rerr := readLine(br, &budget)
		if over {
			flush()
			if nfields == 0 {
				return h, nil, ErrNotAMessage
			}
			p.problemf("header: longer than %d bytes; the rest is read as body", p.lim.MaxHeaderBytes)
			return h, line, nil
		}
		if len(line) == 0 && rerr != nil { // end of input: a header without body
			flush()
			if nfields == 0 {
				return h, nil, ErrNotAMessage
			}
			p.problemf("header: not ended by an empty line")
			return h, nil, nil
		}
		content := trimEOL(line)
		if len(content) == 0 {
			flush()
			if nfields == 0 {
				return h, nil, ErrNotAMessage
			}
			return h, nil, nil
		}
		if first && bytes.HasPrefix(line, []byte("From ")) {
			p.problemf("header: leading mbox \"From \" line skipped")
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key == "" {
				p.problemf("header: continuation line without a field ignored")
				continue
			}
			val = append(val[:len(val):len(val)], line...)
			continue
		}
		i := bytes.IndexByte(content, ':')
		if k := trimBlanks(content[:max(i, 0)]); i > 0 && validKey(k) {
			flush()
			key = canonicalKey(k)
			if inPlace {
				val = line[i+1:]
			} else {
				val = append([]byte(nil), line[i+1:]...)
			}
			continue
		}
		flush()
		if nfields == 0 {
			return h, nil, ErrNotAMessage
		}
		p.problemf("header: malformed line %q ends the header; it is read as body", clip(string(content), 60))
		return h, bytes.Clone(line), nil
	}
}

// trimEOL is line without the CR and LF characters at its end (bytes.TrimRight(line, "\r\n")).
func trimEOL(line []byte) []byte {
	n := len(line)
	for n > 0 && (line[n-1] == '\n' || line[n-1] == '\r') {
		n--
	}
	return line[:n]
}

// trimBlanks is k without the spaces and tabs at its end (bytes.TrimRight(k, " \t")).
func trimBlanks(k []byte) []byte {
	n := len(k)
	for n > 0 && (k[n-1] == ' ' || k[n-1] == '\t') {
		n--
	}
	return k[:n]
}

// readLine returns the next line including its end of line; over reports that the line goes beyond
// *budget bytes (line then holds what was read of it: up to its end, or to the end of the read that
// crossed the budget; nothing read is dropped). A line read in one piece is returned in place (valid
// until the next read).
func readLine(br source, budget *int64) (line []byte, over bool, err error) {
	for {
		frag, e := br.ReadSlice('\n')
		if line == nil && e != bufio.ErrBufferFull && int64(len(frag)) <= *budget {
			*budget -= int64(len(frag))
			return frag, false, e
		}
		line = append(line, frag...)
		if int64(len(frag)) > *budget {
			*budget = 0
			return line, true, nil
		}
		*budget -= int64(len(frag))
		if e == bufio.ErrBufferFull {
			continue
		}
		return line, false, e
	}
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey(string(k)), without making a string for the
// usual spellings of the usual fields.
func canonicalKey(k []byte) string {
	switch string(k) { // no allocation: the compiler compares in place
	case "From":
		return "From"
	case "To":
		return "To"
	case "Cc":
		return "Cc"
	case "Subject":
		return "Subject"
	case "Date":
		return "Date"
	case "Message-ID", "Message-Id":
		return "Message-Id"
	case "MIME-Version", "Mime-Version":
		return "Mime-Version"
	case "Content-Type":
		return "Content-Type"
	case "Content-Transfer-Encoding":
		return "Content-Transfer-Encoding"
	case "Received":
		return "Received"
	case "Return-Path":
		return "Return-Path"
	case "Reply-To":
		return "Reply-To"
	case "In-Reply-To":
		return "In-Reply-To"
	case "References":
		return "References"
	}
	return textproto.CanonicalMIMEHeaderKey(string(k))
}

func validKey(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// unfold joins the lines of a folded field value with single spaces, as go-message does.
func unfold(v []byte) string {
	if i := bytes.IndexByte(v, '\n'); i < 0 || i == len(v)-1 { // not folded: one string
		return string(bytes.Trim(v, " \t\r\n"))
	}
	var b strings.Builder
	for _, seg := range bytes.Split(v, []byte("\n")) {
		seg = bytes.Trim(seg, " \t\r")
		if len(seg) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.Write(seg)
	}
	return b.String()
}

// headerFields fills the message's header-derived fields from h.
func (p *parser) headerFields(h *header) {
	m := p.msg
	if v := h.Get("Message-Id"); v == "" {
		p.problemf("header Message-ID: missing")
	} else {
		id, ok := plainMsgID(v)
		var err error
		if !ok {
			mh := one("Message-Id", v)
			id, err = mh.MessageID()
		}
		if err != nil || id == "" {
			id = lenientMsgIDs(v)[0]
			p.problemf("header Message-ID: malformed %q", clip(v, 80))
		}
		m.MessageID = id
	}
	if from := p.addresses(h, "From"); len(from) > 0 {
		m.From = from[0]
		if len(from) > 1 {
			p.problemf("header From: %d addresses; the first is used", len(from))
		}
	} else {
		p.problemf("header From: missing")
	}
	m.To = p.addresses(h, "To")
	m.Cc = p.addresses(h, "Cc")
	m.ReplyTo = p.addresses(h, "Reply-To")
	m.Subject = p.decodeText(h.Get("Subject"), "header Subject")
	m.InReplyTo = p.msgIDList(h, "In-Reply-To")
	m.References = p.msgIDList(h, "References")

	switch v := h.Get("Date"); {
	case v == "":
		p.problemf("header Date: missing")
	default:
		t, err := parseDate(v)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, strings.TrimSpace(v)); err == nil {
				p.problemf("header Date: %q is not RFC 5322; read as RFC 3339", clip(v, 80))
			}
		}
		if err != nil {
			p.problemf("header Date: unparseable %q", clip(v, 80))
			break
		}
		m.Date = t
	}
}

// addresses parses an address list; a malformed one is salvaged piece by piece.
func (p *parser) addresses(h *header, key string) []Address {
	v := h.Get(key)
	if v == "" {
		return nil
	}
	if list, ok := plainAddresses(v); ok {
		return list
	}
	mh := one(key, v)
	list, err := mh.AddressList(key)
	if err == nil {
		out := make([]Address, 0, len(list))
		for _, a := range list {
			out = append(out, Address{Name: a.Name, Address: a.Address})
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	p.problemf("header %s: malformed address list %q", key, clip(v, 120))
	var out []Address
	for _, piece := range strings.Split(v, ",") {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		if a, err := mail.ParseAddress(piece); err == nil {
			out = append(out, Address{Name: a.Name, Address: a.Address})
			continue
		}
		var a Address
		if i, j := strings.LastIndexByte(piece, '<'), strings.LastIndexByte(piece, '>'); i >= 0 && j > i {
			a.Address = strings.TrimSpace(piece[i+1 : j])
			a.Name = p.decodeText(strings.Trim(strings.TrimSpace(piece[:i]), `"`), "header "+key)
		} else if strings.Contains(piece, "@") {
			for _, f := range strings.Fields(piece) {
				if strings.Contains(f, "@") {
					a.Address = strings.Trim(f, `<>()"`)
					break
				}
			}
		} else {
			a.Name = p.decodeText(piece, "header "+key)
		}
		out = append(out, a)
	}
	return out
}

// plainAddresses reads the common, simple form of an address list without the full RFC 5322 parser:
// addresses "local@domain" or "Display Name <local@domain>", separated by "," or ", ", where every
// word and both halves of the address are atoms of printable ASCII (dots only inside the address's
// halves and names). Anything else (quotes, comments, encoded words, groups, other blanks, 8-bit)
// gives ok false, and the caller parses the value fully; when ok, the result is the full parser's
// (FuzzPlainAddresses).
func plainAddresses(v string) (list []Address, ok bool) {
	if strings.Contains(v, "=?") {
		return nil, false
	}
	for {
		var a Address
		if lt := strings.IndexByte(v, '<'); lt >= 0 && (strings.IndexByte(v, ',') < 0 || lt < strings.IndexByte(v, ',')) {
			if lt < 2 || v[lt-1] != ' ' {
				return nil, false
			}
			name := v[:lt-1]
			for w := range strings.SplitSeq(name, " ") {
				if !plainAtom(w, true) {
					return nil, false
				}
			}
			gt := strings.IndexByte(v, '>')
			if gt < lt {
				return nil, false
			}
			a = Address{Name: name, Address: v[lt+1 : gt]}
			v = v[gt+1:]
		} else {
			end := strings.IndexByte(v, ',')
			if end < 0 {
				end = len(v)
			}
			a.Address, v = v[:end], v[end:]
		}
		local, domain, found := strings.Cut(a.Address, "@")
		if !found || !plainAtom(local, false) || !plainAtom(domain, false) {
			return nil, false
		}
		list = append(list, a)
		if v == "" {
			return list, true
		}
		if v[0] != ',' {
			return nil, false
		}
		v = strings.TrimPrefix(v[1:], " ")
	}
}

// plainAtom: s is a non-empty run of RFC 5322 atext in printable ASCII, with dots only between
// characters (not first, not last, not two in a row); in a name (display-name word), dots anywhere.
func plainAtom(s string, name bool) bool {
	if s == "" || (!name && (s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, ".."))) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`()<>[]:;@\,"`, c) >= 0 {
			return false
		}
	}
	return true
}

// plainMsgID reads the usual msg-id, "<left@right>" with both halves atoms of printable ASCII (dots
// anywhere, as go-message allows), without go-message's parser (and a header to give it); anything
// else gives ok false, and the caller parses the value fully. When ok, the result is the parser's
// (FuzzPlainMsgID).
func plainMsgID(v string) (id string, ok bool) {
	if len(v) < 5 || v[0] != '<' || v[len(v)-1] != '>' {
		return "", false
	}
	id = v[1 : len(v)-1]
	at := strings.IndexByte(id, '@')
	if at <= 0 || at == len(id)-1 || !plainAtom(id[:at], true) || !plainAtom(id[at+1:], true) {
		return "", false
	}
	return id, true
}

func (p *parser) msgIDList(h *header, key string) []string {
	v := h.Get(key)
	if v == "" {
		return nil
	}
	mh := one(key, v)
	ids, err := mh.MsgIDList(key)
	if err == nil && len(ids) > 0 {
		return ids
	}
	p.problemf("header %s: malformed %q", key, clip(v, 120))
	out := lenientMsgIDs(v)
	if len(out) == 1 && out[0] == "" {
		return nil
	}
	return out
}

// lenientMsgIDs splits a broken msg-id list on blanks and commas and strips the angle brackets; it
// returns at least one (possibly empty) element.
func lenientMsgIDs(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		if f = strings.Trim(f, "<>"); f != "" {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}

// decodeText decodes RFC 2047 encoded words; an unknown charset keeps the raw text (and a Problem).
func (p *parser) decodeText(s, where string) string {
	if s == "" {
		return ""
	}
	s = p.toUTF8(s, where)
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	out, err := dec.DecodeHeader(s)
	if err != nil {
		p.problemf("%s: %v; kept undecoded", where, err)
		return s
	}
	return p.toUTF8(out, where)
}

// toUTF8 returns s unchanged when it is valid UTF-8, else reads it as windows-1252 (the usual charset of
// unlabelled 8-bit mail) and records a Problem.
func (p *parser) toUTF8(s, where string) string {
	if utf8.ValidString(s) {
		return s
	}
	p.problemf("%s: 8-bit text that is not UTF-8, read as windows-1252", where)
	return windows1252(s)
}

func windows1252(s string) string {
	r, err := charset.Reader("windows-1252", strings.NewReader(s))
	if err == nil {
		if b, err := io.ReadAll(r); err == nil && utf8.Valid(b) {
			return string(b)
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// problemf records a non-fatal oddity, up to Limits.MaxProblems.
func (p *parser) problemf(format string, args ...any) {
	switch n := len(p.msg.Problems); {
	case n < p.lim.MaxProblems:
		p.msg.Problems = append(p.msg.Problems, fmt.Sprintf(format, args...))
	case n == p.lim.MaxProblems:
		p.msg.Problems = append(p.msg.Problems, "further problems omitted")
	}
}

// clip shortens s for a Problem text.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// parseDate is net/mail.ParseDate with the common case first: "Mon, 2 Jan 2006 15:04:05 -0700" as
// nearly every mailer writes it. ParseDate tries the forms without the weekday first, and each miss
// allocates an error: that was a tenth of Parse's time.
func parseDate(v string) (time.Time, error) {
	if t, err := time.Parse("Mon, 2 Jan 2006 15:04:05 -0700", v); err == nil {
		return t, nil
	}
	return netmail.ParseDate(v)
}
