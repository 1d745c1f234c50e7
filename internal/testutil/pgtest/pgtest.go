// Package pgtest gives tests a throwaway PostgreSQL server: one cluster per test binary, initialised
// into a temporary directory and listening on 127.0.0.1 with a free port, and a fresh database per
// test. The cluster lives in /dev/shm when there is one (else the temporary directory); it starts in
// about a second. It needs the Debian package postgresql (the server binaries in
// /usr/lib/postgresql/*/bin); without them a test fails, it does not skip. With INKORG_TEST_PG_DSN set
// it uses that server instead, creating (and afterwards dropping) a database per test, so the DSN's
// user needs CREATEDB.
//
// Use it from TestMain, which stops the cluster after the tests:
//
//	var pg = pgtest.New()
//
//	func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }
//
//	func TestX(t *testing.T) { dsn := pg.NewDatabase(t); … }
//
// PostgreSQL refuses to run as root; as root, the helper runs initdb and the server as the postgres
// system user (created by the Debian package) and hands it the temporary directory. The server is
// the test binary's own child with a parent-death signal, so it does not outlive a test binary that
// is killed (a test timeout, ^C), and Close stops it as `pg_ctl stop -m immediate` does (SIGQUIT).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable with the DSN of an existing server to use instead of a
// throwaway cluster.
const EnvDSN = "INKORG_TEST_PG_DSN"

// ErrNoBinaries says that the PostgreSQL server binaries are not installed.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found: apt-get install postgresql")

// DebianBinGlob is where Debian's postgresql package puts the server binaries.
const DebianBinGlob = "/usr/lib/postgresql/*/bin"

// Server hands out databases to the tests of one binary, starting the cluster on first use.
type Server struct {
	mu       sync.Mutex
	inMain   bool     // Run is running the tests: someone will stop the cluster
	cluster  *Cluster // nil until first use
	startErr error    // a failed start, reported to every later test
	prefix   string   // database names on an external server
	n        int      // databases handed out
}

// New returns a Server that starts nothing until a test asks for a database.
func New() *Server { return &Server{} }

// Run runs the tests, then stops the cluster if one was started. Call it from TestMain:
// os.Exit(pg.Run(m)).
func (s *Server) Run(m *testing.M) int {
	s.mu.Lock()
	s.inMain = true
	s.mu.Unlock()
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Close stops the cluster and removes its files.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cluster == nil {
		return nil
	}
	err := s.cluster.Close()
	s.cluster = nil
	return err
}

// NewDatabase creates a fresh, empty database and returns its DSN
// (postgres://test@127.0.0.1:PORT/t_N?sslmode=disable on the throwaway cluster). It fails the test
// when no server can be had.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	if ext := os.Getenv(EnvDSN); ext != "" {
		return s.externalDatabase(t, ext)
	}
	s.mu.Lock()
	if !s.inMain {
		s.mu.Unlock()
		t.Fatal("pgtest: call Server.Run from TestMain, which stops the cluster after the tests")
	}
	if s.cluster == nil && s.startErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		s.cluster, s.startErr = StartCluster(ctx)
		cancel()
	}
	c, err := s.cluster, s.startErr
	s.n++
	name := "t_" + strconv.Itoa(s.n)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	create := `CREATE DATABASE ` + pgx.Identifier{name}.Sanitize()
	if c.version >= 15 {
		// Copy the template's files rather than write them all to the WAL: the cluster stays small
		// and quick to search.
		create += ` STRATEGY FILE_COPY`
	}
	if err := admin(c.DSN("postgres"), create); err != nil {
		t.Fatal(err)
	}
	return c.DSN(name)
}

// DataDir is the throwaway cluster's data directory, or "" when none is running (not started yet, or
// an external server from INKORG_TEST_PG_DSN): tests that look for values in the server's files.
func (s *Server) DataDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cluster == nil {
		return ""
	}
	return s.cluster.DataDir()
}

// externalDatabase creates a database on the server at dsn and drops it when the test ends.
func (s *Server) externalDatabase(t testing.TB, dsn string) string {
	t.Helper()
	s.mu.Lock()
	if s.prefix == "" {
		var b [4]byte
		rand.Read(b[:])
		s.prefix = "t_" + hex.EncodeToString(b[:])
	}
	s.n++
	name := s.prefix + "_" + strconv.Itoa(s.n)
	s.mu.Unlock()
	dbDSN, err := WithDatabase(dsn, name)
	if err != nil {
		t.Fatalf("%s: %v", EnvDSN, err)
	}
	if err := admin(dsn, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("%s: %v", EnvDSN, err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(dsn, name); err != nil {
			t.Logf("pgtest: %v", err)
		}
	})
	return dbDSN
}

func dropDatabase(adminDSN, name string) error {
	return admin(adminDSN, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
}

func admin(dsn, stmt string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to the test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// WithDatabase returns dsn (a URL or key=value pairs) with the database replaced by name.
func WithDatabase(dsn, name string) (string, error) {
	var out string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", errors.New("the DSN is not a valid URL") // the error would show the password
		}
		u.Path, u.RawPath = "/"+name, ""
		out = u.String()
	} else {
		// In key=value form the last value of a key wins.
		out = strings.TrimSpace(dsn) + " dbname=" + name
	}
	cfg, err := pgx.ParseConfig(out)
	if err != nil {
		return "", fmt.Errorf("parse the DSN: %w", err)
	}
	if cfg.Database != name {
		return "", errors.New("cannot set the database in this DSN")
	}
	return out, nil
}

// Cluster is one running PostgreSQL server in a temporary directory, owned by this process.
type Cluster struct {
	dir      string // the temporary directory: data/, sock/, postgres.log
	bin      string
	port     int
	version  int                 // the major version, from PG_VERSION
	cred     *syscall.Credential // nil unless running as root
	cmd      *exec.Cmd
	done     chan struct{} // closed when the server has exited
	waitErr  error         // set before done is closed
	once     sync.Once
	closeErr error
}

// StartCluster runs initdb into a new temporary directory and starts the server on 127.0.0.1 with a
// free port, its unix socket in that directory and user "test" trusted. Durability is off (fsync,
// synchronous_commit, full_page_writes): it is for tests. The caller must Close it.
func StartCluster(ctx context.Context) (*Cluster, error) {
	bin, err := FindBinaries(DebianBinGlob, true)
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		if c.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	if c.dir, err = tempDir(); err != nil {
		return nil, err
	}
	if err := c.initdb(ctx); err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		err := c.start(ctx)
		if err == nil {
			return c, nil
		}
		// Another process may have taken the port between our probe and the server's bind.
		if attempt < 3 && strings.Contains(c.logTail(), "could not bind") {
			continue
		}
		os.RemoveAll(c.dir)
		return nil, err
	}
}

// tempDir makes the cluster's directory in memory (/dev/shm) where there is one: on a disk, with
// fsync off all the same, CREATE DATABASE takes ten times as long (measured: 370 ms against 30 ms).
// It also removes what test binaries that were killed left there (their servers ended with them).
func tempDir() (string, error) {
	var dir string
	var err error
	for _, parent := range []string{"/dev/shm", os.TempDir()} {
		sweep(parent)
		if dir, err = os.MkdirTemp(parent, dirPrefix); err == nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return dir, nil
}

const (
	dirPrefix = "inkorg-pgtest-"
	ownerFile = "owner.pid" // the pid of the test binary that made the directory
)

// sweep removes cluster directories in parent whose test binary is gone.
func sweep(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // being made just now, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// FindBinaries returns the directory with initdb and postgres: the newest version matching glob
// (DebianBinGlob), else, when usePath is set, the directory of initdb in $PATH.
func FindBinaries(glob string, usePath bool) (string, error) {
	dirs, _ := filepath.Glob(glob)
	version := func(dir string) int { // /usr/lib/postgresql/15/bin → 15
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return v
	}
	sort.SliceStable(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if usePath {
		if p, err := exec.LookPath("initdb"); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// postgresUser is the account to run the server as when we are root.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL refuses to: no postgres user to run it as (apt-get install postgresql creates it): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: postgres user has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// command prepares one of the binaries to run as the server's user, in the cluster directory.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

func (c *Cluster) initdb(ctx context.Context) error {
	sock := filepath.Join(c.dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if c.cred != nil {
		for _, p := range []string{c.dir, sock} {
			if err := os.Chown(p, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return fmt.Errorf("pgtest: hand %s to the postgres user: %w", p, err)
			}
		}
	}
	out, err := c.command(ctx, "initdb", "-D", filepath.Join(c.dir, "data"), "-A", "trust", "-U", "test",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	v, err := os.ReadFile(filepath.Join(c.DataDir(), "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w", err)
	}
	c.version, _ = strconv.Atoi(strings.TrimSpace(string(v)))
	return nil
}

// start starts the server on a free port and waits until it accepts connections.
func (c *Cluster) start(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	logf, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close() // the child has its own copy
	// Not CommandContext: the server outlives the start's context, until Close.
	cmd := c.command(context.Background(), "postgres", "-D", filepath.Join(c.dir, "data"),
		"-p", strconv.Itoa(port), "-k", filepath.Join(c.dir, "sock"),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "log_checkpoints=off")
	cmd.Stdout, cmd.Stderr = logf, logf
	// If this test binary dies without Close, the kernel sends the server SIGQUIT (immediate
	// shutdown). Go sets it after switching to the postgres user, so the switch does not clear it.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	// The kernel sends the parent-death signal when the thread that started the child ends, and the
	// Go runtime may end a thread: start and wait on one locked thread, which lives as long as the
	// server.
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	c.cmd, c.done = cmd, done
	if err := c.waitReady(ctx); err != nil {
		c.stop()
		return err
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until the server accepts a connection, it exits, or ctx ends.
func (c *Cluster) waitReady(ctx context.Context) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("pgtest: postgres exited: %v\n%s", c.waitErr, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pgtest: postgres did not accept connections: %w (last: %v)\n%s", ctx.Err(), err, c.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// DSN is the URL of a database on the cluster, as user test over TCP.
func (c *Cluster) DSN(database string) string {
	return fmt.Sprintf("postgres://test@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// Port is the TCP port the cluster listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// DataDir is the cluster's data directory, for tests that look into its files.
func (c *Cluster) DataDir() string { return filepath.Join(c.dir, "data") }

// stop shuts the server down immediately (SIGQUIT, as pg_ctl stop -m immediate) and waits for it;
// after 10 s it is killed.
func (c *Cluster) stop() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// Close stops the server and removes the temporary directory. It may be called more than once.
func (c *Cluster) Close() error {
	c.once.Do(func() {
		c.stop()
		if err := os.RemoveAll(c.dir); err != nil {
			c.closeErr = fmt.Errorf("pgtest: remove %s: %w", c.dir, err)
		}
	})
	return c.closeErr
}
