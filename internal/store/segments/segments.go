// Package segments keeps the raw bytes of messages in append-only segment files in one directory
// beside the SQLite database, so that a batch of ten thousand 10 KB messages is one sequential write
// and one fsync instead of a copy into the database's write-ahead log and a second copy at its
// checkpoint (which cost more than half of ingestion's time; see BenchmarkCommitBatch10k in
// internal/store/sqlite).
//
// The rule that makes it safe: Append returns only after the bytes are on disk (fsync, and the
// directory fsync'd when it created a file); the caller then records the Refs in its own durable
// transaction. Bytes whose transaction never commits (a crash between the two, a rollback) stay in
// the segment, unreferenced and harmless. Segment files are never rewritten: a segment is named by
// its number (00000001.seg …), filled up to a size limit, and then left alone.
package segments

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultMaxSize is the size after which a new segment is started.
const DefaultMaxSize = 1 << 30

const (
	// directMin is the smallest Append written with direct I/O (see writeDirect). Smaller ones — the
	// message or two an IDLE wake-up brings — go through the page cache and are not padded to a block.
	directMin = 64 << 10
	// stagingSize is the size of the buffers a direct write is copied into, a chunk at a time; they
	// start at an address that is a multiple of maxAlign.
	stagingSize = 4 << 20
	// maxAlign is the largest alignment of direct I/O this package uses; a file system that wants
	// more is written through the page cache. pageSize is the smallest it uses, so that a direct
	// write never shares a page with bytes written through the page cache.
	maxAlign = 64 << 10
	pageSize = 4 << 10
)

// ext is the segment files' extension.
const ext = ".seg"

// Ref is where Append put one message's bytes.
type Ref struct {
	Segment int64
	Offset  int64
	Length  int64
}

// ErrMissing is returned (wrapped) by Read when the segment file or the bytes in it are not there: the
// directory was not copied with the database, or the file was cut short.
var ErrMissing = errors.New("message bytes missing from the segment files")

// Options configure Open.
type Options struct {
	Dir     string       // created (0700) by the first Append when missing
	MaxSize int64        // 0: DefaultMaxSize
	Logger  *slog.Logger // nil: discard
}

// Dir is an open segment directory. Append and Read may be called concurrently.
type Dir struct {
	dir string
	max int64
	log *slog.Logger

	mu   sync.Mutex
	cur  *segment // the segment being filled; nil until the first Append
	last int64    // the highest segment number seen
	err  error    // set when the directory could not be written: every later Append fails with it

	// cached is set once the kernel or file system refused RWF_DONTCACHE: the bytes are then
	// written through the page cache like any file's.
	cached atomic.Bool
	// buffered is set once a direct write was refused: every later Append goes through the page cache.
	buffered atomic.Bool
	// staging holds the aligned buffers of direct writes (*[]byte, stagingSize each) for reuse;
	// staged counts the bytes copied into them (for the tests).
	staging sync.Pool
	staged  atomic.Int64
}

// segment is one open segment file being filled. refs counts the Appends still writing to it, so
// that a segment replaced by the next one is closed when they are done.
type segment struct {
	n       int64
	f       *os.File
	direct  *os.File // the same file opened for direct I/O; nil where the file system has none
	align   int64    // what direct writes' offsets and lengths are multiples of
	size    int64    // the next offset to hand out
	refs    int
	retired bool
}

// Open opens the segment directory; the first Append creates it (0700) when it does not exist yet, and
// a new segment after the highest-numbered one.
func Open(o Options) (*Dir, error) {
	if o.Dir == "" {
		return nil, errors.New("segments: no directory")
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dir{dir: o.Dir, max: o.MaxSize, log: o.Logger}
	nums, err := d.numbers()
	if err != nil {
		return nil, err
	}
	if len(nums) > 0 {
		d.last = nums[len(nums)-1]
	}
	return d, nil
}

// Path is the directory.
func (d *Dir) Path() string { return d.dir }

func (d *Dir) path(n int64) string { return filepath.Join(d.dir, fmt.Sprintf("%08d%s", n, ext)) }

// numbers lists the segments in the directory, in order.
func (d *Dir) numbers() ([]int64, error) {
	ents, err := os.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // created by the first Append
	}
	if err != nil {
		return nil, fmt.Errorf("segments: read %s: %w", d.dir, err)
	}
	var out []int64
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ext) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(name, ext), 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Append writes the messages' bytes one after the other into the current segment, syncs them to disk
// and returns where each one is. A message never straddles two segments; a batch starts a new
// segment when the current one would grow past the size limit (a batch larger than the limit gets a
// segment of its own).
func (d *Dir) Append(msgs [][]byte) ([]Ref, error) {
	return d.AppendFrom(nil, msgs)
}

