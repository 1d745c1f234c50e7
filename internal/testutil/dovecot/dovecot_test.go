package dovecot

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/golang-jwt/jwt/v5"

	"inkorg/internal/xoauth2"
)

const alice = "alice@example.test"

// message makes a message of about size bytes whose subject is "message i".
// messageID is message i's Message-ID, without angle brackets.
func messageID(i int) string { return fmt.Sprintf("m%d@example.test", i) }

func message(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Sender <sender@example.test>\r\nTo: %s\r\nSubject: message %d\r\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <m%d@example.test>\r\n"+
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n", alice, i, i)
	line := "The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz.\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func dialIMAP(t *testing.T, s *Server) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatalf("dial %s: %v", s.IMAPAddr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// subjects fetches UID and subject of every message in folder.
func subjects(t *testing.T, c *imapclient.Client, folder string) map[imap.UID]string {
	t.Helper()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("select %s: %v", folder, err)
	}
	var all imap.UIDSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Envelope: true, RFC822Size: true}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	out := map[imap.UID]string{}
	for _, m := range msgs {
		out[m.UID] = m.Envelope.Subject
	}
	return out
}

func TestDeliverAndReadWithXOAUTH2AndLogin(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: map[string]string{alice: "alice-pw"}})
	const n = 100
	s.DeliverN(alice, "INBOX", n, func(i int) []byte { return message(i+1, 2048) })
	if got := s.Count(alice, "INBOX"); got != n {
		t.Fatalf("Count = %d, want %d", got, n)
	}
	st := s.Status(alice, "INBOX")
	if st.UIDNext != n+1 || st.Unseen != n || st.UIDValidity == 0 {
		t.Errorf("Status = %+v", st)
	}
	if ids := s.MessageIDs(alice, "INBOX"); len(ids) != n || ids[messageID(1)] != 1 || ids[messageID(n)] != 1 {
		t.Errorf("MessageIDs: %d values, %q: %d, %q: %d", len(ids), messageID(1), ids[messageID(1)], messageID(n), ids[messageID(n)])
	}
	for _, tc := range []struct {
		name string
		auth func(*imapclient.Client) error
	}{
		{"XOAUTH2", func(c *imapclient.Client) error {
			return c.Authenticate(xoauth2.NewClient(alice, s.Token(alice, time.Hour)))
		}},
		{"LOGIN", func(c *imapclient.Client) error { return c.Login(alice, "alice-pw").Wait() }},
		{"PLAIN", func(c *imapclient.Client) error { return c.Authenticate(sasl.NewPlainClient("", alice, "alice-pw")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialIMAP(t, s)
			if err := tc.auth(c); err != nil {
				t.Fatalf("authenticate: %v", err)
			}
			got := subjects(t, c, "INBOX")
			if len(got) != n {
				t.Fatalf("%d messages, want %d", len(got), n)
			}
			for uid := imap.UID(1); uid <= n; uid++ { // UIDs follow the delivery order
				if want := fmt.Sprintf("message %d", uid); got[uid] != want {
					t.Errorf("UID %d: subject %q, want %q", uid, got[uid], want)
				}
			}
		})
	}
}

// waitLog waits until Dovecot's log contains want.
func waitLog(t *testing.T, s *Server, want string) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(s.Log(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Dovecot's log lacks %q", want)
		}
	}
}

