package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"inkorg/internal/cloud"
	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/entra"
	"inkorg/internal/imapsource"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/testutil/cpuuse"
	"inkorg/internal/testutil/dovecot"
	"inkorg/internal/testutil/fetchmail"
	"inkorg/internal/xoauth2"
)

// The ingestion benchmarks (issue 5): 10,000 messages of about 10 KB, end to end — fetch, durable
// commit to SQLite (on disk, in b.TempDir()), move to the processed folder — timed from the
// Manager's Start until the store holds them all and the folder is empty. In the same run, on the
// same mailbox, they time the server's raw pipelined fetch rate (a plain go-imap v2 client: one
// UID FETCH 1:* BODY.PEEK[], every body read, over the same implicit TLS; twice, and the rate is the
// mean) and, against Dovecot,
// fetchmail (plain LOGIN, keep, on the same mailbox) and inkorg's plain-login path (the
// exchange-server method, on a second mailbox holding the same messages). Targets: inkorg at least
// half the raw rate, at least five times fetchmail. Each inkorg run also logs where its time went
// (phases).
//
//	go test -run '^$' -bench Ingest -benchtime 1x -count 3 ./internal/ingest/
//
// Metrics (per iteration, averaged by the testing package over b.N): inkorg_msgs/s, raw_msgs/s,
// inkorg/raw; for Dovecot also raw2_msgs/s (the second mailbox's raw rate), fetchmail_msgs/s,
// plain_msgs/s (inkorg, user name and password, on the second mailbox), plain/fetchmail,
// inkorg/fetchmail and plain/raw2; and NAME_cpu-µs/msg, the CPU time of the whole machine (the
// server's included) per message during each timed path (steadier than the rates on a shared VM,
// and, where both client and server are CPU-bound, what the ratios follow). ns/op covers the whole
// iteration (setup included) and means nothing.

const (
	benchN    = 10000
	benchSize = 10 << 10
	benchBox  = "bench@contoso.example"
	benchPass = "bench-pw"
)

