package dovecot

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// names returns the user and group names of uid and gid (Dovecot's settings want names).
func names(uid, gid int) (string, string, error) {
	u, err := user.LookupId(fmt.Sprint(uid))
	if err != nil {
		return "", "", fmt.Errorf("look up uid %d: %w", uid, err)
	}
	g, err := user.LookupGroupId(fmt.Sprint(gid))
	if err != nil {
		return "", "", fmt.Errorf("look up gid %d: %w", gid, err)
	}
	return u.Username, g.Name, nil
}

// makeTLS makes a CA and a server certificate for 127.0.0.1, ::1 and localhost (ECDSA P-256).
func (s *Server) makeTLS() error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "inkorg test CA for Dovecot"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	s.pool = x509.NewCertPool()
	s.pool.AddCert(caCert)
	s.caFile = filepath.Join(s.dir, "tls", "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for p, b := range map[string][]byte{
		s.caFile:                                s.caPEM,
		filepath.Join(s.dir, "tls", "cert.pem"): certPEM,
		filepath.Join(s.dir, "tls", "key.pem"):  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := s.writeFile(p, b, 0o600); err != nil {
			return err
		}
	}
	// Readable by external programs run as another user (fetchmail as root reads it anyway).
	return os.Chmod(s.caFile, 0o644)
}

// makeSigningKey makes the RSA key whose public half Dovecot trusts for RS256 under kid.
func (s *Server) makeSigningKey() error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	s.signKey, s.kid = k, "k1"
	return s.trustKey("", "RS256", s.kid, &k.PublicKey)
}

var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// TrustKey makes Dovecot accept JWTs signed with key: alg is the JWT alg (RS256, PS256, ES256, HS256,
// ...), key is an *rsa.PublicKey or *ecdsa.PublicKey (or a []byte secret for HS*); azp "" is for
// tokens without an azp claim (Entra v1 tokens), kid "" for tokens without a kid. Dovecot caches keys
// until it restarts, so give a rotated key a new kid.
func (s *Server) TrustKey(azp, alg, kid string, key any) {
	s.t.Helper()
	if err := s.trustKey(azp, alg, kid, key); err != nil {
		s.t.Fatalf("dovecot: TrustKey: %v", err)
	}
}

func (s *Server) trustKey(azp, alg, kid string, key any) error {
	if azp == "" {
		azp = "default"
	}
	if kid == "" {
		kid = "default"
	}
	for _, v := range []string{azp, alg, kid} {
		if !keyName.MatchString(v) {
			return fmt.Errorf("%q: want letters, digits, '.', '_' or '-'", v)
		}
	}
	var content []byte
	switch k := key.(type) {
	case []byte:
		if !strings.HasPrefix(alg, "HS") {
			return fmt.Errorf("a secret is for HS* algorithms, not %s", alg)
		}
		content = []byte(b64(string(k)))
	case *rsa.PublicKey, *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return fmt.Errorf("marshal public key: %w", err)
		}
		content = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	d := filepath.Join(s.dir, "keys", azp, alg)
	if err := s.mkdir(d); err != nil {
		return err
	}
	if err := s.chown(filepath.Join(s.dir, "keys", azp)); err != nil {
		return err
	}
	return s.writeFile(filepath.Join(d, kid), content, 0o600)
}

// Token mints an RS256 JWT that Dovecot accepts for user (lower-cased) until ttl has passed; a ttl
// of zero or less makes an expired token. Claims: sub, upn (or Options.UsernameClaim), iat and nbf a
// minute ago, exp, and iss/aud when Options.Issuers/Audience are set; header kid "k1". The token is
// about 540 bytes, short enough for an inline AUTH initial response on Dovecot's submission.
func (s *Server) Token(user string, ttl time.Duration) string {
	s.t.Helper()
	now := time.Now()
	claim := s.opts.UsernameClaim
	if claim == "" {
		claim = "upn"
	}
	u := strings.ToLower(user)
	c := jwt.MapClaims{"sub": u, claim: u, "iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix()}
	if ttl <= 0 {
		c["iat"], c["nbf"] = now.Add(ttl-time.Hour).Unix(), now.Add(ttl-time.Hour).Unix()
	}
	if len(s.opts.Issuers) > 0 {
		c["iss"] = s.opts.Issuers[0]
	}
	if s.opts.Audience != "" {
		c["aud"] = s.opts.Audience
	}
	return s.SignToken(c)
}

// ExpiredToken is a token for user that expired an hour ago.
func (s *Server) ExpiredToken(user string) string {
	s.t.Helper()
	return s.Token(user, -time.Hour)
}

// ForgedToken is a token for user with valid claims whose signature does not verify.
func (s *Server) ForgedToken(user string, ttl time.Duration) string {
	s.t.Helper()
	tok := s.Token(user, ttl)
	i := strings.LastIndexByte(tok, '.') + 10 // a character in the middle of the signature
	b := []byte(tok)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// SignToken signs claims with the trusted RS256 key (header kid "k1"), whatever they say.
func (s *Server) SignToken(claims jwt.MapClaims) string {
	s.t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = s.kid
	signed, err := tok.SignedString(s.signKey)
	if err != nil {
		s.t.Fatalf("dovecot: sign token: %v", err)
	}
	return signed
}

// SigningKey is the private key behind Token, for tests that mint tokens elsewhere; its public
// half is trusted as RS256 with kid "k1" and no azp.
func (s *Server) SigningKey() (crypto.Signer, string) { return s.signKey, s.kid }
