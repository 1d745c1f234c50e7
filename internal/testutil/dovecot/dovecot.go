// Package dovecot gives a test or a benchmark a private, real Dovecot 2.3 (Debian bookworm) as a
// third-party IMAP and SMTP-submission peer:
//
//	s := dovecot.Start(t, dovecot.Options{Users: map[string]string{"bob@example.test": "secret"}})
//	s.Deliver("alice@example.test", "INBOX", raw)
//	c, _ := imapclient.DialTLS(s.IMAPAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
//	c.Authenticate(xoauth2.NewClient("alice@example.test", s.Token("alice@example.test", time.Hour)))
//
// The instance lives in t.TempDir(), listens on 127.0.0.1 only (ports picked free just before the
// start; a start that loses a port race is retried with new ports), and runs in the foreground as a
// child of the test binary in its own process group, with a parent-death signal; as root it runs
// entirely as the unprivileged user nobody:nogroup (Dovecot's login processes refuse root), otherwise
// as the current user. Stop (registered with t.Cleanup) sends SIGTERM to the process group, waits,
// then SIGKILLs whatever is left.
//
// What it offers:
//   - IMAP with implicit TLS (IMAPAddr, "imaps") and IMAP with STARTTLS or plaintext (IMAPStartTLSAddr);
//     SMTP submission with STARTTLS (SubmissionAddr) and with implicit TLS (SubmissionTLSAddr).
//     Submitted messages are relayed to an SMTP sink inside the test binary (go-smtp's server) that
//     records them: Relayed, RelayedEnvelopes.
//   - TLS with a certificate made at start: a private CA and a server certificate for 127.0.0.1, ::1
//     and localhost (CAPEM, CAFile, CertPool, TLSConfig).
//   - SASL XOAUTH2 (and OAUTHBEARER when listed in Options.Mechanisms) with Dovecot's oauth2 passdb in
//     local-validation mode: JWTs are checked against public keys in a key directory, with no HTTP.
//     The helper makes an RSA key and installs its public half; Token mints an RS256 JWT (claims sub,
//     upn, iat, nbf, exp, plus iss/aud when Options ask Dovecot to check them) that Dovecot accepts;
//     ExpiredToken and ForgedToken make refused ones; SignToken signs any claims; TrustKey installs
//     another signer's public key (e.g. an emulator's), looked up by Dovecot as
//     keys/<azp or "default">/<alg>/<kid or "default">.
//   - PLAIN and LOGIN with passwords (Options.Users, AddUser), one small file per user that
//     Dovecot's dict passdb reads at every login (a passwd-file is looked at only once a second).
//     OAuth users need no entry: the user database accepts any name.
//   - Maildir mailboxes under the temporary directory (mail/<user>/; in /dev/shm with
//     Options.MailInMemory), folders as Maildir++ ".A.B" directories, "/" as the IMAP hierarchy
//     separator (like Exchange). Deliver and DeliverN write message files straight into the
//     Maildir like a local delivery agent (tmp/ then rename into new/, no fsync): 10,000 messages
//     of 10 KB take 1-6 s (tmpfs or disk; this VM is noisy when other jobs run). The file names
//     sort in delivery order, so Dovecot assigns UIDs in delivery order when it next looks at the
//     folder. Dovecot runs with maildir_very_dirty_syncs (it is the only one touching cur/), so it
//     does not rescan cur/ after its own flag changes. Status and Count ask doveadm (which
//     also makes Dovecot assign the UIDs); Doveadm runs any other doveadm command.
//
// User names are lower-cased (Dovecot's default auth_username_format %Lu), and so are the upn claims
// Token writes. Tokens are short on purpose (537 bytes): Dovecot's submission server answers
// "500 Line too long" to an AUTH command line over about 1,000 bytes, and go-smtp's client always
// sends the initial response inline, so with go-smtp a token over about 650 bytes cannot log in
// there (real Entra tokens are 1,500-2,500 bytes; Exchange Online takes them inline).
//
// A refused XOAUTH2 token: Dovecot answers with a "+ <base64 JSON>" challenge (as Gmail does, unlike
// Exchange), and go-imap v2's client answers that with "=" (its encoding of an empty response),
// which Dovecot 2.3 rejects as invalid base64: the AUTHENTICATE ends in a tagged BAD (not NO) and
// the connection is closed. On submission, go-smtp sends an empty line and gets "535 5.7.8".
//
// It needs the Debian packages dovecot-imapd and dovecot-submissiond (dovecot-core comes with them);
// without the binaries Start fails the test (it never skips). Authentication-failure penalties are
// switched off (anvil's auth-penalty listener is disabled and auth_failure_delay = 0), so negative
// tests are quick: a refused token takes about 10 ms, a wrong password still about 0.5 s. Start
// takes 0.1-0.3 s, Stop usually 10-100 ms (now and then a second, when Dovecot's master sleeps
// before reaping its last child).
//
// The methods of Server that take no testing.TB fail the test given to Start (t.Fatalf) on error;
// call them from the test's own goroutine. Dovecot's log (log/dovecot.log, no secrets: auth debugging
// is off) is copied to the test log when the test fails.
package dovecot