// benchMessage is message i of the benchmark mailbox: a general message of about 10 KB.
func benchMessage(i int) []byte {
	var b strings.Builder
	b.Grow(benchSize + 256)
	fmt.Fprintf(&b, "From: Customer %d <customer%d@example.com>\r\nTo: %s\r\nSubject: Enquiry %d\r\nMessage-ID: <bench-%d@example.com>\r\n"+
		"Date: Sun, 22 Nov 2026 11:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i, i, benchBox, i, i)
	line := "The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz.\r\n"
	for b.Len()+len(line) <= benchSize {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// rates collects one benchmark's timings over its iterations; a path may be timed more than once per
// iteration (the raw fetch is: its rate swings by a third from one run to the next on a shared VM).
type rates struct {
	b        *testing.B
	sum, cpu map[string]time.Duration
	n        map[string]int
}

func (r *rates) add(name string, x run) {
	if r.sum == nil {
		r.sum, r.cpu, r.n = map[string]time.Duration{}, map[string]time.Duration{}, map[string]int{}
	}
	r.sum[name] += x.wall
	r.cpu[name] += x.cpu
	r.n[name]++
	r.b.Logf("%s: %d messages in %v (%.0f msgs/s)", name, benchN, x.wall.Round(time.Millisecond), benchN/x.wall.Seconds())
}

func (r *rates) rate(name string) float64 {
	return float64(benchN*r.n[name]) / r.sum[name].Seconds()
}

// report reports msgs/s and the machine's CPU time per message of every timed path that has it, and
// the ratios a/b of msgs/s for pairs.
func (r *rates) report(pairs ...[2]string) {
	for name := range r.sum {
		r.b.ReportMetric(r.rate(name), name+"_msgs/s")
		if r.cpu[name] > 0 {
			r.b.ReportMetric(float64(r.cpu[name].Microseconds())/float64(benchN*r.n[name]), name+"_cpu-µs/msg")
		}
	}
	for _, p := range pairs {
		r.b.ReportMetric(r.rate(p[0])/r.rate(p[1]), p[0]+"/"+p[1])
	}
}

// phases adds up the wall time spent in each step, to show where an ingestion run's time goes: the
// IMAP FETCH apart from the callback (commands, responses, waiting), reading the bodies in the
// callback, the worker's own work on each message (parse, route), committing batches, moving on the
// server, recording the moves; and when the first FETCH began and the last one ended, which tells
// the run's start (token, connections, SEARCH) and end (the last commit and move, while nothing is
// fetched) apart. The worker, the commits and the mover write it.
type phases struct {
	mu                                       sync.Mutex
	fetch, read, parse, commit, move, marked time.Duration
	firstFetch, lastFetch                    time.Time
}

// report is the sums, and the times before the first FETCH and after the last of a run from start to end.
func (p *phases) report(start, end time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("fetch %v + read bodies %v, parse+route %v, commit %v, move %v, record moves %v; first FETCH after %v, done %v after the last",
		r(p.fetch), r(p.read), r(p.parse), r(p.commit), r(p.move), r(p.marked), r(p.firstFetch.Sub(start)), r(end.Sub(p.lastFetch)))
}

func (p *phases) add(d *time.Duration, since time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	*d += time.Since(since)
}

// timedStore times CommitBatch and MovedThrough, and pokes changed (never blocking) after each recorded
// move (a run ends with one), so that the benchmark sees the end of a run when it happens rather
// than at its next look.
type timedStore struct {
	store.Store
	p       *phases
	changed chan struct{}
}

func (s timedStore) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s timedStore) CommitBatch(ctx context.Context, b store.Batch) ([]store.Committed, error) {
	defer s.p.add(&s.p.commit, time.Now())
	return s.Store.CommitBatch(ctx, b)
}

func (s timedStore) MovedThrough(ctx context.Context, accountID int64, folder string, uidValidity, uid uint32) error {
	defer s.poke()
	defer s.p.add(&s.p.marked, time.Now())
	return s.Store.MovedThrough(ctx, accountID, folder, uidValidity, uid)
}

// timedSession times Fetch (its callback apart, and within the callback the reading of the body)
// and Move.
type timedSession struct {
	Session
	p *phases
}

type timedReader struct {
	r io.Reader
	d *time.Duration
}

func (t timedReader) Read(b []byte) (int, error) {
	defer func(start time.Time) { *t.d += time.Since(start) }(time.Now())
	return t.r.Read(b)
}

func (s timedSession) FetchInto(uids []uint32, bufs imapsource.Buffers, fn func(imapsource.Fetched) error) error {
	start := time.Now()
	var inside, read time.Duration
	err := s.Session.FetchInto(uids, bufs, func(f imapsource.Fetched) error {
		defer func(t time.Time) { inside += time.Since(t) }(time.Now())
		f.Body = timedReader{f.Body, &read}
		return fn(f)
	})
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.firstFetch.IsZero() {
		s.p.firstFetch = start
	}
	s.p.lastFetch = time.Now()
	s.p.fetch += s.p.lastFetch.Sub(start) - inside
	s.p.read += read
	s.p.parse += inside - read
	return err
}

func (s timedSession) Move(uids []uint32, dest string) error {
	defer s.p.add(&s.p.move, time.Now())
	return s.Session.Move(uids, dest)
}

// sampleCPU samples the CPU time used so far (this process's and the machine's).
func sampleCPU(b *testing.B) cpuuse.Sample {
	c, err := cpuuse.Now()
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// cpuSince says how much CPU went where since c, as a share of the cores available, and returns the
// machine's CPU time since c (every process's: the server's too).
func cpuSince(b *testing.B, c cpuuse.Sample) time.Duration {
	now := sampleCPU(b)
	wall := now.At.Sub(c.At)
	cores := time.Duration(runtime.NumCPU())
	b.Logf("  CPU: this process %v, the machine %v of %v (%d cores × wall time)", (now.Process - c.Process).Round(time.Millisecond),
		(now.Machine - c.Machine).Round(10*time.Millisecond), (wall * cores).Round(10*time.Millisecond), cores)
	return now.Machine - c.Machine
}

// run is one timed pass over the benchmark's messages: its wall time, and the CPU time the whole
// machine spent meanwhile.
type run struct{ wall, cpu time.Duration }

// ingestOnce runs a Manager with a new store over the account until it has stored and moved the
// folder's messages up to lastUID, and returns the time from Start to then.
func ingestOnce(b *testing.B, c cloud.Endpoints, sys settings.System, a settings.IncomingAccount, validity, lastUID uint32) run {
	b.Helper()
	st, _ := openStore(b)
	accts := configure(b, st, sys, a)
	ph := &phases{}
	changed := make(chan struct{}, 1)
	cfg := Config{Logger: slog.New(slog.DiscardHandler), Store: timedStore{st, ph, changed}, Tokens: entra.New(entra.Config{Cloud: c}), Cloud: c, Reload: time.Minute,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Timeout: time.Minute}
	dial := imapDialer(&cfg)
	cfg.Dial = func(ctx context.Context, t Target) (Connected, error) {
		conn, err := dial(ctx, t)
		if err == nil {
			conn.Session = timedSession{conn.Session, ph}
		}
		return conn, err
	}
	m := New(cfg)
	start, spent := time.Now(), sampleCPU(b)
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	// The store is asked after each recorded move (and every 100 ms besides), not polled: polling
	// added up to a poll interval to the time and its queries to the CPU.
	deadline := time.After(5 * time.Minute)
	for !caughtUp(b, st, accts[0].ID, "INBOX", validity, lastUID) {
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			b.Fatalf("not caught up after 5 minutes: %+v", stateOf(b, st, accts[0].ID))
		}
	}
	d := time.Since(start)
	used := cpuSince(b, spent)
	m.Close()
	b.Logf("  where the time went: %s", ph.report(start, start.Add(d)))
	if s := stateOf(b, st, accts[0].ID); s.LastError != nil {
		b.Logf("worker's last error: %+v", s.LastError)
	}
	return run{d, used}
}

// rawFetch signs in with auth, selects INBOX read-only and reads every body with one
// UID FETCH 1:* BODY.PEEK[]; it returns the time from the FETCH to the last byte.
func rawFetch(b *testing.B, addr string, c cloud.Endpoints, auth func(*imapclient.Client) error, want int) run {
	b.Helper()
	cl, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: c.TLSConfig("")})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := auth(cl); err != nil {
		b.Fatal(err)
	}
	if _, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	var all imap.UIDSet
	all.AddRange(1, 0)
	buf := make([]byte, 32<<10)
	start, spent := time.Now(), sampleCPU(b)
	cmd := cl.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	got := 0
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if body, ok := item.(imapclient.FetchItemDataBodySection); ok {
				if _, err := io.CopyBuffer(io.Discard, body.Literal, buf); err != nil {
					b.Fatal(err)
				}
				got++
			}
		}
	}
	if err := cmd.Close(); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	used := cpuSince(b, spent)
	if got != want {
		b.Fatalf("raw fetch read %d bodies, want %d", got, want)
	}
	if err := cl.Logout().Wait(); err != nil {
		b.Logf("logout: %v", err)
	}
	return run{d, used}
}

