package imapsource

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// spool holds one message body that could not be streamed straight to the caller: in memory up to
// a threshold, in a temporary file beyond it. The size is known before the first byte (an IMAP
// literal announces it), so the choice is made once and memory never grows past the threshold.
type spool struct {
	mem  []byte
	file *os.File
	size int64
}

// spoolPrefix names the temporary files.
const spoolPrefix = "inkorg-spool-"

// newSpool copies exactly size bytes from r. A short read is an error (io.ErrUnexpectedEOF when r
// ends early); the spool is then already cleaned up.
func newSpool(r io.Reader, size, threshold int64, dir string) (*spool, error) {
	if size < 0 {
		return nil, fmt.Errorf("imapsource: negative literal size %d", size)
	}
	if size <= threshold {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // nothing at all came of a non-empty body
			}
			return nil, err
		}
		return &spool{mem: buf, size: size}, nil
	}
	f, err := os.CreateTemp(dir, spoolPrefix+"*")
	if err != nil {
		return nil, &spoolError{err}
	}
	s := &spool{file: f, size: size}
	n, err := io.Copy(spoolWriter{f}, io.LimitReader(r, size))
	if err == nil && n < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		s.close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.close()
		return nil, &spoolError{err}
	}
	return s, nil
}

// reader returns the body from its start; one reader per spool.
func (s *spool) reader() io.Reader {
	if s.file != nil {
		return s.file
	}
	return bytes.NewReader(s.mem)
}

// onDisk reports whether the body went to a file.
func (s *spool) onDisk() bool { return s.file != nil }

// close releases memory and removes the file.
func (s *spool) close() {
	if s == nil {
		return
	}
	s.mem = nil
	if s.file != nil {
		name := s.file.Name()
		s.file.Close()
		os.Remove(name)
		s.file = nil
	}
}

// spoolWriter marks write errors as the spool's own.
type spoolWriter struct{ f *os.File }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = &spoolError{err}
	}
	return n, err
}

// spoolError is a local failure to write the temporary file (disk full, SpoolDir missing): unlike a
// read error, it is not the server's fault.
type spoolError struct{ err error }

func (e *spoolError) Error() string { return "imapsource: spool: " + e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }
