package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
)

// tenant is a running emulator and a database whose system settings point at it: Exchange Online
// with the emulator's confidential app and its client secret.
type tenant struct {
	emu    *emulator.Emulator
	c      *cli
	db     string
	secret string // the app's client secret, which must never be logged
}

// newTenant starts an emulator on sc (nil: the default scenario) and sets the system settings for it.
func newTenant(t *testing.T, sc *scenario.Scenario) *tenant {
	t.Helper()
	emu, err := emulator.New(emulator.Config{Dir: t.TempDir(), Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	info := emu.Info()
	c := newCLI(t)
	tn := &tenant{emu: emu, c: c, db: filepath.Join(c.dir, "inkorg.db")}
	for _, a := range info.Apps {
		if !a.PublicClient {
			tn.secret = a.ClientSecret
			c.want(0, []string{"settings", "system", "set", "--db", tn.db, "--email-method", "exchange-online", "--client-id", a.ClientID,
				"--tenant-id", info.TenantID, "--auth-flow", "client-secret", "--client-secret-file", c.file("secret", a.ClientSecret)}, "Saved")
			return tn
		}
	}
	t.Fatal("the emulator's scenario has no confidential app")
	return nil
}

// backlog is a tenant with two incoming accounts, an API token, and n messages waiting in the two
// mailboxes: what serve works through in the operations tests.
type backlog struct {
	*tenant
	t     *testing.T
	n     int
	token string // the ERP's API token, which must never be logged
}

var backlogBoxes = []string{"m2m@contoso.example", "info@contoso.example"}

func newBacklog(t *testing.T, n int) *backlog {
	t.Helper()
	b := &backlog{tenant: newTenant(t, nil), t: t, n: n}
	c := b.c
	c.want(0, []string{"settings", "incoming", "add", "--db", b.db, "--address", backlogBoxes[0], "--type", "monitor-to-monitor"}, "Saved")
	c.want(0, []string{"settings", "incoming", "add", "--db", b.db, "--address", backlogBoxes[1], "--type", "general"}, "Saved")
	r := c.want(0, []string{"token", "create", "erp", "--db", b.db})
	for _, f := range strings.Fields(r.stdout) {
		if strings.HasPrefix(f, "ink_") {
			b.token = f
		}
	}
	if b.token == "" {
		t.Fatalf("no token in:\n%s", r)
	}
	for i := range n {
		raw := fmt.Appendf(nil, "From: sender%d@example.com\r\nTo: %s\r\nSubject: ops test %d\r\nMessage-ID: <ops-%d@example.com>\r\n\r\n%s\r\n",
			i, backlogBoxes[i%2], i, i, strings.Repeat("y", 2000+i%700))
		if _, err := b.emu.Store().Deliver(backlogBoxes[i%2], "INBOX", raw); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// serve starts "inkorg serve" on the backlog; the test's cleanup kills it if it still runs.
func (b *backlog) serve(args ...string) (*exec.Cmd, *lockedBuffer) {
	b.t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--db", b.db, "--cloud", b.emu.InfoFile(), "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = b.c.env
	var out lockedBuffer
	cmd.Stderr, cmd.Stdout = &out, &out
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// count is how many messages a folder of the backlog's mailboxes holds.
func (b *backlog) count(folder string) int {
	n := 0
	for _, box := range backlogBoxes {
		n += inboxCount(b.t, b.emu, box, folder)
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func stop(t *testing.T, cmd *exec.Cmd, out *lockedBuffer) {
	t.Helper()
	// A SIGTERM that arrives before the Go runtime has installed serve's handler kills the process
	// outright: wait until the kernel says SIGTERM is caught (Linux's SigCgt mask, bit 15).
	waitFor(t, "serve to catch SIGTERM", 30*time.Second, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			return true // not Linux, or gone: signal anyway
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				return err != nil || mask&(1<<(syscall.SIGTERM-1)) != 0
			}
		}
		return true
	})
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve did not exit 0 on SIGTERM: %v\n%s", err, out)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve did not stop within 30 s of SIGTERM\n%s", out)
	}
}

// open opens a database (the backlog's or a copy of it) with the backlog's key file.
func (b *backlog) open(path string) *sqlite.Store {
	b.t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: path, Key: func(string) (*secrets.Sealer, error) {
		return secrets.LoadKeyFile(filepath.Join(b.c.dir, "inkorg.key"))
	}})
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { st.Close() })
	return st
}

