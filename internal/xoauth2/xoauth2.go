// Package xoauth2 implements the SASL XOAUTH2 mechanism that Exchange Online (and Gmail) accept for
// IMAP, POP and SMTP: the client sends
//
//	"user=" + user + "\x01auth=Bearer " + token + "\x01\x01"
//
// (base64-encoded by the protocol layer). Client is a go-sasl sasl.Client usable with both
// imapclient.Client.Authenticate and go-smtp's Client.Auth; Server is a sasl.Server for emulators.
// Encode and Parse are the wire format on their own.
package xoauth2

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"
)

// Mechanism is the SASL mechanism name.
const Mechanism = "XOAUTH2"

// ErrMalformed is matched (errors.Is) by every *ParseError.
var ErrMalformed = errors.New("xoauth2: malformed initial response")

// ParseError says why an XOAUTH2 initial response (or a value given to Encode) is not acceptable.
type ParseError struct {
	Reason string
}

func (e *ParseError) Error() string { return "xoauth2: malformed initial response: " + e.Reason }

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *ParseError) Unwrap() error { return ErrMalformed }

func malformed(format string, args ...any) error {
	return &ParseError{Reason: fmt.Sprintf(format, args...)}
}

// Encode returns the raw (not base64-encoded) XOAUTH2 initial response for user and token.
func Encode(user, token string) ([]byte, error) {
	switch {
	case user == "":
		return nil, malformed("empty user")
	case token == "":
		return nil, malformed("empty token")
	case strings.ContainsAny(user, "\x01\r\n"):
		return nil, malformed("user contains a control character")
	case strings.ContainsAny(token, "\x01\r\n "):
		return nil, malformed("token contains a space or control character")
	}
	b := make([]byte, 0, len(user)+len(token)+22)
	b = append(b, "user="...)
	b = append(b, user...)
	b = append(b, "\x01auth=Bearer "...)
	b = append(b, token...)
	b = append(b, "\x01\x01"...)
	return b, nil
}

// Parse splits a raw XOAUTH2 initial response into the user and the bearer token. Unknown key=value
// fields are ignored; the auth scheme name is case-insensitive.
func Parse(b []byte) (user, token string, err error) {
	if len(b) == 0 {
		return "", "", malformed("empty response")
	}
	if !bytes.HasSuffix(b, []byte("\x01\x01")) {
		return "", "", malformed("missing ^A^A terminator")
	}
	var haveUser, haveAuth bool
	for _, f := range bytes.Split(b[:len(b)-2], []byte{1}) {
		key, val, ok := bytes.Cut(f, []byte("="))
		if !ok {
			return "", "", malformed("field without '='")
		}
		switch string(key) {
		case "user":
			if haveUser {
				return "", "", malformed("duplicate user field")
			}
			haveUser, user = true, string(val)
		case "auth":
			if haveAuth {
				return "", "", malformed("duplicate auth field")
			}
			scheme, tok, ok := bytes.Cut(val, []byte(" "))
			if !ok || !strings.EqualFold(string(scheme), "Bearer") {
				return "", "", malformed("auth scheme is not Bearer")
			}
			haveAuth, token = true, string(bytes.TrimLeft(tok, " "))
		}
	}
	switch {
	case !haveUser || user == "":
		return "", "", malformed("missing user")
	case !haveAuth:
		return "", "", malformed("missing auth")
	case token == "":
		return "", "", malformed("empty token")
	}
	return user, token, nil
}

// Client is a sasl.Client for XOAUTH2. Its Next never fails: a server that refuses may send a JSON
// error challenge (Gmail does; Exchange does not), which Client records and answers with an empty
// response, so that the server finishes the command with its own failure reply. A Client serves one
// authentication at a time.
type Client struct {
	user, token string
	challenge   []byte
}

var _ sasl.Client = (*Client)(nil)

// NewClient returns a client that authenticates as user with the bearer token.
func NewClient(user, token string) *Client { return &Client{user: user, token: token} }

// Start implements sasl.Client.
func (c *Client) Start() (string, []byte, error) {
	c.challenge = nil
	ir, err := Encode(c.user, c.token)
	if err != nil {
		return "", nil, err
	}
	return Mechanism, ir, nil
}

// Next implements sasl.Client: it records the challenge and returns an empty response.
func (c *Client) Next(challenge []byte) ([]byte, error) {
	c.challenge = append([]byte(nil), challenge...)
	return []byte{}, nil
}

// ErrorChallenge returns the last (decoded) challenge the server sent, typically a JSON error, or nil.
func (c *Client) ErrorChallenge() []byte { return c.challenge }

// Server is a sasl.Server for XOAUTH2. Verify decides; its error is returned unchanged from Next, so
// a protocol layer can pass its own reply (an *imap.Error, an *smtp.SMTPError...) through it.
//
// When ErrorChallenge is set, a failed Verify is first answered with the challenge it returns (the
// Gmail-style base64 JSON), and Next fails with the Verify error on the client's (empty) reply.
// When it is nil, Next fails at once, which is what Exchange Online does.
type Server struct {
	Verify         func(user, token string) error
	ErrorChallenge func(user string, err error) []byte

	state int // 0: start, 1: waiting for the initial response, 2: sent error challenge, 3: done
	err   error
}

var _ sasl.Server = (*Server)(nil)

// NewServer returns a Server that calls verify.
func NewServer(verify func(user, token string) error) *Server { return &Server{Verify: verify} }

// Next implements sasl.Server.
func (s *Server) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.state {
	case 0, 1:
		if response == nil {
			if s.state == 1 {
				return nil, false, malformed("no initial response")
			}
			s.state = 1
			return nil, false, nil // an empty "+ " / "334 " asking for the initial response
		}
		user, token, perr := Parse(response)
		if perr != nil {
			s.state = 3
			return nil, false, perr
		}
		if verr := s.Verify(user, token); verr != nil {
			if s.ErrorChallenge != nil {
				s.state, s.err = 2, verr
				ch := s.ErrorChallenge(user, verr)
				if ch == nil {
					ch = []byte{}
				}
				return ch, false, nil
			}
			s.state = 3
			return nil, false, verr
		}
		s.state = 3
		return nil, true, nil
	case 2:
		s.state = 3
		return nil, false, s.err
	default:
		return nil, false, errors.New("xoauth2: unexpected response after the exchange ended")
	}
}

// JSONChallenge returns a Gmail-style XOAUTH2 error challenge, e.g.
// {"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}.
func JSONChallenge(status, scope string) []byte {
	return fmt.Appendf(nil, `{"status":%q,"schemes":"bearer","scope":%q}`, status, scope)
}