// appToken is an app-only IMAP token of the system's app.
func appToken(b *testing.B, c cloud.Endpoints, sys settings.System) string {
	b.Helper()
	tok, err := entra.New(entra.Config{Cloud: c}).Token(context.Background(),
		entra.Identity{TenantID: sys.TenantID, ClientID: sys.ClientID, Flow: sys.AuthFlow, Secret: sys.ClientSecret}, entra.PurposeIMAP)
	if err != nil {
		b.Fatal(err)
	}
	return tok.Value()
}

// BenchmarkIngest10kEmulator: inkorg against the in-process Exchange Online emulator (XOAUTH2,
// Client secret flow), and the emulator's raw fetch rate.
func BenchmarkIngest10kEmulator(b *testing.B) {
	emu, err := emulator.New(emulator.Config{Dir: b.TempDir(), Scenario: scenario.Default(time.Now())})
	if err != nil {
		b.Fatal(err)
	}
	if err := emu.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	c, err := cloud.Load(emu.InfoFile())
	if err != nil {
		b.Fatal(err)
	}
	info := emu.Info()
	sys := settings.System{EmailMethod: settings.MethodExchangeOnline, TenantID: info.TenantID, AuthFlow: settings.FlowClientSecret}
	for _, a := range info.Apps {
		if !a.PublicClient {
			sys.ClientID, sys.ClientSecret = a.ClientID, settings.NewSecret(a.ClientSecret)
		}
	}
	const box = "info@contoso.example" // a mailbox of the default scenario
	acct := settings.IncomingAccount{Address: box, Type: settings.TypeGeneral}
	r := &rates{b: b}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range benchN {
			if _, err := emu.Store().Deliver(box, "INBOX", benchMessage(j)); err != nil {
				b.Fatal(err)
			}
		}
		validity, last := emuInbox(b, emu, box)
		tok := appToken(b, c, sys)
		b.StartTimer()
		for range 2 {
			r.add("raw", rawFetch(b, c.IMAP, c, func(cl *imapclient.Client) error { return cl.Authenticate(xoauth2.NewClient(box, tok)) }, benchN))
		}
		r.add("inkorg", ingestOnce(b, c, sys, acct, validity, last))
	}
	b.StopTimer()
	r.report([2]string{"inkorg", "raw"})
}

