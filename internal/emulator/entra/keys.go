package entra

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signingKey is the RSA key the emulator signs tokens with, and the self-signed certificate that
// carries it in the JWKS (Entra's keys have x5c and x5t; the kid is the x5t).
type signingKey struct {
	key  *rsa.PrivateKey
	cert []byte // DER
	kid  string
}

func newSigningKey(now time.Time) (*signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("entra: generate signing key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net (emulated)"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("entra: signing certificate: %w", err)
	}
	return &signingKey{key: key, cert: der, kid: certThumb1(der)}, nil
}

func (k *signingKey) sign(claims jwt.MapClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["x5t"] = k.kid
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.key)
	if err != nil {
		return "", fmt.Errorf("entra: sign token: %w", err)
	}
	return s, nil
}

// jwk is one key of the JWKS document, in Entra's shape.
type jwk struct {
	Kty    string   `json:"kty"`
	Use    string   `json:"use"`
	Kid    string   `json:"kid"`
	X5t    string   `json:"x5t"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X5c    []string `json:"x5c"`
	Issuer string   `json:"issuer,omitempty"`
}

func (k *signingKey) jwk(issuer string) jwk {
	return jwk{
		Kty: "RSA", Use: "sig", Kid: k.kid, X5t: k.kid,
		N:      base64.RawURLEncoding.EncodeToString(k.key.N.Bytes()),
		E:      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.key.E)).Bytes()),
		X5c:    []string{base64.StdEncoding.EncodeToString(k.cert)},
		Issuer: issuer,
	}
}

// Claims are the claims of an access token the Verifier accepted.
type Claims struct {
	Audience  string
	Issuer    string
	TenantID  string
	AppID     string
	AppIDACR  string // "0" public client, "1" secret, "2" certificate
	ObjectID  string // the user's or the service principal's object ID
	IDType    string // "app" or "user"
	UPN       string // delegated tokens only
	Roles     []string
	Scopes    []string // scp, split on spaces
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresAt time.Time
	Version   string
}

// AppOnly reports whether the token is a client-credentials (application) token.
func (c Claims) AppOnly() bool { return c.IDType == "app" }

// HasRole reports whether the token carries an application role.
func (c Claims) HasRole(r string) bool {
	for _, x := range c.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// HasScope reports whether the token carries a delegated scope (case-insensitive).
func (c Claims) HasScope(s string) bool {
	for _, x := range c.Scopes {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// ErrTokenExpired is wrapped by Verify's error for a token past its exp.
var ErrTokenExpired = errors.New("entra: token expired")

// TokenError is why the Verifier refused a token.
type TokenError struct {
	Reason string
	Err    error
}

func (e *TokenError) Error() string {
	if e.Err != nil {
		return "entra: token rejected: " + e.Reason + ": " + e.Err.Error()
	}
	return "entra: token rejected: " + e.Reason
}

func (e *TokenError) Unwrap() error { return e.Err }

// Verifier checks access tokens issued by the emulator: RS256 signature with the emulator's key (by
// kid), expiry and not-before against the injected clock, and the issuer
// https://sts.windows.net/{tid}/ of a tenant the emulator knows. Audience and permissions are the
// caller's business. Safe for concurrent use.
type Verifier struct {
	key     *signingKey
	clock   func() time.Time
	tenants map[string]bool
}

// Verify parses and checks a token.
func (v *Verifier) Verify(token string) (Claims, error) {
	var mc jwt.MapClaims
	parsed, err := jwt.ParseWithClaims(token, &mc, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid != v.key.kid {
			return nil, fmt.Errorf("unknown signing key %q", kid)
		}
		return &v.key.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(v.clock), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt())
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Claims{}, &TokenError{Reason: "expired", Err: ErrTokenExpired}
		}
		return Claims{}, &TokenError{Reason: "invalid", Err: err}
	}
	if !parsed.Valid {
		return Claims{}, &TokenError{Reason: "invalid"}
	}
	str := func(k string) string { s, _ := mc[k].(string); return s }
	c := Claims{
		Audience: str("aud"), Issuer: str("iss"), TenantID: str("tid"), AppID: str("appid"),
		AppIDACR: str("appidacr"), ObjectID: str("oid"), IDType: str("idtyp"), UPN: str("upn"),
		Version: str("ver"),
	}
	if c.Version != "1.0" || c.Issuer != "https://sts.windows.net/"+c.TenantID+"/" || !v.tenants[c.TenantID] {
		return Claims{}, &TokenError{Reason: fmt.Sprintf("issuer %q is not a tenant of the emulator", c.Issuer)}
	}
	if roles, ok := mc["roles"].([]any); ok {
		for _, r := range roles {
			if s, ok := r.(string); ok {
				c.Roles = append(c.Roles, s)
			}
		}
	}
	if scp := str("scp"); scp != "" {
		c.Scopes = strings.Fields(scp)
	}
	if t, err := mc.GetIssuedAt(); err == nil && t != nil {
		c.IssuedAt = t.Time
	}
	if t, err := mc.GetNotBefore(); err == nil && t != nil {
		c.NotBefore = t.Time
	}
	if t, err := mc.GetExpirationTime(); err == nil && t != nil {
		c.ExpiresAt = t.Time
	}
	return c, nil
}
