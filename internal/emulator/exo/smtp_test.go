package exo

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"inkorg/internal/xoauth2"
)

// rawSMTP is a line-level SMTP conversation, to check exact server words.
type rawSMTP struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func (r *rawSMTP) cmd(line string) []string {
	r.t.Helper()
	if line != "" {
		if _, err := r.conn.Write([]byte(line + "\r\n")); err != nil {
			r.t.Fatal(err)
		}
	}
	var out []string
	for {
		l, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("after %q: %v", line, err)
		}
		l = strings.TrimRight(l, "\r\n")
		out = append(out, l)
		if len(l) < 4 || l[3] != '-' {
			return out
		}
	}
}

func (e *testEnv) rawSMTP(t testing.TB, startTLS bool) (*rawSMTP, string) {
	t.Helper()
	conn, err := net.Dial("tcp", e.smtp.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawSMTP{t: t, conn: conn, br: bufio.NewReader(conn)}
	greeting := r.cmd("")[0]
	if startTLS {
		r.cmd("EHLO client.example")
		if got := r.cmd("STARTTLS"); got[0] != "220 2.0.0 SMTP server ready" {
			t.Fatalf("STARTTLS: %q", got)
		}
		tc := tls.Client(conn, e.clientTLS)
		r.conn, r.br = tc, bufio.NewReader(tc)
	}
	return r, greeting
}

var diagRE = `\[` + regexp.QuoteMeta(DefaultServerName) + ` \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [0-9A-F]{16}\]`

func TestSMTPSessionWords(t *testing.T) {
	e := newEnv(t)
	r, greeting := e.rawSMTP(t, false)
	if !regexp.MustCompile(`^220 ` + regexp.QuoteMeta(DefaultServerName) + ` Microsoft ESMTP MAIL Service ready at \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000 \[[0-9A-F]{16}\]$`).MatchString(greeting) {
		t.Fatalf("greeting %q", greeting)
	}
	want := []string{"250-" + DefaultServerName + " Hello [127.0.0.1]", "250-SIZE 157286400", "250-PIPELINING", "250-DSN",
		"250-ENHANCEDSTATUSCODES", "250-STARTTLS", "250-8BITMIME", "250-BINARYMIME", "250-CHUNKING", "250 SMTPUTF8"}
	if got := r.cmd("EHLO client.example"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("EHLO before TLS:\n%s", strings.Join(got, "\n"))
	}
	for _, tc := range []struct{ cmd, re string }{
		{"AUTH XOAUTH2 " + xoauth2B64(t, alice, "good"), `^504 5\.7\.4 Unrecognized authentication type ` + diagRE + `$`},
		{"MAIL FROM:<" + alice + ">", `^530 5\.7\.57 Client not authenticated to send mail\. ` + diagRE + `$`},
	} {
		if got := r.cmd(tc.cmd); len(got) != 1 || !regexp.MustCompile(tc.re).MatchString(got[0]) {
			t.Errorf("%.30s: %q", tc.cmd, got)
		}
	}

	r, _ = e.rawSMTP(t, true)
	want[5] = "250-AUTH LOGIN XOAUTH2"
	if got := r.cmd("EHLO client.example"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("EHLO after TLS:\n%s", strings.Join(got, "\n"))
	}
	if got := r.cmd("MAIL FROM:<" + alice + ">"); !strings.HasPrefix(got[0], "530 5.7.57 Client not authenticated to send mail. [") {
		t.Fatalf("MAIL before AUTH after TLS: %q", got)
	}
	// Basic auth is off.
	r.cmd("AUTH LOGIN")
	r.cmd("YWxpY2U=")
	if got := r.cmd("cGFzc3dvcmQ="); !regexp.MustCompile(`^535 5\.7\.139 Authentication unsuccessful, basic authentication is disabled\. ` + diagRE + `$`).MatchString(got[0]) {
		t.Fatalf("AUTH LOGIN: %q", got)
	}
	// The 334 form with a 6 KB token, then a whole transaction.
	if got := r.cmd("AUTH XOAUTH2"); got[0] != "334 " {
		t.Fatalf("AUTH XOAUTH2: %q", got)
	}
	if got := r.cmd(xoauth2B64(t, alice, bigToken)); got[0] != "235 2.7.0 Authentication successful" {
		t.Fatalf("334 response: %q", got)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"MAIL FROM:<" + alice + ">", "250 2.1.0 Sender OK"},
		{"RCPT TO:<" + bob + ">", "250 2.1.5 Recipient OK"},
		{"DATA", "354 Start mail input; end with <CRLF>.<CRLF>"},
	} {
		if got := r.cmd(tc.cmd); got[0] != tc.want {
			t.Fatalf("%s: %q", tc.cmd, got)
		}
	}
	body := string(testMessage(alice, bob, "raw smtp", 300))
	if got := r.cmd(strings.ReplaceAll(body, "\r\nlorem", "\r\n.lorem") + "\r\n."); !regexp.MustCompile(`^250 2\.0\.0 OK <[0-9A-F]{32}@`).MatchString(got[0]) {
		t.Fatalf("end of DATA: %q", got)
	}
	if got := r.cmd("QUIT"); got[0] != "221 2.0.0 Service closing transmission channel" {
		t.Fatalf("QUIT: %q", got)
	}
	msgs, err := e.store.Messages(bob, "INBOX")
	if err != nil || len(msgs) != 1 || msgs[0].Subject != "raw smtp" {
		t.Fatalf("bob's INBOX: %+v %v", msgs, err)
	}
}

