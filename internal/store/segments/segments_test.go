package segments

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func open(t *testing.T, dir string, max int64) *Dir {
	t.Helper()
	d, err := Open(Options{Dir: dir, MaxSize: max})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func msg(i, size int) []byte {
	b := bytes.Repeat([]byte{byte('a' + i%26)}, size)
	copy(b, fmt.Sprintf("message %d;", i))
	return b
}

func TestAppendReadReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "inkorg.db-raw")
	d := open(t, dir, 1000)
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("Open created the directory before anything was written")
	}
	var all [][]byte
	var refs []Ref
	// Batches of 3 messages of 150 bytes: two batches fit in a 1000-byte segment, the third starts
	// the next one; a batch larger than the limit gets a segment of its own.
	for b := range 4 {
		var batch [][]byte
		for i := range 3 {
			batch = append(batch, msg(b*3+i, 150))
		}
		r, err := d.Append(batch)
		if err != nil {
			t.Fatal(err)
		}
		all, refs = append(all, batch...), append(refs, r...)
	}
	big := [][]byte{msg(99, 1500)}
	r, err := d.Append(big)
	if err != nil {
		t.Fatal(err)
	}
	all, refs = append(all, big...), append(refs, r...)
	wantSeg := []int64{1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3}
	for i, ref := range refs {
		if ref.Segment != wantSeg[i] || ref.Length != int64(len(all[i])) {
			t.Errorf("message %d at %+v, want segment %d, length %d", i, ref, wantSeg[i], len(all[i]))
		}
		got, err := d.Read(ref)
		if err != nil || !bytes.Equal(got, all[i]) {
			t.Errorf("message %d read back wrong: %v", i, err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "00000001.seg")); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 900 {
		t.Errorf("first segment: %v %v", fi, err)
	}
	d.Close()
	if _, err := d.Append(all[:1]); err == nil {
		t.Error("Append after Close succeeded")
	}

	// Reopened, it goes on in the last segment (the big one is over the limit: a new segment).
	d2 := open(t, dir, 1000)
	r2, err := d2.Append([][]byte{msg(7, 10)})
	if err != nil || r2[0].Segment != 4 || r2[0].Offset != 0 {
		t.Fatalf("after reopening: %+v %v", r2, err)
	}
	for i, ref := range refs {
		if got, err := d2.Read(ref); err != nil || !bytes.Equal(got, all[i]) {
			t.Errorf("after reopening, message %d: %v", i, err)
		}
	}
	// A process writes only to segments it created: reopened below the limit, it starts a new one.
	d3 := open(t, t.TempDir(), 0)
	r3, _ := d3.Append([][]byte{msg(1, 10)})
	d3.Close()
	d3 = open(t, d3.Path(), 0)
	r4, err := d3.Append([][]byte{msg(2, 10)})
	if err != nil || r4[0].Segment != r3[0].Segment+1 || r4[0].Offset != 0 {
		t.Errorf("reopened below the limit: %+v, want segment %d offset 0 (%v)", r4, r3[0].Segment+1, err)
	}
}

// TestTwoWriters: two Dirs on one directory (two processes on one database) never write to the same
// segment, even when both were opened before either wrote.
func TestTwoWriters(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t, dir, 0), open(t, dir, 0)
	var refs []Ref
	var data [][]byte
	for i := range 10 {
		d := a
		if i%2 == 1 {
			d = b
		}
		m := msg(i, 50+i)
		r, err := d.Append([][]byte{m})
		if err != nil {
			t.Fatal(err)
		}
		refs, data = append(refs, r...), append(data, m)
	}
	if refs[0].Segment == refs[1].Segment {
		t.Fatalf("both wrote segment %d", refs[0].Segment)
	}
	for i, r := range refs {
		if got, err := a.Read(r); err != nil || !bytes.Equal(got, data[i]) {
			t.Errorf("message %d at %+v: %v", i, r, err)
		}
	}
}

