// Package fetchmail runs Debian's fetchmail (6.4.x, package fetchmail) as the classic ingestion peer
// for benchmarks: it fetches every message of one IMAP folder over implicit TLS with plain LOGIN
// (this fetchmail has no OAuth) and throws the messages away, and Run reports how many it fetched and
// the wall time.
//
// Run writes this run-control file (mode 0600) into the working directory
//
//	set no syslog
//	set no bouncemail
//	poll "127.0.0.1" service 14993 protocol IMAP auth password timeout 120
//	  user "USER" there with password "PASSWORD" is "LOCALUSER" here
//	  folder "INBOX"
//	  options fetchall keep no rewrite ssl sslcertck sslcertfile "CA.pem" sslcommonname "localhost"
//	  bsmtp "/dev/null"
//
// ("nokeep" instead of "keep" when Options.Keep is false; `mda "cat >/dev/null"` instead of the
// bsmtp line with Delivery MDA) and runs, with HOME and FETCHMAILHOME set to that directory,
//
//	fetchmail -f DIR/fetchmailrc --pidfile DIR/fetchmail.pid
//
// Without -v fetchmail prints one line per message ("reading message USER@127.0.0.1:7 of 100 (99
// header octets) (882 body octets) not flushed"); Run counts those. On the wire fetchmail asks for RFC822.SIZE per 100
// messages, then per message FETCH RFC822.HEADER, FETCH BODY.PEEK[TEXT] and STORE +FLAGS (\Seen):
// three round trips, no pipelining. "fetchall" fetches messages already seen too; "no rewrite"
// leaves the headers alone; "sslcommonname" is the name checked in the server certificate, since
// the poll address is an IP address. BSMTP to /dev/null is the cheapest delivery (no process per
// message); MDA runs a shell and cat per message, as a real local delivery would.
//
// It needs the Debian package fetchmail; without it Run returns ErrNotInstalled.
package fetchmail

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotInstalled says that the fetchmail binary is missing.
var ErrNotInstalled = errors.New("fetchmail not installed: apt-get install fetchmail")

// Delivery is where fetchmail puts the messages it fetched.
type Delivery int

const (
	// BSMTP writes them as batch SMTP to /dev/null: no process per message (the default).
	BSMTP Delivery = iota
	// MDA pipes each message to `cat >/dev/null`: a shell and a cat per message.
	MDA
)

// Options say what to fetch and how.
type Options struct {
	// Addr is host:port of an IMAP server with implicit TLS ("imaps").
	Addr string
	// User and Password are for IMAP LOGIN.
	User, Password string
	// Folder is the IMAP folder to fetch; default INBOX.
	Folder string
	// CAFile is a PEM file with the CA that signed the server's certificate (sslcertfile); the
	// certificate is checked (sslcertck).
	CAFile string
	// ServerName is the name the certificate must carry (sslcommonname); default "localhost".
	ServerName string
	// Keep leaves the messages on the server (keep); false deletes them (nokeep).
	Keep bool
	// Delivery is BSMTP (default) or MDA.
	Delivery Delivery
	// Dir is the working directory (run-control file, pid file); default a new temporary directory,
	// removed afterwards.
	Dir string
	// Binary is the fetchmail program; default "fetchmail" from PATH, else /usr/bin/fetchmail.
	Binary string
	// Timeout is fetchmail's server timeout; default 120 s.
	Timeout time.Duration
}

// Result is what a run did.
type Result struct {
	// Messages is the number of messages fetchmail read.
	Messages int
	// Octets is the sum of their sizes as fetchmail reported them.
	Octets int64
	// Elapsed is the wall time of the fetchmail process.
	Elapsed time.Duration
}

// ExitError is a fetchmail run that ended with an exit status other than 0 (mail fetched) or 1 (no
// mail).
type ExitError struct {
	Code   int
	Output string // the last lines fetchmail printed
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("fetchmail exited with status %d (%s): %s", e.Code, exitMeaning(e.Code), e.Output)
}

// exitMeaning follows fetchmail(1), EXIT CODES.
func exitMeaning(code int) string {
	switch code {
	case 2:
		return "socket error"
	case 3:
		return "authentication failed"
	case 4:
		return "protocol error"
	case 5:
		return "syntax error in the options"
	case 6:
		return "bad permissions on the run-control file"
	case 7:
		return "error reported by the server"
	case 8:
		return "client-side exclusion error"
	case 9:
		return "the user's mailbox is locked"
	case 10:
		return "SMTP error"
	case 11:
		return "DNS error"
	case 12:
		return "BSMTP batch file could not be opened"
	case 13:
		return "poll limit reached"
	case 14:
		return "server busy"
	case 23:
		return "internal error"
	default:
		return "unknown"
	}
}