func dialSMTP(t *testing.T, e *testEnv) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(e.smtp.Addr(), e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("erp.contoso.example"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSMTPAuthDenials(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		token string
		code  int
		enh   smtp.EnhancedCode
		re    string
	}{
		{"disabled-token", 535, smtp.EnhancedCode{5, 7, 139}, `^` + regexp.QuoteMeta(smtpAuthDisabled) + ` ` + diagRE + `$`},
		{"expired-token", 535, smtp.EnhancedCode{5, 7, 3}, `^Authentication unsuccessful ` + diagRE + `$`},
		{"notconnected-token", 535, smtp.EnhancedCode{5, 7, 3}, `^Authentication unsuccessful ` + diagRE + `$`},
	} {
		t.Run(tc.token, func(t *testing.T) {
			c := dialSMTP(t, e)
			err := c.Auth(xoauth2.NewClient(alice, tc.token))
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != tc.code || se.EnhancedCode != tc.enh || !regexp.MustCompile(tc.re).MatchString(se.Message) {
				t.Fatalf("got %#v", err)
			}
		})
	}
}

func TestSMTPSendAndDeliver(t *testing.T) {
	e := newEnv(t)
	c := dialSMTP(t, e)
	if ok, mechs := c.Extension("AUTH"); !ok || mechs != "LOGIN XOAUTH2" {
		t.Fatalf("AUTH after TLS: %v %q", ok, mechs)
	}
	// go-smtp sends the multi-KB token as an initial response on the AUTH line.
	if err := c.Auth(xoauth2.NewClient(alice, bigToken)); err != nil {
		t.Fatal(err)
	}
	msg := testMessage(alice, bob, "invoice 4711", 5000)
	if err := c.SendMail(alice, []string{bob, "outside@fabrikam.example"}, bytes.NewReader(msg)); err != nil {
		t.Fatal(err)
	}

	// Send As: alice may not send as bob; refused at the end of DATA.
	err := c.SendMail(alice, []string{bob}, bytes.NewReader(testMessage(bob, bob, "forged", 300)))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 2, 252}) ||
		!strings.HasPrefix(se.Message, "SendAsDenied; "+alice+" not allowed to send as "+bob+"; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message.") {
		t.Fatalf("send as: %#v", err)
	}

	// The accepted message is in bob's INBOX, and IMAP serves it byte for byte.
	ic := e.imapClient(t, bob, "good-token", nil)
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	got := fetchAll(t, ic, imap.UIDSet{{Start: 1, Stop: 0}})
	if len(got) != 1 || !bytes.Equal(got[1], msg) {
		t.Fatalf("bob's INBOX via IMAP: %d messages", len(got))
	}
}
