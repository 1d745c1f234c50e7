package api

import (
	"strings"
	"unicode/utf8"
)

// ContentDisposition is an "attachment" Content-Disposition for filename, as RFC 6266 recommends: a
// plain ASCII filename="…" fallback for old clients, and, when the name is not plain ASCII, the exact
// name as filename*=UTF-8”… (RFC 5987 percent-encoding). Path separators and control characters never
// reach the header.
func ContentDisposition(filename string) string {
	name := cleanFilename(filename)
	var fallback strings.Builder
	plain := true
	for _, r := range name {
		switch {
		case r == '"' || r == '\\' || r == '%':
			fallback.WriteByte('_')
			plain = false
		case r >= 0x20 && r < 0x7f:
			fallback.WriteRune(r)
		default:
			fallback.WriteByte('_')
			plain = false
		}
	}
	v := `attachment; filename="` + fallback.String() + `"`
	if !plain {
		v += "; filename*=UTF-8''" + percentEncode(name)
	}
	return v
}

// cleanFilename makes a name safe to suggest: valid UTF-8, no directories, no control characters, not
// empty, at most 200 bytes.
func cleanFilename(s string) string {
	s = strings.ToValidUTF8(s, "_")
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return '_'
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if s == "" || s == "." || s == ".." {
		s = "attachment"
	}
	for len(s) > 200 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// percentEncode encodes s as an RFC 5987 value-chars: attr-char stays, every other byte is %XX.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
