package mailparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// parser walks one message. With target >= 0 it is an extraction: attachment number target is written
// to w and the walk stops.
type parser struct {
	lim Limits
	msg *Message
	buf []byte // copy buffer, shared by all parts

	parts             int
	haveText, haveHTM bool
	stop              bool

	target    int
	w         io.Writer
	found     bool
	extracted Attachment
	writeErr  error
}

func newParser(lim Limits, target int, w io.Writer) *parser {
	return &parser{lim: lim, msg: &Message{Attachments: []Attachment{}}, target: target, w: w}
}

// buffer is the copy buffer, made when first needed (a message without attachments needs none).
func (p *parser) buffer() []byte {
	if p.buf == nil {
		p.buf = make([]byte, 32<<10)
	}
	return p.buf
}

// childPath is the IMAP section of the n-th (1-based) child of the multipart at parent.
func childPath(parent string, n int) string {
	if parent == "" {
		return strconv.Itoa(n)
	}
	return parent + "." + strconv.Itoa(n)
}

// where names a part in Problems.
func where(section string) string {
	if section == "" {
		return "body"
	}
	return "part " + section
}

// entity handles one MIME entity (the message itself at section "").
func (p *parser) entity(h fieldGetter, body io.Reader, section string, depth int, defType string) {
	if p.stop {
		return
	}
	p.parts++
	if p.parts > p.lim.MaxParts {
		p.problemf("more than %d MIME parts; the rest is not listed", p.lim.MaxParts)
		p.stop = true
		return
	}
	ct, params := p.mediaType(h.Get("Content-Type"), defType, where(section)+" Content-Type")
	if strings.HasPrefix(ct, "multipart/") {
		boundary := params["boundary"]
		switch {
		case boundary == "":
			p.problemf("%s: %s without boundary; read as text/plain", where(section), ct)
			ct, params = "text/plain", map[string]string{}
		case depth >= p.lim.MaxDepth:
			p.problemf("%s: multipart nested deeper than %d; listed as one attachment", where(section), p.lim.MaxDepth)
		default:
			p.multipart(body, ct, boundary, section, depth)
			return
		}
	}
	if section == "" {
		section = "1" // IMAP: the body of a single-part message is section 1
	}
	p.leaf(h, ct, params, body, section)
}

// multipart walks the parts of a multipart body. When no part is found at all (wrong or missing
// boundary), the body is kept as text so that nothing is silently lost.
func (p *parser) multipart(body io.Reader, ct, boundary, section string, depth int) {
	pre := &preamble{max: p.lim.MaxText}
	tee := io.TeeReader(body, pre)
	mr := textproto.NewMultipartReader(tee, boundary)
	defType := "text/plain"
	if ct == "multipart/digest" {
		defType = "message/rfc822"
	}
	n := 0
	for !p.stop {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			what := err.Error()
			if strings.HasSuffix(what, "EOF") {
				what = "ends without its closing boundary"
			}
			if n == 0 {
				p.problemf("%s: %s: no part found (boundary %q): %s", where(section), ct, clip(boundary, 70), what)
			} else {
				p.problemf("%s: %s after %d parts: %s", where(section), ct, n, what)
			}
			break
		}
		n++
		pre.done = true
		p.entity(&part.Header, part, childPath(section, n), depth+1, defType)
	}
	if n == 0 { // the text kept is the whole body, not what the reader happened to read before it gave up
		io.Copy(io.Discard, tee)
	}
	if n == 0 && !p.haveText && pre.buf.Len() > 0 {
		p.haveText = true
		text, over := p.finishText(pre.buf.Bytes(), pre.over, where(section))
		if !p.lim.SkipBodies {
			p.msg.TextBody, p.msg.TextTruncated = text, over
		}
	}
}

// preamble keeps the first bytes of a multipart body until its first part is found.
type preamble struct {
	buf  bytes.Buffer
	max  int
	over bool
	done bool
}

