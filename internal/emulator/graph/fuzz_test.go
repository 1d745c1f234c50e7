package graph

import (
	"strings"
	"testing"
)

func FuzzDeltaToken(f *testing.F) {
	for _, t := range []syncToken{
		{kind: tokenDelta, epoch: [4]byte{1, 2, 3, 4}, state: 1},
		{kind: tokenSkip, epoch: [4]byte{0xff, 0, 0xff, 0}, state: 1 << 40, offset: 300},
		{kind: tokenSkip},
	} {
		f.Add(t.String())
	}
	for _, s := range []string{"", "not-a-token", "AQ", "AURBQkNEAQ", "AUQBAgMEgAA", "====", strings.Repeat("A", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseSyncToken(s)
		if err != nil {
			return
		}
		if tok.kind != tokenSkip && tok.kind != tokenDelta {
			t.Fatalf("kind %q accepted", tok.kind)
		}
		if tok.kind == tokenDelta && tok.offset != 0 {
			t.Fatalf("delta token with offset")
		}
		if got := tok.String(); got != s {
			t.Fatalf("not canonical: %q parsed, re-formatted %q", s, got)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add(messageID("alice@contoso.example", "INBOX", 1772443800, 42))
	f.Add(folderID("alice@contoso.example", "Processed/2026", 7))
	f.Add(rootID("bob@contoso.example"))
	f.Add("AAMkADhAAAW-VPeAAA=")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("not canonical: %q", s)
		}
		if !strings.HasPrefix(s, "AAMk") {
			t.Fatalf("id without the AAMk prefix accepted: %q", s)
		}
	})
}

func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"/v1.0/users/a@b/mailFolders/inbox/messages/delta", "/users('o''brien@x')/mailFolders('Inbox')/messages/delta()",
		"/v1.0", "/", "//", "/users/%zz", "/me/messages('x')/$value", "/users('')", "/users('a'b')", "/a(b)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		elems, err := splitPath(s)
		if err != nil {
			return
		}
		for _, e := range elems {
			if e == "" {
				t.Fatalf("%q: empty element in %q", s, elems)
			}
		}
	})
}

func FuzzDisplayNameFilter(f *testing.F) {
	for _, s := range []string{"displayName eq 'Inbox'", "DisplayName  eq  'It''s'", "displayName eq ''", "displayName eq 'a",
		"displayName ne 'x'", "displayNameeq 'x'", "startswith(displayName,'P')", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := parseDisplayNameFilter(s)
		if !ok {
			return
		}
		// The value round-trips through an OData literal.
		again, ok := parseDisplayNameFilter("displayName eq '" + strings.ReplaceAll(v, "'", "''") + "'")
		if !ok || again != v {
			t.Fatalf("%q: value %q does not round-trip (%q, %v)", s, v, again, ok)
		}
	})
}

func TestParseDisplayNameFilter(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"displayName eq 'Inbox'", "Inbox", true},
		{"  displayname EQ 'It''s done' ", "It's done", true},
		{"displayName eq ''", "", true},
		{"displayName eq 'a", "", false},
		{"displayName eq 'a'b'", "", false},
		{"displayName ne 'x'", "", false},
		{"displayNameeq 'x'", "", false},
	}
	for _, tc := range tests {
		got, ok := parseDisplayNameFilter(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"/v1.0/users/a@b/mailFolders/inbox", "users|a@b|mailFolders|inbox", false},
		{"/users('o''b@x')/mailFolders('Inbox')/messages/microsoft.graph.delta()", "users|o'b@x|mailFolders|Inbox|messages|microsoft.graph.delta", false},
		{"/v1.0/me/messages/AAMk%2Dx%3D/%24value", "me|messages|AAMk-x=|$value", false},
		{"/v1.0x/users", "v1.0x|users", false},
		{"/users//x", "", true},
		{"/users('a'b')", "", true},
		{"/users/%zz", "", true},
	}
	for _, tc := range tests {
		got, err := splitPath(tc.in)
		if (err != nil) != tc.err || strings.Join(got, "|") != tc.want {
			t.Errorf("%q: %q %v", tc.in, got, err)
		}
	}
}

func TestWithoutBcc(t *testing.T) {
	in := "From: a@x\r\nBcc: secret@x,\r\n  other@x\r\nTo: b@x\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n"
	want := "From: a@x\r\nTo: b@x\r\nSubject: s\r\n\r\nBcc: in the body stays\r\n"
	if got := string(withoutBcc([]byte(in))); got != want {
		t.Errorf("got %q", got)
	}
	if got := string(withoutBcc([]byte("no header end"))); got != "no header end" {
		t.Errorf("got %q", got)
	}
}

func FuzzWithoutBcc(f *testing.F) {
	f.Add([]byte("From: a@x\r\nBcc: b@x\r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out := withoutBcc(raw)
		if len(out) > len(raw) {
			t.Fatalf("grew: %q → %q", raw, out)
		}
	})
}
