package mailparse

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/emersion/go-message/mail"
)

// seedFixtures adds every testdata/*.eml and a few hand-made oddities to f.
func seedFixtures(f *testing.F) {
	for _, path := range fixtures(f) {
		raw, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, s := range []string{
		"",
		"Subject: x",
		"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\n",
		"From: a@b\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n",
		"From: a@b\r\nContent-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\n//5hAGIA\r\n",
		"From: a@b\r\nContent-Disposition: attachment; filename*0*=utf-8''%E2%82; filename*1*=%AC\r\nContent-Type: application/xml\r\n\r\n<Invoice/>",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParse checks that Parse never panics and that its output is consistent: size and hash of the
// raw bytes, valid UTF-8 everywhere, sanitised filenames, stable indices that Extract finds again.
func FuzzParse(f *testing.F) {
	seedFixtures(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		lim := Limits{MaxText: 1 << 10, MaxParts: 50, MaxHeaderBytes: 1 << 10}
		m, err := Parse(bytes.NewReader(raw), lim)
		// ParseBytes, with and without the bodies, is Parse of the same bytes; and Parse reading one
		// byte at a time is Parse.
		for _, l := range []Limits{lim, {MaxText: lim.MaxText, MaxParts: lim.MaxParts, MaxHeaderBytes: lim.MaxHeaderBytes, SkipBodies: true}} {
			want, wantErr := Parse(bytes.NewReader(raw), l)
			got, gotErr := ParseBytes(raw, l)
			if !reflect.DeepEqual(got, want) || (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("ParseBytes (SkipBodies %v) = %+v, %v\nParse = %+v, %v", l.SkipBodies, got, gotErr, want, wantErr)
			}
			slow, slowErr := Parse(iotest.OneByteReader(bytes.NewReader(raw)), l)
			if !reflect.DeepEqual(slow, want) || (slowErr == nil) != (wantErr == nil) {
				t.Fatalf("Parse one byte at a time (SkipBodies %v) = %+v, %v\nParse = %+v, %v", l.SkipBodies, slow, slowErr, want, wantErr)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrNotAMessage) {
				t.Fatalf("Parse: unexpected error %v", err)
			}
			return
		}
		if m.Size != int64(len(raw)) || m.SHA256 != sha(string(raw)) {
			t.Fatalf("size %d sha %s for %d bytes", m.Size, m.SHA256, len(raw))
		}
		// Without the bodies, everything else is the same.
		lim.SkipBodies = true
		meta, err := Parse(bytes.NewReader(raw), lim)
		if err != nil {
			t.Fatalf("Parse with SkipBodies: %v", err)
		}
		want := *m
		want.TextBody, want.TextTruncated, want.HTMLBody, want.HTMLTruncated = "", false, "", false
		if !reflect.DeepEqual(*meta, want) {
			t.Fatalf("with SkipBodies\n%+v\nwant\n%+v", *meta, want)
		}
		if len(m.TextBody) > lim.MaxText || len(m.HTMLBody) > lim.MaxText {
			t.Fatalf("body longer than MaxText: %d %d", len(m.TextBody), len(m.HTMLBody))
		}
		for _, s := range []string{m.Subject, m.TextBody, m.HTMLBody, m.MessageID, m.From.Name, m.From.Address} {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 %q", s)
			}
		}
		for i, a := range m.Attachments {
			if a.Index != i {
				t.Fatalf("attachment %d has index %d", i, a.Index)
			}
			if strings.ContainsAny(a.Filename, "/\\\x00\r\n") || !utf8.ValidString(a.Filename) || a.Filename != sanitizeFilename(a.Filename) {
				t.Fatalf("filename not sanitised: %q", a.Filename)
			}
			if i >= 3 {
				continue // Extract re-reads the message per attachment: keep the fuzz loop fast
			}
			var buf bytes.Buffer
			got, err := Extract(bytes.NewReader(raw), i, &buf)
			if err != nil {
				t.Fatalf("Extract(%d): %v", i, err)
			}
			if got != a || int64(buf.Len()) != a.Size || sha(buf.String()) != a.SHA256 {
				t.Fatalf("Extract(%d) = %+v (%d bytes), Parse said %+v", i, got, buf.Len(), a)
			}
		}
	})
}

// FuzzClassifyM2M checks that classification never panics and always explains itself; the XML
// attachments of the fuzzed message are read through Extract.
func FuzzClassifyM2M(f *testing.F) {
	seedFixtures(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(bytes.NewReader(raw), Limits{MaxText: 1 << 10, MaxParts: 50})
		if err != nil {
			return
		}
		open := AttachmentOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
		got := ClassifyM2M(m, open)
		if got.Kind == "" || got.Reason == "" {
			t.Fatalf("no kind or reason: %+v", got)
		}
		if got.XMLIndex >= len(m.Attachments) || got.PDFIndex >= len(m.Attachments) || got.XMLIndex < -1 || got.PDFIndex < -1 {
			t.Fatalf("indices out of range: %+v with %d attachments", got, len(m.Attachments))
		}
		if len(got.DocumentNumber) > maxNumberLen {
			t.Fatalf("document number too long: %q", got.DocumentNumber)
		}
	})
}

// FuzzPlainAddresses checks the shortcut for simple address lists against the full parser: whatever it
// accepts, the full parser reads the same way.
func FuzzPlainAddresses(f *testing.F) {
	for _, s := range []string{
		"Customer 1 <customer1@example.com>", "a@b", "a@b, c@d", "a@b,c@d", "A. B. <a.b@c.d>", "x <.a@b>", "x <a..b@c>",
		"a@b.", "=?utf-8?q?x?= <a@b>", `"A" <a@b>`, "a@b (c)", "g: a@b;", "x  y <a@b>", "<a@b>", " a@b", "a@b ", "a@[1.2.3.4]",
		"A <a@b>, B <c@d>", "a@b,", ",a@b", "a <b@c> d", "a b@c", "ä <a@b>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := plainAddresses(v)
		if !ok {
			return
		}
		list, err := mail.ParseAddressList(v)
		if err != nil {
			t.Fatalf("plainAddresses(%q) = %+v, the parser fails: %v", v, got, err)
		}
		want := make([]Address, 0, len(list))
		for _, a := range list {
			want = append(want, Address{Name: a.Name, Address: a.Address})
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("plainAddresses(%q) = %+v, the parser says %+v", v, got, want)
		}
	})
}

// FuzzPlainMsgID: the fast path for a plain msg-id agrees with go-message's parser whenever it
// answers.
func FuzzPlainMsgID(f *testing.F) {
	for _, s := range []string{"<a@b>", "<bench-1@example.com>", "<.a..b.@c.>", "<a@[1.2.3.4]>", "<a@b@c>", "< a@b>", "<a@b> ", "(c) <a@b>",
		"<a\"b@c>", "<ä@b>", "<@b>", "<a@>", "a@b", "<a@b>x", "<a(b)@c>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := plainMsgID(v)
		if !ok {
			return
		}
		h := one("Message-Id", v)
		want, err := h.MessageID()
		if err != nil || got != want {
			t.Fatalf("plainMsgID(%q) = %q, the parser says %q, %v", v, got, want, err)
		}
	})
}
