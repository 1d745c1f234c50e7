package smtpsend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"inkorg/internal/diag"
	"inkorg/internal/xoauth2"
)

const (
	testUser     = "sender@contoso.com"
	testPassword = "Pa55-w0rd-S3CRET-do-not-log"
	testToken    = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJTRUNSRVQtVE9LRU4ifQ.c2lnbmF0dXJlLXNlY3JldA"
	testFrom     = "boss@contoso.com"
	testRcpt     = "customer@example.org"
	testMessage  = "From: boss@contoso.com\r\nTo: customer@example.org\r\nSubject: Invoice\r\n\r\nHello.\r\n.leading dot\r\n"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// secrets are the strings that must never appear in an error: the password, the token and their
// encodings on the wire.
func secrets(t testing.TB) []string {
	ir, err := xoauth2.Encode(testUser, testToken)
	if err != nil {
		t.Fatal(err)
	}
	return []string{testPassword, testToken, b64(testPassword), b64("\x00" + testUser + "\x00" + testPassword), b64(string(ir))}
}

// checkNoSecrets fails if err's text, its chain or a diag.Error's fields hold a secret.
func checkNoSecrets(t *testing.T, err error) {
	t.Helper()
	var texts []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error())
	}
	if de := diag.As(err); de != nil {
		texts = append(texts, de.Server, de.Summary, de.Remedy, de.Code, de.OAuth)
		texts = append(texts, de.Actions...)
	}
	for _, s := range secrets(t) {
		for _, txt := range texts {
			if strings.Contains(txt, s) {
				t.Errorf("error text holds a secret %q: %q", s, txt)
			}
		}
	}
}

// checkNoClearAuth fails if the server read an AUTH command or SASL line before TLS.
func checkNoClearAuth(t *testing.T, s *fakeServer) {
	t.Helper()
	for _, r := range s.received() {
		if !r.tls && (strings.HasPrefix(strings.ToUpper(r.line), "AUTH") || strings.Contains(r.line, b64(testPassword))) {
			t.Errorf("credentials sent without TLS: %q", r.line)
		}
	}
}

func testConfig(cert fakeCert, addr string, sec Security) Config {
	return Config{
		Addr:      addr,
		Security:  sec,
		TLSConfig: &tls.Config{RootCAs: cert.pool, MinVersion: tls.VersionTLS12},
		LocalName: "erp.contoso.com",
		Timeout:   5 * time.Second,
		Logger:    slog.New(slog.DiscardHandler),
		Facts:     diag.Facts{Mailbox: testUser, Username: testUser},
	}
}

const (
	stepDial    = "dial"
	stepXOAUTH2 = "xoauth2"
	stepLogin   = "login"
	stepSend    = "send"
)

