package graph

import (
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are the few access-token claims this package reads itself. The Authorizer verifies the token
// (signature, expiry, audience, tenant, mailbox access); this package only peeks at the payload, either
// after the Authorizer accepted the token (to check the permission each operation needs, which
// exo.Principal does not carry) or after it refused (to pick Graph's exact error message).
type claims struct {
	aud     []string
	exp     time.Time
	roles   []string
	scopes  []string
	upn     string
	appOnly bool
}

// peekClaims decodes a JWT's payload without verifying it.
func peekClaims(bearer string) (claims, bool) {
	mc := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(bearer, mc); err != nil {
		return claims{}, false
	}
	var c claims
	c.aud, _ = mc.GetAudience()
	if e, err := mc.GetExpirationTime(); err == nil && e != nil {
		c.exp = e.Time
	}
	switch r := mc["roles"].(type) {
	case []any:
		for _, v := range r {
			if s, ok := v.(string); ok {
				c.roles = append(c.roles, s)
			}
		}
	case string:
		c.roles = strings.Fields(r)
	}
	if s, ok := mc["scp"].(string); ok {
		c.scopes = strings.Fields(s)
	}
	for _, k := range []string{"upn", "unique_name", "preferred_username"} {
		if s, ok := mc[k].(string); ok && s != "" {
			c.upn = s
			break
		}
	}
	idtyp, _ := mc["idtyp"].(string)
	c.appOnly = idtyp == "app" || len(c.scopes) == 0
	return c, true
}

func (c claims) graphAudience() bool {
	for _, a := range c.aud {
		if graphAudience(a) {
			return true
		}
	}
	return false
}

// permission is what an operation needs.
type permission int

const (
	permReadBasic permission = iota // list folders, message properties, delta
	permRead                        // $value (the body)
	permWrite                       // move, PATCH
	permSend                        // sendMail
)

// wanted lists the roles (app-only) or scopes (delegated) that grant p, lower-cased.
func wanted(p permission, appOnly bool) []string {
	if appOnly {
		switch p {
		case permReadBasic:
			return []string{"mail.readbasic", "mail.readbasic.all", "mail.read", "mail.readwrite"}
		case permRead:
			return []string{"mail.read", "mail.readwrite"}
		case permWrite:
			return []string{"mail.readwrite"}
		default:
			return []string{"mail.send"}
		}
	}
	switch p {
	case permReadBasic:
		return []string{"mail.readbasic", "mail.readbasic.shared", "mail.read", "mail.read.shared", "mail.readwrite", "mail.readwrite.shared"}
	case permRead:
		return []string{"mail.read", "mail.read.shared", "mail.readwrite", "mail.readwrite.shared"}
	case permWrite:
		return []string{"mail.readwrite", "mail.readwrite.shared"}
	default:
		return []string{"mail.send", "mail.send.shared"}
	}
}

// grants reports whether the token carries a role (app-only) or scope (delegated) for p.
func (c claims) grants(p permission) bool {
	have := c.scopes
	if c.appOnly {
		have = c.roles
	}
	want := wanted(p, c.appOnly)
	for _, h := range have {
		for _, w := range want {
			if strings.EqualFold(h, w) {
				return true
			}
		}
	}
	return false
}

// anyMail reports whether the token carries any Mail.* role or scope.
func (c claims) anyMail() bool {
	for _, l := range [][]string{c.roles, c.scopes} {
		for _, v := range l {
			if strings.HasPrefix(strings.ToLower(v), "mail.") {
				return true
			}
		}
	}
	return false
}