func (pr *preamble) Write(b []byte) (int, error) {
	if !pr.done {
		room := pr.max - pr.buf.Len()
		if len(b) > room {
			pr.buf.Write(b[:room])
			pr.over = true
		} else {
			pr.buf.Write(b)
		}
	}
	return len(b), nil
}

// leaf handles a non-multipart part: the first text/plain and text/html without a filename and not
// marked as attachment are the bodies; every other leaf is an attachment.
func (p *parser) leaf(h fieldGetter, ct string, params map[string]string, body io.Reader, section string) {
	w := where(section)
	disp, dparams := p.mediaType(h.Get("Content-Disposition"), "", w+" Content-Disposition")
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	filename := sanitizeFilename(name)
	dec := p.transferDecode(h.Get("Content-Transfer-Encoding"), body, w)

	if disp != "attachment" && filename == "" {
		switch {
		case ct == "text/plain" && !p.haveText:
			p.haveText = true
			var err error
			p.msg.TextBody, p.msg.TextTruncated, err = p.readText(dec, params["charset"], w)
			p.drain(body, w, err == nil)
			return
		case ct == "text/html" && !p.haveHTM:
			p.haveHTM = true
			var err error
			p.msg.HTMLBody, p.msg.HTMLTruncated, err = p.readText(dec, params["charset"], w)
			p.drain(body, w, err == nil)
			return
		}
	}

	a := Attachment{
		Index:       len(p.msg.Attachments),
		Filename:    filename,
		ContentType: ct,
		Inline:      disp == "inline",
		PartPath:    section,
	}
	hc := &hashCounter{h: sha256.New()}
	var dst io.Writer = hc
	var ew *errWriter
	if a.Index == p.target {
		ew = &errWriter{w: p.w}
		dst = io.MultiWriter(hc, ew)
	}
	_, err := io.CopyBuffer(dst, dec, p.buffer())
	if err != nil {
		if ew != nil && ew.err != nil {
			p.writeErr = ew.err
		} else {
			p.problemf("%s: attachment %d: %v", w, a.Index, err)
		}
	}
	a.Size = hc.n
	a.SHA256 = hex.EncodeToString(hc.h.Sum(nil))
	p.msg.Attachments = append(p.msg.Attachments, a)
	if a.Index == p.target {
		p.found, p.extracted, p.stop = true, a, true
		return
	}
	p.drain(body, w, err == nil)
}

// drain reads what a decoder left of a part (after a decoding error, or after a truncated body); a
// read error is recorded when report is set (not yet reported by the decoding).
func (p *parser) drain(body io.Reader, w string, report bool) {
	if _, err := io.Copy(io.Discard, body); err != nil && report {
		p.problemf("%s: %v", w, err)
	}
}

// transferDecode undoes the Content-Transfer-Encoding; an unknown one leaves the bytes as they are.
func (p *parser) transferDecode(enc string, body io.Reader, w string) io.Reader {
	switch e := strings.ToLower(strings.TrimSpace(enc)); e {
	case "", "7bit", "8bit", "binary":
		return body
	case "quoted-printable":
		return quotedprintable.NewReader(body)
	case "base64":
		return base64Errors{base64.NewDecoder(base64.StdEncoding, &base64Filter{r: body})}
	default:
		p.problemf("%s: unknown Content-Transfer-Encoding %q; kept undecoded", w, clip(enc, 40))
		return body
	}
}

// errBase64 replaces encoding/base64's CorruptInputError, whose offset counts from the start of the
// decoder's current read (so it would depend on how the message was read, and it means nothing to a
// reader of Problems).
var errBase64 = errors.New("illegal base64 data")

// base64Errors reports errBase64 for any corrupt input.
type base64Errors struct{ r io.Reader }

func (b base64Errors) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	var corrupt base64.CorruptInputError
	if errors.As(err, &corrupt) {
		err = errBase64
	}
	return n, err
}

// base64Filter drops blanks and tabs (continuation indents that some mailers put into base64 bodies);
// line breaks are dropped by encoding/base64 itself. The common case (no blank) is passed through
// without a per-byte loop.
type base64Filter struct{ r io.Reader }

