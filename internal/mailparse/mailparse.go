// Package mailparse reads one raw Internet message (RFC 5322 / MIME) once, streaming, and returns its
// metadata: addresses, subject, date, message ids, size and SHA-256 of the raw bytes, the first text and
// HTML bodies (decoded to UTF-8, truncated) and a list of attachments with their size and SHA-256. It
// also recognises Monitor-to-Monitor (M2M) business documents (ClassifyM2M, see m2m.go).
//
// Parsing is built on github.com/emersion/go-message (textproto headers and multipart reader, the mail
// header helpers, and its charset tables, so windows-1252, iso-8859-x, utf-8, quoted-printable and base64
// all decode). The part tree is walked here rather than through mail.Reader so that every part gets a
// stable IMAP-style path ("2.1"), attachments keep their exact bytes (no charset conversion of an XML or
// TXT file), and malformed input degrades instead of failing.
//
// Rules:
//   - Parse never holds an attachment in memory: attachments are hashed and counted while discarded,
//     so a 30 MB attachment costs a few tens of KiB. Only the text and HTML bodies are kept, each up to
//     Limits.MaxText bytes.
//   - Malformed mail never panics and never fails as a whole: bad charsets, unknown transfer encodings,
//     missing or broken boundaries, truncated bodies, 8-bit headers and unparseable fields are recorded in
//     Message.Problems and parsing goes on. The only content error is ErrNotAMessage (no header at all);
//     an error from the reader itself is returned wrapped.
//   - Attachment numbering is the MIME order of the leaf parts that are not the chosen text/HTML body, so
//     Extract(raw, n, w) finds exactly the part Parse listed as Attachments[n].
package mailparse

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// ErrNotAMessage is returned by Parse and Extract when the input has no header at all (empty input, or a
// first line that is not a header field).
var ErrNotAMessage = errors.New("mailparse: not a message (no header)")

// ErrNoSuchAttachment is returned (wrapped) by Extract when the message has no attachment with the index.
var ErrNoSuchAttachment = errors.New("mailparse: no such attachment")

// Limits bound what Parse keeps and how far it descends. A zero field takes its default (DefaultLimits).
type Limits struct {
	MaxText        int   // bytes of UTF-8 kept of TextBody and of HTMLBody (each); default 1 MiB
	MaxHeaderBytes int64 // bytes of the top-level header; the rest is treated as body; default 1 MiB
	MaxParts       int   // MIME parts walked; later parts are not listed; default 1000
	MaxDepth       int   // multipart nesting; deeper multiparts are listed as one attachment; default 20
	MaxProblems    int   // Problems kept; default 100
	// SkipBodies reads the text and HTML bodies without keeping them (TextBody and HTMLBody stay
	// empty, Problems are the same), for callers that want only the metadata: it saves most of
	// Parse's allocations.
	SkipBodies bool
}

// DefaultLimits returns the limits used for zero fields and by Extract.
func DefaultLimits() Limits {
	return Limits{MaxText: 1 << 20, MaxHeaderBytes: 1 << 20, MaxParts: 1000, MaxDepth: 20, MaxProblems: 100}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxText <= 0 {
		l.MaxText = d.MaxText
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxProblems <= 0 {
		l.MaxProblems = d.MaxProblems
	}
	return l
}

// Address is one mailbox: the address and the (RFC 2047 decoded) display name.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Attachment describes one leaf part that is not the message's text or HTML body.
type Attachment struct {
	Index       int    `json:"index"`            // 0-based, in MIME order; the n of Extract
	Filename    string `json:"filename"`         // decoded (RFC 2047/2231) and sanitised; "" when the part has none
	ContentType string `json:"contentType"`      // lower-case media type without parameters
	Size        int64  `json:"size"`             // decoded bytes
	SHA256      string `json:"sha256"`           // hex SHA-256 of the decoded bytes
	Inline      bool   `json:"inline,omitempty"` // Content-Disposition: inline
	PartPath    string `json:"partPath"`         // IMAP-style section ("1", "2.1") of the part
}

// Message is the metadata of one raw message.
type Message struct {
	MessageID     string       `json:"messageId"` // without <>; "" when absent
	From          Address      `json:"from"`
	To            []Address    `json:"to,omitempty"`
	Cc            []Address    `json:"cc,omitempty"`
	ReplyTo       []Address    `json:"replyTo,omitempty"`
	Subject       string       `json:"subject"`
	Date          time.Time    `json:"date"` // zero (and a Problem) when absent or unparseable
	InReplyTo     []string     `json:"inReplyTo,omitempty"`
	References    []string     `json:"references,omitempty"`
	Size          int64        `json:"size"`   // raw bytes read
	SHA256        string       `json:"sha256"` // hex SHA-256 of the raw bytes
	TextBody      string       `json:"textBody,omitempty"`
	TextTruncated bool         `json:"textTruncated,omitempty"`
	HTMLBody      string       `json:"htmlBody,omitempty"`
	HTMLTruncated bool         `json:"htmlTruncated,omitempty"`
	Attachments   []Attachment `json:"attachments"`
	Problems      []string     `json:"problems,omitempty"` // non-fatal oddities, in the order met
}

// Parse reads the raw message from r to its end and returns its metadata. Size and SHA256 cover every
// byte read from r. See the package comment for how malformed input degrades.
func Parse(r io.Reader, limits Limits) (*Message, error) {
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, h)}
	p := newParser(limits.withDefaults(), -1, nil)
	if err := p.run(cr); err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, fmt.Errorf("mailparse: read message: %w", err)
	}
	if cr.err != nil {
		return nil, fmt.Errorf("mailparse: read message: %w", cr.err)
	}
	p.msg.Size = cr.n
	p.msg.SHA256 = hex.EncodeToString(h.Sum(nil))
	return p.msg, nil
}

