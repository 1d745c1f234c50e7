package emulator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"inkorg/internal/emulator/entra"
	"inkorg/internal/emulator/exo"
	"inkorg/internal/emulator/scenario"
)

// authorizer decides, as Exchange Online does, whether a bearer token opens a mailbox. It implements
// exo.Authorizer on top of the Entra verifier and the (read-only) scenario.
//
// The order of checks: the token itself (signature, expiry, issuer: DenyBadToken), the audience
// (Exchange's App ID URIs for IMAP/SMTP, Graph's for Graph: DenyBadToken), the mailbox exists in the
// token's tenant (DenyBadToken), the protocol switch (IMAP disabled on the mailbox, SMTP AUTH disabled
// for the mailbox or tenant: DenyProtocolDisabled), then the permissions:
//   - app-only tokens need the role (IMAP.AccessAsApp, SMTP.SendAsApp; any Mail.* role for Graph),
//     else DenyBadToken; then an Exchange service principal for the app (else DenyNotConnected) whose
//     object ID is the token's oid (New-ServicePrincipal with the app registration's object ID instead
//     of the enterprise application's: DenyBadToken), then FullAccess on the mailbox (SMTP: FullAccess
//     or Send As), else DenyNotConnected. Graph app-only permissions cover every mailbox.
//   - delegated tokens need the scope (IMAP.AccessAsUser.All, SMTP.Send; Mail.* for Graph) and a
//     user= that is the token's UPN or a mailbox the user has FullAccess to, else DenyBadToken.
type authorizer struct {
	verifier *entra.Verifier
	sc       *scenario.Scenario
}

var _ exo.Authorizer = (*authorizer)(nil)

func deny(kind exo.DenialKind, format string, a ...any) error {
	return &exo.Denial{Kind: kind, Reason: fmt.Sprintf(format, a...)}
}

func exchangeAudience(aud string) bool {
	return scenario.CanonicalResource(aud) == scenario.ResourceExchange
}

func graphAudience(aud string) bool {
	return scenario.CanonicalResource(aud) == scenario.ResourceGraph
}

// Authorize implements exo.Authorizer.
func (a *authorizer) Authorize(_ context.Context, proto exo.Protocol, mailbox, bearer string) (exo.Principal, error) {
	c, err := a.verifier.Verify(bearer)
	if err != nil {
		if errors.Is(err, entra.ErrTokenExpired) {
			return exo.Principal{}, deny(exo.DenyBadToken, "token expired")
		}
		return exo.Principal{}, deny(exo.DenyBadToken, "token invalid: %v", err)
	}
	switch proto {
	case exo.ProtocolIMAP, exo.ProtocolSMTP:
		if !exchangeAudience(c.Audience) {
			return exo.Principal{}, deny(exo.DenyBadToken, "audience %q is not Exchange Online", c.Audience)
		}
	case exo.ProtocolGraph:
		if !graphAudience(c.Audience) {
			return exo.Principal{}, deny(exo.DenyBadToken, "audience %q is not Microsoft Graph", c.Audience)
		}
	default:
		return exo.Principal{}, fmt.Errorf("emulator: unknown protocol %q", proto)
	}
	mb, ok := a.sc.Mailbox(mailbox)
	if !ok {
		return exo.Principal{}, deny(exo.DenyBadToken, "no mailbox %q", mailbox)
	}
	if t, ok := a.sc.TenantOfAddress(mb.Address); !ok || t.ID != c.TenantID {
		return exo.Principal{}, deny(exo.DenyBadToken, "mailbox %s is not in tenant %s", mb.Address, c.TenantID)
	}
	switch proto {
	case exo.ProtocolIMAP:
		if !mb.IMAPOn() {
			return exo.Principal{}, deny(exo.DenyProtocolDisabled, "IMAP is disabled on %s", mb.Address)
		}
	case exo.ProtocolSMTP:
		if !a.sc.SMTPAuthEnabled(mb) {
			return exo.Principal{}, deny(exo.DenyProtocolDisabled, "SMTP AUTH is disabled for %s", mb.Address)
		}
	}
	p := exo.Principal{Mailbox: mb.Address, AppID: c.AppID, AppOnly: c.AppOnly(), UPN: c.UPN}
	if c.AppOnly() {
		return a.appOnly(proto, c, mb, p)
	}
	return a.delegated(proto, c, mb, p)
}

