package smtpsend

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// A scripted fake SMTP server, in the style of chasquid's internal/courier/fakeserver_test.go: a map of
// command → reply. Keys are looked up, most specific first, as the whole line, the first two words
// upper-cased ("AUTH XOAUTH2") and the verb upper-cased ("MAIL"); on a TLS connection each key is
// first tried with a "tls:" prefix ("tls:EHLO"). Special keys:
//
//	_welcome  the greeting
//	_DATA     the reply after the message's final dot
//
// Special replies: "_drop" closes the connection without a reply; "_drop_in_data" (for DATA) sends 354
// and closes the connection at once, so that the client's writes fail mid-message. A reply with "|" is
// a multi-step exchange (SASL): each part answers the next line the client sends.

// fakeCert is a throwaway self-signed certificate for 127.0.0.1 and localhost.
type fakeCert struct {
	cert tls.Certificate
	pool *x509.CertPool // trusts cert
}

func newFakeCert(t testing.TB) fakeCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "inkorg fake smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return fakeCert{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool: pool}
}

// defaultReplies is a well-behaved Exchange-like submission server.
func defaultReplies() map[string]string {
	return map[string]string{
		"_welcome":     "220 fake.example ESMTP ready",
		"EHLO":         "250-fake.example Hello\n250-SIZE 37748736\n250-STARTTLS\n250 8BITMIME",
		"tls:EHLO":     "250-fake.example Hello\n250-SIZE 37748736\n250-AUTH LOGIN XOAUTH2 PLAIN\n250 8BITMIME",
		"HELO":         "250 fake.example",
		"STARTTLS":     "220 2.0.0 SMTP server ready",
		"AUTH XOAUTH2": "235 2.7.0 Authentication successful",
		"AUTH PLAIN":   "235 2.7.0 Authentication successful",
		"AUTH LOGIN":   "334 VXNlcm5hbWU6|334 UGFzc3dvcmQ6|235 2.7.0 Authentication successful",
		"*":            "501 5.7.0 Authentication aborted",
		"MAIL":         "250 2.1.0 Sender OK",
		"RCPT":         "250 2.1.5 Recipient OK",
		"DATA":         "354 Start mail input; end with <CRLF>.<CRLF>",
		"_DATA":        "250 2.0.0 OK <id@fake.example> [Hostname=fake]",
		"RSET":         "250 2.0.0 Resetting",
		"NOOP":         "250 2.0.0 OK",
		"QUIT":         "221 2.0.0 Service closing transmission channel",
	}
}

// received is one line the server read, and whether the connection was under TLS by then.
type received struct {
	line string
	tls  bool
}

type fakeServer struct {
	t        testing.TB
	ln       net.Listener
	replies  map[string]string
	tlsConf  *tls.Config
	implicit bool

	wg    sync.WaitGroup
	mu    sync.Mutex
	lines []received
	msgs  []string
	conns map[net.Conn]struct{}
}

// startFakeServer listens on 127.0.0.1:0 with the default replies overridden by over ("" deletes a
// key). With implicit, the connection is TLS from the first byte (port 465 style). Cleanup stops it.
func startFakeServer(t testing.TB, cert fakeCert, implicit bool, over map[string]string) *fakeServer {
	t.Helper()
	r := defaultReplies()
	for k, v := range over {
		if v == "" {
			delete(r, k)
		} else {
			r[k] = v
		}
	}
	s := &fakeServer{t: t, replies: r, implicit: implicit, conns: map[net.Conn]struct{}{},
		tlsConf: &tls.Config{Certificates: []tls.Certificate{cert.cert}, MinVersion: tls.VersionTLS12}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// received returns a copy of the lines read so far.
func (s *fakeServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.lines...)
}

// messages returns the message bodies accepted so far (dot-unstuffed, CRLF line ends).
func (s *fakeServer) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

func (s *fakeServer) lookup(line string, isTLS bool) (string, bool) {
	fields := strings.Fields(line)
	keys := []string{line}
	if len(fields) >= 2 {
		keys = append(keys, strings.ToUpper(fields[0]+" "+fields[1]))
	}
	if len(fields) >= 1 {
		keys = append(keys, strings.ToUpper(fields[0]))
	}
	for _, k := range keys {
		if isTLS {
			if r, ok := s.replies["tls:"+k]; ok {
				return r, true
			}
		}
		if r, ok := s.replies[k]; ok {
			return r, true
		}
	}
	return "", false
}

func (s *fakeServer) handle(raw net.Conn) {
	c := raw
	defer func() {
		s.mu.Lock()
		delete(s.conns, raw)
		s.mu.Unlock()
		c.Close()
	}()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	isTLS := s.implicit
	br := bufio.NewReader(c)
	write := func(reply string) bool {
		_, err := c.Write([]byte(strings.ReplaceAll(reply, "\n", "\r\n") + "\r\n"))
		return err == nil
	}
	readLine := func() (string, bool) {
		l, err := br.ReadString('\n')
		if err != nil {
			return "", false
		}
		l = strings.TrimRight(l, "\r\n")
		s.mu.Lock()
		s.lines = append(s.lines, received{line: l, tls: isTLS})
		s.mu.Unlock()
		return l, true
	}
	if w := s.replies["_welcome"]; w == "_drop" || !write(w) {
		return
	}
	for {
		line, ok := readLine()
		if !ok {
			return
		}
		reply, ok := s.lookup(line, isTLS)
		if !ok {
			reply = "500 5.3.3 Unrecognized command"
		}
		steps := strings.Split(reply, "|")
		switch {
		case steps[0] == "_drop":
			return
		case steps[0] == "_drop_in_data":
			write("354 Start mail input")
			return
		}
		if !write(steps[0]) {
			return
		}
		for _, st := range steps[1:] {
			if _, ok := readLine(); !ok {
				return
			}
			if !write(st) {
				return
			}
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch {
		case verb == "STARTTLS" && strings.HasPrefix(steps[0], "220"):
			tc := tls.Server(c, s.tlsConf)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, isTLS = tc, true
			br = bufio.NewReader(c)
		case verb == "DATA" && strings.HasPrefix(steps[0], "354"):
			var body strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(strings.TrimPrefix(l, "."))
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, body.String())
			s.mu.Unlock()
			if r := s.replies["_DATA"]; r == "_drop" || !write(r) {
				return
			}
		case verb == "QUIT":
			return
		}
	}
}
