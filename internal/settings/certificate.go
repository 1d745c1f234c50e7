package settings

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
)

// FlowCertificate is the third authentication flow: the app signs in with a certificate credential
// instead of a client secret. Microsoft recommends certificates over secrets; the flow is inkorg's
// addition to the seeds' two.
const FlowCertificate AuthFlow = "certificate"

// Certificate is a parsed client certificate: what the UI and messages show of it.
type Certificate struct {
	Subject    string
	Thumbprint string // SHA-1, upper-case hex, as Entra ID shows it under Certificates & secrets
	NotAfter   time.Time
}

// String describes the certificate in one line.
func (c Certificate) String() string {
	return fmt.Sprintf("%s, thumbprint %s, expires %s", c.Subject, c.Thumbprint, c.NotAfter.UTC().Format(DateLayout))
}

// ParseCertificate reads the first certificate of a PEM text.
func ParseCertificate(pemText string) (Certificate, *x509.Certificate, error) {
	rest := []byte(pemText)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return Certificate{}, nil, errors.New("no PEM certificate found (the file must hold -----BEGIN CERTIFICATE-----)")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return Certificate{}, nil, fmt.Errorf("the certificate cannot be read: %v", err)
		}
		sum := sha1.Sum(c.Raw)
		return Certificate{Subject: c.Subject.String(), Thumbprint: strings.ToUpper(hex.EncodeToString(sum[:])), NotAfter: c.NotAfter}, c, nil
	}
}

// parsePrivateKey reads an unencrypted PEM private key (PKCS#8, PKCS#1 or EC).
func parsePrivateKey(pemText string) (crypto.Signer, error) {
	rest := []byte(pemText)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key found (the file must hold -----BEGIN PRIVATE KEY-----, unencrypted)")
		}
		if strings.Contains(b.Type, "ENCRYPTED") || b.Headers["Proc-Type"] != "" {
			return nil, errors.New("the private key is encrypted; give it unencrypted (inkorg seals it at rest itself)")
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
			if s, ok := k.(crypto.Signer); ok {
				return s, nil
			}
		}
		if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		return nil, errors.New("the private key cannot be read")
	}
}

func samePublicKey(a, b crypto.PublicKey) bool {
	switch a := a.(type) {
	case *rsa.PublicKey:
		return a.Equal(b)
	case *ecdsa.PublicKey:
		return a.Equal(b)
	case ed25519.PublicKey:
		return a.Equal(b)
	}
	return false
}

// checkCertificate checks a certificate and its key: readable, matching, RSA (what Entra ID accepts).
func checkCertificate(ps *Problems, p, certPEM string, key Secret) {
	var cert *x509.Certificate
	if certPEM != "" {
		var err error
		if _, cert, err = ParseCertificate(certPEM); err != nil {
			ps.err(p+"clientCertificate", "%s", err.Error())
		} else if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
			ps.err(p+"clientCertificate", "Microsoft Entra ID accepts RSA certificates for app credentials; this one is not RSA")
		}
	}
	if key.IsSet() {
		k, err := parsePrivateKey(key.Reveal())
		switch {
		case err != nil:
			ps.err(p+"clientKey", "%s", err.Error())
		case cert != nil && !samePublicKey(cert.PublicKey, k.Public()):
			ps.err(p+"clientKey", "the private key does not belong to the certificate")
		}
	}
}

// checkCertificateExpiry warns before, and errs after, the certificate's expiry.
func checkCertificateExpiry(ps *Problems, p, certPEM string, today Date) {
	c, _, err := ParseCertificate(certPEM)
	if err != nil || today.IsZero() {
		return
	}
	d := DateOf(c.NotAfter)
	switch n := d.DaysFrom(today); {
	case n < 0:
		ps.err(p+"clientCertificate", "the client certificate expired on %s: create a new one, upload it to the app registration (Certificates & secrets) and give it here with its key", d)
	case n <= ExpiryWarningDays:
		ps.warn(p+"clientCertificate", "the client certificate expires on %s, in %d days: create a new one and upload it to the app registration before then", d, n)
	}
}
