package segments

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
// and no two overlap: small ones with a small segment limit, and large ones (direct where there is
// direct I/O) between small ones.
func TestConcurrentAppends(t *testing.T) {
	t.Run("small", func(t *testing.T) {
		d := open(t, t.TempDir(), 4096)
		appendConcurrently(t, d, 8, 20, func(g, b int) [][]byte {
			return [][]byte{msg(g*1000+b, 100+g), msg(g*1000+b+500, 37)}
		})
		if n, _ := d.numbers(); len(n) < 3 {
			t.Errorf("segments %v: the limit did not start new ones", n)
		}
	})
	t.Run("large and small", func(t *testing.T) {
		d := open(t, t.TempDir(), 1<<20)
		appendConcurrently(t, d, 6, 12, func(g, b int) [][]byte {
			n := 1
			if (g+b)%2 == 0 {
				n = 25 // 25 × 3 KB
			}
			return batch(g*1000+b*50, n, 3000+g)
		})
	})
}

// appendConcurrently appends batchOf(g, b) for b < rounds from each of goroutines goroutines g at once,
// then checks that every message reads back whole and that no two overlap.
func appendConcurrently(t *testing.T, d *Dir, goroutines, rounds int, batchOf func(g, b int) [][]byte) {
	t.Helper()
	var wg sync.WaitGroup
	type got struct {
		data [][]byte
		refs []Ref
	}
	res := make([]got, goroutines)
	for g := range res {
		wg.Go(func() {
			for b := range rounds {
				batch := batchOf(g, b)
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

// diskAndMemory are a temporary directory and, where there is one, another in /dev/shm (tmpfs on
// Linux: no RWF_DONTCACHE, no direct I/O).
func diskAndMemory(t *testing.T) []string {
	dirs := []string{t.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "inkorg-segments-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	return dirs
}

// TestUncachedWrites: the bytes are written with RWF_DONTCACHE where the kernel and file system take
// it, and through the page cache where they refuse it (tmpfs, kernels before 6.14), and read back the
// same either way. Which one applies is asked of the kernel directly.
func TestUncachedWrites(t *testing.T) {
	for _, base := range diskAndMemory(t) {
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

// dioAligned asks the kernel whether a file in dir can be written with direct I/O, and with what
// alignment (statx's DIOALIGN; tmpfs and older kernels report none).
func dioAligned(t testing.TB, dir string) int64 {
	f, err := os.CreateTemp(dir, "probe-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, f.Name(), 0, unix.STATX_DIOALIGN, &st); err != nil || st.Mask&unix.STATX_DIOALIGN == 0 {
		return 0
	}
	return max(int64(st.Dio_offset_align), int64(st.Dio_mem_align), pageSize)
}

// directDir is a temporary directory on a file system with direct I/O: the test's own, or else one
// beside the package's source (the temporary directory may be tmpfs). The test is skipped only when
// neither has it.
func directDir(t testing.TB) string {
	if dir := t.TempDir(); dioAligned(t, dir) != 0 {
		return dir
	}
	dir, err := os.MkdirTemp(".", "direct-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if dioAligned(t, dir) == 0 {
		t.Skipf("neither the temporary directory nor %s has direct I/O (the kernel reports no DIOALIGN)", dir)
	}
	return dir
}

// batch is n messages of size bytes each (plus i, so that no two are alike in length).
func batch(from, n, size int) [][]byte {
	var b [][]byte
	for i := range n {
		b = append(b, msg(from+i, size+i))
	}
	return b
}

// TestDirectWrites: where the file system has direct I/O, a large Append is written with it — it
// starts at a multiple of the alignment and its space is padded to one — while small Appends go
// through the page cache unpadded; one larger than a staging buffer is written in chunks, a message
// split between two. Everything reads back the same, after reopening too. Where the kernel reports no
// direct I/O (tmpfs), nothing is padded.
func TestDirectWrites(t *testing.T) {
	for _, base := range diskAndMemory(t) {
		align := dioAligned(t, base)
		t.Logf("%s: direct I/O alignment %d (0: none)", base, align)
		dir := filepath.Join(base, "raw")
		d := open(t, dir, 0)
		var all [][]byte
		var refs []Ref
		add := func(b [][]byte) []Ref {
			t.Helper()
			r, err := d.Append(b)
			if err != nil {
				t.Fatalf("%s: %v", base, err)
			}
			all, refs = append(all, b...), append(refs, r...)
			return r
		}
		small := add(batch(0, 2, 1500))               // 3001 bytes
		large := add(batch(10, 30, 5000))             // 150,435 bytes
		after := add(batch(50, 1, 700))               // small again
		huge := add(batch(100, 450, stagingSize/400)) // over a staging buffer
		end := add(batch(900, 1, 10))

		next := func(r []Ref) int64 { return r[len(r)-1].Offset + r[len(r)-1].Length }
		if small[0].Offset != 0 {
			t.Errorf("%s: first message at %d", base, small[0].Offset)
		}
		if align == 0 {
			for i, r := range [][]Ref{large, after, huge, end} {
				prev := [][]Ref{small, large, after, huge}[i]
				if r[0].Offset != next(prev) {
					t.Errorf("%s: no direct I/O, yet Append %d starts at %d, not right after the one before (%d)", base, i+1, r[0].Offset, next(prev))
				}
			}
		} else {
			if want := roundUp(next(small), align); large[0].Offset != want {
				t.Errorf("%s: the large Append starts at %d, want %d (aligned)", base, large[0].Offset, want)
			}
			if want := large[0].Offset + roundUp(next(large)-large[0].Offset, align); after[0].Offset != want {
				t.Errorf("%s: the small Append after it starts at %d, want %d (after the padding)", base, after[0].Offset, want)
			}
			if huge[0].Offset%align != 0 || end[0].Offset%align != 0 || end[0].Offset < next(huge) {
				t.Errorf("%s: the huge Append at %d, the one after it at %d (huge ends at %d)", base, huge[0].Offset, end[0].Offset, next(huge))
			}
			if d.buffered.Load() {
				t.Errorf("%s: direct writes were given up", base)
			}
		}
		d.Close()
		d = open(t, dir, 0)
		for i, ref := range refs {
			got, err := d.Read(ref)
			if err != nil || !bytes.Equal(got, all[i]) {
				t.Fatalf("%s: message %d at %+v read back as %d bytes, %v", base, i, ref, len(got), err)
			}
		}
	}
}

// TestDirectWriteRefused: when the kernel refuses a direct write after all (here: an offset that is
// not aligned, EINVAL), the bytes are written through the page cache instead, and so is every later
// Append.
func TestDirectWriteRefused(t *testing.T) {
	dir := directDir(t)
	d := open(t, dir, 0)
	first := batch(0, 1, 100)
	if _, err := d.Append(first); err != nil {
		t.Fatal(err)
	}
	d.cur.align = 3 // offsets the kernel refuses for direct I/O
	var all [][]byte
	var refs []Ref
	for i := range 3 {
		b := batch(100*i, 20, 4000)
		r, err := d.Append(b)
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		all, refs = append(all, b...), append(refs, r...)
	}
	if !d.buffered.Load() {
		t.Fatal("the refused direct write was not noticed")
	}
	if refs[20].Offset != refs[19].Offset+refs[19].Length {
		t.Errorf("after the refusal an Append was still padded: %+v after %+v", refs[20], refs[19])
	}
	for i, ref := range refs {
		if got, err := d.Read(ref); err != nil || !bytes.Equal(got, all[i]) {
			t.Fatalf("message %d at %+v: %v", i, ref, err)
		}
	}
}

// alignedBlock is n bytes at an address that is a multiple of maxAlign, filled with messages of
// about size bytes; it returns the block and the messages, slices of it.
func alignedBlock(n, size int) ([]byte, [][]byte) {
	block := alignedBytes(n)
	var msgs [][]byte
	for off, i := 0, 0; off < n; i++ {
		m := msg(i, min(size+i, n-off))
		copy(block[off:], m)
		msgs = append(msgs, block[off:off+len(m):off+len(m)])
		off += len(m)
	}
	return block, msgs
}

// TestAppendFrom: messages that are consecutive slices of an aligned block are written straight from
// it — only the bytes after its last aligned boundary are copied — and read back the same; an
// unaligned block, or messages that do not cover the block, are copied like Append's.
func TestAppendFrom(t *testing.T) {
	dir := t.TempDir()
	align := dioAligned(t, dir)
	d := open(t, dir, 0)
	block, msgs := alignedBlock(150_000, 4999)
	unaligned, umsgs := alignedBlock(150_001, 3001)
	unaligned, umsgs[0] = unaligned[1:], umsgs[0][1:]
	cases := []struct {
		name   string
		block  []byte
		msgs   [][]byte
		staged int64 // with direct I/O
	}{
		{"aligned block", block, msgs, int64(len(block)) % max(align, 1)},
		{"unaligned block", unaligned, umsgs, int64(len(unaligned))},
		{"one message left out", block, msgs[1:], int64(len(block) - len(msgs[0]))},
		{"a message from elsewhere", block, append(slices.Clone(msgs[:len(msgs)-1]), bytes.Clone(msgs[len(msgs)-1])), int64(len(block))},
		{"no block", nil, msgs, int64(len(block))},
	}
	for _, c := range cases {
		before := d.staged.Load()
		refs, err := d.AppendFrom(c.block, c.msgs)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, ref := range refs {
			if got, err := d.Read(ref); err != nil || !bytes.Equal(got, c.msgs[i]) {
				t.Fatalf("%s: message %d at %+v read back wrong: %v", c.name, i, ref, err)
			}
		}
		staged := d.staged.Load() - before
		switch {
		case align == 0 && staged != 0:
			t.Errorf("%s: no direct I/O here, yet %d bytes were staged for it", c.name, staged)
		case align != 0 && staged != c.staged:
			t.Errorf("%s: %d bytes copied before writing, want %d", c.name, staged, c.staged)
		}
	}
}

func TestTiles(t *testing.T) {
	block := []byte("abcdefghij")
	for _, c := range []struct {
		name string
		msgs [][]byte
		want bool
	}{
		{"whole", [][]byte{block[:3], block[3:7], block[7:]}, true},
		{"one", [][]byte{block}, true},
		{"an empty message between", [][]byte{block[:3], nil, block[3:]}, true},
		{"short", [][]byte{block[:3], block[3:7]}, false},
		{"a gap", [][]byte{block[:3], block[4:]}, false},
		{"out of order", [][]byte{block[3:], block[:3]}, false},
		{"a copy", [][]byte{block[:3], []byte("defghij")}, false},
		{"past the end", [][]byte{block[:3], block[3:10:10], block[:1]}, false},
		{"none", nil, false},
	} {
		if got := tiles(block, c.msgs); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if tiles(nil, [][]byte{block}) {
		t.Error("a nil block tiled")
	}
}