import (
	"bufio"
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ErrNotInstalled says that the Dovecot binaries are missing.
var ErrNotInstalled = errors.New("dovecot not installed: apt-get install dovecot-imapd dovecot-submissiond")

// LibexecDir is where Debian puts Dovecot's service binaries.
const LibexecDir = "/usr/lib/dovecot"

// DefaultMechanisms are the SASL mechanisms offered by default: what Exchange Online offers on IMAP
// (AUTH=PLAIN AUTH=XOAUTH2), plus LOGIN.
const DefaultMechanisms = "plain login xoauth2"

// Options configure a Server. The zero value is usable.
type Options struct {
	// Users are written to the passwd-file for PLAIN and LOGIN: name → password.
	Users map[string]string
	// Mechanisms are the SASL mechanisms offered (Dovecot names, e.g. "plain", "login", "xoauth2",
	// "oauthbearer"); default DefaultMechanisms.
	Mechanisms []string
	// Issuers, when set, are the only iss values Dovecot accepts; Token writes the first one.
	Issuers []string
	// Audience, when set, must be in a token's aud (Dovecot's client_id); Token writes it.
	Audience string
	// UsernameClaim is the claim Dovecot takes the user name from; default "upn".
	UsernameClaim string
	// MailInMemory puts the mail directories in /dev/shm (removed at Stop) instead of the test's
	// temporary directory, which takes the disk out of benchmarks. Without /dev/shm it is ignored.
	MailInMemory bool
	// Verbose copies Dovecot's log to the test log at Stop even when the test passed.
	Verbose bool
}

// Binaries are the paths of the Dovecot programs Start runs.
type Binaries struct {
	Dovecot, Doveadm string
}

// FindBinaries looks for dovecot and doveadm (in PATH, then /usr/sbin and /usr/bin) and for the
// IMAP and submission service binaries in libexec; it returns ErrNotInstalled if one is missing.
func FindBinaries(libexec string) (Binaries, error) {
	find := func(name string, dirs ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	b := Binaries{Dovecot: find("dovecot", "/usr/sbin"), Doveadm: find("doveadm", "/usr/bin")}
	if b.Dovecot == "" || b.Doveadm == "" {
		return Binaries{}, ErrNotInstalled
	}
	for _, svc := range []string{"imap", "imap-login", "submission", "submission-login"} {
		if fi, err := os.Stat(filepath.Join(libexec, svc)); err != nil || !fi.Mode().IsRegular() {
			return Binaries{}, fmt.Errorf("%w (missing %s)", ErrNotInstalled, filepath.Join(libexec, svc))
		}
	}
	return b, nil
}

// Server is a running Dovecot instance.
type Server struct {
	t    testing.TB
	opts Options
	bin  Binaries
	dir  string // the instance's root (t.TempDir())
	run  string // base_dir (short: unix socket paths are limited to 108 bytes)
	mail string // the users' mail directories
	cred *syscall.Credential

	imapPort, imapsPort, submPort, submsPort int

	caPEM   []byte
	caFile  string
	pool    *x509.CertPool
	signKey *rsa.PrivateKey
	kid     string

	sink *sink

	mu      sync.Mutex
	folders map[string]string // "user\x00folder" → Maildir path, already created
	seq     atomic.Int64      // delivery sequence for Maildir file names
	base    int64             // Unix microseconds at start: the first file name's time

	cmd      *exec.Cmd
	done     chan struct{} // closed when the master process has been reaped
	waitErr  error
	stopOnce sync.Once
}

// Start starts a private Dovecot for the test and registers its Stop with t.Cleanup. It fails the
// test if Dovecot is not installed or does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := FindBinaries(LibexecDir)
	if err != nil {
		t.Fatalf("%v", err)
	}
	s := &Server{t: t, opts: opts, bin: bin, folders: map[string]string{},
		base: time.Now().UnixMicro(), done: make(chan struct{})}
	if err := s.prepare(); err != nil {
		t.Fatalf("dovecot: %v", err)
	}
	t.Cleanup(s.Stop)
	if err := s.sink.start(); err != nil {
		t.Fatalf("dovecot: relay sink: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if err := s.pickPorts(); err != nil {
			t.Fatalf("dovecot: %v", err)
		}
		if err := s.writeConfig(); err != nil {
			t.Fatalf("dovecot: %v", err)
		}
		lastErr = s.startMaster()
		if lastErr == nil {
			return s
		}
		if !errors.Is(lastErr, errPortTaken) {
			break
		}
	}
	t.Fatalf("dovecot: %v\n%s", lastErr, s.logTail(60))
	return nil
}

// prepare makes the directory tree, the TLS files, the signing key and the passwd-file.
func (s *Server) prepare() error {
	s.dir = s.t.TempDir()
	if os.Geteuid() == 0 {
		cred, err := nobody()
		if err != nil {
			return err
		}
		s.cred = cred
		if !traversable(filepath.Dir(filepath.Dir(s.dir))) {
			// TMPDIR is below a private directory: nobody could not reach t.TempDir().
			d, err := os.MkdirTemp("/tmp", "dovecot")
			if err != nil {
				return fmt.Errorf("instance dir: %w", err)
			}
			s.t.Cleanup(func() { os.RemoveAll(d) })
			s.dir = d
		}
		// t.TempDir() and its parent are 0700: let nobody through.
		for _, d := range []string{filepath.Dir(s.dir), s.dir} {
			if d == "/tmp" {
				continue
			}
			if err := os.Chmod(d, 0o711); err != nil {
				return fmt.Errorf("make %s traversable: %w", d, err)
			}
		}
	}
	s.run = filepath.Join(s.dir, "run")
	if len(s.run) > 60 {
		d, err := os.MkdirTemp("/tmp", "dovecot")
		if err != nil {
			return fmt.Errorf("base dir: %w", err)
		}
		s.t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
		s.run = filepath.Join(d, "run")
	}
	s.mail = filepath.Join(s.dir, "mail")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && s.opts.MailInMemory {
		d, err := os.MkdirTemp("/dev/shm", "dovecot-mail")
		if err != nil {
			return fmt.Errorf("mail dir: %w", err)
		}
		s.t.Cleanup(func() { os.RemoveAll(d) })
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
		s.mail = filepath.Join(d, "mail")
	}
	for _, d := range []string{s.run, s.mail, "state", "log", "keys", "tls", "users", "users/passdb"} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(s.dir, d)
		}
		if err := s.mkdir(d); err != nil {
			return err
		}
	}
	if err := os.Chmod(s.run, 0o755); err != nil { // Dovecot wants base_dir world-readable
		return err
	}
	if err := s.makeTLS(); err != nil {
		return err
	}
	if err := s.makeSigningKey(); err != nil {
		return err
	}
	for name, pw := range s.opts.Users {
		if err := checkUser(name); err != nil {
			return err
		}
		if err := checkPassword(pw); err != nil {
			return fmt.Errorf("user %s: %w", name, err)
		}
		if err := s.writeUser(strings.ToLower(name), pw); err != nil {
			return err
		}
	}
	s.sink = newSink()
	return nil
}