func (f *base64Filter) Read(b []byte) (int, error) {
	for {
		n, err := f.r.Read(b)
		if bytes.IndexByte(b[:n], ' ') < 0 && bytes.IndexByte(b[:n], '\t') < 0 {
			return n, err
		}
		j := 0
		for _, c := range b[:n] {
			if c != ' ' && c != '\t' {
				b[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// readText reads a text body, converts it from its charset to UTF-8 and keeps up to MaxText bytes.
func (p *parser) readText(dec io.Reader, cs, w string) (string, bool, error) {
	r := dec
	switch c := strings.ToLower(strings.Trim(cs, " \t\"")); c {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
	default:
		if cr, err := charset.Reader(c, dec); err != nil {
			p.problemf("%s: %v; text kept undecoded", w, err)
		} else {
			r = cr
		}
	}
	if p.lim.SkipBodies {
		return "", false, p.checkText(r, w)
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(p.lim.MaxText)+1))
	if err != nil {
		p.problemf("%s: %v", w, err)
	}
	over := len(b) > p.lim.MaxText
	if over {
		b = b[:p.lim.MaxText]
	}
	s, over := p.finishText(b, over, w)
	return s, over, err
}

// checkText reads a text body without keeping it and reports what readText would: the first MaxText
// bytes are checked for UTF-8 a chunk at a time (a rune cut by a chunk's end is carried into the next
// chunk; one cut by the limit does not count).
func (p *parser) checkText(r io.Reader, w string) error {
	if src, ok := r.(*byteSource); ok { // in memory: checked in place, the same way
		b := src.next(p.lim.MaxText + 1)
		if len(b) > p.lim.MaxText {
			b = b[:p.lim.MaxText]
			if i := cutRune(b); i >= 0 { // cut by the limit
				b = b[:i]
			}
		}
		if !utf8.Valid(b) {
			p.problemf("%s: 8-bit text that is not UTF-8, read as windows-1252", w)
		}
		return nil
	}
	buf := make([]byte, 4<<10)
	limit := p.lim.MaxText
	var carry [utf8.UTFMax]byte
	nc, seen, valid := 0, 0, true // seen: bytes of the text read so far
	var err error
	for seen <= limit && err == nil {
		n := copy(buf, carry[:nc])
		var k int
		k, err = r.Read(buf[n:min(len(buf), n+limit+1-seen)])
		seen += k
		chunk := buf[:n+k]
		if seen > limit {
			chunk = chunk[:len(chunk)-(seen-limit)] // the byte that shows the text is longer
		}
		nc = 0
		if i := cutRune(chunk); i >= 0 {
			tail := chunk[i:]
			chunk = chunk[:i]
			switch {
			case seen > limit: // cut by the limit
			case err != nil: // the text ends in the middle of a rune
				valid = false
			default:
				nc = copy(carry[:], tail)
			}
		}
		if valid && !utf8.Valid(chunk) {
			valid = false
		}
	}
	if err == io.EOF {
		err = nil
	}
	if err != nil {
		p.problemf("%s: %v", w, err)
	}
	if !valid {
		p.problemf("%s: 8-bit text that is not UTF-8, read as windows-1252", w)
	}
	return err
}

// cutRune is where an incomplete rune at the end of b starts, or -1.
func cutRune(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return -1
		}
	}
	return -1
}

// finishText makes b valid UTF-8 (windows-1252 when it is not) and cuts it to MaxText on a rune
// boundary.
func (p *parser) finishText(b []byte, over bool, w string) (string, bool) {
	if over { // do not count a rune cut by the limit as invalid
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	s := p.toUTF8(string(b), w)
	if len(s) > p.lim.MaxText {
		n := p.lim.MaxText
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, over = s[:n], true
	}
	return s, over
}

// mediaType parses a Content-Type or Content-Disposition value. Parameters are RFC 2047/2231 decoded;
// what mime.ParseMediaType rejects is salvaged by a lenient parameter reader (and a Problem).
func (p *parser) mediaType(v, def, w string) (string, map[string]string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return def, nil // read only: a nil map reads as empty
	}
	v = p.toUTF8(v, w)
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		if err != mime.ErrInvalidMediaParameter {
			p.problemf("%s: unparseable %q", w, clip(v, 80))
			mt = strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
		} else {
			p.problemf("%s: malformed parameters in %q", w, clip(v, 80))
		}
		params = map[string]string{}
	}
	if err != nil || strings.Contains(v, "*") {
		plain, extended := p.lenientParams(v, w)
		for k, val := range plain {
			if _, ok := params[k]; !ok {
				params[k] = val
			}
		}
		for k, val := range extended { // mime drops RFC 2231 values in charsets other than utf-8
			params[k] = val
		}
	}
	if def != "" && (mt == "" || !strings.Contains(mt, "/")) { // a Content-Type
		if err == nil {
			p.problemf("%s: invalid media type %q", w, clip(mt, 40))
		}
		mt = def
	}
	for k, val := range params {
		params[k] = p.decodeText(val, w)
	}
	return mt, params
}

// lenientParams reads "; key=value" parameters without failing: quoted or bare values, RFC 2231
// extended values (key*=charset'lang'pct-encoded, in any charset go-message knows) and continuations
// (key*0*=…; key*1=…). RFC 2231 values are returned apart (extended).
func (p *parser) lenientParams(v, w string) (plain, extended map[string]string) {
	type seg struct {
		n   int
		ext bool
		val string
	}
	segs := map[string][]seg{}
	plain, extended = map[string]string{}, map[string]string{}
	for _, f := range splitParams(v)[1:] {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = strings.ReplaceAll(val[1:len(val)-1], `\"`, `"`)
		}
		base, rest, star := strings.Cut(k, "*")
		if !star {
			plain[k] = val
			continue
		}
		s := seg{ext: strings.HasSuffix(rest, "*") || rest == "", val: val}
		if num := strings.TrimSuffix(rest, "*"); num != "" {
			n, err := strconv.Atoi(num)
			if err != nil {
				continue
			}
			s.n = n
		}
		segs[base] = append(segs[base], s)
	}
	for base, ss := range segs {
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].n < ss[j].n })
		var raw []byte
		cs := ""
		for i, s := range ss {
			val := s.val
			if s.ext {
				if i == 0 {
					if parts := strings.SplitN(val, "'", 3); len(parts) == 3 {
						cs, val = strings.ToLower(parts[0]), parts[2]
					}
				}
				if u, err := url.PathUnescape(val); err == nil {
					val = u
				}
			}
			raw = append(raw, val...)
		}
		s := string(raw)
		if cs != "" && cs != "utf-8" && cs != "us-ascii" {
			if r, err := charset.Reader(cs, strings.NewReader(s)); err == nil {
				if b, err := io.ReadAll(r); err == nil {
					s = string(b)
				}
			} else {
				p.problemf("%s: parameter %s: %v", w, base, err)
			}
		}
		extended[base] = p.toUTF8(s, w)
	}
	return plain, extended
}

// splitParams splits a header value on semicolons outside double quotes.
func splitParams(v string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// sanitizeFilename keeps the last path element of name and removes what is unsafe in a file name on
// Windows or Unix: control and format characters (e.g. U+202E RIGHT-TO-LEFT OVERRIDE), the characters
// <>:"/\|?*, leading and trailing blanks and dots; it keeps at most 200 bytes, extension included.
func sanitizeFilename(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return -1
		case strings.ContainsRune(`<>:"|?*`, r):
			return '_'
		}
		return r
	}, name)
	name = strings.Trim(name, " .\u00a0")
	const maxLen = 200
	if len(name) > maxLen {
		ext := path.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		n := maxLen - len(ext)
		for n > 0 && !utf8.RuneStart(name[n]) {
			n--
		}
		name = name[:n] + ext
	}
	return name
}
