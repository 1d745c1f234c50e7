package fetchmail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"inkorg/internal/testutil/dovecot"
)

const bench = "bench@example.test"

func message(i int) []byte {
	return []byte(fmt.Sprintf("From: a@example.test\r\nTo: %s\r\nSubject: message %d\r\nMessage-ID: <m%d@example.test>\r\n\r\n%s\r\n",
		bench, i, i, strings.Repeat("body text 0123456789\r\n", 40)))
}

func TestRunFetchesAllMessages(t *testing.T) {
	t.Parallel()
	s := dovecot.Start(t, dovecot.Options{Users: map[string]string{bench: "bench-pw"}})
	const n = 100
	s.DeliverN(bench, "INBOX", n, message)
	s.DeliverN(bench, "Other", 3, message)
	base := Options{Addr: s.IMAPAddr(), User: bench, Password: "bench-pw", CAFile: s.CAFile(), Dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name      string
		keep      bool
		delivery  Delivery
		folder    string
		want      int
		remaining int
	}{
		{"keep, bsmtp", true, BSMTP, "", n, n},
		{"keep, mda", true, MDA, "INBOX", n, n},
		{"other folder", true, BSMTP, "Other", 3, 3},
		{"nokeep", false, BSMTP, "INBOX", n, 0},
		{"empty folder", true, BSMTP, "INBOX", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := base
			opts.Keep, opts.Delivery, opts.Folder = tc.keep, tc.delivery, tc.folder
			res, err := Run(ctx, opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Messages != tc.want || res.Elapsed <= 0 {
				t.Errorf("Result %+v, want %d messages", res, tc.want)
			}
			if tc.want > 0 && res.Octets < int64(tc.want*len(message(1))*9/10) {
				t.Errorf("Octets = %d for %d messages", res.Octets, res.Messages)
			}
			folder := tc.folder
			if folder == "" {
				folder = "INBOX"
			}
			if got := s.Count(bench, folder); got != tc.remaining {
				t.Errorf("%d messages left in %s, want %d", got, folder, tc.remaining)
			}
			t.Logf("%d messages in %v", res.Messages, res.Elapsed)
		})
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	s := dovecot.Start(t, dovecot.Options{Users: map[string]string{bench: "bench-pw"}})
	ctx := context.Background()
	base := Options{Addr: s.IMAPAddr(), User: bench, Password: "bench-pw", CAFile: s.CAFile(), Keep: true}

	wrong := base
	wrong.Password = "wrong"
	_, err := Run(ctx, wrong)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Errorf("wrong password: %v, want exit status 3", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}

	otherCA := base
	otherCA.CAFile = dovecot.Start(t, dovecot.Options{}).CAFile()
	if _, err := Run(ctx, otherCA); !errors.As(err, &ee) || ee.Code != 2 {
		t.Errorf("untrusted certificate: %v, want exit status 2", err)
	}

	missing := base
	missing.Binary = filepath.Join(t.TempDir(), "fetchmail")
	if _, err := Run(ctx, missing); !errors.Is(err, ErrNotInstalled) ||
		!strings.HasPrefix(err.Error(), "fetchmail not installed: apt-get install fetchmail") {
		t.Errorf("missing binary: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Run(cancelled, base); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRunControl(t *testing.T) {
	opts := Options{Addr: "127.0.0.1:14993", User: `u"ser`, Password: `p\w`, CAFile: "/ca.pem", Keep: true}
	rc, err := RunControl(opts, "root")
	if err != nil {
		t.Fatal(err)
	}
	want := `set no syslog
set no bouncemail
poll "127.0.0.1" service 14993 protocol IMAP auth password timeout 120
  user "u\"ser" there with password "p\\w" is "root" here
  folder "INBOX"
  options fetchall keep no rewrite ssl sslcertck sslcertfile "/ca.pem" sslcommonname "localhost"
  bsmtp "/dev/null"
`
	if string(rc) != want {
		t.Errorf("run-control file:\n%s\nwant:\n%s", rc, want)
	}
	for name, o := range map[string]Options{
		"no port":      {Addr: "127.0.0.1", User: "u", Password: "p", CAFile: "/ca"},
		"bad port":     {Addr: "127.0.0.1:x", User: "u", Password: "p", CAFile: "/ca"},
		"no password":  {Addr: "127.0.0.1:1", User: "u", CAFile: "/ca"},
		"no CA":        {Addr: "127.0.0.1:1", User: "u", Password: "p"},
		"newline":      {Addr: "127.0.0.1:1", User: "u", Password: "p\npoll evil", CAFile: "/ca"},
		"bad delivery": {Addr: "127.0.0.1:1", User: "u", Password: "p", CAFile: "/ca", Delivery: 7},
	} {
		if _, err := RunControl(o, "root"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseOutput(t *testing.T) {
	out := []byte(`fetchmail: WARNING: Running as root is discouraged.
3 messages for bench@example.test at 127.0.0.1 (3000 octets).
reading message bench@example.test@127.0.0.1:1 of 3 (1000 octets) not flushed
reading message bench@example.test@127.0.0.1:2 of 3 (200 header octets) (1000 body octets) flushed
reading message bench@example.test@127.0.0.1:3 of 3 (800 header octets) not flushed
reading message x:4 of 3 (99999999999999999999 octets)
`)
	if n, o := ParseOutput(out); n != 3 || o != 3000 {
		t.Errorf("ParseOutput = %d, %d", n, o)
	}
}

func FuzzParseOutput(f *testing.F) {
	f.Add([]byte("reading message u@h:1 of 2 (10 octets) not flushed\nreading message u@h:2 of 2 (5 octets) flushed\n"))
	f.Add([]byte("fetchmail: no mail for u at h\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, o := ParseOutput(b)
		if n < 0 || (n == 0 && o != 0) {
			t.Errorf("ParseOutput = %d, %d", n, o)
		}
	})
}

// BenchmarkFetchmail10k measures fetchmail on 10,000 messages of 10 KB (BSMTP and MDA, keep):
// go test -run '^$' -bench Fetchmail10k -benchtime 1x ./internal/testutil/fetchmail/ (about a minute).
func BenchmarkFetchmail10k(b *testing.B) {
	s := dovecot.Start(b, dovecot.Options{Users: map[string]string{bench: "bench-pw"}, MailInMemory: true})
	body := strings.Repeat("The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz.\r\n", 120)
	s.DeliverN(bench, "INBOX", 10000, func(i int) []byte {
		return []byte(fmt.Sprintf("From: a@example.test\r\nTo: %s\r\nSubject: message %d\r\nMessage-ID: <m%d@example.test>\r\n\r\n%s", bench, i, i, body))
	})
	b.ResetTimer()
	for range b.N {
		for _, d := range deliveries() {
			res, err := Run(context.Background(), Options{Addr: s.IMAPAddr(), User: bench, Password: "bench-pw",
				CAFile: s.CAFile(), Keep: true, Delivery: d})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(res.Messages)/res.Elapsed.Seconds(), fmt.Sprintf("delivery%d_msgs/s", d))
		}
	}
}

func deliveries() []Delivery {
	if os.Getenv("INKORG_FETCHMAIL_10K_MDA") == "0" {
		return []Delivery{BSMTP}
	}
	return []Delivery{BSMTP, MDA}
}
