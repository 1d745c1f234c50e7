package api

import (
	"mime"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"inkorg/internal/store"
)

func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"", "type=general", "limit=1000&after=42", "after=-1", "unacked=true&account=a@b", "limit=0", "type=x&type=y", "foo=bar", "after=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseListQuery(v)
		if err != nil {
			if _, ok := err.(*ParamError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > store.MaxPage || q.After < 0 || (q.Type != "" && !q.Type.Valid()) {
			t.Fatalf("accepted %q as %+v", raw, q)
		}
		if q.After > 0 {
			if c, err := ParseCursor(FormatCursor(q.After)); err != nil || c != q.After {
				t.Fatalf("cursor %d does not round-trip", q.After)
			}
		}
	})
}

func FuzzContentDisposition(f *testing.F) {
	for _, s := range []string{"order.pdf", "Beställning.pdf", `a"b`, "../x", "\x00", "100%", "日本語.xml", " "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		v := ContentDisposition(name)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] >= 0x7f {
				t.Fatalf("header value %q has byte %#x", v, v[i])
			}
		}
		disp, params, err := mime.ParseMediaType(v)
		if err != nil || disp != "attachment" {
			t.Fatalf("%q does not parse: %v", v, err)
		}
		got := params["filename"]
		if got == "" || strings.ContainsAny(got, `/\`) {
			t.Fatalf("filename %q from %q", got, name)
		}
		if utf8.ValidString(name) && !strings.ContainsAny(name, "/\\") && strings.TrimSpace(name) == name && name != "" && name != "." && name != ".." && len(name) <= 200 {
			clean := true
			for _, r := range name {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
					clean = false
				}
			}
			if clean && got != name {
				t.Fatalf("filename %q came back as %q (%s)", name, got, v)
			}
		}
	})
}
