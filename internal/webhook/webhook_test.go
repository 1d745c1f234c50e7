package webhook

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"inkorg/internal/api"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
	"inkorg/internal/store/storetest"
)

const hookSecret = "whsec-Test-0123456789abcdefghijklmnop"

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	dir := t.TempDir()
	key := func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dir, "inkorg.key"), true)
		return s, err
	}
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "inkorg.db"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// attempt is one request the receiver got.
type attempt struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiver is the ERP's side: it answers each request with what answer says for the n-th request (from
// 1) of that message.
type receiver struct {
	srv    *httptest.Server
	answer func(n int, w http.ResponseWriter)

	mu               sync.Mutex
	attempts         map[string][]attempt // by Inkorg-Id
	inFlight, maxFly int
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	r := &receiver{answer: answer, attempts: map[string][]attempt{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		id := req.Header.Get(HeaderID)
		r.attempts[id] = append(r.attempts[id], attempt{time.Now(), req.Header.Clone(), body})
		n := len(r.attempts[id])
		r.inFlight++
		r.maxFly = max(r.maxFly, r.inFlight)
		r.mu.Unlock()
		defer func() { r.mu.Lock(); r.inFlight--; r.mu.Unlock() }()
		r.answer(n, w)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got(id string) []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attempt(nil), r.attempts[id]...)
}

func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.attempts {
		n += len(a)
	}
	return n
}

// setup stores a webhook for monitor-to-monitor at url and n messages of that type, and returns their ids.
func setup(t *testing.T, st store.Store, url string, n int) []string {
	t.Helper()
	ctx := context.Background()
	must(t, st.PutWebhook(ctx, store.Webhook{Type: settings.TypeMonitorToMonitor, URL: url, Secret: settings.NewSecret(hookSecret)}, "test"))
	var ms []store.NewMessage
	for i := 0; i < n; i++ {
		ms = append(ms, storetest.NewMessage(i, uint32(i+1), ""))
	}
	got, err := st.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor,
		Folder: "INBOX", UIDValidity: 1, LastUID: uint32(n), Messages: ms})
	must(t, err)
	ids := make([]string, len(got))
	for i, c := range got {
		ids[i] = c.ID
	}
	return ids
}

