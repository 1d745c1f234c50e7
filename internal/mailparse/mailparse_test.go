package mailparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	netmail "net/mail"
	"net/textproto"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func mustParse(t *testing.T, raw string, lim Limits) *Message {
	t.Helper()
	m, err := Parse(strings.NewReader(raw), lim)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func hasProblem(m *Message, sub string) bool {
	for _, p := range m.Problems {
		if strings.Contains(p, sub) {
			return true
		}
	}
	return false
}

func TestParseNotAMessage(t *testing.T) {
	for name, raw := range map[string]string{
		"empty":            "",
		"no colon":         "hello world\r\nmore text\r\n",
		"blank first line": "\r\nSubject: late\r\n",
		"only mbox line":   "From someone Mon Mar  2 10:00:00 2026\n",
		"space first":      " folded\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(raw), Limits{})
			if !errors.Is(err, ErrNotAMessage) {
				t.Fatalf("err = %v, want ErrNotAMessage", err)
			}
			_, err = Extract(strings.NewReader(raw), 0, io.Discard)
			if !errors.Is(err, ErrNotAMessage) {
				t.Fatalf("Extract err = %v, want ErrNotAMessage", err)
			}
		})
	}
}

func TestParseCases(t *testing.T) {
	type tc struct {
		name  string
		raw   string
		lim   Limits
		check func(t *testing.T, m *Message)
	}
	cases := []tc{
		{
			name: "header only, no empty line",
			raw:  "Subject: only a header",
			check: func(t *testing.T, m *Message) {
				if m.Subject != "only a header" || !hasProblem(m, "not ended by an empty line") {
					t.Errorf("subject %q problems %q", m.Subject, m.Problems)
				}
			},
		},
		{
			name: "mbox From_ line skipped",
			raw:  "From a@b Mon Mar  2 10:00:00 2026\nSubject: hi\nFrom: a@b\n\nbody\n",
			check: func(t *testing.T, m *Message) {
				if m.Subject != "hi" || m.From.Address != "a@b" || m.TextBody != "body\n" || !hasProblem(m, "mbox") {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "malformed header line starts the body",
			raw:  crlf("Subject: a\nthis is not a header\nFrom: b@c\n\nrest\n"),
			check: func(t *testing.T, m *Message) {
				if m.Subject != "a" || !strings.HasPrefix(m.TextBody, "this is not a header\r\nFrom: b@c") ||
					!hasProblem(m, "malformed line") {
					t.Errorf("subject %q body %q problems %q", m.Subject, m.TextBody, m.Problems)
				}
			},
		},
		{
			name: "folded header and repeated subject",
			raw:  crlf("Subject: first\n part\nSubject: second\nFrom: x@y\n\n"),
			check: func(t *testing.T, m *Message) {
				if m.Subject != "first part" || !hasProblem(m, "header Subject: repeated") {
					t.Errorf("subject %q problems %q", m.Subject, m.Problems)
				}
			},
		},
		{
			name: "raw UTF-8 header (RFC 6532) is fine",
			raw:  crlf("Subject: Räksmörgås\nFrom: Åsa <asa@example.se>\nDate: Mon, 2 Mar 2026 10:00:00 +0100\nMessage-ID: <a@b>\n\nx"),
			check: func(t *testing.T, m *Message) {
				if m.Subject != "Räksmörgås" || m.From.Name != "Åsa" || len(m.Problems) != 0 {
					t.Errorf("subject %q from %+v problems %q", m.Subject, m.From, m.Problems)
				}
			},
		},
		{
			name: "malformed addresses are salvaged",
			raw:  crlf("From: Broken Name <broken@example.com\nTo: \"Anna\" <anna@example.se>, not an address, bad@@example.com\n\n"),
			check: func(t *testing.T, m *Message) {
				if m.From.Address != "" && m.From.Address != "broken@example.com" {
					t.Errorf("from %+v", m.From)
				}
				if len(m.To) != 3 || m.To[0].Address != "anna@example.se" || m.To[1].Name != "not an address" ||
					m.To[2].Address != "bad@@example.com" {
					t.Errorf("to %+v", m.To)
				}
				if !hasProblem(m, "header To: malformed") {
					t.Errorf("problems %q", m.Problems)
				}
			},
		},
		{
			name: "unparseable date",
			raw:  crlf("From: a@b\nDate: yesterday at noon\n\n"),
			check: func(t *testing.T, m *Message) {
				if !m.Date.IsZero() || !hasProblem(m, "header Date: unparseable") {
					t.Errorf("date %v problems %q", m.Date, m.Problems)
				}
			},
		},
		{
			name: "base64 with blanks decodes",
			raw: crlf("From: a@b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" +
				"  aGVs bG8g\n\td29y bGQ=\n"),
			check: func(t *testing.T, m *Message) {
				a := m.Attachments[0]
				if a.Size != 11 || a.SHA256 != sha("hello world") || a.PartPath != "1" {
					t.Errorf("attachment %+v problems %q", a, m.Problems)
				}
			},
		},
		{
			name: "corrupt base64 keeps what decoded",
			raw:  crlf("From: a@b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\naGVsbG8=aGVsbG8=\n"),
			check: func(t *testing.T, m *Message) {
				if m.Attachments[0].Size != 5 || !hasProblem(m, "illegal base64") {
					t.Errorf("attachment %+v problems %q", m.Attachments[0], m.Problems)
				}
			},
		},
		{
			name: "text truncated on a rune boundary",
			raw:  crlf("From: a@b\nContent-Type: text/plain; charset=utf-8\n\nåäöåäö"),
			lim:  Limits{MaxText: 5},
			check: func(t *testing.T, m *Message) {
				if m.TextBody != "åä" || !m.TextTruncated || len(m.Problems) != 2 { // Date, Message-ID
					t.Errorf("text %q truncated %v problems %q", m.TextBody, m.TextTruncated, m.Problems)
				}
			},
		},
		{
			name: "iso-8859-1 html, quoted-printable",
			raw: crlf("From: a@b\nContent-Type: text/html; charset=\"ISO-8859-1\"\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"<p>K=F6p=20nu</p>=\n\n"),
			check: func(t *testing.T, m *Message) {
				if m.HTMLBody != "<p>Köp nu</p>\r\n" || m.TextBody != "" {
					t.Errorf("html %q text %q", m.HTMLBody, m.TextBody)
				}
			},
		},
		{
			name: "multipart nested deeper than MaxDepth is one attachment",
			raw: crlf("From: a@b\nContent-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=b\n\n" +
				"--b\nContent-Type: text/plain\n\ninner\n--b--\n--a--\n"),
			lim: Limits{MaxDepth: 1},
			check: func(t *testing.T, m *Message) {
				if len(m.Attachments) != 1 || m.Attachments[0].ContentType != "multipart/mixed" || m.Attachments[0].PartPath != "1" ||
					!hasProblem(m, "nested deeper") {
					t.Errorf("attachments %+v problems %q", m.Attachments, m.Problems)
				}
			},
		},
		{
			name: "more parts than MaxParts",
			raw: crlf("From: a@b\nContent-Type: multipart/mixed; boundary=a\n\n--a\n\none\n--a\n\ntwo\n--a\n\nthree\n--a--\n") +
				"trailing bytes still hashed",
			lim: Limits{MaxParts: 3},
			check: func(t *testing.T, m *Message) {
				if m.TextBody != "one" || len(m.Attachments) != 1 || !hasProblem(m, "more than 3 MIME parts") {
					t.Errorf("text %q attachments %+v problems %q", m.TextBody, m.Attachments, m.Problems)
				}
			},
		},
		{
			name: "multipart/digest parts default to message/rfc822",
			raw:  crlf("From: a@b\nContent-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: inner\n\nx\n--d--\n"),
			check: func(t *testing.T, m *Message) {
				if len(m.Attachments) != 1 || m.Attachments[0].ContentType != "message/rfc822" {
					t.Errorf("attachments %+v", m.Attachments)
				}
			},
		},
		{
			name: "wrong boundary keeps the body as text",
			raw:  crlf("From: a@b\nContent-Type: multipart/mixed; boundary=nothere\n\n--other\n\ntext\n--other--\n"),
			check: func(t *testing.T, m *Message) {
				if !strings.Contains(m.TextBody, "text") || !hasProblem(m, "no part found") {
					t.Errorf("text %q problems %q", m.TextBody, m.Problems)
				}
			},
		},
		{
			name: "oversized header is cut and read as body",
			raw:  crlf("From: a@b\nX-Long: " + strings.Repeat("x", 100) + "\n\nbody"),
			lim:  Limits{MaxHeaderBytes: 40},
			check: func(t *testing.T, m *Message) {
				// Nothing is dropped: the line that crosses the limit starts the body, whole.
				if m.From.Address != "a@b" || !hasProblem(m, "longer than 40 bytes") || m.TextBody != "X-Long: "+strings.Repeat("x", 100)+"\r\n\r\nbody" {
					t.Errorf("from %+v text %q problems %q", m.From, m.TextBody, m.Problems)
				}
			},
		},
		{
			name: "filename via Content-Type name, malformed disposition parameters",
			raw: crlf("From: a@b\nContent-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: application/pdf; name=\"Offert 12.pdf\"\n" +
				"Content-Disposition: attachment; filename=Offert 12.pdf; size=x y\n\n%PDF\n--a--\n"),
			check: func(t *testing.T, m *Message) {
				if len(m.Attachments) != 1 || m.Attachments[0].Filename != "Offert 12.pdf" {
					t.Errorf("attachments %+v problems %q", m.Attachments, m.Problems)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := mustParse(t, c.raw, c.lim)
			if m.Size != int64(len(c.raw)) || m.SHA256 != sha(c.raw) {
				t.Errorf("size %d sha %s, want %d %s", m.Size, m.SHA256, len(c.raw), sha(c.raw))
			}
			c.check(t, m)
		})
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestSanitizeFilename(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":                      "report.pdf",
		"../../etc/passwd":                "passwd",
		`C:\Users\x\evil.exe`:             "evil.exe",
		"a\x00b\x1fc\r\n.txt":             "abc.txt",
		"invoice\u202Efdp.exe":            "invoicefdp.exe",
		`what?:*"<>|.xml`:                 "what_______.xml",
		" .. ":                            "",
		"..":                              "",
		strings.Repeat("å", 150) + ".pdf": strings.Repeat("å", 98) + ".pdf",
	} {
		if got := sanitizeFilename(in); got != want {
			t.Errorf("sanitizeFilename(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExtractMatchesParse extracts every attachment of every fixture and checks it against Parse.
func TestExtractMatchesParse(t *testing.T) {
	for _, path := range fixtures(t) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(bytes.NewReader(raw), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range m.Attachments {
			var buf bytes.Buffer
			got, err := Extract(bytes.NewReader(raw), want.Index, &buf)
			if err != nil {
				t.Fatalf("%s: Extract(%d): %v", path, want.Index, err)
			}
			if got != want || int64(buf.Len()) != want.Size || sha(buf.String()) != want.SHA256 {
				t.Errorf("%s: Extract(%d) = %+v (%d bytes), want %+v", path, want.Index, got, buf.Len(), want)
			}
		}
		for _, bad := range []int{-1, len(m.Attachments)} {
			if _, err := Extract(bytes.NewReader(raw), bad, io.Discard); !errors.Is(err, ErrNoSuchAttachment) {
				t.Errorf("%s: Extract(%d) err = %v, want ErrNoSuchAttachment", path, bad, err)
			}
		}
	}
}

func TestExtractContent(t *testing.T) {
	raw, err := os.ReadFile("testdata/m2m-purchase-order.eml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	a, err := Extract(bytes.NewReader(raw), 1, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if a.Filename != "PO-4711.xml" || !strings.HasPrefix(buf.String(), `<?xml version="1.0" encoding="UTF-8"?>`+"\n<PurchaseOrder") {
		t.Errorf("got %+v %q", a, buf.String())
	}
}

type failWriter struct{}

var errWrite = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestExtractWriteError(t *testing.T) {
	f, err := os.Open("testdata/m2m-purchase-order.eml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Extract(f, 0, failWriter{}); !errors.Is(err, errWrite) {
		t.Fatalf("err = %v, want the writer's error", err)
	}
}

type failReader struct {
	r io.Reader
}

var errRead = errors.New("spool read failed")

func (f *failReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF {
		return n, errRead
	}
	return n, err
}

func TestParseReadError(t *testing.T) {
	raw := crlf("From: a@b\nContent-Type: multipart/mixed; boundary=a\n\n--a\n\ntext\n--a\nContent-Type: application/pdf\n\n%PDF")
	if _, err := Parse(&failReader{r: strings.NewReader(raw)}, Limits{}); !errors.Is(err, errRead) {
		t.Fatalf("Parse err = %v, want the reader's error", err)
	}
	if _, err := Extract(&failReader{r: strings.NewReader(raw)}, 0, io.Discard); !errors.Is(err, errRead) {
		t.Fatalf("Extract err = %v, want the reader's error", err)
	}
}

// b64Source produces n bytes (a multiple of 57) of a repeated 57-byte block, base64-encoded in
// 76-column CRLF lines, without holding them in memory.
type b64Source struct {
	left int // lines still to produce
	line []byte
	pos  int
}

func blockOf57() []byte {
	b := make([]byte, 57)
	for i := range b {
		b[i] = byte(i*31 + 7)
	}
	return b
}

func newB64Source(n int) *b64Source {
	line := base64.StdEncoding.AppendEncode(nil, blockOf57())
	line = append(line, '\r', '\n')
	return &b64Source{left: n / 57, line: line, pos: len(line)}
}

func (s *b64Source) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if s.pos == len(s.line) {
			if s.left == 0 {
				break
			}
			s.left--
			s.pos = 0
		}
		c := copy(p[n:], s.line[s.pos:])
		s.pos += c
		n += c
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// bigMessage is a generated message whose attachment 0 (drawings.zip, base64) has size bytes (a
// multiple of 57); it also returns the attachment's SHA-256.
func bigMessage(size int) (io.Reader, string) {
	head := crlf("From: big@example.com\nTo: m2m@example.com\nSubject: Drawing set\nDate: Mon, 2 Mar 2026 10:00:00 +0100\n" +
		"Message-ID: <big@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=BIG\n\n" +
		"--BIG\nContent-Type: text/plain\n\nSee the drawings.\n--BIG\nContent-Type: application/zip\n" +
		"Content-Disposition: attachment; filename=drawings.zip\nContent-Transfer-Encoding: base64\n\n")
	h, block := sha256.New(), blockOf57()
	for range size / 57 {
		h.Write(block)
	}
	return io.MultiReader(strings.NewReader(head), newB64Source(size), strings.NewReader("--BIG--\r\n")),
		hex.EncodeToString(h.Sum(nil))
}

// allocated returns the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLargeAttachmentMemory parses a generated message with a 30 MB attachment and checks that the
// memory allocated stays far below the attachment's size; then the same for Extract (8 MB, to keep the
// race-detector run short: it is the same walk).
func TestLargeAttachmentMemory(t *testing.T) {
	const size = 57 * (30 << 20 / 57) // 30 MB, whole lines
	r, wantSHA := bigMessage(size)
	var m *Message
	var err error
	alloc := allocated(func() { m, err = Parse(r, Limits{}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Parse, %d-byte attachment, %d raw bytes: %d bytes allocated in all", size, m.Size, alloc)
	if alloc > 4<<20 {
		t.Errorf("Parse allocated %d bytes for a %d-byte attachment; it must stream", alloc, size)
	}
	if len(m.Attachments) != 1 || m.Attachments[0].Size != size || m.Attachments[0].SHA256 != wantSHA || len(m.Problems) != 0 {
		t.Fatalf("attachments %+v problems %q", m.Attachments, m.Problems)
	}

	const small = 57 * (8 << 20 / 57)
	r, wantSHA = bigMessage(small)
	hw := &hashCounter{h: sha256.New()}
	var a Attachment
	alloc = allocated(func() { a, err = Extract(r, 0, hw) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Extract, %d-byte attachment: %d bytes allocated in all", small, alloc)
	if alloc > 4<<20 {
		t.Errorf("Extract allocated %d bytes for a %d-byte attachment; it must stream", alloc, small)
	}
	if a.Size != small || a.SHA256 != wantSHA || hw.n != small || hex.EncodeToString(hw.h.Sum(nil)) != wantSHA {
		t.Errorf("Extract = %+v, %d bytes written", a, hw.n)
	}
}

func TestDateKeepsZone(t *testing.T) {
	m := mustParse(t, crlf("From: a@b\nDate: Mon, 2 Mar 2026 10:00:00 +0100 (CET)\n\n"), Limits{})
	if want := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("date %v, want %v", m.Date, want)
	}
}

// TestCheckText: reading a text body without keeping it reports what keeping it reports, however the
// decoder hands out the bytes (one at a time here), at and around the limit.
func TestCheckText(t *testing.T) {
	for _, text := range []string{
		"", "plain ascii", "naïve café", "caf\xe9", "ends cut \xc3", "\xe2\x82\xac euro", "abcdefg\xe2\x82", "abcdefgh\xe2\x82\xac",
		"abcdefghi\xe2\x82\xac", "abcdefghij\xe2", "0123456789", "01234567890", "\xff\xfe", strings.Repeat("é", 20),
	} {
		for _, limit := range []int{10, 1 << 10} {
			keep := newParser(Limits{MaxText: limit}.withDefaults(), -1, nil)
			keep.readText(strings.NewReader(text), "utf-8", "body")
			skip := newParser(Limits{MaxText: limit, SkipBodies: true}.withDefaults(), -1, nil)
			skip.readText(iotest.OneByteReader(strings.NewReader(text)), "utf-8", "body")
			if !reflect.DeepEqual(keep.msg.Problems, skip.msg.Problems) {
				t.Errorf("%q (limit %d): kept %q, skipped %q", text, limit, keep.msg.Problems, skip.msg.Problems)
			}
		}
	}
}

// TestParseDate: the fast path gives what net/mail.ParseDate gives, and leaves the rest to it.
func TestParseDate(t *testing.T) {
	for _, v := range []string{
		"Sun, 22 Nov 2026 11:00:00 +0100", "Mon, 2 Jan 2006 15:04:05 -0700", "Tue, 03 Mar 2026 09:15:00 +0000",
		"2 Jan 2006 15:04:05 -0700", "Mon, 2 Jan 2006 15:04:05 -0700 (PST)", "Mon, 2 Jan 06 15:04 GMT", "Wed, 31 Feb 2026 10:00:00 +0000",
		"Fri, 20 Nov 2026 10:00:00 +0100 ", "Thu, 19 Nov 2026 25:00:00 +0100", "", "yesterday",
	} {
		got, err := parseDate(v)
		want, werr := netmail.ParseDate(v)
		if (err == nil) != (werr == nil) || !got.Equal(want) || got.Format(time.RFC3339) != want.Format(time.RFC3339) {
			t.Errorf("%q: %v %v, net/mail gives %v %v", v, got, err, want, werr)
		}
	}
}

// TestPlainAddresses: the shortcut takes the common forms and leaves the rest to the full parser.
func TestPlainAddresses(t *testing.T) {
	for _, c := range []struct {
		v    string
		want []Address // nil: not taken
	}{
		{"Customer 1 <customer1@example.com>", []Address{{Name: "Customer 1", Address: "customer1@example.com"}}},
		{"a@b.example, C. D <c.d@e.example>", []Address{{Address: "a@b.example"}, {Name: "C. D", Address: "c.d@e.example"}}},
		{"a@b,c@d", []Address{{Address: "a@b"}, {Address: "c@d"}}},
		{`"Quoted" <a@b>`, nil},
		{"=?utf-8?q?N=C3=A4me?= <a@b>", nil},
		{"a@b (comment)", nil},
		{"Two  blanks <a@b>", nil},
		{"<a@b>", nil},
		{"x <.a@b>", nil},
		{"Åsa <a@b>", nil},
		{"a@b,", nil},
	} {
		got, ok := plainAddresses(c.v)
		if ok != (c.want != nil) || !reflect.DeepEqual(got, c.want) {
			t.Errorf("plainAddresses(%q) = %+v, %v; want %+v", c.v, got, ok, c.want)
		}
	}
}

// TestPlainMsgID: which Message-IDs the shortcut takes (FuzzPlainMsgID holds that those it takes
// parse the same; this holds that it takes the usual ones at all).
func TestPlainMsgID(t *testing.T) {
	for v, want := range map[string]string{
		"<a@b>": "a@b", "<bench-1@example.com>": "bench-1@example.com", "<.a..b.@c.>": ".a..b.@c.",
		"< a@b>": "", "<a@b@c>": "", "a@b": "", "<@b>": "", "<a@>": "", "<a@b> ": "", "<ä@b>": "", "<a@[1.2.3.4]>": "",
	} {
		got, ok := plainMsgID(v)
		if got != want || ok != (want != "") {
			t.Errorf("plainMsgID(%q) = %q, %v; want %q", v, got, ok, want)
		}
	}
}

// TestCanonicalKey: the shortcut agrees with net/textproto.
func TestCanonicalKey(t *testing.T) {
	for _, k := range []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Message-Id", "MIME-Version", "Mime-Version",
		"Content-Type", "Content-Transfer-Encoding", "Received", "Return-Path", "Reply-To", "In-Reply-To", "References",
		"message-id", "X-Custom-Field", "DKIM-Signature", "x_y"} {
		if got, want := canonicalKey([]byte(k)), textproto.CanonicalMIMEHeaderKey(k); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", k, got, want)
		}
	}
}
