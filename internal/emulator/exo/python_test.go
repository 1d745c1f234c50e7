package exo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pythonClients drives the emulator with Python 3's imaplib and smtplib, third-party clients that
// use the "+" continuation form for IMAP XOAUTH2 and an initial response for SMTP.
const pythonClients = `
import base64, imaplib, os, smtplib, ssl, sys

ctx = ssl.create_default_context(cafile=os.environ["CA"])
ih, ip = os.environ["IMAP"].rsplit(":", 1)
sh, sp = os.environ["SMTP"].rsplit(":", 1)
user, token = os.environ["USER_ADDR"], os.environ["TOKEN"]
rcpt = os.environ["RCPT"]

def xoauth2(tok):
    return ("user=%s\x01auth=Bearer %s\x01\x01" % (user, tok)).encode()

s = smtplib.SMTP(sh, int(sp), timeout=20)
s.starttls(context=ctx)
s.ehlo()
try:
    s.auth("XOAUTH2", lambda challenge=None: xoauth2("disabled-token").decode(), initial_response_ok=True)
    print("smtp-disabled: accepted")
except smtplib.SMTPAuthenticationError as e:
    print("smtp-disabled: %d %s" % (e.smtp_code, e.smtp_error.decode().split(" [")[0]))
s.quit()

s = smtplib.SMTP(sh, int(sp), timeout=20)
s.starttls(context=ctx)
s.ehlo()
print("smtp-auth-ext: " + s.esmtp_features.get("auth", "").strip())
code, _ = s.auth("XOAUTH2", lambda challenge=None: xoauth2(token).decode(), initial_response_ok=True)
print("smtp-auth: %d" % code)
msg = "From: %s\r\nTo: %s\r\nSubject: from python\r\n\r\nhello from smtplib\r\n" % (user, rcpt)
s.sendmail(user, [rcpt], msg)
print("smtp-sent")
s.quit()

m = imaplib.IMAP4_SSL(ih, int(ip), ssl_context=ctx)
print("imap-greeting: " + m.welcome.decode())
try:
    m.authenticate("XOAUTH2", lambda _: xoauth2("expired-token"))
    print("imap-bad: accepted")
except imaplib.IMAP4.error as e:
    print("imap-bad: " + str(e))
m.logout()

m = imaplib.IMAP4_SSL(ih, int(ip), ssl_context=ctx)
typ, data = m.authenticate("XOAUTH2", lambda _: xoauth2(token))
print("imap-auth: %s %s" % (typ, data[0].decode()))
typ, data = m.select("INBOX")
print("imap-select: %s %s" % (typ, data[0].decode()))
typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
print("imap-fetch: %s %s" % (typ, b"hello from smtplib" in data[0][1]))
typ, data = m.uid("MOVE", "1", "INBOX")
print("imap-move-same: %s" % typ)
m.logout()
`

func TestPythonClients(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required (Debian package python3): ", err)
	}
	e := newEnv(t)
	script := filepath.Join(t.TempDir(), "clients.py")
	if err := os.WriteFile(script, []byte(pythonClients), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script)
	cmd.Env = append(os.Environ(), "CA="+e.caFile, "IMAP="+e.imap.Addr(), "SMTP="+e.smtp.Addr(),
		"USER_ADDR="+alice, "TOKEN="+bigToken, "RCPT="+alice)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\n%s\n%s", err, out.String(), stderr.String())
	}
	want := []string{
		"smtp-disabled: 535 5.7.139 " + smtpAuthDisabled,
		"smtp-auth-ext: LOGIN XOAUTH2",
		"smtp-auth: 235",
		"smtp-sent",
		"imap-greeting: * OK The Microsoft Exchange IMAP4 service is ready. [",
		"imap-bad: AUTHENTICATE failed.",
		"imap-auth: OK AUTHENTICATE completed.",
		"imap-select: OK 1",
		"imap-fetch: OK True",
		"imap-move-same: NO",
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("python output:\n%s\n%s", out.String(), stderr.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: got %q, want prefix %q", i, lines[i], w)
		}
	}
}