// ParseBytes is Parse of a message already in memory: the same result as Parse(bytes.NewReader(raw),
// limits), with less work (the hash in one call, header lines and a plain text body read in place
// instead of copied through buffers). raw is not modified nor kept.
func ParseBytes(raw []byte, limits Limits) (*Message, error) {
	p := newParser(limits.withDefaults(), -1, nil)
	if err := p.runSource(&byteSource{b: raw}); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	p.msg.Size = int64(len(raw))
	p.msg.SHA256 = hex.EncodeToString(sum[:])
	return p.msg, nil
}

// Extract streams the decoded bytes of attachment number index (as numbered by Parse) of the raw message
// in r to w and returns its metadata. It stops reading r once the attachment is written. The error wraps
// ErrNoSuchAttachment when there is no such attachment, ErrNotAMessage when r has no header, or the
// reader's or writer's error.
func Extract(r io.Reader, index int, w io.Writer) (Attachment, error) {
	if index < 0 {
		return Attachment{}, fmt.Errorf("mailparse: attachment %d: %w", index, ErrNoSuchAttachment)
	}
	cr := &countingReader{r: r}
	p := newParser(DefaultLimits(), index, w)
	if err := p.run(cr); err != nil {
		return Attachment{}, err
	}
	if p.writeErr != nil {
		return Attachment{}, fmt.Errorf("mailparse: write attachment %d: %w", index, p.writeErr)
	}
	if cr.err != nil {
		return Attachment{}, fmt.Errorf("mailparse: read message: %w", cr.err)
	}
	if !p.found {
		return Attachment{}, fmt.Errorf("mailparse: attachment %d (message has %d): %w",
			index, len(p.msg.Attachments), ErrNoSuchAttachment)
	}
	return p.extracted, nil
}

// run parses the header and walks the body.
func (p *parser) run(r io.Reader) error { return p.runSource(bufio.NewReader(r)) }

// source is what the parser reads a message from: lines of the top-level header, then the body.
// A bufio.Reader for a stream; a byteSource for a message in memory.
type source interface {
	io.Reader
	// ReadSlice reads through the first delim as bufio.Reader.ReadSlice does (the slice is valid
	// until the next read).
	ReadSlice(delim byte) ([]byte, error)
}

func (p *parser) runSource(src source) error {
	h, rest, err := p.readHeader(src)
	if err != nil {
		return err
	}
	var body io.Reader = src
	if len(rest) > 0 {
		body = io.MultiReader(bytes.NewReader(rest), src)
	}
	p.headerFields(&h)
	p.entity(&h, body, "", 0, "text/plain")
	return nil
}

// byteSource reads a message held in memory without copying it: ReadSlice returns a line in place (never
// bufio.ErrBufferFull), and a text body is checked in place (checkText).
type byteSource struct {
	b   []byte
	off int
}

func (s *byteSource) ReadSlice(delim byte) ([]byte, error) {
	rest := s.b[s.off:]
	if i := bytes.IndexByte(rest, delim); i >= 0 {
		s.off += i + 1
		return rest[:i+1], nil
	}
	s.off = len(s.b)
	return rest, io.EOF
}

func (s *byteSource) Read(b []byte) (int, error) {
	if s.off >= len(s.b) {
		return 0, io.EOF
	}
	n := copy(b, s.b[s.off:])
	s.off += n
	return n, nil
}

// WriteTo makes draining a part (io.Copy to io.Discard) one call.
func (s *byteSource) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(s.b[s.off:])
	s.off += n
	return int64(n), err
}

// next returns the next n bytes (fewer at the end) in place, as read.
func (s *byteSource) next(n int) []byte {
	b := s.b[s.off:min(len(s.b), s.off+n)]
	s.off += len(b)
	return b
}

// countingReader counts bytes and remembers the first error of the underlying reader (other than
// io.EOF), so that a read failure is told apart from malformed content.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// hashCounter hashes and counts what is written to it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func (hc *hashCounter) Write(b []byte) (int, error) {
	hc.n += int64(len(b))
	return hc.h.Write(b)
}

// errWriter remembers the first error of w, so that a writer failure is told apart from a read failure.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