// AppendFrom is Append for messages that may lie one after the other in one block of memory, as
// ingestion reads a batch's bodies (see internal/ingest): when msgs are consecutive slices of block
// covering all of it, and block starts at an address aligned for direct I/O, the block is written
// straight from memory instead of being copied first (the copy of a 5 MB batch cost about 1 ms). In
// any other case — a nil block, a message from elsewhere, one left out — it is the same as Append.
func (d *Dir) AppendFrom(block []byte, msgs [][]byte) ([]Ref, error) {
	if !tiles(block, msgs) {
		block = nil
	}
	var total int64
	for _, m := range msgs {
		total += int64(len(m))
	}
	seg, off, direct, err := d.reserve(total)
	if err != nil {
		return nil, err
	}
	defer d.release(seg)
	refs := make([]Ref, len(msgs))
	at := off
	for i, m := range msgs {
		refs[i] = Ref{Segment: seg.n, Offset: at, Length: int64(len(m))}
		at += int64(len(m))
	}
	if direct {
		err = d.writeDirect(seg, block, msgs, off)
	} else {
		err = d.writeAt(seg.f, msgs, off)
	}
	if err != nil {
		return nil, fmt.Errorf("segments: write %s: %w", seg.f.Name(), err)
	}
	if total > 0 {
		if err := seg.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the pages: nothing more is written to
			// this directory by this process (the caller's transaction is not committed either).
			d.fail(fmt.Errorf("segments: sync %s: %w", seg.f.Name(), err))
			return nil, d.err
		}
	}
	return refs, nil
}

// reserve hands out total bytes at the end of the current segment (starting the next segment when
// needed) and takes a reference on it. direct says the bytes are to be written with direct I/O: they
// then start at a multiple of the segment's alignment, and the space handed out is padded to one.
func (d *Dir) reserve(total int64) (s *segment, off int64, direct bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, 0, false, d.err
	}
	if d.cur == nil || (d.cur.size > 0 && d.cur.size+total > d.max) {
		if err := d.next(); err != nil {
			return nil, 0, false, err
		}
	}
	s = d.cur
	off, n := s.size, total
	if s.direct != nil && total >= directMin && !d.buffered.Load() {
		off, n, direct = roundUp(off, s.align), roundUp(total, s.align), true
	}
	s.size = off + n
	s.refs++
	return s, off, direct, nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// next starts a new segment (with d.mu held): the file is created, and the directory synced so that
// the file's name survives a power cut along with the bytes synced into it.
//
// A process only ever writes to segments it created itself (O_EXCL, taking the next free number), so
// two processes on one database — two "inkorg serve" by mistake, say — never write over each other;
// each start begins a new segment.
func (d *Dir) next() error {
	if _, err := os.Stat(d.dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(d.dir, 0o700); err != nil {
			return fmt.Errorf("segments: create %s: %w", d.dir, err)
		}
		if err := syncDir(filepath.Dir(d.dir)); err != nil {
			return fmt.Errorf("segments: %w", err)
		}
	}
	var f *os.File
	n := d.last
	for {
		n++
		var err error
		f, err = os.OpenFile(d.path(n), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another process took this number
		}
		if err != nil {
			return fmt.Errorf("segments: create %s: %w", d.path(n), err)
		}
		break
	}
	d.last = n
	if err := syncDir(d.dir); err != nil {
		f.Close()
		os.Remove(d.path(n))
		return fmt.Errorf("segments: %w", err)
	}
	if old := d.cur; old != nil {
		old.retired = true
		if old.refs == 0 {
			old.close()
		}
	}
	direct, align := d.openDirect(d.path(n))
	d.cur = &segment{n: n, f: f, direct: direct, align: align}
	d.log.Info("started a new message segment", "segment", d.path(n))
	return nil
}

