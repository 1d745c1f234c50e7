package xoauth2

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestEncodeDocExample(t *testing.T) {
	// Microsoft's example (microsoft-protocol-facts.md §3.2).
	b, err := Encode("test@contoso.onmicrosoft.com", "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA")
	if err != nil {
		t.Fatal(err)
	}
	const want = "dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
	if got := base64.StdEncoding.EncodeToString(b); got != want {
		t.Fatalf("got %s", got)
	}
}

func TestParse(t *testing.T) {
	long := strings.Repeat("x", 8000)
	tests := []struct {
		name, in    string
		user, token string
		reason      string // "" = ok
	}{
		{"ok", "user=a@b\x01auth=Bearer tok\x01\x01", "a@b", "tok", ""},
		{"lowercase scheme", "user=a@b\x01auth=bearer tok\x01\x01", "a@b", "tok", ""},
		{"auth first", "auth=Bearer tok\x01user=a@b\x01\x01", "a@b", "tok", ""},
		{"extra field", "user=a@b\x01host=x\x01auth=Bearer tok\x01\x01", "a@b", "tok", ""},
		{"8KB token", "user=a@b\x01auth=Bearer " + long + "\x01\x01", "a@b", long, ""},
		{"empty", "", "", "", "empty response"},
		{"no terminator", "user=a@b\x01auth=Bearer tok", "", "", "missing ^A^A terminator"},
		{"one terminator", "user=a@b\x01auth=Bearer tok\x01", "", "", "missing ^A^A terminator"},
		{"no user", "auth=Bearer tok\x01\x01", "", "", "missing user"},
		{"empty user", "user=\x01auth=Bearer tok\x01\x01", "", "", "missing user"},
		{"no auth", "user=a@b\x01\x01", "", "", "missing auth"},
		{"basic scheme", "user=a@b\x01auth=Basic dXNlcg==\x01\x01", "", "", "auth scheme is not Bearer"},
		{"empty token", "user=a@b\x01auth=Bearer \x01\x01", "", "", "empty token"},
		{"no equals", "user=a@b\x01garbage\x01auth=Bearer t\x01\x01", "", "", "field without '='"},
		{"dup user", "user=a\x01user=b\x01auth=Bearer t\x01\x01", "", "", "duplicate user field"},
		{"dup auth", "user=a\x01auth=Bearer t\x01auth=Bearer u\x01\x01", "", "", "duplicate auth field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user, token, err := Parse([]byte(tc.in))
			if tc.reason == "" {
				if err != nil || user != tc.user || token != tc.token {
					t.Fatalf("got %q %q %v", user, token, err)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Reason != tc.reason || !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want reason %q", err, tc.reason)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, tc := range []struct{ user, token string }{
		{"", "t"}, {"u", ""}, {"u\x01", "t"}, {"u", "t\x01"}, {"u", "a b"}, {"u\r\n", "t"},
	} {
		if _, err := Encode(tc.user, tc.token); !errors.Is(err, ErrMalformed) {
			t.Errorf("Encode(%q, %q) = %v", tc.user, tc.token, err)
		}
	}
}

func TestClientNextNeverFails(t *testing.T) {
	c := NewClient("a@b", strings.Repeat("t", 6000))
	mech, ir, err := c.Start()
	if err != nil || mech != "XOAUTH2" {
		t.Fatal(mech, err)
	}
	if u, tok, err := Parse(ir); err != nil || u != "a@b" || len(tok) != 6000 {
		t.Fatal(u, len(tok), err)
	}
	ch := JSONChallenge("401", "https://outlook.office365.com/.default")
	resp, err := c.Next(ch)
	if err != nil || resp == nil || len(resp) != 0 {
		t.Fatalf("Next = %q, %v", resp, err)
	}
	if !bytes.Equal(c.ErrorChallenge(), ch) {
		t.Fatalf("challenge %q", c.ErrorChallenge())
	}
	if _, err := NewClient("", "t").Next(nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewClient("", "t").Start(); err == nil {
		t.Fatal("Start with an empty user must fail")
	}
}

func TestServer(t *testing.T) {
	errDenied := errors.New("denied")
	verify := func(user, token string) error {
		if token != "good" {
			return errDenied
		}
		return nil
	}
	ok, _ := Encode("a@b", "good")
	bad, _ := Encode("a@b", "bad")
	type step struct {
		resp      []byte
		challenge []byte
		done      bool
		err       error
	}
	challenge := JSONChallenge("401", "s")
	tests := []struct {
		name      string
		challenge bool
		steps     []step
	}{
		{"inline ok", false, []step{{ok, nil, true, nil}}},
		{"continuation ok", false, []step{{nil, nil, false, nil}, {ok, nil, true, nil}}},
		{"inline denied", false, []step{{bad, nil, false, errDenied}}},
		{"denied with challenge", true, []step{{bad, challenge, false, nil}, {[]byte{}, nil, false, errDenied}}},
		{"malformed", false, []step{{[]byte("junk"), nil, false, ErrMalformed}}},
		{"no initial response twice", false, []step{{nil, nil, false, nil}, {nil, nil, false, ErrMalformed}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(verify)
			if tc.challenge {
				s.ErrorChallenge = func(string, error) []byte { return challenge }
			}
			for i, st := range tc.steps {
				ch, done, err := s.Next(st.resp)
				if !bytes.Equal(ch, st.challenge) || done != st.done || !errors.Is(err, st.err) || (st.err == nil && err != nil) {
					t.Fatalf("step %d: got %q %v %v", i, ch, done, err)
				}
			}
			if _, _, err := s.Next([]byte{}); err == nil {
				t.Fatal("Next after the end must fail")
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"user=a@b\x01auth=Bearer tok\x01\x01", "", "\x01\x01", "user=\x01\x01", "auth=Bearer \x01\x01",
		"user=a\x01auth=bearer  t\x01x=y\x01\x01", "user=a@b\x01auth=Bearer tok",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		user, token, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if user == "" || token == "" {
			t.Fatalf("empty result from %q", b)
		}
		// Whatever Parse accepts and Encode can express must round-trip.
		if enc, err := Encode(user, token); err == nil {
			u2, t2, err := Parse(enc)
			if err != nil || u2 != user || t2 != token {
				t.Fatalf("round trip %q %q: %q %q %v", user, token, u2, t2, err)
			}
		}
	})
}