func TestDeliverWhileSelected(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	s.Deliver(alice, "Live", message(1, 500))
	c := dialIMAP(t, s)
	if err := c.Authenticate(xoauth2.NewClient(alice, s.Token(alice, time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Live", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	s.DeliverN(alice, "Live", 2, func(i int) []byte { return message(i+2, 500) })
	// go-imap's Mailbox() was seen nil once in CI right after SELECT returned: never dereference it blindly.
	count := func() uint32 {
		if mb := c.Mailbox(); mb != nil {
			return mb.NumMessages
		}
		return 0
	}
	for deadline := time.Now().Add(5 * time.Second); count() != 3; {
		if time.Now().After(deadline) {
			t.Fatalf("the selected mailbox has %d messages, want 3", count())
		}
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := subjects(t, c, "Live")
	if len(got) != 3 || got[3] != "message 3" {
		t.Errorf("subjects %v", got)
	}
}

func TestRefusedCredentials(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: map[string]string{"bob@example.test": "bob-pw"}})
	// On a refused XOAUTH2 token Dovecot sends a JSON error challenge; go-imap v2 answers it with
	// "=" (its encoding of an empty response), which Dovecot 2.3 takes for invalid base64: the
	// command ends in BAD, not NO, and the connection is closed. Either way the login is refused.
	for _, tc := range []struct {
		name, reason string
		auth         func(*imapclient.Client) error
	}{
		{"expired token", "Token has expired", func(c *imapclient.Client) error {
			return c.Authenticate(xoauth2.NewClient(alice, s.ExpiredToken(alice)))
		}},
		{"bad signature", "Bad signature", func(c *imapclient.Client) error {
			return c.Authenticate(xoauth2.NewClient(alice, s.ForgedToken(alice, time.Hour)))
		}},
		{"token of another user", "did not match 'mallory@example.test'", func(c *imapclient.Client) error {
			return c.Authenticate(xoauth2.NewClient(alice, s.Token("mallory@example.test", time.Hour)))
		}},
		{"wrong password", "dict(bob@example.test,127.0.0.1,", func(c *imapclient.Client) error {
			return c.Login("bob@example.test", "nope").Wait()
		}},
		{"unknown user", "dict(carol@example.test,127.0.0.1,", func(c *imapclient.Client) error {
			return c.Login("carol@example.test", "bob-pw").Wait()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialIMAP(t, s)
			start := time.Now()
			err := tc.auth(c)
			var ie *imap.Error
			if !errors.As(err, &ie) || (ie.Type != imap.StatusResponseTypeNo && ie.Type != imap.StatusResponseTypeBad) {
				t.Fatalf("authenticate: %v, want a NO or BAD", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("refusal took %v (auth penalty not off?)", d)
			}
			waitLog(t, s, tc.reason)
		})
	}
	// A user added later can log in.
	s.AddUser("Carol@Example.test", "carol:pw")
	c := dialIMAP(t, s)
	if err := c.Login("carol@example.test", "carol:pw").Wait(); err != nil {
		t.Fatalf("login after AddUser: %v", err)
	}
}

func TestSubmissionRelaysToSink(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	msg := []byte("From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n")
	for _, tc := range []struct {
		name string
		dial func() (*smtp.Client, error)
	}{
		{"STARTTLS", func() (*smtp.Client, error) { return smtp.DialStartTLS(s.SubmissionAddr(), s.TLSConfig()) }},
		{"implicit TLS", func() (*smtp.Client, error) { return smtp.DialTLS(s.SubmissionTLSAddr(), s.TLSConfig()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.Relayed())
			c, err := tc.dial()
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if err := c.Auth(xoauth2.NewClient(alice, s.Token(alice, time.Hour))); err != nil {
				t.Fatalf("auth: %v", err)
			}
			if err := c.SendMail(alice, []string{"bob@example.test", "carol@example.test"}, bytes.NewReader(msg)); err != nil {
				t.Fatalf("send: %v", err)
			}
			c.Quit()
			envs := s.RelayedEnvelopes()
			if len(envs) != before+1 {
				t.Fatalf("%d relayed, want %d", len(envs), before+1)
			}
			e := envs[len(envs)-1]
			if e.From != alice || strings.Join(e.To, ",") != "bob@example.test,carol@example.test" {
				t.Errorf("envelope %q → %q", e.From, e.To)
			}
			if !bytes.Contains(e.Data, []byte("Subject: hi")) || !bytes.Contains(e.Data, []byte("hello")) {
				t.Errorf("relayed data %q", e.Data)
			}
			if got := s.Relayed(); !bytes.Equal(got[len(got)-1], e.Data) {
				t.Errorf("Relayed and RelayedEnvelopes differ")
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		c, err := smtp.DialStartTLS(s.SubmissionAddr(), s.TLSConfig())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		err = c.Auth(xoauth2.NewClient(alice, s.ExpiredToken(alice)))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 535 {
			t.Fatalf("auth: %v, want 535", err)
		}
		waitLog(t, s, "Token has expired")
	})
}

func TestFoldersAndForeignKeys(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Mechanisms: []string{"xoauth2", "oauthbearer"}})
	folders := []string{"Processed", "Archive/2024", "Gelöschte Elemente", "R&D"}
	for i, f := range folders {
		s.DeliverN(alice, f, i+1, func(j int) []byte { return message(j, 300) })
	}
	// A key from another signer (an emulator's ES256 key for a v2 token with azp), as TrustKey installs it.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const azp = "22222222-2222-2222-2222-222222222222"
	s.TrustKey(azp, "ES256", "emu-1", &k.PublicKey)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "x", "upn": alice, "azp": azp,
		"exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "emu-1"
	signed, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	c := dialIMAP(t, s)
	if err := c.Authenticate(xoauth2.NewClient(alice, signed)); err != nil {
		t.Fatalf("authenticate with the foreign key: %v", err)
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, b := range boxes {
		seen[b.Mailbox] = true
		if b.Delim != '/' {
			t.Errorf("%s: delimiter %q", b.Mailbox, b.Delim)
		}
	}
	for i, f := range append(folders, "INBOX") {
		if !seen[f] {
			t.Errorf("LIST lacks %q (has %v)", f, seen)
			continue
		}
		if f == "INBOX" {
			continue
		}
		if got := len(subjects(t, c, f)); got != i+1 {
			t.Errorf("%s: %d messages, want %d", f, got, i+1)
		}
	}
	if got := s.Count(alice, "Gelöschte Elemente"); got != 3 {
		t.Errorf("Count = %d", got)
	}
}

func TestStopKillsEverything(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	pgid := s.cmd.Process.Pid
	if err := syscall.Kill(-pgid, 0); err != nil {
		t.Fatalf("process group %d: %v", pgid, err)
	}
	s.Stop()
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still there after Stop: %v", pgid, err)
	}
	s.Stop() // idempotent
}

func TestFindBinariesMissing(t *testing.T) {
	_, err := FindBinaries(filepath.Join(t.TempDir(), "libexec"))
	if !errors.Is(err, ErrNotInstalled) ||
		!strings.HasPrefix(err.Error(), "dovecot not installed: apt-get install dovecot-imapd dovecot-submissiond") {
		t.Errorf("err = %v", err)
	}
}

func TestMaildirName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INBOX", "."}, {"inbox", "."}, {"Processed", ".Processed"}, {"Archive/2024", ".Archive.2024"},
		{"Gelöschte Elemente", ".Gel&APY-schte Elemente"}, {"R&D", ".R&-D"}, {"日本語", ".&ZeVnLIqe-"},
		{"", ""}, {"a.b", ""}, {"a//b", ""}, {"/a", ""}, {"a\nb", ""}, {"a\\b", ""},
	} {
		got, err := MaildirName(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("MaildirName(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("MaildirName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzMaildirName(f *testing.F) {
	for _, s := range []string{"INBOX", "Archive/2024", "Gelöschte Elemente", "R&D", "日本語/x", "a.b", "", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, folder string) {
		got, err := MaildirName(folder)
		if err != nil {
			return
		}
		if got == "." {
			return
		}
		if !strings.HasPrefix(got, ".") || strings.Contains(got, "/") || strings.Contains(got, "..") {
			t.Errorf("MaildirName(%q) = %q", folder, got)
		}
		for _, c := range []byte(got) {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("MaildirName(%q) = %q: not printable ASCII", folder, got)
			}
		}
		if strings.Count(got, ".") != strings.Count(folder, "/")+1 {
			t.Errorf("MaildirName(%q) = %q: levels differ", folder, got)
		}
	})
}

func TestParseMessageIDs(t *testing.T) {
	got, err := ParseMessageIDs([]byte(`[{"hdr.message-id":"<a@b>"},{"hdr.message-id":" <a@b>"},{"hdr.message-id":"<c@d>"}]`))
	if err != nil || len(got) != 2 || got["a@b"] != 2 || got["c@d"] != 1 {
		t.Errorf("ParseMessageIDs = %v, %v", got, err)
	}
	for _, bad := range []string{`[{"uid":"1"}]`, `hdr.message-id: <a@b>`} {
		if got, err := ParseMessageIDs([]byte(bad)); err == nil {
			t.Errorf("ParseMessageIDs(%s) = %v, want an error", bad, got)
		}
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Status
		ok   bool
	}{
		{`[{"mailbox":"INBOX","messages":"3","uidnext":"4","uidvalidity":"1700000000","unseen":"1"}]`, Status{3, 1, 4, 1700000000}, true},
		{`[{"messages":"3","uidnext":"4","uidvalidity":"1"}]`, Status{}, false},
		{`[{"messages":"x","uidnext":"4","uidvalidity":"1","unseen":"0"}]`, Status{}, false},
		{`[{"messages":"4294967296","uidnext":"4","uidvalidity":"1","unseen":"0"}]`, Status{}, false},
		{`[]`, Status{}, false},
		{`messages=1`, Status{}, false},
	} {
		got, err := ParseStatus([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseStatus(%s) = %+v, %v", tc.in, got, err)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(`[{"mailbox":"INBOX","messages":"3","uidnext":"4","uidvalidity":"1700000000","unseen":"1"}]`))
	f.Add([]byte(`[{"messages":"0","uidnext":"1","uidvalidity":"0","unseen":"0"}, {}]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(b)
		if err != nil && st != (Status{}) {
			t.Errorf("error %v with a non-zero status %+v", err, st)
		}
	})
}

func TestVsize(t *testing.T) {
	for in, want := range map[string]int{"": 0, "a\n": 3, "a\r\n": 3, "\n\n": 4, "a\r\nb\nc": 7} {
		if got := vsize([]byte(in)); got != want {
			t.Errorf("vsize(%q) = %d, want %d", in, got, want)
		}
	}
}

// BenchmarkDeliver10KB measures Deliver for messages of 10 KB (b.N of them).
func BenchmarkDeliver10KB(b *testing.B) {
	s := Start(b, Options{})
	msg := message(0, 10240)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	s.DeliverN(alice, "INBOX", b.N, func(int) []byte { return msg })
	b.StopTimer()
	if got := s.Count(alice, "INBOX"); got != b.N {
		b.Fatalf("Count = %d, want %d", got, b.N)
	}
}

// BenchmarkDeliver10k times the delivery of 10,000 messages of 10 KB and Dovecot's first look at
// them (go test -run '^$' -bench Deliver10k -benchtime 1x ./internal/testutil/dovecot/; it writes
// 100 MB, in memory with INKORG_DOVECOT_SHM=1).
func BenchmarkDeliver10k(b *testing.B) {
	for range b.N {
		s := Start(b, Options{MailInMemory: os.Getenv("INKORG_DOVECOT_SHM") == "1"})
		start := time.Now()
		s.DeliverN(alice, "INBOX", 10000, func(i int) []byte { return message(i+1, 10240) })
		deliver := time.Since(start)
		start = time.Now()
		if n := s.Count(alice, "INBOX"); n != 10000 {
			b.Fatalf("Count = %d", n)
		}
		b.ReportMetric(deliver.Seconds(), "deliver_s")
		b.ReportMetric(time.Since(start).Seconds(), "first_count_s")
		s.Stop()
	}
}
