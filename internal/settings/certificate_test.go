package settings

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// newCert makes a self-signed certificate and its key, as PEM.
func newCert(t *testing.T, notAfter time.Time, ec bool) (certPEM, keyPEM string) {
	t.Helper()
	var pub, priv any
	if ec {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub, priv = &k.PublicKey, k
	} else {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub, priv = &k.PublicKey, k
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "inkorg"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(priv)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

func TestCertificateFlow(t *testing.T) {
	year := time.Date(2027, 11, 22, 0, 0, 0, 0, time.UTC)
	cert, key := newCert(t, year, false)
	_, otherKey := newCert(t, year, false)
	ecCert, ecKey := newCert(t, year, true)
	soon, soonKey := newCert(t, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), false)
	old, oldKey := newCert(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false)
	base := System{EmailMethod: MethodExchangeOnline, ClientID: appID, TenantID: tenantID, AuthFlow: FlowCertificate}
	with := func(c, k string) System { s := base; s.ClientCertificate, s.ClientKey = c, NewSecret(k); return s }

	expect(t, Validate(Config{System: with(cert, key)}, today), SeverityError)
	expect(t, Validate(Config{System: base}, today), SeverityError,
		problem{"system.clientCertificate", "needs the certificate"}, problem{"system.clientKey", "needs the certificate's private key"})
	expect(t, CheckSystem(with(cert, otherKey), nil), SeverityError, problem{"system.clientKey", "does not belong to the certificate"})
	expect(t, CheckSystem(with("junk", key), nil), SeverityError, problem{"system.clientCertificate", "no PEM certificate"})
	expect(t, CheckSystem(with(ecCert, ecKey), nil), SeverityError, problem{"system.clientCertificate", "not RSA"})
	enc := strings.Replace(key, "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", 2)
	expect(t, CheckSystem(with(cert, enc), nil), SeverityError, problem{"system.clientKey", "encrypted"})
	expect(t, Validate(Config{System: with(old, oldKey)}, today), SeverityError, problem{"system.clientCertificate", "expired on 2026-01-01"})
	expect(t, Validate(Config{System: with(soon, soonKey)}, today), SeverityWarning, problem{"system.clientCertificate", "expires on 2026-12-02, in 10 days"})
	// A client secret does not apply under the certificate flow, and says why.
	s := with(cert, key)
	s.ClientSecret = NewSecret("Qx48Q~whatever")
	expect(t, CheckSystem(s, []string{"clientSecret"}), SeverityError, problem{"system.clientSecret", "not used with the authentication flow Certificate"})
	expect(t, CheckSystem(exoSystem(FlowClientSecret), []string{"clientCertificate"}), SeverityError, problem{"system.clientCertificate", "not used with the authentication flow Client secret"})

	e := ResolveUser(with(cert, key), User{Name: "ANNA"})
	if e.ClientCertificate.NotApplicable || !e.ClientSecret.NotApplicable || !strings.Contains(e.ClientCertificate.Value, "CN=inkorg, thumbprint ") ||
		!strings.Contains(e.ClientCertificate.Value, "expires 2027-11-22") || e.ClientKey.Value.State() != "set" {
		t.Errorf("effective: %+v %+v", e.ClientCertificate, e.ClientKey)
	}
	c, _, err := ParseCertificate(cert)
	if err != nil || len(c.Thumbprint) != 40 || strings.ToUpper(c.Thumbprint) != c.Thumbprint {
		t.Errorf("thumbprint %q %v", c.Thumbprint, err)
	}
}