func TestFailures(t *testing.T) {
	cert := newFakeCert(t)
	bigMessage := testMessage + strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuv\r\n", 16<<10) // ~1 MiB

	tests := []struct {
		name     string
		security Security
		replies  map[string]string
		badRoots bool   // the client does not trust the server's certificate
		auth     string // stepXOAUTH2 (default) or stepLogin
		message  string // default testMessage
		failAt   string

		stage      diag.Stage
		kind       diag.Kind
		code       string
		server     string   // a substring of the server's words, kept in Server
		advice     []string // substrings of Summary + Remedy + Actions
		notStarted bool     // the server must not see MAIL (nothing sent)
		maybeDone  bool     // the server may have accepted the message (its reply to the final dot lost)
	}{
		{
			name: "greeting 554", replies: map[string]string{"_welcome": "554 5.7.1 fake.example: Access denied for 192.0.2.7"},
			failAt: stepDial, stage: diag.StageConnect, kind: diag.KindConfig, code: "SMTP 554 5.7.1", server: "Access denied for 192.0.2.7",
		},
		{
			name: "greeting 421", replies: map[string]string{"_welcome": "421 4.3.2 Service not available, closing transmission channel"},
			failAt: stepDial, stage: diag.StageConnect, kind: diag.KindTransient, code: "SMTP 421 4.3.2", server: "Service not available",
		},
		{
			name: "greeting 554 implicit TLS", security: ImplicitTLS, replies: map[string]string{"_welcome": "554 5.7.1 fake.example: Access denied for 192.0.2.7"},
			failAt: stepDial, stage: diag.StageConnect, kind: diag.KindConfig, code: "SMTP 554 5.7.1", server: "Access denied for 192.0.2.7",
		},
		{
			name: "EHLO refused", replies: map[string]string{"EHLO": "554 5.7.1 Client host name erp.contoso.com rejected"},
			failAt: stepDial, stage: diag.StageConnect, kind: diag.KindConfig, code: "SMTP 554 5.7.1", server: "Client host name erp.contoso.com rejected",
		},
		{
			name: "EHLO after STARTTLS refused", replies: map[string]string{"tls:EHLO": "554 5.7.1 Client host name erp.contoso.com rejected"},
			failAt: stepDial, stage: diag.StageConnect, kind: diag.KindConfig, code: "SMTP 554 5.7.1", server: "Client host name erp.contoso.com rejected",
		},
		{
			name:    "STARTTLS not offered",
			replies: map[string]string{"EHLO": "250-fake.example Hello\n250-AUTH LOGIN PLAIN XOAUTH2\n250 8BITMIME", "AUTH": "235 2.7.0 would accept anything in clear"},
			failAt:  stepDial, stage: diag.StageTLS, kind: diag.KindConfig, code: "starttls", server: "STARTTLS",
			advice: []string{"STARTTLS"},
		},
		{
			name: "STARTTLS refused 454", replies: map[string]string{"STARTTLS": "454 4.7.0 TLS not available due to temporary reason"},
			failAt: stepDial, stage: diag.StageTLS, kind: diag.KindTransient, code: "starttls", server: "TLS not available due to temporary reason",
		},
		{
			name: "STARTTLS refused 502", replies: map[string]string{"STARTTLS": "502 5.5.1 Command not implemented"},
			failAt: stepDial, stage: diag.StageTLS, kind: diag.KindConfig, code: "starttls", server: "Command not implemented",
		},
		{
			name: "certificate does not verify (STARTTLS)", badRoots: true,
			failAt: stepDial, stage: diag.StageTLS, kind: diag.KindConfig, code: "tls", server: "x509", advice: []string{"certificate"},
		},
		{
			name: "certificate does not verify (implicit TLS)", security: ImplicitTLS, badRoots: true,
			failAt: stepDial, stage: diag.StageTLS, kind: diag.KindConfig, code: "tls", server: "x509", advice: []string{"certificate"},
		},
		{
			name: "AUTH not offered (XOAUTH2)", replies: map[string]string{"tls:EHLO": "250-fake.example Hello\n250 8BITMIME"},
			failAt: stepXOAUTH2, stage: diag.StageAuthenticate, kind: diag.KindConfig, code: "SMTP no AUTH", advice: []string{"smtp.office365.com:587"},
		},
		{
			name: "AUTH not offered (Login)", auth: stepLogin,
			replies: map[string]string{"tls:EHLO": "250-fake.example Hello\n250 8BITMIME", "AUTH PLAIN": "503 5.5.1 Error: authentication not enabled"},
			failAt:  stepLogin, stage: diag.StageAuthenticate, kind: diag.KindConfig, code: "SMTP 503 5.5.1", server: "authentication not enabled",
		},
		{
			name:    "XOAUTH2 535 5.7.139 SMTP AUTH disabled",
			replies: map[string]string{"AUTH XOAUTH2": "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [DM6PR02CA0123.namprd02.prod.outlook.com]"},
			failAt:  stepXOAUTH2, stage: diag.StageAuthenticate, kind: diag.KindConfig, code: "SMTP 535 5.7.139",
			server: "SmtpClientAuthentication is disabled for the Tenant",
			advice: []string{`Set-CASMailbox -Identity "` + testUser + `" -SmtpClientAuthenticationDisabled $false`},
		},
		{
			name:    "XOAUTH2 535 5.7.3",
			replies: map[string]string{"AUTH XOAUTH2": "535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com]"},
			failAt:  stepXOAUTH2, stage: diag.StageAuthenticate, kind: diag.KindConfig, code: "SMTP 535 5.7.3",
			server: "Authentication unsuccessful [SN4PR0501CA0054", advice: []string{"SMTP.Send"},
		},
		{
			name: "XOAUTH2 JSON challenge then 535",
			replies: map[string]string{"AUTH XOAUTH2": "334 " + b64(`{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}`) +
				"|535 5.7.3 Authentication unsuccessful"},
			failAt: stepXOAUTH2, stage: diag.StageAuthenticate, kind: diag.KindConfig, code: "SMTP 535 5.7.3", server: "Authentication unsuccessful",
		},
		{
			name: "Login 550 5.7.30 basic auth not supported", auth: stepLogin,
			replies: map[string]string{"AUTH PLAIN": "550 5.7.30 Basic authentication is not supported for Client Submission."},
			failAt:  stepLogin, stage: diag.StageAuthenticate, kind: diag.KindConfig, code: "SMTP 550 5.7.30",
			server: "Basic authentication is not supported", advice: []string{"OAuth 2.0"},
		},
		{
			name: "Login 535 5.7.8 bad password", auth: stepLogin,
			replies: map[string]string{"AUTH PLAIN": "535 5.7.8 Error: authentication failed: " + "UGFzc3dvcmQ6"},
			failAt:  stepLogin, stage: diag.StageAuthenticate, kind: diag.KindConfig, code: "SMTP 535 5.7.8", server: "authentication failed",
		},
		{
			name:    "MAIL FROM 530 5.7.57",
			replies: map[string]string{"MAIL": "530 5.7.57 Client not authenticated to send mail. [BN8PR12CA0001.namprd12.prod.outlook.com]"},
			failAt:  stepSend, stage: diag.StageSend, kind: diag.KindConfig, code: "SMTP 530 5.7.57", server: "Client not authenticated to send mail",
		},
		{
			name:    "RCPT 550 5.1.1",
			replies: map[string]string{"RCPT": "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"},
			failAt:  stepSend, stage: diag.StageSend, kind: diag.KindConfig, code: "SMTP 550 5.1.1", server: "RESOLVER.ADR.RecipNotFound; not found",
		},
		{
			name: "DATA end 554 5.2.252 SendAsDenied",
			replies: map[string]string{"_DATA": "554 5.2.252 SendAsDenied; " + testUser + " not allowed to send as " + testFrom +
				"; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception"},
			failAt: stepSend, stage: diag.StageSend, kind: diag.KindConfig, code: "SMTP 554 5.2.252",
			server: "not allowed to send as " + testFrom,
			advice: []string{"Add-RecipientPermission", `-Identity "` + testFrom + `"`, "SendAs"},
		},
		{
			name:    "DATA end 451 4.3.0 transient",
			replies: map[string]string{"_DATA": "451 4.3.0 Mail server temporarily rejected message. [Hostname=BN8PR12MB0001]"},
			failAt:  stepSend, stage: diag.StageSend, kind: diag.KindTransient, code: "SMTP 451 4.3.0", server: "temporarily rejected message",
		},
		{
			name:    "MAIL 421 4.7.66 transient",
			replies: map[string]string{"MAIL": "421 4.7.66 Server busy, closing transmission channel"},
			failAt:  stepSend, stage: diag.StageSend, kind: diag.KindTransient, code: "SMTP 421 4.7.66", server: "Server busy",
		},
		{
			name:    "connection dropped after the final dot",
			replies: map[string]string{"_DATA": "_drop"},
			failAt:  stepSend, stage: diag.StageSend, kind: diag.KindTransient, code: "network", maybeDone: true,
			advice: []string{"may have accepted"},
		},
		{
			name:    "connection dropped mid-DATA",
			replies: map[string]string{"DATA": "_drop_in_data"},
			message: bigMessage,
			failAt:  stepSend, stage: diag.StageSend, kind: diag.KindTransient, code: "network",
		},
		{
			name:    "connection dropped before the MAIL reply",
			replies: map[string]string{"MAIL": "_drop"},
			failAt:  stepSend, stage: diag.StageSend, kind: diag.KindTransient, code: "network",
		},
		{
			name:    "connection dropped instead of the greeting",
			replies: map[string]string{"_welcome": "_drop"},
			failAt:  stepDial, stage: diag.StageConnect, kind: diag.KindTransient, code: "network",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startFakeServer(t, cert, tt.security == ImplicitTLS, tt.replies)
			cfg := testConfig(cert, s.addr(), tt.security)
			if tt.badRoots {
				cfg.TLSConfig.RootCAs = x509.NewCertPool()
			}
			auth := tt.auth
			if auth == "" {
				auth = stepXOAUTH2
			}
			msg := tt.message
			if msg == "" {
				msg = testMessage
			}

			var err error
			step := stepDial
			c, err := Dial(context.Background(), cfg)
			if err == nil {
				defer c.Close()
				step = auth
				if auth == stepLogin {
					err = c.Login(testUser, testPassword)
				} else {
					err = c.AuthenticateXOAUTH2(testUser, testToken)
				}
			}
			if err == nil {
				step = stepSend
				err = c.Send(testFrom, []string{testRcpt}, strings.NewReader(msg))
			}
			if err == nil {
				t.Fatalf("no error; want one at %s", tt.failAt)
			}
			if step != tt.failAt {
				t.Fatalf("failed at %s, want at %s: %v", step, tt.failAt, err)
			}
			e := diag.As(err)
			if e == nil {
				t.Fatalf("error %T %v is not a *diag.Error", err, err)
			}
			if e.Stage != tt.stage || e.Kind != tt.kind || e.Code != tt.code {
				t.Errorf("stage/kind/code = %s/%s/%q, want %s/%s/%q (%v)", e.Stage, e.Kind, e.Code, tt.stage, tt.kind, tt.code, err)
			}
			if e.MaybeDone != tt.maybeDone {
				t.Errorf("MaybeDone = %v, want %v (%v)", e.MaybeDone, tt.maybeDone, err)
			}
			if tt.server != "" && !strings.Contains(e.Server, tt.server) {
				t.Errorf("Server = %q, want the server's words %q", e.Server, tt.server)
			}
			if e.Summary == "" {
				t.Errorf("no Summary")
			}
			advice := e.Summary + "\n" + e.Remedy + "\n" + strings.Join(e.Actions, "\n")
			for _, a := range tt.advice {
				if !strings.Contains(advice, a) {
					t.Errorf("advice does not name %q:\n%s", a, advice)
				}
			}
			if !strings.Contains(err.Error(), string(tt.stage)) {
				t.Errorf("Error() = %q lacks the stage", err.Error())
			}
			checkNoSecrets(t, err)
			checkNoClearAuth(t, s)
		})
	}
}

