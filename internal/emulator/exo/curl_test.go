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

func runCurl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required (Debian package curl): ", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, append([]string{"-sS", "--max-time", "20"}, args...)...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	return out.String() + stderr.String(), err
}

// TestCurlClients: curl's imaps:// and smtp:// (STARTTLS) with --oauth2-bearer speak XOAUTH2 to us.
func TestCurlClients(t *testing.T) {
	e := newEnv(t)
	msg := testMessage(bob, alice, "curl check", 1500)
	e.store.Deliver(alice, "INBOX", msg)

	out, err := runCurl(t, "--cacert", e.caFile, "--oauth2-bearer", bigToken, "-u", alice+":",
		"imaps://"+e.imap.Addr()+"/INBOX;UID=1")
	if err != nil || out != string(msg) {
		t.Fatalf("curl imaps fetch: %v\n%.300s", err, out)
	}
	out, err = runCurl(t, "--cacert", e.caFile, "--oauth2-bearer", "expired-token", "-u", alice+":",
		"imaps://"+e.imap.Addr()+"/INBOX;UID=1")
	if err == nil || !strings.Contains(out, "Login denied") {
		t.Fatalf("curl imaps with a bad token: %v\n%s", err, out)
	}

	eml := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(eml, testMessage(alice, bob, "sent by curl", 800), 0o600)
	out, err = runCurl(t, "--cacert", e.caFile, "--ssl-reqd", "--oauth2-bearer", bigToken, "-u", alice+":",
		"--mail-from", alice, "--mail-rcpt", bob, "--upload-file", eml, "smtp://"+e.smtp.Addr())
	if err != nil {
		t.Fatalf("curl smtp: %v\n%s", err, out)
	}
	if msgs, _ := e.store.Messages(bob, "INBOX"); len(msgs) != 1 || msgs[0].Subject != "sent by curl" {
		t.Fatalf("bob's INBOX: %+v", msgs)
	}
	out, err = runCurl(t, "--cacert", e.caFile, "--ssl-reqd", "--oauth2-bearer", "disabled-token", "-u", alice+":",
		"--mail-from", alice, "--mail-rcpt", bob, "--upload-file", eml, "smtp://"+e.smtp.Addr())
	if err == nil || !strings.Contains(out, "Login denied") {
		t.Fatalf("curl smtp with SMTP AUTH disabled: %v\n%s", err, out)
	}
}