func (d *Dir) release(s *segment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s.refs--
	if s.retired && s.refs == 0 {
		s.close()
	}
}

func (s *segment) close() error {
	if s.direct != nil {
		s.direct.Close()
	}
	return s.f.Close()
}

func (d *Dir) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err == nil {
		d.err = err
	}
}

// Read returns the bytes at ref. The error wraps ErrMissing when the segment or the bytes are not
// there, and names the file.
func (d *Dir) Read(ref Ref) ([]byte, error) {
	if ref.Segment <= 0 || ref.Offset < 0 || ref.Length < 0 {
		return nil, fmt.Errorf("segments: bad reference %+v", ref)
	}
	p := d.path(ref.Segment)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("segments: %s does not exist: %w", p, ErrMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("segments: %w", err)
	}
	defer f.Close()
	b := make([]byte, ref.Length)
	n, err := f.ReadAt(b, ref.Offset)
	if n < len(b) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("segments: %s ends before byte %d (%d bytes at offset %d wanted): %w",
				p, ref.Offset+ref.Length, ref.Length, ref.Offset, ErrMissing)
		}
		return nil, fmt.Errorf("segments: read %s: %w", p, err)
	}
	return b, nil
}

// Close closes the open segment. Appends must have returned.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return nil
	}
	err := d.cur.close()
	d.cur = nil
	if d.err == nil {
		d.err = errors.New("segments: closed")
	}
	return err
}

// writeAt writes bufs one after the other at off, with as few system calls as the kernel allows
// (pwritev, up to 1024 buffers each: writing a batch's 500 messages one by one cost 15 µs each).
//
// The bytes are written uncached where the kernel can (RWF_DONTCACHE, Linux 6.14): they are written
// once and seldom read, and keeping them in the page cache would push the database's pages out. It
// also made the write itself cheaper: 100 MB in batches of 5 MB, each synced, took 47-94 ms of CPU
// instead of 172-254 ms on the project's VM (the page cache's new pages cost more than the copy).
// Where the flag is refused (older kernels, some file systems) the write is made again without it,
// and so are all later ones.
func (d *Dir) writeAt(f *os.File, bufs [][]byte, off int64) error {
	if d.cached.Load() {
		return pwritevAll(f, bufs, off, 0)
	}
	err := pwritevAll(f, bufs, off, unix.RWF_DONTCACHE)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		d.cached.Store(true)
		d.log.Info("segments: uncached writes are not supported here; writing through the page cache", "dir", d.dir, "err", err)
		return pwritevAll(f, bufs, off, 0)
	}
	return err
}

// pwritevAll writes bufs one after the other at off, all of them, with pwritev2 and flags (up to 1024
// buffers a call); bufs itself is left as it was.
func pwritevAll(f *os.File, bufs [][]byte, off int64, flags int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	bufs = slices.Clone(bufs)
	for len(bufs) > 0 {
		if len(bufs[0]) == 0 {
			bufs = bufs[1:]
			continue
		}
		var n int
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Pwritev2(int(fd), bufs[:min(len(bufs), 1024)], off, flags)
			return werr != unix.EAGAIN
		}); err != nil {
			return err
		}
		switch {
		case werr == unix.EINTR:
			continue
		case werr != nil:
			return werr
		case n == 0:
			return io.ErrShortWrite
		}
		off += int64(n)
		for n > 0 { // drop what was written, keep the rest of a buffer written in part
			k := min(n, len(bufs[0]))
			bufs[0] = bufs[0][k:]
			n -= k
			if len(bufs[0]) == 0 {
				bufs = bufs[1:]
			}
		}
	}
	return nil
}

