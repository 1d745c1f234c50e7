package entra

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"inkorg/internal/diag"
)

// Claims are the parts of an access token inkorg looks at. They are decoded without verifying the
// signature — Exchange verifies — only to name a wrong audience or a missing permission precisely.
type Claims struct {
	Audience   string   `json:"aud"`
	Issuer     string   `json:"iss"`
	TenantID   string   `json:"tid"`
	AppID      string   `json:"appid"`
	ObjectID   string   `json:"oid"`
	UPN        string   `json:"upn"`
	UniqueName string   `json:"unique_name"`
	Roles      []string `json:"roles"`
	Scope      string   `json:"scp"`
	IDType     string   `json:"idtyp"`
	Expires    int64    `json:"exp"`
}

// ExpiresAt is the exp claim as a time.
func (c Claims) ExpiresAt() time.Time { return time.Unix(c.Expires, 0) }

// Scopes splits the scp claim.
func (c Claims) Scopes() []string { return strings.Fields(c.Scope) }

// User is the signed-in user of a delegated token.
func (c Claims) User() string {
	if c.UPN != "" {
		return c.UPN
	}
	return c.UniqueName
}

// ErrNotJWT means the token is opaque: Microsoft may issue tokens for its own APIs that are not JWTs.
var ErrNotJWT = errors.New("the access token is not a JWT")

// DecodeClaims reads a JWT's payload without verifying it.
func DecodeClaims(token string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, ErrNotJWT
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrNotJWT, err)
	}
	var c Claims
	if err := json.Unmarshal(b, &c); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrNotJWT, err)
	}
	return c, nil
}

// The App ID URIs (and app id) by which Office 365 Exchange Online and Microsoft Graph appear in aud.
var (
	exchangeAudiences = []string{"https://outlook.office365.com", "https://outlook.office.com", "https://ps.outlook.com", "00000002-0000-0ff1-ce00-000000000000"}
	graphAudiences    = []string{"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"}
)

func audienceIn(aud string, set []string) bool {
	return slices.Contains(set, strings.TrimRight(strings.ToLower(aud), "/"))
}

// needs returns the permission a purpose needs: an application role for app-only tokens, a delegated
// scope otherwise, and the API it lives under in the portal.
func needs(p Purpose, appOnly bool) (permission, api string, audiences []string) {
	switch p {
	case PurposeIMAP:
		if appOnly {
			return "IMAP.AccessAsApp", "Office 365 Exchange Online", exchangeAudiences
		}
		return "IMAP.AccessAsUser.All", "Office 365 Exchange Online", exchangeAudiences
	case PurposeSMTP:
		if appOnly {
			return "SMTP.SendAsApp", "Office 365 Exchange Online", exchangeAudiences
		}
		return "SMTP.Send", "Office 365 Exchange Online", exchangeAudiences
	case PurposeGraphRead:
		return "Mail.ReadWrite", "Microsoft Graph", graphAudiences
	default:
		return "Mail.Send", "Microsoft Graph", graphAudiences
	}
}

// CheckClaims checks, before connecting, that a token can do what it is for: the right audience and
// the permission the purpose needs. It returns nil for a good token and for an opaque one (which
// cannot be read, so Exchange decides). The error names the permission to add and where.
func CheckClaims(t Token, p Purpose, appOnly bool, f diag.Facts) *diag.Error {
	c := t.Claims
	if c.Audience == "" {
		return nil
	}
	perm, api, auds := needs(p, appOnly)
	kind := "delegated permission"
	has := slices.ContainsFunc(c.Scopes(), func(s string) bool { return strings.EqualFold(s, perm) })
	if appOnly {
		kind = "application permission"
		has = slices.ContainsFunc(c.Roles, func(s string) bool { return strings.EqualFold(s, perm) })
	}
	f.ServicePrincipalID = or(f.ServicePrincipalID, c.ObjectID, appOnly)
	section := "Delegated permissions"
	if appOnly {
		section = "Application permissions"
	}
	grant := fmt.Sprintf("in Entra ID › App registrations › the app › API permissions › Add a permission › APIs my organization uses › %s › %s, add %s, then grant admin consent (%s)",
		api, section, perm, f.ConsentURL())
	switch {
	case !audienceIn(c.Audience, auds):
		return &diag.Error{Stage: diag.StageClaims, Kind: diag.KindConfig, Code: "aud",
			Server:  "aud=" + c.Audience,
			Summary: fmt.Sprintf("the token is for %s, but %s needs a token for %s", c.Audience, p, api),
			Remedy:  grant}
	case !has:
		got := strings.Join(c.Roles, ", ")
		if !appOnly {
			got = c.Scope
		}
		if got == "" {
			got = "none"
		}
		return &diag.Error{Stage: diag.StageClaims, Kind: diag.KindConfig, Code: "permission",
			Server:  "token permissions: " + got,
			Summary: fmt.Sprintf("the app lacks the %s %s (%s) for %s; the token carries: %s", api, kind, perm, p, got),
			Remedy:  grant + " — permissions added under Microsoft Graph do not count for IMAP and SMTP"}
	}
	return nil
}

func or(a, b string, useB bool) string {
	if a != "" || !useB {
		return a
	}
	return b
}
