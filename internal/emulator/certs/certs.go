// Package certs is the emulator's private certificate authority: a CA generated when the emulator
// starts (written to DIR/ca.pem for clients to trust), one server certificate for the loopback names,
// and the TLS configurations of the emulator's HTTPS, IMAP and SMTP listeners.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// Authority is a freshly generated CA and the server certificate it signed. It is immutable after New
// and safe for concurrent use.
type Authority struct {
	caCert  *x509.Certificate
	caPEM   []byte
	server  tls.Certificate
	pool    *x509.CertPool
	names   []string
	created time.Time
}

// New generates a CA (ECDSA P-256) and a server certificate valid for 127.0.0.1, ::1, localhost and any
// extra hosts (IP addresses or DNS names). now is the clock's current time; both certificates are
// valid from an hour before it for ten years.
func New(now time.Time, extraHosts ...string) (*Authority, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	notBefore := now.Add(-time.Hour)
	notAfter := now.AddDate(10, 0, 0)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "inkorg emulator CA", Organization: []string{"inkorg emulator"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("certs: parse CA certificate: %w", err)
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate server key: %w", err)
	}
	names := []string{"127.0.0.1", "::1", "localhost"}
	for _, h := range extraHosts {
		if h != "" && !contains(names, h) {
			names = append(names, h)
		}
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"inkorg emulator"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, ip)
		} else {
			srvTmpl.DNSNames = append(srvTmpl.DNSNames, n)
		}
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("certs: create server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(srvDER)
	if err != nil {
		return nil, fmt.Errorf("certs: parse server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &Authority{
		caCert:  caCert,
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		server:  tls.Certificate{Certificate: [][]byte{srvDER, caDER}, PrivateKey: srvKey, Leaf: leaf},
		pool:    pool,
		names:   names,
		created: now,
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ crashes instead).
		panic(err)
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CAPEM returns the CA certificate in PEM form.
func (a *Authority) CAPEM() []byte { return append([]byte(nil), a.caPEM...) }

// CACertificate returns the CA certificate.
func (a *Authority) CACertificate() *x509.Certificate { return a.caCert }

// Hosts returns the names the server certificate is valid for.
func (a *Authority) Hosts() []string { return append([]string(nil), a.names...) }

// WriteCAFile writes the CA certificate (PEM) to path, mode 0644.
func (a *Authority) WriteCAFile(path string) error {
	if err := os.WriteFile(path, a.caPEM, 0o644); err != nil {
		return fmt.Errorf("certs: write CA file: %w", err)
	}
	return nil
}

// CertPool returns a pool holding only the emulator's CA, for clients.
func (a *Authority) CertPool() *x509.CertPool { return a.pool.Clone() }

// ClientConfig returns a TLS client configuration that trusts only the emulator's CA.
func (a *Authority) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: a.CertPool(), MinVersion: tls.VersionTLS12}
}

func (a *Authority) serverConfig(nextProtos []string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{a.server},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   nextProtos,
	}
}

// HTTPSConfig is the TLS configuration of the HTTPS listener (Entra ID, Graph, admin API): ALPN h2 and
// http/1.1.
func (a *Authority) HTTPSConfig() *tls.Config { return a.serverConfig([]string{"h2", "http/1.1"}) }

// IMAPConfig is the TLS configuration of the implicit-TLS IMAP listener. It offers no ALPN protocol,
// so clients that ask for "imap" (go-imap's client does) still connect.
func (a *Authority) IMAPConfig() *tls.Config { return a.serverConfig(nil) }

// SMTPConfig is the TLS configuration used for SMTP STARTTLS.
func (a *Authority) SMTPConfig() *tls.Config { return a.serverConfig(nil) }
