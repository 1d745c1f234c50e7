package exo

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
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