func start(t *testing.T, cfg Config) *Dispatcher {
	t.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	d := New(cfg)
	must(t, d.Start(context.Background()))
	t.Cleanup(func() { d.Close() })
	return d
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pending is every undelivered delivery, including the given-up ones.
func pending(t *testing.T, st store.Store) []store.Delivery {
	t.Helper()
	ds, err := st.DueDeliveries(context.Background(), Never().Add(time.Hour), 1000)
	must(t, err)
	return ds
}

func TestRetriesThenDelivers(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		switch n {
		case 1:
			http.Error(w, "database locked", http.StatusInternalServerError)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	ids := setup(t, st, rcv.srv.URL+"/inkorg/hook", 1)
	logs := &syncBuffer{}
	start(t, Config{Store: st, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	eventually(t, 10*time.Second, "delivered", func() bool { return len(pending(t, st)) == 0 })
	time.Sleep(50 * time.Millisecond) // several polls: nothing more may arrive
	got := rcv.got(ids[0])
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	m, err := st.Message(context.Background(), ids[0])
	must(t, err)
	want, _ := json.Marshal(api.MessageOf(m))
	for i, a := range got {
		h := a.header
		if h.Get(HeaderIdempotencyKey) != ids[0] || h.Get(HeaderID) != ids[0] || h.Get("Content-Type") != "application/json" {
			t.Errorf("attempt %d headers %v", i+1, h)
		}
		if err := Verify(hookSecret, h.Get(HeaderTimestamp), a.body, h.Get(HeaderSignature), time.Now(), 0); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
		if err := Verify("another secret", h.Get(HeaderTimestamp), a.body, h.Get(HeaderSignature), time.Now(), 0); !errors.Is(err, ErrSignatureMismatch) {
			t.Errorf("attempt %d verifies with the wrong secret: %v", i+1, err)
		}
		if !bytes.Equal(a.body, want) {
			t.Errorf("attempt %d body %s, want the API's JSON %s", i+1, a.body, want)
		}
	}
	var body api.Message
	must(t, json.Unmarshal(got[2].body, &body))
	if body.ID != ids[0] || body.Type != settings.TypeMonitorToMonitor || body.M2M == nil || body.Subject != "message 0" {
		t.Errorf("delivered %+v", body)
	}
	if l := logs.String(); strings.Contains(l, hookSecret) || !strings.Contains(l, "webhook delivered") || !strings.Contains(l, "HTTP 500") {
		t.Errorf("logs:\n%s", l)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		http.Error(w, "no such order\x00 line\nbreak", http.StatusUnprocessableEntity)
	})
	ids := setup(t, st, rcv.srv.URL+"/hook?key=QueryKeyNotToBeStored", 2)
	start(t, Config{Store: st, MaxAttempts: 3})
	eventually(t, 10*time.Second, "given up", func() bool {
		ps := pending(t, st)
		return len(ps) == 2 && ps[0].Attempts == 3 && ps[1].Attempts == 3
	})
	time.Sleep(50 * time.Millisecond)
	for _, id := range ids {
		if n := len(rcv.got(id)); n != 3 {
			t.Errorf("%s: %d attempts, want 3", id, n)
		}
	}
	for _, p := range pending(t, st) {
		want := fmt.Sprintf("gave up after 3 attempts: POST %s/hook?…: HTTP 422 Unprocessable Entity: no such order line break", rcv.srv.URL)
		if p.LastError != want || !p.NextAt.Equal(Never()) {
			t.Errorf("given up delivery %+v\nwant error %s", p, want)
		}
	}
	// Not due any more: it is not tried again.
	if due, _ := st.DueDeliveries(context.Background(), time.Now().Add(24*time.Hour), 10); len(due) != 0 {
		t.Errorf("given-up deliveries still due: %+v", due)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ids := setup(t, st, rcv.srv.URL, 1)
	start(t, Config{Store: st})
	eventually(t, 10*time.Second, "delivered", func() bool { return len(pending(t, st)) == 0 })
	got := rcv.got(ids[0])
	if len(got) != 2 {
		t.Fatalf("%d attempts", len(got))
	}
	if gap := got[1].at.Sub(got[0].at); gap < time.Second {
		t.Errorf("retried after %s despite Retry-After: 1 (the backoff alone is 10 ms)", gap)
	}
}

func TestConnectionErrorsAndTimeouts(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	closed := "http://" + l.Addr().String() + "/hook"
	l.Close()
	release := make(chan struct{})
	slow := newReceiver(t, func(n int, w http.ResponseWriter) { <-release })
	defer close(release)
	for _, c := range []struct {
		name, url, want string
	}{
		{"refused", closed, "connection refused"},
		{"timeout", slow.srv.URL + "/slow", "no answer within 200ms"},
		{"bad url", "ftp://erp.example/hook", "must start with https://"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t)
			setup(t, st, c.url, 1)
			start(t, Config{Store: st, MaxAttempts: 2, Timeout: 200 * time.Millisecond})
			eventually(t, 10*time.Second, "given up", func() bool {
				ps := pending(t, st)
				return len(ps) == 1 && ps[0].Attempts == 2
			})
			p := pending(t, st)[0]
			if !strings.HasPrefix(p.LastError, "gave up after 2 attempts: ") || !strings.Contains(p.LastError, c.want) {
				t.Errorf("last error %q, want %q", p.LastError, c.want)
			}
		})
	}
}

func TestBoundedConcurrencyAndNotify(t *testing.T) {
	st := openStore(t)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		time.Sleep(20 * time.Millisecond)
		w.WriteHeader(http.StatusAccepted)
	})
	ids := setup(t, st, rcv.srv.URL, 20)
	d := start(t, Config{Store: st, Concurrency: 3, Poll: time.Hour})
	// The first fill happens at Start; later ones follow each finished delivery, without a poll.
	eventually(t, 20*time.Second, "all delivered", func() bool { return len(pending(t, st)) == 0 })
	for _, id := range ids {
		if n := len(rcv.got(id)); n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	rcv.mu.Lock()
	maxFly := rcv.maxFly
	rcv.mu.Unlock()
	if maxFly > 3 || maxFly < 2 {
		t.Errorf("at most %d deliveries in flight, want up to 3", maxFly)
	}
	// A new message is delivered on Notify, long before the next poll.
	more, err := st.CommitBatch(context.Background(), store.Batch{AccountID: 1, Account: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor,
		Folder: "INBOX", UIDValidity: 1, LastUID: 21, Messages: []store.NewMessage{storetest.NewMessage(100, 21, "")}})
	must(t, err)
	d.Notify()
	eventually(t, 10*time.Second, "delivered after Notify", func() bool { return len(rcv.got(more[0].ID)) == 1 })
	if rcv.total() != 21 {
		t.Errorf("%d requests for 21 messages", rcv.total())
	}
}

func TestRemovedWebhookKeepsDeliveries(t *testing.T) {
	st := openStore(t)
	setup(t, st, "https://erp.example/hook", 1)
	must(t, st.PutWebhook(context.Background(), store.Webhook{Type: settings.TypeMonitorToMonitor}, "test"))
	start(t, Config{Store: st, MaxAttempts: 1, MinBackoff: time.Millisecond, MaxBackoff: time.Hour})
	eventually(t, 10*time.Second, "postponed", func() bool { return pending(t, st)[0].Attempts == 1 })
	p := pending(t, st)[0]
	if !strings.Contains(p.LastError, "no webhook is set for the type monitor-to-monitor") || p.NextAt.Equal(Never()) || p.NextAt.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("delivery without a webhook %+v", p)
	}
}