// RunControl returns the run-control file for opts, with the password in it. localUser is the
// name fetchmail delivers to ("is … here").
func RunControl(opts Options, localUser string) ([]byte, error) {
	host, port, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("fetchmail: address %q: %w", opts.Addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("fetchmail: port %q: %w", port, err)
	}
	folder := opts.Folder
	if folder == "" {
		folder = "INBOX"
	}
	serverName := opts.ServerName
	if serverName == "" {
		serverName = "localhost"
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 120 * time.Second
	}
	switch {
	case opts.User == "" || opts.Password == "":
		return nil, errors.New("fetchmail: user and password are required")
	case opts.CAFile == "":
		return nil, errors.New("fetchmail: CAFile is required")
	}
	q := func(field, s string) (string, error) {
		if strings.ContainsAny(s, "\r\n\x00") {
			return "", fmt.Errorf("fetchmail: %s contains a line break or NUL", field)
		}
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
	}
	fields := map[string]string{"host": host, "user": opts.User, "password": opts.Password,
		"local user": localUser, "folder": folder, "CA file": opts.CAFile, "server name": serverName}
	quoted := map[string]string{}
	for k, v := range fields {
		if quoted[k], err = q(k, v); err != nil {
			return nil, err
		}
	}
	keep := "nokeep"
	if opts.Keep {
		keep = "keep"
	}
	var deliver string
	switch opts.Delivery {
	case BSMTP:
		deliver = `bsmtp "/dev/null"`
	case MDA:
		deliver = `mda "cat >/dev/null"`
	default:
		return nil, fmt.Errorf("fetchmail: unknown delivery %d", opts.Delivery)
	}
	var b bytes.Buffer
	b.WriteString("set no syslog\nset no bouncemail\n")
	fmt.Fprintf(&b, "poll %s service %s protocol IMAP auth password timeout %d\n", quoted["host"], port, int(timeout.Seconds()))
	fmt.Fprintf(&b, "  user %s there with password %s is %s here\n", quoted["user"], quoted["password"], quoted["local user"])
	fmt.Fprintf(&b, "  folder %s\n", quoted["folder"])
	fmt.Fprintf(&b, "  options fetchall %s no rewrite ssl sslcertck sslcertfile %s sslcommonname %s\n",
		keep, quoted["CA file"], quoted["server name"])
	fmt.Fprintf(&b, "  %s\n", deliver)
	return b.Bytes(), nil
}

// Run runs fetchmail once and reports what it fetched. Cancelling ctx kills fetchmail (and its
// MDA processes).
func Run(ctx context.Context, opts Options) (Result, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("fetchmail"); err != nil {
			bin = "/usr/bin/fetchmail"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return Result{}, fmt.Errorf("%w (%s)", ErrNotInstalled, bin)
	}
	localUser := "root"
	if u, err := user.Current(); err == nil {
		localUser = u.Username
	}
	rc, err := RunControl(opts, localUser)
	if err != nil {
		return Result{}, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fetchmail"); err != nil {
			return Result{}, fmt.Errorf("fetchmail: working directory: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	rcPath := filepath.Join(dir, "fetchmailrc")
	if err := os.WriteFile(rcPath, rc, 0o600); err != nil {
		return Result{}, fmt.Errorf("fetchmail: write run-control file: %w", err)
	}
	defer os.Remove(rcPath) // it holds the password
	if err := os.Chmod(rcPath, 0o600); err != nil {
		return Result{}, err
	}

	cmd := exec.CommandContext(ctx, bin, "-f", rcPath, "--pidfile", filepath.Join(dir, "fetchmail.pid"))
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "FETCHMAILHOME=" + dir, "PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	runErr := cmd.Run()
	res := Result{Elapsed: time.Since(start)}
	res.Messages, res.Octets = ParseOutput(out.Bytes())
	if ctx.Err() != nil {
		return res, fmt.Errorf("fetchmail: %w", ctx.Err())
	}
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee) && ee.ExitCode() == 1: // no mail
	case errors.As(runErr, &ee) && ee.ExitCode() > 1:
		return res, &ExitError{Code: ee.ExitCode(), Output: tail(out.Bytes(), 10)}
	default:
		return res, fmt.Errorf("fetchmail: %w: %s", runErr, tail(out.Bytes(), 10))
	}
	return res, nil
}

// messageLine matches fetchmail's per-message progress line, e.g.
// "reading message bench@example.test@127.0.0.1:7 of 100 (99 header octets) (882 body octets) not flushed"
// (IMAP) or "… (10240 octets) …" (POP3).
var messageLine = regexp.MustCompile(`^reading message \S+:\d+ of \d+ \((\d+) (?:header )?octets\)(?: \((\d+) body octets\))?`)

// ParseOutput counts the messages fetchmail reported reading and sums their sizes.
func ParseOutput(out []byte) (messages int, octets int64) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := messageLine.FindSubmatch(sc.Bytes())
		if m == nil {
			continue
		}
		n, err := strconv.ParseInt(string(m[1]), 10, 64)
		if err != nil {
			continue
		}
		if len(m[2]) > 0 {
			body, err := strconv.ParseInt(string(m[2]), 10, 64)
			if err != nil || body > 1<<62 || n > 1<<62 {
				continue
			}
			n += body
		}
		messages++
		octets += n
	}
	return messages, octets
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