// TestSuccess covers the paths that deliver: STARTTLS and implicit TLS, XOAUTH2, PLAIN and LOGIN.
func TestSuccess(t *testing.T) {
	cert := newFakeCert(t)
	ir, err := xoauth2.Encode(testUser, testToken)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		security Security
		replies  map[string]string
		auth     string
		wantAuth []string // the lines the server must read from AUTH on, in order
	}{
		{
			name: "STARTTLS XOAUTH2", auth: stepXOAUTH2,
			wantAuth: []string{"AUTH XOAUTH2 " + b64(string(ir))},
		},
		{
			name: "implicit TLS XOAUTH2", security: ImplicitTLS, auth: stepXOAUTH2,
			replies:  map[string]string{"EHLO": "250-fake.example Hello\n250-AUTH XOAUTH2 PLAIN\n250 8BITMIME"},
			wantAuth: []string{"AUTH XOAUTH2 " + b64(string(ir))},
		},
		{
			name: "STARTTLS Login PLAIN", auth: stepLogin,
			wantAuth: []string{"AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPassword)},
		},
		{
			name: "implicit TLS Login PLAIN", security: ImplicitTLS, auth: stepLogin,
			replies:  map[string]string{"EHLO": "250-fake.example Hello\n250-AUTH PLAIN LOGIN\n250 8BITMIME"},
			wantAuth: []string{"AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPassword)},
		},
		{
			name: "STARTTLS Login with a LOGIN-only server", auth: stepLogin,
			replies: map[string]string{
				"tls:EHLO":   "250-fake.example Hello\n250-AUTH LOGIN\n250 8BITMIME",
				"AUTH PLAIN": "504 5.7.4 Unrecognized authentication type",
				// go-sasl's LOGIN client sends the user name as an initial response, as Exchange allows.
				"AUTH LOGIN " + b64(testUser): "334 UGFzc3dvcmQ6|235 2.7.0 Authentication successful",
			},
			wantAuth: []string{"AUTH LOGIN " + b64(testUser), b64(testPassword)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startFakeServer(t, cert, tt.security == ImplicitTLS, tt.replies)
			c, err := Dial(context.Background(), testConfig(cert, s.addr(), tt.security))
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if tt.auth == stepLogin {
				err = c.Login(testUser, testPassword)
			} else {
				err = c.AuthenticateXOAUTH2(testUser, testToken)
			}
			if err != nil {
				t.Fatalf("%s: %v", tt.auth, err)
			}
			if err := c.Send(testFrom, []string{testRcpt, "second@example.org"}, strings.NewReader(testMessage)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if err := c.Close(); err != nil && !errors.Is(err, io.EOF) {
				t.Logf("Close: %v", err)
			}
			checkNoClearAuth(t, s)

			lines := s.received()
			var got []string
			var mail, rcpts []string
			for i, r := range lines {
				if strings.HasPrefix(r.line, "AUTH ") {
					got = []string{r.line}
					for _, next := range lines[i+1:] {
						if strings.HasPrefix(next.line, "MAIL ") {
							break
						}
						got = append(got, next.line)
					}
				}
				if !r.tls {
					if u := strings.ToUpper(r.line); !strings.HasPrefix(u, "EHLO") && u != "STARTTLS" {
						t.Errorf("%q sent in clear", r.line)
					}
				}
				if strings.HasPrefix(r.line, "MAIL FROM:") {
					mail = append(mail, r.line)
				}
				if strings.HasPrefix(r.line, "RCPT TO:") {
					rcpts = append(rcpts, r.line)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.wantAuth, "\n") {
				t.Errorf("AUTH exchange:\n got %q\nwant %q", got, tt.wantAuth)
			}
			if len(mail) != 1 || !strings.HasPrefix(mail[0], "MAIL FROM:<"+testFrom+">") {
				t.Errorf("MAIL lines %q", mail)
			}
			if len(rcpts) != 2 || rcpts[0] != "RCPT TO:<"+testRcpt+">" || rcpts[1] != "RCPT TO:<second@example.org>" {
				t.Errorf("RCPT lines %q", rcpts)
			}
			if msgs := s.messages(); len(msgs) != 1 || msgs[0] != testMessage {
				t.Errorf("messages received %q, want [%q]", msgs, testMessage)
			}
		})
	}
}

// TestXOAUTH2LongToken checks that a 3 KB access token (Entra's are 1.5–3 KB) goes whole on the AUTH
// line as the initial response, with no continuation, and is accepted.
func TestXOAUTH2LongToken(t *testing.T) {
	cert := newFakeCert(t)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var b strings.Builder
	for i := 0; b.Len() < 3072; i++ {
		if i > 0 && i%1000 == 0 {
			b.WriteByte('.')
		} else {
			b.WriteByte(alphabet[(i*7)%len(alphabet)])
		}
	}
	token := b.String()
	ir, err := xoauth2.Encode(testUser, token)
	if err != nil {
		t.Fatal(err)
	}
	line := "AUTH XOAUTH2 " + b64(string(ir))
	if len(line) < 4000 {
		t.Fatalf("AUTH line is only %d bytes", len(line))
	}
	// Only the exact line is accepted; anything else (a 334 continuation, a truncated line) fails.
	s := startFakeServer(t, cert, false, map[string]string{
		line:           "235 2.7.0 Authentication successful",
		"AUTH XOAUTH2": "535 5.7.3 Authentication unsuccessful",
	})
	c, err := Dial(context.Background(), testConfig(cert, s.addr(), StartTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.AuthenticateXOAUTH2(testUser, token); err != nil {
		t.Fatalf("AuthenticateXOAUTH2 with a %d-byte token: %v", len(token), err)
	}
	if err := c.Send(testFrom, []string{testRcpt}, strings.NewReader(testMessage)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var auth []string
	for _, r := range s.received() {
		if strings.HasPrefix(r.line, "AUTH") {
			auth = append(auth, r.line)
			if !r.tls {
				t.Error("AUTH sent in clear")
			}
		}
	}
	if len(auth) != 1 || auth[0] != line {
		t.Errorf("server read %d AUTH lines; want exactly the %d-byte initial-response line", len(auth), len(line))
	}
}

// TestDialBadAddress checks the address check before any connection.
func TestDialBadAddress(t *testing.T) {
	_, err := Dial(context.Background(), Config{Addr: "smtp.office365.com", Timeout: time.Second})
	e := diag.As(err)
	if e == nil || e.Stage != diag.StageConnect || e.Kind != diag.KindConfig || e.Code != "address" {
		t.Fatalf("got %v, want a connect/config/address diag.Error", err)
	}
}

// TestSendCutShortSendsNoDot: when the message cannot be read to its end, the final dot is not sent
// (the server would take the message cut short); the connection is dropped so that the server
// discards the transaction, and the error is a plain failure to retry, not a maybe-accepted one.
func TestSendCutShortSendsNoDot(t *testing.T) {
	cert := newFakeCert(t)
	s := startFakeServer(t, cert, false, nil)
	c, err := Dial(context.Background(), testConfig(cert, s.addr(), StartTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.AuthenticateXOAUTH2(testUser, "token"); err != nil {
		t.Fatal(err)
	}
	msg := io.MultiReader(strings.NewReader(testMessage[:len(testMessage)/2]), iotest.ErrReader(errors.New("disk gone")))
	err = c.Send(testFrom, []string{testRcpt}, msg)
	e := diag.As(err)
	if e == nil || e.MaybeDone || !strings.Contains(err.Error(), "disk gone") && !strings.Contains(e.Server, "disk gone") {
		t.Fatalf("Send = %v (%#v), want the read error, not maybe-accepted", err, e)
	}
	deadline := time.Now().Add(300 * time.Millisecond) // a server given the dot records the message at once
	for time.Now().Before(deadline) && len(s.messages()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.messages(); len(got) != 0 {
		t.Fatalf("the server accepted %d message(s) cut short: %q", len(got), got)
	}
}