// emuInbox is the UIDVALIDITY and the highest UID of a mailbox's INBOX in the emulator.
func emuInbox(b *testing.B, emu *emulator.Emulator, box string) (uint32, uint32) {
	b.Helper()
	fs, err := emu.Store().Folders(box)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range fs {
		if strings.EqualFold(f.Name, "INBOX") {
			if int(f.Messages) != benchN {
				b.Fatalf("INBOX holds %d messages, want %d", f.Messages, benchN)
			}
			return f.UIDValidity, f.UIDNext - 1
		}
	}
	b.Fatal("no INBOX")
	return 0, 0
}

// BenchmarkIngest10kDovecot: against a real Dovecot (mail in memory). Two mailboxes get the same
// 10,000 messages, and the raw fetch rate (LOGIN) of each is measured (raw, raw2). On the first, in one
// run: fetchmail (LOGIN, keep), then inkorg with XOAUTH2 and tokens from the emulated Entra ID
// (exchange-online, Client secret flow). On the second, inkorg with user name and password
// (exchange-server), compared with raw2. (Reading the same
// messages delivered again into the first mailbox instead made the plain-login run's MOVEs 1.5-2.5
// times slower: Dovecot's MOVE cost grows with the folder's history.)
func BenchmarkIngest10kDovecot(b *testing.B) {
	const plainBox = "bench-plain@contoso.example"
	p := newPeer(b, true)
	p.dc.AddUser(benchBox, benchPass)
	p.dc.AddUser(plainBox, benchPass)
	online := p.systemOnline()
	host, port := splitHostPort(b, p.dc.IMAPAddr())
	server := settings.System{EmailMethod: settings.MethodExchangeServer, ServerAddress: host, Port: port, UseSSL: true}
	login := func(cl *imapclient.Client) error { return cl.Login(benchBox, benchPass).Wait() }
	r := &rates{b: b}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		var st [2]dovecot.Status
		for k, box := range []string{benchBox, plainBox} {
			p.dc.DeliverN(box, "INBOX", benchN, benchMessage)
			st[k] = p.dc.Status(box, "INBOX") // Dovecot takes the new files in here, untimed
			if st[k].Messages != benchN {
				b.Fatalf("INBOX of %s: %+v", box, st[k])
			}
		}
		b.StartTimer()
		// The raw rate of each mailbox: each inkorg path is compared with the mailbox it reads (a
		// mailbox read for the first time is slower to read: the plain-login path used to be the
		// only one to meet its mailbox cold).
		for range 2 {
			r.add("raw", rawFetch(b, p.dc.IMAPAddr(), p.cloud, login, benchN))
			r.add("raw2", rawFetch(b, p.dc.IMAPAddr(), p.cloud, func(cl *imapclient.Client) error { return cl.Login(plainBox, benchPass).Wait() }, benchN))
		}
		res, err := fetchmail.Run(context.Background(), fetchmail.Options{Addr: p.dc.IMAPAddr(), User: benchBox, Password: benchPass,
			CAFile: p.dc.CAFile(), Keep: true, Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if res.Messages != benchN {
			b.Fatalf("fetchmail read %d messages, want %d", res.Messages, benchN)
		}
		r.add("fetchmail", run{wall: res.Elapsed}) // its CPU is not sampled: fetchmail runs once, for the 5× target
		// Each iteration moves to folders of its own: Dovecot's MOVE gets slower as the target grows.
		processed := fmt.Sprintf("Processed-%d", i)
		r.add("inkorg", ingestOnce(b, p.cloud, online, settings.IncomingAccount{Address: benchBox, Type: settings.TypeGeneral,
			ProcessedFolder: processed}, st[0].UIDValidity, st[0].UIDNext-1))
		r.add("plain", ingestOnce(b, p.cloud, server, settings.IncomingAccount{Address: plainBox, Type: settings.TypeGeneral,
			ExchangeUsername: plainBox, ExchangePassword: settings.NewSecret(benchPass), ProcessedFolder: processed}, st[1].UIDValidity, st[1].UIDNext-1))
		b.StopTimer()
		checkMoved(b, p.dc, benchBox, processed)
		checkMoved(b, p.dc, plainBox, processed)
		b.StartTimer()
	}
	b.StopTimer()
	r.report([2]string{"inkorg", "raw"}, [2]string{"plain", "raw2"}, [2]string{"inkorg", "fetchmail"}, [2]string{"plain", "fetchmail"})
}

// checkMoved checks that a mailbox's INBOX is empty and its processed folder holds the benchN
// messages.
func checkMoved(b *testing.B, dc *dovecot.Server, box, processed string) {
	b.Helper()
	if n := dc.Count(box, "INBOX"); n != 0 {
		b.Fatalf("INBOX of %s holds %d", box, n)
	}
	if n := dc.Count(box, processed); n != benchN {
		b.Fatalf("%s of %s holds %d, want %d", processed, box, n, benchN)
	}
}
