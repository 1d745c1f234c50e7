// Package compose builds the RFC 5322 messages inkorg sends, with go-message: From, To, Cc, Reply-To,
// Subject, Date, Message-ID, In-Reply-To/References; a text body, an HTML body (multipart/alternative
// when both), the sender's signature appended to each; attachments (multipart/mixed); and, for the
// e-mail method outlook-client, a draft with "X-Unsent: 1" that the user's own mail program opens
// ready to send.
//
// Header injection is impossible by construction: every value that reaches a header is checked or
// cleaned here — addresses must parse as one RFC 5322 address and may hold no control character,
// display names, the subject and attachment names lose CR, LF and every other control character,
// message ids must be one <id-left@id-right> without spaces — and go-message encodes what is left
// (RFC 2047 words, RFC 2231 parameters). Bcc recipients never appear in a sent message's header; a
// draft keeps them, for the mail program that will send it.
package compose

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"html"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode"

	gomail "github.com/emersion/go-message/mail"
)

// Attachment is one attached file.
type Attachment struct {
	Name        string
	ContentType string // "" = application/octet-stream
	Data        []byte
}

// Message is what to build.
type Message struct {
	From        *mail.Address
	To, Cc, Bcc []*mail.Address
	ReplyTo     []*mail.Address
	Subject     string
	Text        string // plain text body
	HTML        string // HTML body
	Signature   string // the sender's signature (plain text), appended to the text and the HTML body
	Attachments []Attachment
	InReplyTo   string    // the Message-ID replied to, with or without <>
	References  []string  // earlier Message-IDs of the thread; InReplyTo is added at the end
	Date        time.Time // zero: now
	MessageID   string    // without <>; "" = generated on the From address's domain
	Draft       bool      // X-Unsent: 1, and Bcc kept in the header
}

// Built is a composed message.
type Built struct {
	Raw        []byte
	MessageID  string   // with <>
	Recipients []string // To, Cc and Bcc addresses, each once (the SMTP envelope)
}

// ErrInvalid is the class of every refusal of a message's content; the error text says which field.
var ErrInvalid = errors.New("invalid message")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// hasControl reports a control character (CR, LF, NUL…) other than tab.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }) >= 0
}

// clean replaces every control character (CR and LF included) by a space and trims.
func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s))
}

