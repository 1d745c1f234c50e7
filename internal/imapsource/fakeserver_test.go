package imapsource

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"inkorg/internal/diag"
)

// TestFetchBodyBeforeUID: servers that put the UID (or the size and date) after the body. go-imap
// hands such messages to the unilateral handler; Fetch spools them (a 5 MB one to a file) and
// delivers each once. Without SizeAndDate (what ingestion uses) the fake sends neither, so only a
// UID after the body makes Fetch spool.
func TestFetchBodyBeforeUID(t *testing.T) {
	for _, sizeAndDate := range []bool{true, false} {
		for _, order := range []string{"uid-last", "meta-last", "uid-first"} {
			t.Run(fmt.Sprintf("%s/sizeAndDate=%v", order, sizeAndDate), func(t *testing.T) {
				fetchBodyBeforeUID(t, order, sizeAndDate)
			})
		}
	}
}

func fetchBodyBeforeUID(t *testing.T, order string, sizeAndDate bool) {
	s := startFake(t, "IMAP4rev1 UIDPLUS MOVE", order, "/")
	want := map[uint32][]byte{}
	var big uint32
	for i := range 40 {
		size := 3000
		if i == 17 {
			size = 5 << 20
		}
		uid := s.deliver("INBOX", message(i, size))
		want[uid] = message(i, size)
		if i == 17 {
			big = uid
		}
	}
	var spoolDir string
	c := s.connect(t, func(cfg *Config) { cfg.FetchBatch = 16; cfg.SizeAndDate = sizeAndDate; spoolDir = cfg.SpoolDir })
	uids, err := c.SearchNewer(0)
	if err != nil || len(uids) != 40 {
		t.Fatalf("SearchNewer = %d UIDs, %v", len(uids), err)
	}
	var got []uint32
	var filesDuringBig int
	err = c.Fetch(uids, func(m Fetched) error {
		if m.UID == big {
			ents, _ := os.ReadDir(spoolDir)
			filesDuringBig = len(ents)
		}
		b, err := readWant(m, want)
		if err != nil {
			return err
		}
		if m.Size != int64(len(b)) || m.InternalDate.IsZero() == sizeAndDate {
			return fmt.Errorf("UID %d: %d bytes, size %d, date %v", m.UID, len(b), m.Size, m.InternalDate)
		}
		got = append(got, m.UID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, uids) {
		t.Fatalf("delivered %v, want %v", got, uids)
	}
	wantFiles := 0
	if order == "uid-last" || order == "meta-last" && sizeAndDate {
		wantFiles = 1 // the 5 MB body went to the spool directory
	}
	if filesDuringBig != wantFiles {
		t.Fatalf("%d spool files while fn read the 5 MB message, want %d", filesDuringBig, wantFiles)
	}
	if ents, _ := os.ReadDir(spoolDir); len(ents) != 0 {
		t.Fatalf("%d spool files left", len(ents))
	}
}

func TestFetchSpooledMemory(t *testing.T) {
	s := startFake(t, "IMAP4rev1 UIDPLUS MOVE", "uid-last", "/")
	raw := message(1, 5<<20)
	uid := s.deliver("INBOX", raw)
	c := s.connect(t, nil)
	wantSum := sha256.Sum256(raw)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var sum []byte
	err := c.Fetch([]uint32{uid}, func(m Fetched) error {
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
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("spooling a 5 MB message to disk allocated %d KiB in the whole process", alloc>>10)
	if alloc > 2<<20 {
		t.Fatalf("spooling a 5 MB message allocated %d bytes", alloc)
	}
}

// TestFetchCutInBody: the connection ends in the middle of a body, read ahead, streamed or spooled.
func TestFetchCutInBody(t *testing.T) {
	for _, tc := range []struct {
		name, order string
		readAhead   int64
	}{
		{"read ahead", "uid-first", 0},
		{"streamed", "uid-first", -1},
		{"spooled", "uid-last", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startFake(t, "IMAP4rev1 UIDPLUS MOVE", tc.order, "/")
			for i := range 5 {
				s.deliver("INBOX", message(i, 20000))
			}
			s.cutUID = 3
			c := s.connect(t, func(cfg *Config) { cfg.ReadAhead = tc.readAhead })
			var complete []uint32
			err := c.Fetch([]uint32{1, 2, 3, 4, 5}, func(m Fetched) error {
				if _, err := io.Copy(io.Discard, m.Body); err != nil {
					return err
				}
				complete = append(complete, m.UID)
				return nil
			})
			if e := diag.As(err); e == nil || e.Kind != diag.KindTransient || e.Stage != StageFetch {
				t.Fatalf("Fetch = %v, want a transient fetch error", err)
			}
			if !slices.Equal(complete, []uint32{1, 2}) {
				t.Fatalf("complete = %v", complete)
			}
		})
	}
}

// TestMoveWithoutMOVE: UID COPY + UID STORE + UID EXPUNGE with UIDPLUS, idempotent after a crash,
// never a plain EXPUNGE.
func TestMoveWithoutMOVE(t *testing.T) {
	s := startFake(t, "IMAP4rev1 UIDPLUS", "uid-first", "/")
	for i := range 10 {
		s.deliver("INBOX", message(i, 500))
	}
	c := s.connect(t, nil)
	if err := c.EnsureFolder("inkorg/processed"); err != nil {
		t.Fatal(err)
	}
	uids, _ := c.SearchNewer(0)
	if err := c.Move(uids, "inkorg/processed"); err != nil {
		t.Fatal(err)
	}
	if n, m := len(s.uids("INBOX")), len(s.uids("inkorg/processed")); n != 0 || m != 10 {
		t.Fatalf("INBOX %d, processed %d", n, m)
	}
	if err := c.Move(uids, "inkorg/processed"); err != nil {
		t.Fatalf("Move of moved UIDs: %v", err)
	}

	// A crash after COPY and STORE, before EXPUNGE: three messages are in both folders and
	// \Deleted in INBOX. The retry must not copy them again.
	for i := range 5 {
		s.deliver("INBOX", message(100+i, 500))
	}
	if _, err := c.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	uids, _ = c.SearchNewer(uids[len(uids)-1])
	if len(uids) != 5 {
		t.Fatalf("SearchNewer = %v", uids)
	}
	s.mu.Lock()
	for _, m := range s.folders["INBOX"][:3] {
		m.deleted = true
		s.folders["inkorg/processed"] = append(s.folders["inkorg/processed"], &fakeMsg{uid: s.uidNext["inkorg/processed"], body: m.body})
		s.uidNext["inkorg/processed"]++
	}
	s.mu.Unlock()
	if err := c.Move(uids, "inkorg/processed"); err != nil {
		t.Fatal(err)
	}
	if n, m := len(s.uids("INBOX")), len(s.uids("inkorg/processed")); n != 0 || m != 15 {
		t.Fatalf("after the retry: INBOX %d, processed %d (want 0, 15)", n, m)
	}
	if s.sawCommand("EXPUNGE") || !s.sawCommand("UID EXPUNGE") {
		t.Fatal("a plain EXPUNGE was sent, or no UID EXPUNGE")
	}
	// Wait's count followed the EXPUNGEs that went to the command: new mail is still noticed.
	s.deliver("INBOX", message(200, 100))
	if got, err := c.Wait(context.Background(), 0); err != nil || !got {
		t.Fatalf("Wait after the fallback moves = %v, %v", got, err)
	}
}

func TestMoveWithoutUIDPLUS(t *testing.T) {
	s := startFake(t, "IMAP4rev1", "uid-first", "/")
	s.deliver("INBOX", message(1, 500))
	s.mu.Lock()
	s.folders["done"], s.uidNext["done"] = nil, 1
	s.mu.Unlock()
	c := s.connect(t, nil)
	err := c.Move([]uint32{1}, "done")
	if e := diag.As(err); e == nil || e.Kind != diag.KindConfig || !strings.Contains(e.Summary, "UIDPLUS") {
		t.Fatalf("Move without MOVE and UIDPLUS = %v", err)
	}
	if s.sawCommand("UID COPY") || s.sawCommand("UID STORE") || len(s.uids("INBOX")) != 1 {
		t.Fatal("Move touched the mailbox")
	}
}

func TestWaitPolling(t *testing.T) {
	s := startFake(t, "IMAP4rev1 UIDPLUS MOVE", "uid-first", "/")
	c := s.connect(t, func(cfg *Config) { cfg.PollInterval = 50 * time.Millisecond })
	if c.HasIDLE() {
		t.Fatal("HasIDLE on a server without IDLE")
	}
	ctx := context.Background()
	start := time.Now()
	if got, err := c.Wait(ctx, 250*time.Millisecond); err != nil || got {
		t.Fatalf("Wait = %v, %v", got, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Wait took %v", d)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		s.deliver("INBOX", message(1, 100))
	}()
	start = time.Now()
	if got, err := c.Wait(ctx, 10*time.Second); err != nil || !got {
		t.Fatalf("Wait = %v, %v", got, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Wait noticed the delivery after %v", d)
	}
	if !s.sawCommand("NOOP") || s.sawCommand("IDLE") {
		t.Fatal("no NOOP polling, or IDLE without the capability")
	}
	// A dropped connection ends the wait at once.
	done := make(chan error, 1)
	go func() { _, err := c.Wait(ctx, time.Minute); done <- err }()
	time.Sleep(100 * time.Millisecond)
	s.close()
	select {
	case err := <-done:
		if e := diag.As(err); e == nil || e.Kind != diag.KindTransient {
			t.Fatalf("Wait on a dropped connection = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not notice the dropped connection")
	}
}

func TestEnsureFolderDotDelimiter(t *testing.T) {
	s := startFake(t, "IMAP4rev1 UIDPLUS MOVE", "uid-first", ".")
	s.deliver("INBOX", message(1, 100))
	c := s.connect(t, nil)
	for range 2 {
		if err := c.EnsureFolder("inkorg/processed"); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	_, parent := s.folders["inkorg"]
	_, child := s.folders["inkorg.processed"]
	s.mu.Unlock()
	if !parent || !child {
		t.Fatalf("folders: inkorg %v, inkorg.processed %v", parent, child)
	}
	if err := c.Move([]uint32{1}, "inkorg/processed"); err != nil {
		t.Fatal(err)
	}
	if got := s.uids("inkorg.processed"); len(got) != 1 {
		t.Fatalf("inkorg.processed has %v", got)
	}
	if e := diag.As(c.EnsureFolder("inkorg/v1.2")); e == nil || e.Kind != diag.KindConfig {
		t.Fatalf("a level with the delimiter = %v", e)
	}
}

func FuzzSpool(f *testing.F) {
	f.Add([]byte("From: a\r\n\r\nbody"), int64(4), uint8(0))
	f.Add([]byte(strings.Repeat("x", 5000)), int64(1024), uint8(10))
	f.Add([]byte{}, int64(0), uint8(0))
	f.Add([]byte("00000000"), int64(1024), uint8(8)) // nothing at all arrives
	f.Fuzz(func(t *testing.T, data []byte, threshold int64, cut uint8) {
		dir := t.TempDir()
		r := io.Reader(bytes.NewReader(data))
		short := int(cut) > 0 && int(cut) <= len(data)
		if short {
			r = io.LimitReader(r, int64(len(data)-int(cut)))
		}
		sp, err := newSpool(r, int64(len(data)), threshold, dir)
		if short {
			if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short body: %v", err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatal("file left after a short body")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(sp.reader())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, %v", len(got), err)
		}
		if sp.onDisk() != (int64(len(data)) > threshold) {
			t.Fatalf("onDisk %v for %d bytes, threshold %d", sp.onDisk(), len(data), threshold)
		}
		sp.close()
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatal("file left after close")
		}
	})
}

// TestFetchStopBodyBeforeUID: ErrStop with a server that puts the UID after the body (the bodies come
// through go-imap's unilateral handler): nothing is handed over after it, no spool file is left, and
// the rest is fetched whole on the same connection.
func TestFetchStopBodyBeforeUID(t *testing.T) {
	s := startFake(t, "IMAP4rev1 UIDPLUS MOVE", "uid-last", "/")
	want := map[uint32][]byte{}
	for i := range 40 {
		size := 3000
		if i == 17 {
			size = 3 << 20 // over the spool threshold
		}
		want[s.deliver("INBOX", message(i, size))] = message(i, size)
	}
	var spoolDir string
	c := s.connect(t, func(cfg *Config) { cfg.FetchBatch = 32; spoolDir = cfg.SpoolDir })
	uids, err := c.SearchNewer(0)
	if err != nil || len(uids) != 40 {
		t.Fatalf("SearchNewer = %d UIDs, %v", len(uids), err)
	}
	n := 0
	if err := c.Fetch(uids, func(m Fetched) error {
		if _, err := readWant(m, want); err != nil {
			return err
		}
		if n++; n == 5 {
			return ErrStop
		}
		return nil
	}); err != nil || n != 5 {
		t.Fatalf("stopped Fetch: %d messages handed over, %v", n, err)
	}
	if ents, _ := os.ReadDir(spoolDir); len(ents) != 0 {
		t.Fatalf("%d spool files left after the stop", len(ents))
	}
	var got []uint32
	if err := c.Fetch(uids[5:], func(m Fetched) error {
		got = append(got, m.UID)
		_, err := readWant(m, want)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, uids[5:]) {
		t.Fatalf("after the stop: %d of %d messages", len(got), len(uids)-5)
	}
}