// TestMissingBytes: a segment that is gone or cut short is named, with ErrMissing.
func TestMissingBytes(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir, 0)
	refs, err := d.Append([][]byte{msg(1, 100), msg(2, 100)})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "00000001.seg"), 150); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(refs[0]); err != nil {
		t.Errorf("the first message is whole: %v", err)
	}
	for name, ref := range map[string]Ref{"cut short": refs[1], "no such segment": {Segment: 9, Length: 5}} {
		_, err := d.Read(ref)
		if !errors.Is(err, ErrMissing) {
			t.Errorf("%s: %v, want ErrMissing", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := d.Read(Ref{Segment: 0}); err == nil || errors.Is(err, ErrMissing) {
		t.Errorf("a malformed reference: %v", err)
	}
}

// TestConcurrentAppends: appends from many goroutines across segment changes each read back whole,
// and no two overlap.
func TestConcurrentAppends(t *testing.T) {
	d := open(t, t.TempDir(), 4096)
	var wg sync.WaitGroup
	type got struct {
		data [][]byte
		refs []Ref
	}
	res := make([]got, 8)
	for g := range res {
		wg.Go(func() {
			for b := range 20 {
				batch := [][]byte{msg(g*1000+b, 100+g), msg(g*1000+b+500, 37)}
				r, err := d.Append(batch)
				if err != nil {
					t.Error(err)
					return
				}
				res[g].data, res[g].refs = append(res[g].data, batch...), append(res[g].refs, r...)
			}
		})
	}
	wg.Wait()
	type span struct{ seg, from, to int64 }
	var spans []span
	for _, g := range res {
		for i, ref := range g.refs {
			b, err := d.Read(ref)
			if err != nil || !bytes.Equal(b, g.data[i]) {
				t.Fatalf("%+v: %v", ref, err)
			}
			for _, s := range spans {
				if s.seg == ref.Segment && ref.Offset < s.to && s.from < ref.Offset+ref.Length {
					t.Fatalf("%+v overlaps %+v", ref, s)
				}
			}
			spans = append(spans, span{ref.Segment, ref.Offset, ref.Offset + ref.Length})
		}
	}
	if n, _ := d.numbers(); len(n) < 3 {
		t.Errorf("segments %v: the limit did not start new ones", n)
	}
}

func TestOpenRefusesAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Open(Options{Dir: f}); err == nil {
		t.Error("a plain file opened as a segment directory")
	}
	d, err := Open(Options{Dir: filepath.Join(f, "sub")})
	if err == nil {
		if _, err := d.Append([][]byte{msg(1, 5)}); err == nil {
			t.Error("appended under a plain file")
		}
	}
	if _, err := Open(Options{}); err == nil {
		t.Error("no directory accepted")
	}
}

// TestUncachedWrites: the bytes are written with RWF_DONTCACHE where the kernel and file system take
// it, and through the page cache where they refuse it (tmpfs, kernels before 6.14), and read back the
// same either way. Which one applies is asked of the kernel directly.
func TestUncachedWrites(t *testing.T) {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() { // tmpfs on Linux
		shm, err := os.MkdirTemp("/dev/shm", "inkorg-segments-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	for _, base := range dirs {
		d := open(t, filepath.Join(base, "raw"), 1<<20)
		var all [][]byte
		var refs []Ref
		for b := range 3 {
			batch := [][]byte{msg(b, 5000), msg(b+10, 7)}
			r, err := d.Append(batch)
			if err != nil {
				t.Fatalf("%s: %v", base, err)
			}
			all, refs = append(all, batch...), append(refs, r...)
		}
		for i, ref := range refs {
			got, err := d.Read(ref)
			if err != nil || !bytes.Equal(got, all[i]) {
				t.Fatalf("%s: message %d read back as %d bytes, %v", base, i, len(got), err)
			}
		}
		t.Logf("%s: uncached writes %v", base, !d.cached.Load())
		if want := !dontcacheTaken(t, base); d.cached.Load() != want {
			t.Errorf("%s: written through the page cache = %v, want %v (the kernel's answer)", base, d.cached.Load(), want)
		}
	}
}

// dontcacheTaken asks the kernel whether a file in dir can be written with RWF_DONTCACHE.
func dontcacheTaken(t *testing.T, dir string) bool {
	f, err := os.CreateTemp(dir, "probe-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	_, err = unix.Pwritev2(int(f.Fd()), [][]byte{[]byte("x")}, 0, unix.RWF_DONTCACHE)
	switch {
	case err == nil:
		return true
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL):
		return false
	}
	t.Fatalf("probe %s: %v", dir, err)
	return false
}