// traversable reports whether every directory from / to dir lets others through.
func traversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// nobody returns the credentials of nobody and its primary group (nogroup on Debian).
func nobody() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("look up user nobody: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user nobody has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// uidGID is the numeric owner Dovecot runs as.
func (s *Server) uidGID() (int, int) {
	if s.cred != nil {
		return int(s.cred.Uid), int(s.cred.Gid)
	}
	return os.Getuid(), os.Getgid()
}

// mkdir creates d (and parents) owned by the run user.
func (s *Server) mkdir(d string) error {
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	return s.chown(d)
}

func (s *Server) chown(p string) error {
	if s.cred == nil {
		return nil
	}
	if err := os.Lchown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

// writeFile writes a file atomically (temporary name, then rename) owned by the run user.
func (s *Server) writeFile(p string, data []byte, mode os.FileMode) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	if err := s.chown(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// pickPorts asks the kernel for four free ports at once (so they differ) and releases them.
func (s *Server) pickPorts() error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 4)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	s.imapPort, s.imapsPort, s.submPort, s.submsPort = ports[0], ports[1], ports[2], ports[3]
	return nil
}

var errPortTaken = errors.New("a listening port was taken meanwhile")

// startMaster runs the Dovecot master in the foreground and waits until it answers on its ports.
func (s *Server) startMaster() error {
	stderr, err := os.OpenFile(filepath.Join(s.dir, "log", "master.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer stderr.Close()
	cmd := exec.Command(s.bin.Dovecot, "-F", "-c", s.confPath())
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: s.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin.Dovecot, err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	go func() {
		s.waitErr = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			out := s.logTail(40)
			if strings.Contains(out, "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("dovecot exited at start: %v", s.waitErr)
		default:
		}
		if s.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return errors.New("dovecot did not answer within 15 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ready reports whether the plain IMAP and the submission ports greet as Dovecot.
func (s *Server) ready() bool {
	greets := func(port int, want string) bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.Contains(line, want)
	}
	return greets(s.imapPort, "Dovecot") && greets(s.submPort, "Dovecot")
}

// Stop stops Dovecot (SIGTERM to its process group, then SIGKILL to what is left) and the relay sink. It is
// registered with t.Cleanup by Start and may be called earlier; later calls do nothing.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			pgid := s.cmd.Process.Pid
			// SIGTERM to the whole group: the children quit at once and the master reaps them (to the
			// master alone it takes a second). Dovecot logs a warning for each. It still takes a
			// second now and then, when the master misses a child's death and sleeps before it
			// looks again; killing the master instead would leave zombies (PID 1 here does not reap).
			syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				s.t.Logf("dovecot: master did not stop on SIGTERM; killing")
			}
			s.kill()
			// Children that outlived the master (they quit when its pipe closes) are in its group.
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
		if s.sink != nil {
			s.sink.close()
		}
		if s.t.Failed() || s.opts.Verbose {
			s.t.Logf("dovecot log (%s):\n%s", s.LogPath(), s.logTail(200))
		}
	})
}

// kill SIGKILLs the process group and reaps the master.
func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.t.Errorf("dovecot: master pid %d not reaped after SIGKILL", s.cmd.Process.Pid)
	}
}

