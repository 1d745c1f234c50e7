// Package exo is the emulator's Exchange Online mail side: an in-memory mail store, the IMAP front end
// (implicit TLS) and the SMTP submission front end (STARTTLS), both authenticating with SASL XOAUTH2 and
// answering with Exchange Online's own words.
//
// Identity decisions (is this token good, may this app open that mailbox, is IMAP switched off for it)
// are not made here: they come through the Authorizer, which the emulator's assembly implements on top of
// its Entra ID part and the scenario. This package only turns a Denial into the exact reply each protocol
// gives.
package exo

import (
	"context"
	"fmt"
)

// Protocol names the Exchange front end a client authenticates to.
type Protocol string

// The front ends.
const (
	ProtocolIMAP  Protocol = "imap"
	ProtocolSMTP  Protocol = "smtp"
	ProtocolGraph Protocol = "graph"
)

// Principal is what a verified access token grants on one mailbox.
type Principal struct {
	Mailbox string // the mailbox the session opened (XOAUTH2 user=, or the Graph /users/{id})
	AppID   string // the token's appid claim
	AppOnly bool   // client-credentials token (roles) rather than delegated (scp)
	UPN     string // the signed-in user, for delegated tokens
}

// DenialKind says how Exchange refuses, so each front end can answer with its own exact words.
type DenialKind int

// The ways Exchange refuses an authentication.
const (
	// DenyBadToken: bad signature, expired, wrong audience, missing role or scope, user= not the token's
	// user. IMAP: "NO AUTHENTICATE failed."; SMTP: "535 5.7.3 Authentication unsuccessful".
	DenyBadToken DenialKind = iota + 1
	// DenyNotConnected: the token is good but the app has no Exchange service principal or no FullAccess
	// permission on the mailbox. IMAP accepts AUTHENTICATE and then answers the next command with
	// "BAD User is authenticated but not connected."; SMTP: "535 5.7.3 Authentication unsuccessful".
	DenyNotConnected
	// DenyProtocolDisabled: IMAP disabled on the mailbox (IMAP: "NO AUTHENTICATE failed."), or SMTP AUTH
	// disabled for the mailbox or tenant (SMTP: "535 5.7.139 Authentication unsuccessful,
	// SmtpClientAuthentication is disabled for the Tenant. …").
	DenyProtocolDisabled
	// DenyLoginRefused: a fault injected by the test ("refuse logins"); answered like DenyBadToken.
	DenyLoginRefused
)

// Denial is the error an Authorizer returns when Exchange would refuse. Reason is for the emulator's
// own log and request record; it is never sent to the client (Exchange does not explain itself).
type Denial struct {
	Kind   DenialKind
	Reason string
}

func (d *Denial) Error() string { return fmt.Sprintf("exo: denied (%d): %s", d.Kind, d.Reason) }

// Authorizer decides who may open which mailbox. The emulator's assembly implements it from the
// Entra ID token verifier and the scenario (apps, service principals, mailbox permissions, switches).
type Authorizer interface {
	// Authorize checks a bearer token presented to front end proto for mailbox. It returns the
	// Principal, or a *Denial (any other error is an internal failure).
	Authorize(ctx context.Context, proto Protocol, mailbox, bearer string) (Principal, error)
	// CanSendAs reports whether p may send with the given From address (Send As / SMTP.SendAsApp).
	CanSendAs(ctx context.Context, p Principal, from string) bool
}
