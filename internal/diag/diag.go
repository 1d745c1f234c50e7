// Package diag is inkorg's vocabulary for what went wrong talking to Entra ID and Exchange: a typed
// Error with the stage that failed, the code the other side gave (an AADSTS number, an IMAP or SMTP
// reply, an HTTP status), Entra's trace and correlation ids, the server's own words, and a one-line
// remedy in plain language with the tenant's real IDs filled in.
//
// The catalogue of remedies (catalogue.go) is the one place that maps codes to advice, shared by the
// token client, the IMAP and SMTP edges, the doctor, the API and the UI.
package diag

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
)

// Stage is the step of a connection that failed.
type Stage string

// The stages, in the order a connection goes through them.
const (
	StageSettings     Stage = "settings"
	StageToken        Stage = "token"
	StageClaims       Stage = "claims"
	StageConnect      Stage = "connect"
	StageTLS          Stage = "tls"
	StageAuthenticate Stage = "authenticate"
	StageSelect       Stage = "select"
	StageSend         Stage = "send"
)

// Kind says what a caller should do about an error.
type Kind string

// The kinds.
const (
	// KindConfig: the settings or the tenant's configuration are wrong; retrying will not help until an
	// administrator acts (pause the account, show the remedy).
	KindConfig Kind = "config"
	// KindTransient: a network failure, an outage or throttling; retry with backoff.
	KindTransient Kind = "transient"
	// KindThrottled: the server asked to slow down; retry after RetryAfter.
	KindThrottled Kind = "throttled"
)

// Error is a failure with everything an administrator needs to fix it.
type Error struct {
	Stage  Stage
	Kind   Kind
	Code   string // "AADSTS7000215", "IMAP NO", "SMTP 535 5.7.139", "HTTP 503", "x509"…
	AADSTS int    // the AADSTS number, when Entra gave one
	OAuth  string // Entra's error field: invalid_client, invalid_grant…

	TraceID       string // Entra's trace id: quote it to Microsoft support
	CorrelationID string

	Server  string // the server's own words, verbatim (never a secret)
	Summary string // what is wrong, in plain language
	Remedy  string // what to do, in plain language, with the real IDs filled in
	Actions []string

	RetryAfterMS int64 // for KindThrottled
	// MaybeDone: the request was handed over whole and its answer lost (a connection that broke after
	// SMTP's final dot, or while Graph's reply was awaited): the server may have carried it out, so
	// it must not be repeated blindly. A failure before that point leaves it false.
	MaybeDone bool
	Err       error // the underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", e.Stage)
	if e.Summary != "" {
		b.WriteString(e.Summary)
	} else if e.Server != "" {
		b.WriteString(e.Server)
	} else if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " [%s]", e.Code)
	}
	if e.Remedy != "" {
		fmt.Fprintf(&b, " — %s", e.Remedy)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// As returns the *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Is reports whether err is a diag error of the given kind.
func IsKind(err error, k Kind) bool {
	e := As(err)
	return e != nil && e.Kind == k
}

// FromDial classifies a failed TCP or TLS connection to addr: an untrusted certificate or a failed
// handshake (stage tls, a configuration problem, with tlsRemedy), a host name that does not exist (a
// configuration problem), or the network (transient: retried).
func FromDial(err error, addr, tlsRemedy string) *Error {
	port := addr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		port = addr[i+1:]
	}
	e := &Error{Stage: StageConnect, Kind: KindTransient, Code: "network", Server: err.Error(), Err: err,
		Summary: "cannot reach " + addr, Remedy: "check the address, the network and the firewall (outgoing port " + port + "); inkorg retries by itself"}
	var certErr *tls.CertificateVerificationError
	switch msg := err.Error(); {
	case errors.As(err, &certErr) || strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:"):
		e.Stage, e.Kind, e.Code = StageTLS, KindConfig, "tls"
		e.Summary = "the TLS handshake with " + addr + " failed: " + msg
		e.Remedy = tlsRemedy
	case strings.Contains(msg, "no such host"):
		e.Kind, e.Code, e.Summary, e.Remedy = KindConfig, "dns", "the host name in "+addr+" does not exist", "check the server address"
	case strings.Contains(msg, "connection refused"):
		e.Code, e.Summary = "refused", addr+" refused the connection"
	}
	return e
}