// stored is the stored messages' subjects, with how often each is stored.
func stored(t *testing.T, st store.Store) map[string]int {
	t.Helper()
	seen := map[string]int{}
	q := store.MessageQuery{}
	for {
		page, err := st.Messages(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return seen
		}
		for _, m := range page {
			seen[m.Subject]++
		}
		q.After = page[len(page)-1].Seq
	}
}

// TestServeSIGTERMMidBacklog stops serve with SIGTERM while it works through a backlog: it exits 0
// and logs "stopped", and the store and the server agree — every processed message is stored, every
// message still in INBOX is either not stored or has its move pending, which the next start completes.
func TestServeSIGTERMMidBacklog(t *testing.T) {
	const n = 8000
	b := newBacklog(t, n)
	cmd, out := b.serve("--log-level", "info")
	waitFor(t, "the first messages to be processed", 60*time.Second, func() bool { return b.count(settings.DefaultProcessedFolder) > 0 })
	stop(t, cmd, out)
	for _, want := range []string{"stopping: finishing the batches in flight", "stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	left := b.count("INBOX")
	t.Logf("stopped with %d of %d messages still in INBOX", left, n)
	if left == 0 {
		t.Log("the backlog was worked off before SIGTERM arrived: the test proves less than it should")
	}

	st := b.open(b.db)
	seen := stored(t, st)
	accounts, err := st.IncomingAccounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, a := range accounts {
		moves, err := st.PendingMoves(context.Background(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		pending += len(moves)
		movePending := map[uint32]bool{}
		for _, m := range moves {
			if strings.EqualFold(m.Folder, "INBOX") {
				movePending[m.UID] = true
			}
		}
		processed, _ := b.emu.Store().Messages(a.Address, settings.DefaultProcessedFolder)
		for _, m := range processed {
			if seen[m.Subject] != 1 {
				t.Errorf("%s: %q is in the processed folder but stored %d times", a.Address, m.Subject, seen[m.Subject])
			}
		}
		inbox, _ := b.emu.Store().Messages(a.Address, "INBOX")
		for _, m := range inbox {
			if seen[m.Subject] > 0 && !movePending[m.UID] {
				t.Errorf("%s: %q (UID %d) is stored and still in INBOX without a pending move", a.Address, m.Subject, m.UID)
			}
		}
	}
	t.Logf("after SIGTERM: %d stored, %d moves pending", len(seen), pending)
	st.Close()

	// The next start completes the pending moves and the rest of the backlog.
	cmd, out = b.serve("--log-level", "warn")
	waitFor(t, "the backlog to be worked off", 90*time.Second, func() bool { return b.count("INBOX") == 0 })
	waitFor(t, "every message in the processed folder", 10*time.Second, func() bool { return b.count(settings.DefaultProcessedFolder) == n })
	stop(t, cmd, out)
	st = b.open(b.db)
	seen = stored(t, st)
	if len(seen) != n {
		t.Errorf("%d distinct messages stored, want %d", len(seen), n)
	}
	for s, k := range seen {
		if k != 1 {
			t.Errorf("%q stored %d times", s, k)
		}
	}
}

// TestServeJSONLogs runs serve with --log-format json at debug level, through start, work, API
// requests and stop: every line is a JSON object with a component, and neither the client secret
// nor the API token appears anywhere in the log.
func TestServeJSONLogs(t *testing.T) {
	b := newBacklog(t, 200)
	cmd, out := b.serve("--log-format", "json", "--log-level", "debug")
	var api string
	waitFor(t, "the API's address in the log", 30*time.Second, func() bool {
		for _, l := range strings.Split(out.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "inkorg is running" {
				api, _ = m["api"].(string)
			}
		}
		return api != ""
	})
	waitFor(t, "the backlog to be worked off", 60*time.Second, func() bool { return b.count("INBOX") == 0 })
	for _, tok := range []string{b.token, "ink_" + strings.Repeat("A", 43)} {
		req, _ := http.NewRequest("GET", api+"messages?type=general", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	stop(t, cmd, out)
	log := out.String()
	lines, components := 0, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		lines++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("not a JSON line: %q", sc.Text())
			continue
		}
		c, _ := m["component"].(string)
		if c == "" {
			t.Errorf("a line without a component: %s", sc.Text())
		}
		components[c] = true
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Errorf("a line without %q: %s", k, sc.Text())
			}
		}
	}
	if lines < 3 || !components["serve"] {
		t.Errorf("%d lines from components %v: want serve's start and stop at least:\n%s", lines, components, log)
	}
	t.Logf("%d JSON log lines from components %v", lines, components)
	for name, secret := range map[string]string{"the client secret": b.secret, "the API token": b.token, "the token's random part": strings.TrimPrefix(b.token, "ink_")} {
		if secret != "" && strings.Contains(log, secret) {
			t.Errorf("%s appears in the log", name)
		}
	}
}

// TestBackupDuringIngestion backs the database up while serve ingests a backlog: the copy opens with
// the same key file and is consistent (settings and secrets readable, each message stored once and
// readable whole, every pending move belonging to a stored message); backup refuses to overwrite.
func TestBackupDuringIngestion(t *testing.T) {
	const n = 8000
	b := newBacklog(t, n)
	cmd, out := b.serve("--log-level", "warn")
	waitFor(t, "ingestion to be under way", 60*time.Second, func() bool { return b.count(settings.DefaultProcessedFolder) > 0 })
	copyPath := filepath.Join(b.c.dir, "backup", "copy.db")
	os.Mkdir(filepath.Dir(copyPath), 0o700)
	r := b.c.want(0, []string{"backup", "--db", b.db, "--to", copyPath}, "Backed up", "inkorg.key is not in the backup")
	inboxAtEnd := b.count("INBOX")
	t.Logf("backup taken with %d messages still in INBOX: %s", inboxAtEnd, strings.TrimSpace(r.stdout))
	b.c.want(1, []string{"backup", "--db", b.db, "--to", copyPath}, "already exists")
	b.c.want(1, []string{"backup", "--db", b.db, "--to", b.db}, "is the database itself")
	b.c.want(2, []string{"backup", "--db", b.db}, "--to FILE is required", "usage: inkorg backup")
	waitFor(t, "the backlog to be worked off", 90*time.Second, func() bool { return b.count("INBOX") == 0 })
	stop(t, cmd, out)
	if fi, err := os.Stat(copyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the copy: %v %v", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(copyPath), ".*partial*")); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	st := b.open(copyPath)
	ctx := context.Background()
	cfg, err := st.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.System.ClientSecret.Reveal() != b.secret || len(cfg.Accounts) != 2 {
		t.Fatalf("the copy's settings: secret opens %v, %d accounts", cfg.System.ClientSecret.Reveal() == b.secret, len(cfg.Accounts))
	}
	seen := stored(t, st)
	if len(seen) == 0 || len(seen) > n {
		t.Fatalf("the copy holds %d messages", len(seen))
	}
	for s, k := range seen {
		if k != 1 {
			t.Errorf("%q stored %d times in the copy", s, k)
		}
	}
	ms, err := st.Messages(ctx, store.MessageQuery{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		raw, err := st.Raw(ctx, m.ID)
		if err != nil || int64(len(raw)) != m.Size {
			t.Errorf("message %s in the copy: %d bytes of %d, %v", m.ID, len(raw), m.Size, err)
		}
	}
	t.Logf("the copy holds %d of %d messages", len(seen), n)
	// The copy is usable as a database by the CLI, with the key file named.
	b.c.env = append(b.c.env, "INKORG_KEY_FILE="+filepath.Join(b.c.dir, "inkorg.key"))
	b.c.want(0, []string{"settings", "incoming", "list", "--db", copyPath}, backlogBoxes[0])
}

// TestServeConfigErrors: serve refuses a bad config before it opens anything — a file's unknown key
// with FILE:LINE (exit 1), a bad flag value with the usage (exit 2), a bad variable named (exit 1).
func TestServeConfigErrors(t *testing.T) {
	c := newCLI(t)
	conf := c.file("inkorg.conf", "# test\ncolour = blue\n")
	c.want(1, []string{"serve", "--config", conf}, conf+`:2: unknown key "colour"`)
	c.want(2, []string{"serve", "--log-level", "loud"}, `log-level (from --log-level): "loud"`, "usage: inkorg serve")
	c.env = append(c.env, "INKORG_SHUTDOWN_TIMEOUT=soon", "INKORG_CONFIG="+conf)
	c.want(1, []string{"serve", "--config", c.file("ok.conf", "log-format = json\n")}, `shutdown-timeout (from $INKORG_SHUTDOWN_TIMEOUT): "soon" is not a duration`)
	if _, err := os.Stat(filepath.Join(c.dir, "inkorg.db")); err == nil {
		t.Error("a refused configuration created a database")
	}
}