func (a *authorizer) appOnly(proto exo.Protocol, c entra.Claims, mb *scenario.Mailbox, p exo.Principal) (exo.Principal, error) {
	switch proto {
	case exo.ProtocolIMAP:
		if !c.HasRole(scenario.RoleIMAPAccessAsApp) {
			return exo.Principal{}, deny(exo.DenyBadToken, "app-only token without role %s", scenario.RoleIMAPAccessAsApp)
		}
	case exo.ProtocolSMTP:
		if !c.HasRole(scenario.RoleSMTPSendAsApp) {
			return exo.Principal{}, deny(exo.DenyBadToken, "app-only token without role %s", scenario.RoleSMTPSendAsApp)
		}
	case exo.ProtocolGraph:
		for _, r := range c.Roles {
			if strings.HasPrefix(r, "Mail.") {
				return p, nil
			}
		}
		return exo.Principal{}, deny(exo.DenyBadToken, "app-only Graph token without a Mail.* role")
	}
	sp, ok := a.sc.ServicePrincipal(c.AppID)
	if !ok {
		return exo.Principal{}, deny(exo.DenyNotConnected, "no Exchange service principal for app %s", c.AppID)
	}
	if sp.ObjectID != c.ObjectID {
		return exo.Principal{}, deny(exo.DenyBadToken, "service principal of app %s registered with object ID %s, token oid %s",
			c.AppID, sp.ObjectID, c.ObjectID)
	}
	switch proto {
	case exo.ProtocolIMAP:
		if !sp.HasFullAccess(mb.Address) {
			return exo.Principal{}, deny(exo.DenyNotConnected, "app %s has no FullAccess on %s", c.AppID, mb.Address)
		}
	case exo.ProtocolSMTP:
		if !sp.HasFullAccess(mb.Address) && !sp.CanSendAs(mb.Address) {
			return exo.Principal{}, deny(exo.DenyNotConnected, "app %s has neither FullAccess nor Send As on %s", c.AppID, mb.Address)
		}
	}
	return p, nil
}

func (a *authorizer) delegated(proto exo.Protocol, c entra.Claims, mb *scenario.Mailbox, p exo.Principal) (exo.Principal, error) {
	switch proto {
	case exo.ProtocolIMAP:
		if !c.HasScope(scenario.ScopeIMAP) {
			return exo.Principal{}, deny(exo.DenyBadToken, "delegated token without scope %s", scenario.ScopeIMAP)
		}
	case exo.ProtocolSMTP:
		if !c.HasScope(scenario.ScopeSMTPSend) {
			return exo.Principal{}, deny(exo.DenyBadToken, "delegated token without scope %s", scenario.ScopeSMTPSend)
		}
	case exo.ProtocolGraph:
		ok := false
		for _, s := range c.Scopes {
			ok = ok || strings.HasPrefix(strings.ToLower(s), "mail.")
		}
		if !ok {
			return exo.Principal{}, deny(exo.DenyBadToken, "delegated Graph token without a Mail.* scope")
		}
	}
	if c.UPN == "" {
		return exo.Principal{}, deny(exo.DenyBadToken, "delegated token without upn")
	}
	if u, ok := a.sc.User(c.UPN); !ok || u.Disabled {
		return exo.Principal{}, deny(exo.DenyBadToken, "user %s unknown or disabled", c.UPN)
	}
	if !strings.EqualFold(c.UPN, mb.Address) && !mb.HasFullAccess(c.UPN) {
		return exo.Principal{}, deny(exo.DenyBadToken, "user %s may not open %s", c.UPN, mb.Address)
	}
	return p, nil
}

// CanSendAs implements exo.Authorizer: a user may send as their own mailbox and the mailboxes they
// hold Send As on; an app as the mailboxes its service principal holds Send As on.
func (a *authorizer) CanSendAs(_ context.Context, p exo.Principal, from string) bool {
	from = strings.ToLower(strings.TrimSpace(from))
	if p.AppOnly {
		sp, ok := a.sc.ServicePrincipal(p.AppID)
		mb, isMailbox := a.sc.Mailbox(from)
		return ok && isMailbox && sp.CanSendAs(mb.Address)
	}
	if strings.EqualFold(from, p.UPN) {
		return true
	}
	mb, ok := a.sc.Mailbox(from)
	return ok && mb.CanSendAs(p.UPN)
}