// ParseAddress parses one address ("Anna <anna@x>" or "anna@x"), refusing anything with a control
// character in it; the display name is cleaned.
func ParseAddress(field, s string) (*mail.Address, error) {
	if hasControl(s) {
		return nil, invalid("%s: %q holds a line break or control character", field, s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, invalid("%s: %q is not an e-mail address", field, s)
	}
	if hasControl(a.Address) || !strings.Contains(a.Address, "@") || strings.ContainsAny(a.Address, " <>\"") {
		return nil, invalid("%s: %q is not an e-mail address", field, s)
	}
	a.Name = clean(a.Name)
	return a, nil
}

// ParseAddresses parses a list given as separate strings.
func ParseAddresses(field string, ss []string) ([]*mail.Address, error) {
	out := make([]*mail.Address, 0, len(ss))
	for _, s := range ss {
		if strings.TrimSpace(s) == "" {
			continue
		}
		a, err := ParseAddress(field, s)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// msgID checks a message id and returns it without <>.
func msgID(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	left, right, ok := strings.Cut(s, "@")
	if !ok || left == "" || right == "" || hasControl(s) || strings.ContainsAny(s, " <>\t\"\\()[],;:") || !isASCII(s) {
		return "", invalid("%s: %q is not a message id (<left@right>)", field, s)
	}
	return s, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var idEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewMessageID makes a message id (without <>) on the domain of from.
func NewMessageID(from string) string {
	_, domain, _ := strings.Cut(from, "@")
	if domain == "" || hasControl(domain) || strings.ContainsAny(domain, " <>") {
		domain = "inkorg.invalid"
	}
	b := make([]byte, 15)
	rand.Read(b)
	return "inkorg." + idEnc.EncodeToString(b) + "@" + domain
}

// withSignature appends the signature to a plain text body.
func textWithSignature(text, sig string) string {
	text = normalize(text)
	sig = normalize(sig)
	if sig == "" {
		return text
	}
	if text == "" {
		return sig + "\n"
	}
	return strings.TrimRight(text, "\n") + "\n\n-- \n" + sig + "\n"
}

// htmlWithSignature appends the signature, escaped, before </body> (or at the end).
func htmlWithSignature(h, sig string) string {
	sig = normalize(sig)
	if sig == "" {
		return h
	}
	block := `<div class="signature"><br>-- <br>` + strings.ReplaceAll(html.EscapeString(sig), "\n", "<br>") + `</div>`
	if i := strings.LastIndex(strings.ToLower(h), "</body>"); i >= 0 {
		return h[:i] + block + h[i:]
	}
	return h + block
}

func normalize(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// Build composes m.
func Build(m Message) (Built, error) {
	if m.From == nil {
		return Built{}, invalid("from: no sender address")
	}
	from, err := ParseAddress("from", (&mail.Address{Address: m.From.Address}).String())
	if err != nil || hasControl(m.From.Address) {
		return Built{}, invalid("from: %q is not an e-mail address", m.From.Address)
	}
	from.Name = clean(m.From.Name)
	lists := map[string][]*mail.Address{}
	var rcpts []string
	seen := map[string]bool{}
	for _, l := range []struct {
		name string
		as   []*mail.Address
	}{{"to", m.To}, {"cc", m.Cc}, {"bcc", m.Bcc}, {"replyTo", m.ReplyTo}} {
		for _, a := range l.as {
			if a == nil || hasControl(a.Address) {
				return Built{}, invalid("%s: an address holds a line break or control character", l.name)
			}
			c, err := ParseAddress(l.name, (&mail.Address{Address: a.Address}).String())
			if err != nil {
				return Built{}, err
			}
			c.Name = clean(a.Name)
			lists[l.name] = append(lists[l.name], c)
			if l.name != "replyTo" && !seen[strings.ToLower(c.Address)] {
				seen[strings.ToLower(c.Address)] = true
				rcpts = append(rcpts, c.Address)
			}
		}
	}
	if len(rcpts) == 0 {
		return Built{}, invalid("to: no recipient")
	}
	var h gomail.Header
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	h.SetDate(date)
	h.SetAddressList("From", []*gomail.Address{from})
	h.SetAddressList("To", lists["to"])
	h.SetAddressList("Cc", lists["cc"])
	if m.Draft {
		h.SetAddressList("Bcc", lists["bcc"])
	}
	h.SetAddressList("Reply-To", lists["replyTo"])
	h.SetSubject(clean(m.Subject))
	id := m.MessageID
	if id == "" {
		id = NewMessageID(from.Address)
	} else if id, err = msgID("messageId", id); err != nil {
		return Built{}, err
	}
	h.SetMessageID(id)
	var refs []string
	for _, r := range m.References {
		v, err := msgID("references", r)
		if err != nil {
			return Built{}, err
		}
		refs = append(refs, v)
	}
	if m.InReplyTo != "" {
		v, err := msgID("inReplyTo", m.InReplyTo)
		if err != nil {
			return Built{}, err
		}
		h.SetMsgIDList("In-Reply-To", []string{v})
		if len(refs) == 0 || refs[len(refs)-1] != v {
			refs = append(refs, v)
		}
	}
	h.SetMsgIDList("References", refs)
	h.Set("MIME-Version", "1.0")
	if m.Draft {
		h.Set("X-Unsent", "1")
	}

	text, htmlBody := m.Text, m.HTML
	if text != "" || htmlBody == "" {
		text = textWithSignature(text, m.Signature)
	}
	if htmlBody != "" {
		htmlBody = htmlWithSignature(htmlBody, m.Signature)
	}
	var buf bytes.Buffer
	if err := writeBody(&buf, h, text, htmlBody, m.Attachments); err != nil {
		return Built{}, err
	}
	return Built{Raw: buf.Bytes(), MessageID: "<" + id + ">", Recipients: rcpts}, nil
}

func textHeader(ct string) gomail.InlineHeader {
	var ih gomail.InlineHeader
	ih.Set("Content-Type", ct+"; charset=utf-8")
	ih.Set("Content-Transfer-Encoding", "quoted-printable")
	return ih
}

func writeBody(buf *bytes.Buffer, h gomail.Header, text, htmlBody string, atts []Attachment) error {
	if len(atts) == 0 {
		switch {
		case htmlBody == "":
			th := textHeader("text/plain")
			h.Set("Content-Type", th.Get("Content-Type"))
			h.Set("Content-Transfer-Encoding", "quoted-printable")
			w, err := gomail.CreateSingleInlineWriter(buf, h)
			if err != nil {
				return fmt.Errorf("compose: %w", err)
			}
			return writeClose(w, text)
		default:
			iw, err := gomail.CreateInlineWriter(buf, h)
			if err != nil {
				return fmt.Errorf("compose: %w", err)
			}
			if err := alternatives(iw, text, htmlBody); err != nil {
				return err
			}
			return iw.Close()
		}
	}
	mw, err := gomail.CreateWriter(buf, h)
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	if htmlBody == "" {
		w, err := mw.CreateSingleInline(textHeader("text/plain"))
		if err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		if err := writeClose(w, text); err != nil {
			return err
		}
	} else {
		iw, err := mw.CreateInline()
		if err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		if err := alternatives(iw, text, htmlBody); err != nil {
			return err
		}
		if err := iw.Close(); err != nil {
			return fmt.Errorf("compose: %w", err)
		}
	}
	for i, a := range atts {
		var ah gomail.AttachmentHeader
		ct := strings.TrimSpace(a.ContentType)
		if ct == "" {
			ct = "application/octet-stream"
		}
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || hasControl(ct) || strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
			return invalid("attachments[%d].contentType: %q is not a usable media type", i, a.ContentType)
		}
		delete(params, "name")
		ah.SetContentType(mt, params)
		name := strings.NewReplacer("/", "_", "\\", "_").Replace(clean(a.Name))
		if name == "" {
			name = fmt.Sprintf("attachment-%d", i+1)
		}
		ah.SetFilename(name)
		ah.Set("Content-Transfer-Encoding", "base64")
		w, err := mw.CreateAttachment(ah)
		if err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		if _, err := w.Write(a.Data); err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("compose: %w", err)
		}
	}
	return mw.Close()
}

func alternatives(iw *gomail.InlineWriter, text, htmlBody string) error {
	if text == "" {
		text = "(This message is in HTML.)\n"
	}
	for _, p := range []struct{ ct, body string }{{"text/plain", text}, {"text/html", htmlBody}} {
		w, err := iw.CreatePart(textHeader(p.ct))
		if err != nil {
			return fmt.Errorf("compose: %w", err)
		}
		if err := writeClose(w, p.body); err != nil {
			return err
		}
	}
	return nil
}

func writeClose(w interface {
	Write([]byte) (int, error)
	Close() error
}, s string) error {
	if _, err := w.Write([]byte(normalize(s))); err != nil {
		w.Close()
		return fmt.Errorf("compose: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	return nil
}

// CleanText is a one-line text without control characters (CR and LF become spaces).
func CleanText(s string) string { return clean(s) }