func TestCloseStopsInFlight(t *testing.T) {
	st := openStore(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		entered <- struct{}{}
		<-release
	})
	setup(t, st, rcv.srv.URL, 1)
	d := New(Config{Store: st, Poll: 10 * time.Millisecond})
	must(t, d.Start(context.Background()))
	if err := d.Start(context.Background()); err == nil {
		t.Error("started twice")
	}
	<-entered
	began := time.Now()
	d.Close()
	if time.Since(began) > time.Second {
		t.Errorf("Close waited %s for an attempt in flight", time.Since(began))
	}
	// The cancelled attempt does not count: the delivery is still due, untouched.
	if ps := pending(t, st); len(ps) != 1 || ps[0].Attempts != 0 || ps[0].LastError != "" {
		t.Errorf("after Close %+v", ps)
	}
	New(Config{Store: st}).Close() // Close without Start
}

func TestBackoff(t *testing.T) {
	d := New(Config{MinBackoff: 30 * time.Second, MaxBackoff: time.Hour})
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{1, 30 * time.Second}, {2, time.Minute}, {3, 2 * time.Minute}, {7, 32 * time.Minute}, {8, time.Hour}, {50, time.Hour}} {
		for range 20 {
			got := d.Backoff(c.n)
			if got < c.want-c.want/10 || got > c.want+c.want/10 {
				t.Errorf("Backoff(%d) = %s, want %s ± 10 %%", c.n, got, c.want)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"120", 2 * time.Minute}, {" 5 ", 5 * time.Second}, {"-3", 0}, {"soon", 0},
		{"Tue, 03 Mar 2026 09:01:30 GMT", 90 * time.Second}, {"Tue, 03 Mar 2026 08:00:00 GMT", 0},
		{"99999999999999", maxRetryAfter}, {"999999999999999999999999", 0},
	} {
		if got := parseRetryAfter(c.v, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", c.v, got, c.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url, err string
	}{
		{"https://erp.example.com/inkorg/hook", ""},
		{"https://erp.example.com:8443/hook?tenant=1", ""},
		{"http://127.0.0.1:9000/hook", ""},
		{"http://localhost/hook", ""},
		{"http://[::1]:80/hook", ""},
		{"http://erp.example.com/hook", "use https"},
		{"http://127.0.0.2/hook", "use https"},
		{"ftp://erp.example.com/", "must start with https://"},
		{"erp.example.com/hook", "no host"},
		{"https:///hook", "no host"},
		{"https://user:pw@erp.example.com/hook", "user name or password"},
		{"https://erp.example.com/hook#x", "fragment"},
		{"https://erp.example.com/%zz", "does not parse"},
	} {
		err := CheckURL(c.url)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("CheckURL(%q) = %v, want %q", c.url, err, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("CheckURL shows the password: %v", err)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1767261600, 0)
	body := []byte(`{"id":"m_aaaaaaaaaaaaaaaaaaaa"}`)
	ts := "1767261600"
	sig := Sign("s3cret", 1767261600, body)
	if !strings.HasPrefix(sig, "v1=") || len(sig) != 3+64 {
		t.Fatalf("signature %q", sig)
	}
	for _, c := range []struct {
		name, secret, ts string
		body             []byte
		sig              string
		now              time.Time
		want             error
	}{
		{"good", "s3cret", ts, body, sig, now, nil},
		{"good within tolerance", "s3cret", ts, body, sig, now.Add(299 * time.Second), nil},
		{"good, clock behind", "s3cret", ts, body, sig, now.Add(-299 * time.Second), nil},
		{"rotation: one of two", "s3cret", ts, body, "v1=" + strings.Repeat("0", 64) + ", " + sig, now, nil},
		{"wrong secret", "other", ts, body, sig, now, ErrSignatureMismatch},
		{"changed body", "s3cret", ts, append([]byte(" "), body...), sig, now, ErrSignatureMismatch},
		{"changed timestamp", "s3cret", "1767261601", body, sig, now, ErrSignatureMismatch},
		{"replayed later", "s3cret", ts, body, sig, now.Add(10 * time.Minute), ErrTimestampTooOld},
		{"bad timestamp", "s3cret", "yesterday", body, sig, now, ErrBadTimestamp},
		{"no signature", "s3cret", ts, body, "", now, ErrNoSignature},
		{"v0 only", "s3cret", ts, body, "v0=" + sig[3:], now, ErrNoSignature},
		{"not hex", "s3cret", ts, body, "v1=zz", now, ErrSignatureMismatch},
		{"upper-case hex", "s3cret", ts, body, "v1=" + strings.ToUpper(sig[3:]), now, nil},
	} {
		err := Verify(c.secret, c.ts, c.body, c.sig, c.now, 5*time.Minute)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("secret", int64(1767261600), []byte(`{"id":"m_x"}`), "v1=00", "1767261600")
	f.Add("", int64(0), []byte{}, "", "")
	f.Add("k", int64(-1), []byte("\x00"), "v1=,v1=zz, v1=", "+1")
	f.Fuzz(func(t *testing.T, secret string, ts int64, body []byte, sig, rawTS string) {
		now := time.Unix(ts, 0)
		// Whatever arrives, Verify answers without panicking, and accepts only a matching signature.
		if err := Verify(secret, rawTS, body, sig, now, time.Minute); err == nil {
			if want := hex.EncodeToString(mac(secret, rawTS, body)); !strings.Contains(strings.ToLower(sig), "v1="+want) {
				t.Fatalf("accepted %q for secret %q ts %q", sig, secret, rawTS)
			}
		}
		if ts < 0 || ts > 1<<40 {
			return
		}
		good := Sign(secret, ts, body)
		if err := Verify(secret, fmt.Sprint(ts), body, good, now, time.Minute); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err := Verify(secret+"x", fmt.Sprint(ts), body, good, now, time.Minute); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("another secret accepted: %v", err)
		}
		if err := Verify(secret, fmt.Sprint(ts), append(body, 'x'), good, now, time.Minute); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("another body accepted: %v", err)
		}
	})
}

// TestTwoProcessesDeliverOnce: two Dispatchers, each with its own handle on one database (as two inkorg
// processes would have), deliver each message once between them.
func TestTwoProcessesDeliverOnce(t *testing.T) {
	dir := t.TempDir()
	open := func() store.Store {
		s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "inkorg.db"), Key: func(string) (*secrets.Sealer, error) {
			s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dir, "inkorg.key"), true)
			return s, err
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	})
	ids := setup(t, a, rcv.srv.URL, 60)
	start(t, Config{Store: a, Concurrency: 4})
	start(t, Config{Store: b, Concurrency: 4})
	eventually(t, 20*time.Second, "every message delivered", func() bool { return rcv.total() >= len(ids) })
	time.Sleep(100 * time.Millisecond)
	for _, id := range ids {
		if n := len(rcv.got(id)); n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}
