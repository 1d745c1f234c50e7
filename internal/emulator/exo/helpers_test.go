package exo

import (
	"bufio"
	"context"
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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"inkorg/internal/xoauth2"
)

// Mailboxes of the test tenant.
const (
	alice = "alice@contoso.example"
	bob   = "bob@contoso.example"
)

// bigToken is a bearer of about 6 KB, like a real Entra access token with many claims.
var bigToken = "good." + strings.Repeat("eyJ0eXAiOiJKV1QiLCJub25jZSI6", 215) // 6025 bytes

// fakeAuth decides by the token's prefix: good…, notconnected…, disabled…; anything else is a bad token.
type fakeAuth struct{}

func (fakeAuth) Authorize(_ context.Context, _ Protocol, mailbox, bearer string) (Principal, error) {
	switch {
	case strings.HasPrefix(bearer, "good"):
		return Principal{Mailbox: mailbox, AppID: "00000000-0000-0000-0000-00000000a99", AppOnly: true}, nil
	case strings.HasPrefix(bearer, "notconnected"):
		return Principal{}, &Denial{Kind: DenyNotConnected, Reason: "no FullAccess"}
	case strings.HasPrefix(bearer, "disabled"):
		return Principal{}, &Denial{Kind: DenyProtocolDisabled, Reason: "switched off"}
	default:
		return Principal{}, &Denial{Kind: DenyBadToken, Reason: "bad signature"}
	}
}

func (fakeAuth) CanSendAs(_ context.Context, p Principal, from string) bool {
	return strings.EqualFold(p.Mailbox, from)
}

// testPKI makes a throwaway CA and a server certificate for 127.0.0.1 and localhost.
func testPKI(t testing.TB) (server, client *tls.Config, caPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "exo test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"}} // as if shared with the HTTPS side: the servers must cope
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return server, client, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

type testEnv struct {
	store     *MailStore
	imap      *IMAPServer
	smtp      *SMTPServer
	clientTLS *tls.Config
	caFile    string
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	serverTLS, clientTLS, caPEM := testPKI(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	store := NewMailStore(time.Now)
	for _, a := range []string{alice, bob} {
		if err := store.CreateMailbox(a); err != nil {
			t.Fatal(err)
		}
	}
	im, err := NewIMAPServer(IMAPConfig{Store: store, Authorizer: fakeAuth{}, TLSConfig: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	sm, err := NewSMTPServer(SMTPConfig{Store: store, Authorizer: fakeAuth{}, TLSConfig: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sm.Close() })
	return &testEnv{store: store, imap: im, smtp: sm, clientTLS: clientTLS, caFile: caFile}
}

// deliverN delivers n messages of about size bytes from bob to alice's INBOX (subjects m0, m1, …).
func (e *testEnv) deliverN(t testing.TB, n, size int) {
	t.Helper()
	for i := range n {
		if _, err := e.store.Deliver(alice, "INBOX", testMessage(bob, alice, fmt.Sprint("m", i), size)); err != nil {
			t.Fatal(err)
		}
	}
}

// imapClient dials and authenticates with XOAUTH2 (SASL-IR form, as go-imap sends it).
func (e *testEnv) imapClient(t testing.TB, user, token string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = e.clientTLS
	c, err := imapclient.DialTLS(e.imap.Addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(xoauth2.NewClient(user, token)); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return c
}

// rawIMAP is a line-level IMAP conversation over TLS, to check exact server words.
type rawIMAP struct {
	t    testing.TB
	conn *tls.Conn
	br   *bufio.Reader
}

func (e *testEnv) rawIMAP(t testing.TB) (*rawIMAP, string) {
	t.Helper()
	conn, err := tls.Dial("tcp", e.imap.Addr(), e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawIMAP{t: t, conn: conn, br: bufio.NewReader(conn)}
	return r, r.line()
}

func (r *rawIMAP) line() string {
	r.t.Helper()
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (r *rawIMAP) send(format string, args ...any) {
	r.t.Helper()
	if _, err := fmt.Fprintf(r.conn, format+"\r\n", args...); err != nil {
		r.t.Fatal(err)
	}
}

// until reads lines until one starts with prefix and returns all of them.
func (r *rawIMAP) until(prefix string) []string {
	r.t.Helper()
	var lines []string
	for {
		l := r.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, prefix) {
			return lines
		}
	}
}

func testMessage(from, to, subject string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		from, to, subject, strings.ReplaceAll(subject, " ", "-"))
	line := strings.Repeat("lorem ipsum dolor sit amet ", 3) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
