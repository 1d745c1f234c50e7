package imapsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/diag"
	"inkorg/internal/emulator"
	"inkorg/internal/emulator/exo"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/entra"
	"inkorg/internal/settings"
)

const mbox = "m2m@contoso.example"

// emu is an emulator with the default scenario and a way to sign in to its IMAP server.
type emu struct {
	e     *emulator.Emulator
	cloud cloud.Endpoints
	id    entra.Identity
	p     *entra.Provider
}

func startEmulator(t testing.TB) *emu {
	t.Helper()
	e, err := emulator.New(emulator.Config{Dir: t.TempDir(), Scenario: scenario.Default(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	c, err := cloud.Load(e.InfoFile())
	if err != nil {
		t.Fatal(err)
	}
	info := e.Info()
	var id entra.Identity
	for _, a := range info.Apps {
		if !a.PublicClient {
			id = entra.Identity{TenantID: info.TenantID, ClientID: a.ClientID, Flow: settings.FlowClientSecret, Secret: settings.NewSecret(a.ClientSecret)}
		}
	}
	return &emu{e: e, cloud: c, id: id, p: entra.New(entra.Config{Cloud: c})}
}

// connect signs in to mbox, selects INBOX and closes the connection at the end of the test.
func (w *emu) connect(t testing.TB, edit func(*Config)) *Conn {
	t.Helper()
	ctx := context.Background()
	tok, err := w.p.Token(ctx, w.id, entra.PurposeIMAP)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: w.cloud.IMAP, TLSConfig: w.cloud.TLSConfig(""), Timeout: 10 * time.Second, SpoolDir: t.TempDir(), SizeAndDate: true}
	if edit != nil {
		edit(&cfg)
	}
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.AuthenticateXOAUTH2(mbox, tok.Value()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	return c
}

func (w *emu) store() *exo.MailStore { return w.e.Store() }

// message is a raw RFC 5322 message of about size bytes.
func message(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: supplier@example.net\r\nTo: %s\r\nSubject: message %d\r\nMessage-ID: <%d.test@example.net>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n", mbox, i, i)
	line := strings.Repeat("x", 76) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func deliver(t testing.TB, w *emu, folder string, n, size int) map[uint32][]byte {
	t.Helper()
	out := make(map[uint32][]byte, n)
	for i := range n {
		raw := message(i, size)
		uid, err := w.store().Deliver(mbox, folder, raw)
		if err != nil {
			t.Fatal(err)
		}
		out[uid] = raw
	}
	return out
}

// deliverSizes delivers, one after the other, n messages of size bytes for each {n, size}, and returns
// them all by UID.
func deliverSizes(t testing.TB, w *emu, folder string, runs ...[2]int) map[uint32][]byte {
	t.Helper()
	out := map[uint32][]byte{}
	for _, r := range runs {
		maps.Copy(out, deliver(t, w, folder, r[0], r[1]))
	}
	return out
}

// readWant reads a fetched message's body and fails when it is not the one delivered with its UID.
func readWant(m Fetched, want map[uint32][]byte) ([]byte, error) {
	b, err := io.ReadAll(m.Body)
	if err != nil {
		return b, fmt.Errorf("UID %d: %w", m.UID, err)
	}
	if !bytes.Equal(b, want[m.UID]) {
		return b, fmt.Errorf("UID %d: body differs (%d bytes, want %d)", m.UID, len(b), len(want[m.UID]))
	}
	return b, nil
}

func uidsOf(t testing.TB, w *emu, folder string) []uint32 {
	t.Helper()
	ms, err := w.store().Messages(mbox, folder)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, m := range ms {
		out = append(out, m.UID)
	}
	return out
}

func TestSearchAndFetchThousandInBatches(t *testing.T) {
	w := startEmulator(t)
	want := deliver(t, w, "INBOX", 1000, 2000)
	c := w.connect(t, func(cfg *Config) { cfg.FetchBatch = 64 })

	uids, err := c.SearchNewer(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(uids) != 1000 || !slices.IsSorted(uids) {
		t.Fatalf("SearchNewer(0): %d UIDs, sorted %v", len(uids), slices.IsSorted(uids))
	}
	var got []uint32
	err = c.Fetch(uids, func(m Fetched) error {
		b, err := readWant(m, want)
		if err != nil {
			return err
		}
		if m.Size != int64(len(b)) || m.InternalDate.IsZero() {
			return fmt.Errorf("UID %d: size %d, date %v", m.UID, m.Size, m.InternalDate)
		}
		got = append(got, m.UID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, uids) {
		t.Fatalf("fetched %d messages, want %d in order", len(got), len(uids))
	}
	ms, _ := w.store().Messages(mbox, "INBOX")
	for _, m := range ms {
		if slices.Contains(m.Flags, `\Seen`) {
			t.Fatalf("UID %d is \\Seen after BODY.PEEK[]", m.UID)
		}
	}

	// The cursor: only UIDs above it, and "n:*" never brings back the highest message.
	for _, tt := range []struct {
		last uint32
		want int
	}{{uids[499], 500}, {uids[998], 1}, {uids[999], 0}, {uids[999] + 100, 0}} {
		got, err := c.SearchNewer(tt.last)
		if err != nil || len(got) != tt.want {
			t.Errorf("SearchNewer(%d) = %d UIDs, %v; want %d", tt.last, len(got), err, tt.want)
		}
	}
	// A UID that no longer exists is skipped.
	n := 0
	if err := c.Fetch([]uint32{uids[0], uids[999] + 5}, func(Fetched) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("Fetch with a missing UID: %d calls, %v", n, err)
	}
}

// TestFetchLargeMessageMemory streams a 5 MB message and checks that the process did not allocate
// anything like its size (the emulator, in the same process, holds it already).
func TestFetchLargeMessageMemory(t *testing.T) {
	w := startEmulator(t)
	raw := message(1, 5<<20)
	uid, err := w.store().Deliver(mbox, "INBOX", raw)
	if err != nil {
		t.Fatal(err)
	}
	c := w.connect(t, nil)
	wantSum := sha256.Sum256(raw)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var sum []byte
	err = c.Fetch([]uint32{uid}, func(m Fetched) error {
		h := sha256.New()
		if _, err := io.Copy(h, m.Body); err != nil {
			return err
		}
		sum = h.Sum(nil)
		return nil
	})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sum, wantSum[:]) {
		t.Fatal("body differs")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Fatalf("fetching a 5 MB message allocated %d bytes", alloc)
	} else {
		t.Logf("fetching a 5 MB message allocated %d KiB in the whole process", alloc>>10)
	}
}

// counted is a Buffers that counts the bytes it hands out.
type counted struct{ n atomic.Int64 }

func (c *counted) Get(n int) []byte { c.n.Add(int64(n)); return make([]byte, n) }

// TestFetchReadAheadBounded: while fn works on a message, what is read ahead stays under
// ReadAheadBytes (plus one body), not ReadAheadMessages bodies: 30 bodies of 200 KB (6 MB) with fn
// stalled on the first are read ahead about 1 MB meanwhile.
func TestFetchReadAheadBounded(t *testing.T) {
	const n, size = 30, 200 << 10
	w := startEmulator(t)
	want := deliver(t, w, "INBOX", n, size)
	c := w.connect(t, nil)
	uids, err := c.SearchNewer(0)
	if err != nil || len(uids) != n {
		t.Fatalf("SearchNewer: %d UIDs, %v", len(uids), err)
	}
	var window int64
	got := 0
	bufs := &counted{}
	err = c.FetchInto(uids, bufs, func(m Fetched) error {
		if got == 0 {
			before := bufs.n.Load()
			time.Sleep(300 * time.Millisecond) // the pump reads ahead meanwhile, as far as it may
			window = bufs.n.Load() - before
		}
		if _, err := readWant(m, want); err != nil {
			return err
		}
		got++
		return nil
	})
	if err != nil || got != n {
		t.Fatalf("Fetch: %d messages, %v", got, err)
	}
	if limit := int64(ReadAheadBytes + size); window > limit || window == 0 {
		t.Fatalf("while fn was busy with the first message, %d KiB were read ahead, want some and under %d KiB", window>>10, limit>>10)
	}
	t.Logf("while fn was busy with the first message, %d KiB were read ahead", window>>10)
}

// TestFetchReadAhead: bodies up to ReadAhead are read ahead and handed over whole (Raw, the same
// bytes as Body, still intact after later messages); larger ones, and all with ReadAhead < 0, are
// streamed (Raw nil). Messages arrive in UID order either way.
func TestFetchReadAhead(t *testing.T) {
	const limit = 4096
	w := startEmulator(t)
	want := deliverSizes(t, w, "INBOX", [2]int{30, 1000}, [2]int{5, limit + 1}, [2]int{30, limit - 200})
	for _, readAhead := range []int64{limit, -1} {
		t.Run(fmt.Sprint("ReadAhead=", readAhead), func(t *testing.T) {
			c := w.connect(t, func(cfg *Config) { cfg.ReadAhead = readAhead; cfg.FetchBatch = 16 })
			uids, err := c.SearchNewer(0)
			if err != nil || len(uids) != len(want) {
				t.Fatalf("SearchNewer: %d UIDs, %v", len(uids), err)
			}
			kept := map[uint32][]byte{}
			var order []uint32
			err = c.Fetch(uids, func(m Fetched) error {
				b, err := readWant(m, want)
				if err != nil {
					return err
				}
				if ahead := readAhead > 0 && len(b) <= limit; ahead != (m.Raw != nil) {
					return fmt.Errorf("UID %d of %d bytes: Raw set %v, want %v", m.UID, len(b), m.Raw != nil, ahead)
				}
				if m.Raw != nil {
					kept[m.UID] = m.Raw
				}
				order = append(order, m.UID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(order, uids) {
				t.Fatalf("order = %v, want %v", order, uids)
			}
			for uid, raw := range kept {
				if !bytes.Equal(raw, want[uid]) {
					t.Fatalf("UID %d: the Raw kept changed after fn returned", uid)
				}
			}
			if readAhead > 0 && len(kept) != 60 {
				t.Fatalf("%d bodies read ahead, want 60", len(kept))
			}
		})
	}
}

// bump is a Buffers handing out consecutive pieces of one block, and allocations when it is full. It
// remembers where the pieces start (Get runs in FetchInto's pump, fn in the caller's goroutine).
type bump struct {
	block []byte

	mu     sync.Mutex
	used   int
	calls  int
	pieces map[*byte]bool
}

func (b *bump) Get(n int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if n > len(b.block)-b.used {
		return make([]byte, n)
	}
	r := b.block[b.used : b.used+n : b.used+n]
	b.pieces[&r[0]] = true
	b.used += n
	return r
}

func (b *bump) given(p []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pieces[&p[0]]
}

// TestFetchInto: the bodies read ahead are read into the memory Buffers hands out, one after the
// other in the server's order; the one that does not fit, and the larger ones that are streamed,
// are not. A Buffers that hands out the wrong length is not trusted.
func TestFetchInto(t *testing.T) {
	const limit = 4096
	w := startEmulator(t)
	want := deliverSizes(t, w, "INBOX", [2]int{10, 1000}, [2]int{2, limit + 1}, [2]int{10, 2000})
	c := w.connect(t, func(cfg *Config) { cfg.ReadAhead = limit; cfg.FetchBatch = 7 })
	uids, err := c.SearchNewer(0)
	if err != nil || len(uids) != len(want) {
		t.Fatalf("SearchNewer: %d UIDs, %v", len(uids), err)
	}
	var room int
	for _, u := range uids {
		if len(want[u]) <= limit {
			room += len(want[u])
		}
	}
	bufs := &bump{block: make([]byte, room-1), pieces: map[*byte]bool{}} // all but the last one read ahead fit
	var inBlock, ahead int
	err = c.FetchInto(uids, bufs, func(m Fetched) error {
		if _, err := readWant(m, want); err != nil {
			return err
		}
		if m.Raw == nil {
			return nil
		}
		ahead++
		if bufs.given(m.Raw) {
			inBlock++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ahead != 20 || bufs.calls != 20 || inBlock != 19 || bufs.used != room-len(want[uids[len(uids)-1]]) {
		t.Errorf("%d bodies read ahead, Get called %d times, %d of them in the block (%d bytes of it used), want 20, 20, 19 (%d bytes)",
			ahead, bufs.calls, inBlock, bufs.used, room-len(want[uids[len(uids)-1]]))
	}
	for _, m := range bufs.block[:bufs.used] {
		if m == 0 {
			t.Fatal("the block has bytes no body was read into")
		}
	}

	// A Buffers that gets the length wrong: each body is read into an allocation of its own.
	short := &shortBufs{}
	if err := c.FetchInto(uids, short, func(m Fetched) error { _, err := readWant(m, want); return err }); err != nil || short.calls != 20 {
		t.Fatalf("with short buffers: %v (%d calls)", err, short.calls)
	}
}

type shortBufs struct{ calls int }

func (s *shortBufs) Get(n int) []byte { s.calls++; return make([]byte, n-1) }

// TestFetchStop: fn returning ErrStop ends the fetch with nil, nothing handed over after it, and the
// connection goes on working: the rest is fetched whole on it afterwards, read ahead or streamed.
func TestFetchStop(t *testing.T) {
	w := startEmulator(t)
	want := deliver(t, w, "INBOX", 60, 3000)
	for _, readAhead := range []int64{0, -1} {
		t.Run(fmt.Sprint("ReadAhead=", readAhead), func(t *testing.T) {
			c := w.connect(t, func(cfg *Config) { cfg.FetchBatch = 25; cfg.ReadAhead = readAhead })
			uids, err := c.SearchNewer(0)
			if err != nil || len(uids) != 60 {
				t.Fatalf("SearchNewer: %d, %v", len(uids), err)
			}
			var got []uint32
			err = c.Fetch(uids, func(m Fetched) error {
				if _, err := readWant(m, want); err != nil {
					return err
				}
				if got = append(got, m.UID); len(got) == 10 {
					return ErrStop
				}
				return nil
			})
			if err != nil || !slices.Equal(got, uids[:10]) {
				t.Fatalf("stopped after the 10th: %v, got %v", err, got)
			}
			got = nil
			if err := c.Fetch(uids[10:], func(m Fetched) error {
				got = append(got, m.UID)
				_, err := readWant(m, want)
				return err
			}); err != nil || !slices.Equal(got, uids[10:]) {
				t.Fatalf("the rest on the same connection: %v, got %d of %d", err, len(got), 50)
			}
		})
	}
}

// TestSizes: the sizes the server gives, by UID; a UID not there is left out.
func TestSizes(t *testing.T) {
	w := startEmulator(t)
	want := deliver(t, w, "INBOX", 5, 1234)
	c := w.connect(t, nil)
	uids, err := c.SearchNewer(0)
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := c.Sizes(append(slices.Clone(uids), 9999))
	if err != nil || len(sizes) != len(uids) {
		t.Fatalf("Sizes: %v, %v", sizes, err)
	}
	for _, u := range uids {
		if sizes[u] != int64(len(want[u])) {
			t.Errorf("UID %d: size %d, want %d", u, sizes[u], len(want[u]))
		}
	}
}

func TestFetchDropMidFetch(t *testing.T) {
	w := startEmulator(t)
	want := deliver(t, w, "INBOX", 60, 3000)
	c := w.connect(t, func(cfg *Config) { cfg.FetchBatch = 25 })
	uids, err := c.SearchNewer(0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 37 // in the second batch
	w.e.IMAP().SetFaults(exo.IMAPFaults{DropAfterFetch: n})
	var complete []uint32
	err = c.Fetch(uids, func(m Fetched) error {
		if _, err := readWant(m, want); err != nil {
			return err
		}
		complete = append(complete, m.UID)
		return nil
	})
	e := diag.As(err)
	if e == nil || e.Kind != diag.KindTransient || e.Stage != StageFetch {
		t.Fatalf("Fetch after a drop = %v (%#v), want a transient fetch error", err, e)
	}
	if !slices.Equal(complete, uids[:n]) {
		t.Fatalf("fn completed %d messages, want exactly the first %d", len(complete), n)
	}
	select {
	case <-c.c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open")
	}
	// A new connection finishes the job (the fault is one-shot).
	c2 := w.connect(t, nil)
	rest := 0
	if err := c2.Fetch(uids[n:], func(m Fetched) error { rest++; _, err := io.Copy(io.Discard, m.Body); return err }); err != nil || rest != len(uids)-n {
		t.Fatalf("after reconnect: %d messages, %v", rest, err)
	}
}

func TestFetchCallbackErrorStops(t *testing.T) {
	w := startEmulator(t)
	deliver(t, w, "INBOX", 20, 1000)
	c := w.connect(t, nil)
	uids, _ := c.SearchNewer(0)
	boom := errors.New("disk full")
	calls := 0
	err := c.Fetch(uids, func(m Fetched) error {
		calls++
		if calls == 5 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 5 {
		t.Fatalf("Fetch = %v after %d calls, want the callback's error after 5", err, calls)
	}
}

func TestMove(t *testing.T) {
	w := startEmulator(t)
	deliver(t, w, "INBOX", 300, 500)
	c := w.connect(t, nil)
	if err := c.EnsureFolder("inkorg/processed"); err != nil {
		t.Fatal(err)
	}
	uids, err := c.SearchNewer(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Move(uids, "inkorg/processed"); err != nil {
		t.Fatal(err)
	}
	if left := uidsOf(t, w, "INBOX"); len(left) != 0 {
		t.Fatalf("INBOX still has %d messages", len(left))
	}
	if moved := uidsOf(t, w, "inkorg/processed"); len(moved) != 300 {
		t.Fatalf("processed has %d messages, want 300", len(moved))
	}
	if got, err := c.SearchNewer(0); err != nil || len(got) != 0 {
		t.Fatalf("SearchNewer after Move = %v, %v", got, err)
	}
	// A retry after a crash: the UIDs are gone, which is fine.
	if err := c.Move(uids, "inkorg/processed"); err != nil {
		t.Fatalf("Move of moved UIDs: %v", err)
	}
	if err := c.Move(uids[:10], "inkorg/processed"); err != nil {
		t.Fatalf("Move of moved UIDs: %v", err)
	}
	if moved := uidsOf(t, w, "inkorg/processed"); len(moved) != 300 {
		t.Fatalf("processed has %d messages after the retries, want 300", len(moved))
	}
	// A missing folder is the caller's (config) problem, not a silent success.
	more := deliver(t, w, "INBOX", 1, 100)
	if got, err := c.Wait(context.Background(), 0); err != nil || !got { // NOOP: the session learns of it
		t.Fatalf("Wait(0) = %v, %v", got, err)
	}
	for uid := range more {
		if err := c.Move([]uint32{uid}, "no/such/folder"); diag.As(err) == nil || diag.As(err).Kind == diag.KindTransient {
			t.Fatalf("Move to a missing folder = %v", err)
		}
	}
}

func TestEnsureFolder(t *testing.T) {
	w := startEmulator(t)
	c := w.connect(t, nil)
	for _, name := range []string{"inkorg/processed", "inkorg/failed", "inkorg/processed", "archive", "archive", "a/b/c/d"} {
		if err := c.EnsureFolder(name); err != nil {
			t.Fatalf("EnsureFolder(%q): %v", name, err)
		}
	}
	fs, err := w.store().Folders(mbox)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	for _, want := range []string{"inkorg/processed", "inkorg/failed", "archive", "a/b/c/d"} {
		if !slices.Contains(names, want) {
			t.Errorf("folder %q missing in %v", want, names)
		}
	}
	// A second connection (fresh delimiter lookup) finds them.
	c2 := w.connect(t, nil)
	if err := c2.EnsureFolder("inkorg/processed"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "a//b", "/a", "a*", "50%"} {
		if e := diag.As(c.EnsureFolder(bad)); e == nil || e.Kind != diag.KindConfig {
			t.Errorf("EnsureFolder(%q) = %v, want a config error", bad, e)
		}
	}
}

func TestWaitIdle(t *testing.T) {
	w := startEmulator(t)
	c := w.connect(t, nil)
	if !c.HasIDLE() {
		t.Fatal("the emulator offers IDLE")
	}
	ctx := context.Background()

	// Nothing arrives: false after max.
	start := time.Now()
	got, err := c.Wait(ctx, 300*time.Millisecond)
	if err != nil || got {
		t.Fatalf("Wait with no mail = %v, %v", got, err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Wait with no mail took %v", d)
	}

	// A delivery from another goroutine wakes it promptly.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(100 * time.Millisecond)
		w.store().Deliver(mbox, "INBOX", message(1, 100))
	}()
	start = time.Now()
	got, err = c.Wait(ctx, 20*time.Second)
	wg.Wait()
	if err != nil || !got {
		t.Fatalf("Wait with a delivery = %v, %v", got, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Wait noticed the delivery after %v", d)
	}
	// The commands still work after DONE, and the news is reported once.
	if uids, err := c.SearchNewer(0); err != nil || len(uids) != 1 {
		t.Fatalf("SearchNewer after Wait = %v, %v", uids, err)
	}
	if got, err := c.Wait(ctx, 100*time.Millisecond); err != nil || got {
		t.Fatalf("second Wait = %v, %v", got, err)
	}

	// Mail that arrived between commands (announced with a NOOP/FETCH reply) is reported at once.
	w.store().Deliver(mbox, "INBOX", message(2, 100))
	if _, err := c.SearchNewer(0); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if got, err := c.Wait(ctx, 10*time.Second); err != nil || !got || time.Since(start) > 3*time.Second {
		t.Fatalf("Wait after an announced delivery = %v, %v after %v", got, err, time.Since(start))
	}

	// Moving our own messages away is not new mail.
	uids, _ := c.SearchNewer(0)
	if err := c.EnsureFolder("done"); err != nil {
		t.Fatal(err)
	}
	if err := c.Move(uids, "done"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Wait(ctx, 200*time.Millisecond); err != nil || got {
		t.Fatalf("Wait after Move = %v, %v", got, err)
	}

	// ctx ends the wait.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(cctx, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with an ending ctx = %v", err)
	}
}

func TestWaitConnectionDrops(t *testing.T) {
	w := startEmulator(t)
	c := w.connect(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := c.Wait(context.Background(), time.Minute)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // let IDLE start; the test holds either way
	w.e.Close()
	select {
	case err := <-done:
		if e := diag.As(err); e == nil || e.Kind != diag.KindTransient {
			t.Fatalf("Wait on a dropped connection = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not notice the dropped connection")
	}
}

func TestThrottled(t *testing.T) {
	w := startEmulator(t)
	deliver(t, w, "INBOX", 3, 100)
	c := w.connect(t, nil)
	uids, err := c.SearchNewer(0)
	if err != nil {
		t.Fatal(err)
	}
	w.e.IMAP().SetFaults(exo.IMAPFaults{Throttle: 30 * time.Second})
	defer w.e.IMAP().SetFaults(exo.IMAPFaults{})
	for name, f := range map[string]func() error{
		"search": func() error { _, err := c.SearchNewer(0); return err },
		"fetch":  func() error { return c.Fetch(uids, func(Fetched) error { return nil }) },
		"move":   func() error { return c.Move(uids, "elsewhere") },
		"folder": func() error { return c.EnsureFolder("x/y") },
		"wait":   func() error { _, err := c.Wait(context.Background(), time.Second); return err },
	} {
		e := diag.As(f())
		if e == nil || e.Kind != diag.KindThrottled || e.RetryAfterMS <= 0 || e.RetryAfterMS > 30000 {
			t.Errorf("%s while throttled = %v", name, e)
		}
	}
}

func TestStalledServer(t *testing.T) {
	w := startEmulator(t)
	c := w.connect(t, func(cfg *Config) { cfg.Timeout = 300 * time.Millisecond })
	w.e.IMAP().SetFaults(exo.IMAPFaults{Stall: 5 * time.Second})
	defer w.e.IMAP().SetFaults(exo.IMAPFaults{})
	start := time.Now()
	_, err := c.SearchNewer(0)
	if e := diag.As(err); e == nil || e.Kind != diag.KindTransient || e.Code != "timeout" {
		t.Fatalf("SearchNewer on a stalled server = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

// Fetch is FetchInto without Buffers, for the tests.
func (c *Conn) Fetch(uids []uint32, fn func(m Fetched) error) error {
	return c.FetchInto(uids, nil, fn)
}