// openDirect opens a new segment a second time, for direct I/O, where the file system says it has it
// (statx's DIOALIGN: ext4, XFS, btrfs — not tmpfs, which has no disk to go to directly), and returns
// the alignment its writes need (at least a page, at most maxAlign).
func (d *Dir) openDirect(path string) (*os.File, int64) {
	if d.buffered.Load() {
		return nil, 0
	}
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_DIOALIGN, &st); err != nil ||
		st.Mask&unix.STATX_DIOALIGN == 0 || st.Dio_offset_align == 0 || st.Dio_mem_align == 0 {
		return nil, 0
	}
	align := max(int64(st.Dio_offset_align), int64(st.Dio_mem_align), pageSize)
	if align > maxAlign || align&(align-1) != 0 {
		return nil, 0
	}
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		d.log.Info("segments: direct I/O is not available here; writing through the page cache", "segment", path, "err", err)
		return nil, 0
	}
	return f, align
}

// tiles reports whether msgs are consecutive slices of block, in order, covering all of it.
func tiles(block []byte, msgs [][]byte) bool {
	if len(block) == 0 {
		return false
	}
	off := 0
	for _, m := range msgs {
		if len(m) == 0 {
			continue
		}
		if len(m) > len(block)-off || &m[0] != &block[off] {
			return false
		}
		off += len(m)
	}
	return off == len(block)
}

// writeDirect writes msgs one after the other at off with direct I/O, copied a chunk at a time into an
// aligned buffer, the last chunk padded with zeros to the segment's alignment (reserve handed out
// the padding). When block holds msgs (AppendFrom) and starts aligned, its aligned part is written
// from where it is, and only the rest is copied and padded. A batch of large messages is the common
// case here, and its bytes are written once and seldom read: direct I/O skips the page cache altogether, which costs less CPU than the
// uncached writes of writeAt (a 5 MB batch of 10 KB messages, synced: 1.5-1.9 ms instead of 2.5-3.1
// ms on the project's VM, the copy included) and leaves the database's pages in the cache.
//
// Where the kernel refuses a direct write after all (EINVAL: an alignment it did not report), the
// bytes are written through the page cache instead, and so are all later ones.
func (d *Dir) writeDirect(s *segment, block []byte, msgs [][]byte, off int64) error {
	start, pos, fill, rest := off, off, 0, msgs
	if block != nil && uintptr(unsafe.Pointer(&block[0]))%uintptr(s.align) == 0 {
		n := int64(len(block)) / s.align * s.align
		if err := pwritevAll(s.direct, [][]byte{block[:n]}, pos, 0); err != nil {
			return d.refused(err, s, msgs, start)
		}
		pos += n
		rest = [][]byte{block[n:]}
	}
	buf := d.stagingBuffer()
	defer d.staging.Put(buf)
	flush := func(last bool) error {
		n := fill
		if last {
			n = int(roundUp(int64(fill), s.align))
			clear((*buf)[fill:n])
		}
		if err := pwritevAll(s.direct, [][]byte{(*buf)[:n]}, pos, 0); err != nil {
			return err
		}
		pos += int64(n)
		fill = 0
		return nil
	}
	var err error
	var staged int64
	for _, m := range rest {
		for len(m) > 0 && err == nil {
			k := copy((*buf)[fill:], m)
			fill, m, staged = fill+k, m[k:], staged+int64(k)
			if fill == len(*buf) {
				err = flush(false)
			}
		}
	}
	if err == nil && fill > 0 {
		err = flush(true)
	}
	d.staged.Add(staged)
	return d.refused(err, s, msgs, start)
}

// refused writes msgs at off through the page cache, and all later Appends too, when err says that the
// kernel refused a direct write (EINVAL: an alignment it did not report); any other error is returned.
func (d *Dir) refused(err error, s *segment, msgs [][]byte, off int64) error {
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	d.buffered.Store(true)
	d.log.Info("segments: a direct write was refused; writing through the page cache from now on", "dir", d.dir, "err", err)
	return d.writeAt(s.f, msgs, off)
}

// stagingBuffer is a buffer of stagingSize bytes at an address that is a multiple of maxAlign.
func (d *Dir) stagingBuffer() *[]byte {
	if b, ok := d.staging.Get().(*[]byte); ok {
		return b
	}
	b := alignedBytes(stagingSize)
	return &b
}

// alignedBytes is n bytes at an address that is a multiple of maxAlign.
func alignedBytes(n int) []byte {
	b := make([]byte, n+maxAlign)
	skip := (maxAlign - int(uintptr(unsafe.Pointer(&b[0]))%maxAlign)) % maxAlign
	return b[skip : skip+n : skip+n]
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
