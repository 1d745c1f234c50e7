package exo

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"inkorg/internal/xoauth2"
)

// recConn records each Write it gets.
type recConn struct {
	net.Conn
	writes [][]byte
	err    error
}

func (c *recConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

// TestCorkedWrites: while corked, go-imap's one-line flushes are held back and leave together at
// uncork (or once a TLS record's worth is held), in order; uncorked writes go straight through; a
// write error surfaces at uncork.
func TestCorkedWrites(t *testing.T) {
	rec := &recConn{}
	c := &authConn{Conn: rec, greeted: true}
	write := func(s string) {
		t.Helper()
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	write("* 1 EXISTS\r\n")
	if len(rec.writes) != 1 {
		t.Fatalf("uncorked: %d writes, want 1", len(rec.writes))
	}
	c.cork()
	for i := 0; i < 3; i++ {
		write("* 1 EXPUNGE\r\n")
	}
	if len(rec.writes) != 1 {
		t.Fatalf("corked: %d writes reached the connection, want none", len(rec.writes)-1)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 2 || string(rec.writes[1]) != strings.Repeat("* 1 EXPUNGE\r\n", 3) {
		t.Fatalf("after uncork: %q", rec.writes[1:])
	}

	// Thousands of lines: written a record's worth at a time, nothing lost or reordered.
	rec.writes = nil
	c.cork()
	var want strings.Builder
	for i := 1; i <= 5000; i++ {
		line := "* " + strings.Repeat("9", i%7+1) + " EXPUNGE\r\n"
		want.WriteString(line)
		write(line)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	got := bytes.Join(rec.writes, nil)
	if string(got) != want.String() {
		t.Fatal("corked lines arrived changed")
	}
	if n := len(rec.writes); n < 3 || n > want.Len()/corkFlushAt+1 {
		t.Fatalf("%d writes for %d bytes, want about one per %d bytes", n, want.Len(), corkFlushAt)
	}

	// A broken connection: the error comes back at uncork.
	rec.err = errors.New("broken pipe")
	c.cork()
	write("* 2 EXPUNGE\r\n")
	if err := c.uncork(); err == nil {
		t.Fatal("uncork on a broken connection: no error")
	}
}

// recordCounter counts the TLS records read through it (it follows the 5-byte record headers in the
// raw stream).
type recordCounter struct {
	net.Conn
	mu      sync.Mutex
	records int
	hdr     []byte // the part of a record header read so far
	skip    int    // the bytes of the current record's body still to come
}

func (c *recordCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip, b = c.skip-k, b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr, b = append(c.hdr, b[:k]...), b[k:]
		if len(c.hdr) == 5 {
			c.records++
			c.skip, c.hdr = int(c.hdr[3])<<8|int(c.hdr[4]), c.hdr[:0]
		}
	}
	return n, err
}

func (c *recordCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records
}

// TestFetchWithoutBodiesCorked: a FETCH of flags or sizes only — a short line per message — leaves
// the server in a few TLS records, not one a message; a FETCH of bodies still writes one a message.
func TestFetchWithoutBodiesCorked(t *testing.T) {
	e := newEnv(t)
	const n = 500
	e.deliverN(t, n, 300)
	raw, err := net.Dial("tcp", e.imap.Addr())
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordCounter{Conn: raw}
	c := imapclient.New(tls.Client(rc, e.clientTLS), nil)
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(xoauth2.NewClient(alice, "good-token")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var all imap.UIDSet
	all.AddRange(1, 0)
	fetch := func(o *imap.FetchOptions) (msgs, records int) {
		t.Helper()
		before := rc.count()
		got, err := c.Fetch(all, o).Collect()
		if err != nil {
			t.Fatal(err)
		}
		return len(got), rc.count() - before
	}
	if m, r := fetch(&imap.FetchOptions{UID: true, RFC822Size: true, Flags: true}); m != n || r > 10 {
		t.Errorf("sizes and flags of %d messages: %d TLS records, want a few", m, r)
	}
	if m, r := fetch(&imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}); m != n || r < n {
		t.Errorf("bodies of %d messages: %d TLS records, want one a message at least", m, r)
	}
}