// Dir is the instance's root directory (config, log, mail, keys, tls).
func (s *Server) Dir() string { return s.dir }

// LogPath is the path of Dovecot's log file.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "log", "dovecot.log") }

// Log returns Dovecot's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath())
	return string(b)
}

// logTail returns the last n lines of the master's output and of Dovecot's log.
func (s *Server) logTail(n int) string {
	var out bytes.Buffer
	for _, p := range []string{filepath.Join(s.dir, "log", "master.out"), s.LogPath()} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&out, "== %s\n%s\n", filepath.Base(p), strings.Join(lines, "\n"))
	}
	return out.String()
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// IMAPAddr is the IMAP listener with implicit TLS ("imaps").
func (s *Server) IMAPAddr() string { return addr(s.imapsPort) }

// IMAPStartTLSAddr is the IMAP listener without implicit TLS: STARTTLS is offered, and plaintext
// authentication is allowed too.
func (s *Server) IMAPStartTLSAddr() string { return addr(s.imapPort) }

// SubmissionAddr is the SMTP submission listener with STARTTLS (like port 587).
func (s *Server) SubmissionAddr() string { return addr(s.submPort) }

// SubmissionTLSAddr is the SMTP submission listener with implicit TLS (like port 465).
func (s *Server) SubmissionTLSAddr() string { return addr(s.submsPort) }

// CAPEM is the PEM of the CA that signed the server certificate.
func (s *Server) CAPEM() []byte { return bytes.Clone(s.caPEM) }

// CAFile is the path of a file holding CAPEM, for external programs.
func (s *Server) CAFile() string { return s.caFile }

// CertPool holds the CA only.
func (s *Server) CertPool() *x509.CertPool { return s.pool.Clone() }

// TLSConfig is a client configuration trusting the CA only; ServerName is left empty, so clients
// dialling 127.0.0.1 check the certificate's IP address.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool.Clone(), MinVersion: tls.VersionTLS12}
}

// AddUser adds (or changes) a user for PLAIN and LOGIN; Dovecot sees it at the next login.
func (s *Server) AddUser(name, password string) {
	s.t.Helper()
	if err := checkUser(name); err != nil {
		s.t.Fatalf("dovecot: AddUser: %v", err)
	}
	if err := checkPassword(password); err != nil {
		s.t.Fatalf("dovecot: AddUser %s: %v", name, err)
	}
	s.mu.Lock()
	err := s.writeUser(strings.ToLower(name), password)
	s.mu.Unlock()
	if err != nil {
		s.t.Fatalf("dovecot: AddUser: %v", err)
	}
}

// checkUser accepts names that are safe as a passwd-file field and a directory name.
func checkUser(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("bad user name %q", name)
	case strings.ContainsAny(name, ":/\\%*\"' "):
		return fmt.Errorf("user name %q contains one of :/\\%%*\"' or a space", name)
	}
	for _, r := range name {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("user name %q contains a control character", name)
		}
	}
	return nil
}

func checkPassword(pw string) error {
	if pw == "" {
		return errors.New("empty password")
	}
	return nil
}

// writeUser writes the password entry of one user (users/passdb/<name>, read by Dovecot's dict
// passdb at every lookup). The password is stored as {PLAIN.b64}, so any byte is allowed.
func (s *Server) writeUser(name, password string) error {
	entry, err := json.Marshal(map[string]string{"password": "{PLAIN.b64}" + b64(password)})
	if err != nil {
		return err
	}
	return s.writeFile(filepath.Join(s.dir, "users", "passdb", name), entry, 0o600)
}
