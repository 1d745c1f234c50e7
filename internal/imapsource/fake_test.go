package imapsource

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"inkorg/internal/emulator/certs"
)

// fakeServer is a scripted IMAP server for what the emulator cannot show: a server without MOVE,
// UIDPLUS or IDLE, one that sends the UID (or RFC822.SIZE and INTERNALDATE) after the body, one
// with "." as hierarchy delimiter, and a connection cut in the middle of a literal. It speaks just
// the commands this package sends, the way go-imap's client writes them.
type fakeServer struct {
	t     testing.TB
	ln    net.Listener
	ca    *certs.Authority
	caps  string // after LOGIN
	order string // "uid-first", "uid-last" or "meta-last"
	delim string
	// cutUID: the FETCH response of this UID stops halfway through its body and the connection
	// closes.
	cutUID uint32

	mu       sync.Mutex
	folders  map[string][]*fakeMsg
	uidNext  map[string]uint32
	commands []string
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
}

type fakeMsg struct {
	uid     uint32
	body    []byte
	deleted bool
}

func startFake(t testing.TB, caps, order, delim string) *fakeServer {
	t.Helper()
	ca, err := certs.New(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.IMAPConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, ln: ln, ca: ca, caps: caps, order: order, delim: delim,
		folders: map[string][]*fakeMsg{"INBOX": nil}, uidNext: map[string]uint32{"INBOX": 1}, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			(&fakeSession{s: s, c: c, w: bufio.NewWriter(c)}).serve()
		}()
	}
}

func (s *fakeServer) deliver(folder string, body []byte) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	uid := s.uidNext[folder]
	s.uidNext[folder]++
	s.folders[folder] = append(s.folders[folder], &fakeMsg{uid: uid, body: body})
	return uid
}

func (s *fakeServer) uids(folder string) []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []uint32
	for _, m := range s.folders[folder] {
		out = append(out, m.uid)
	}
	return out
}

func (s *fakeServer) sawCommand(prefix string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.commands {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func (s *fakeServer) config(t testing.TB) Config {
	return Config{Addr: s.ln.Addr().String(), TLSConfig: s.ca.ClientConfig(), Timeout: 5 * time.Second, SpoolDir: t.TempDir(), SizeAndDate: true}
}

// connect logs in and selects INBOX.
func (s *fakeServer) connect(t testing.TB, edit func(*Config)) *Conn {
	t.Helper()
	cfg := s.config(t)
	if edit != nil {
		edit(&cfg)
	}
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("user", "pass"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	return c
}

type fakeSession struct {
	s     *fakeServer
	c     net.Conn
	w     *bufio.Writer
	sel   string
	known int // messages announced to this session
}

func (f *fakeSession) printf(format string, args ...any) { fmt.Fprintf(f.w, format+"\r\n", args...) }

func (f *fakeSession) serve() {
	r := bufio.NewReader(f.c)
	f.printf("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready")
	f.w.Flush()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		f.s.mu.Lock()
		f.s.commands = append(f.s.commands, rest)
		f.s.mu.Unlock()
		args := tokens(rest)
		if len(args) == 0 {
			f.printf("%s BAD empty", tag)
			f.w.Flush()
			continue
		}
		cmd := strings.ToUpper(args[0])
		if cmd == "UID" && len(args) > 1 {
			cmd += " " + strings.ToUpper(args[1])
			args = args[1:]
		}
		if !f.handle(tag, cmd, args[1:]) {
			f.w.Flush()
			return
		}
		f.w.Flush()
	}
}

// tokens splits a command line into atoms, quoted strings (unquoted) and parenthesised lists
// (kept whole).
func tokens(s string) []string {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		switch s[0] {
		case '"':
			end := strings.IndexByte(s[1:], '"')
			out = append(out, s[1:end+1])
			s = s[end+2:]
		case '(':
			end := strings.IndexByte(s, ')')
			out = append(out, s[:end+1])
			s = s[end+1:]
		default:
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			out = append(out, s[:end])
			s = s[end:]
		}
	}
	return out
}

// uidSet parses "1:3,5,7:*" against the folder's highest UID.
func uidSet(s string, max uint32) func(uint32) bool {
	type rng struct{ a, b uint32 }
	var rs []rng
	num := func(x string) uint32 {
		if x == "*" {
			return max
		}
		n, _ := strconv.ParseUint(x, 10, 32)
		return uint32(n)
	}
	for _, part := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(part, ":")
		r := rng{num(a), num(a)}
		if ok {
			r.b = num(b)
		}
		if r.a > r.b {
			r.a, r.b = r.b, r.a
		}
		rs = append(rs, r)
	}
	return func(u uint32) bool {
		for _, r := range rs {
			if u >= r.a && u <= r.b {
				return true
			}
		}
		return false
	}
}

func (f *fakeSession) maxUID() uint32 {
	msgs := f.s.folders[f.sel]
	if len(msgs) == 0 {
		return 0
	}
	return msgs[len(msgs)-1].uid
}

// announce sends EXISTS when the selected folder grew.
func (f *fakeSession) announce() {
	if n := len(f.s.folders[f.sel]); f.sel != "" && n > f.known {
		f.printf("* %d EXISTS", n)
		f.known = n
	}
}

func (f *fakeSession) handle(tag, cmd string, args []string) bool {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cmd {
	case "CAPABILITY":
		f.printf("* CAPABILITY %s", s.caps)
	case "LOGIN":
		f.printf("%s OK [CAPABILITY %s] LOGIN completed", tag, s.caps)
		return true
	case "LOGOUT":
		f.printf("* BYE bye")
		f.printf("%s OK LOGOUT completed", tag)
		return false
	case "NOOP":
		f.announce()
	case "SELECT":
		msgs, ok := s.folders[args[0]]
		if !ok {
			f.printf("%s NO no such folder", tag)
			return true
		}
		f.sel, f.known = args[0], len(msgs)
		f.printf("* %d EXISTS", len(msgs))
		f.printf("* OK [UIDVALIDITY 7] ok")
		f.printf("* OK [UIDNEXT %d] ok", s.uidNext[args[0]])
		f.printf("%s OK [READ-WRITE] SELECT completed", tag)
		return true
	case "LIST":
		if args[1] == "" {
			f.printf(`* LIST (\Noselect) "%s" ""`, s.delim)
		} else if _, ok := s.folders[args[1]]; ok {
			f.printf(`* LIST () "%s" "%s"`, s.delim, args[1])
		}
	case "CREATE":
		name := args[0]
		if _, ok := s.folders[name]; ok {
			f.printf("%s NO [ALREADYEXISTS] Mailbox already exists", tag)
			return true
		}
		if i := strings.LastIndex(name, s.delim); i > 0 {
			if _, ok := s.folders[name[:i]]; !ok {
				f.printf("%s NO [NONEXISTENT] parent missing", tag)
				return true
			}
		}
		s.folders[name], s.uidNext[name] = nil, 1
	case "UID SEARCH":
		in := uidSet(args[1], f.maxUID())
		deleted := len(args) > 2 && strings.EqualFold(args[2], "DELETED")
		var out []string
		for _, m := range s.folders[f.sel][:f.known] {
			if in(m.uid) && (!deleted || m.deleted) {
				out = append(out, strconv.Itoa(int(m.uid)))
			}
		}
		f.printf("* SEARCH %s", strings.Join(out, " "))
	case "UID FETCH":
		in := uidSet(args[0], f.maxUID())
		meta := len(args) > 1 && strings.Contains(strings.ToUpper(args[1]), "RFC822.SIZE")
		for i, m := range s.folders[f.sel][:f.known] {
			if !in(m.uid) {
				continue
			}
			if !f.writeFetch(i+1, m, meta) {
				return false
			}
		}
	case "UID STORE":
		in := uidSet(args[0], f.maxUID())
		for _, m := range s.folders[f.sel] {
			if in(m.uid) {
				m.deleted = true
			}
		}
	case "UID COPY", "UID MOVE":
		in := uidSet(args[0], f.maxUID())
		dest, ok := s.folders[args[1]]
		if !ok {
			f.printf("%s NO [TRYCREATE] no such folder", tag)
			return true
		}
		var keep []*fakeMsg
		var src, dst []string
		for i := len(s.folders[f.sel]) - 1; i >= 0; i-- {
			m := s.folders[f.sel][i]
			if !in(m.uid) {
				continue
			}
			if cmd == "UID MOVE" {
				f.printf("* %d EXPUNGE", i+1)
				f.known--
			}
		}
		for _, m := range s.folders[f.sel] {
			if !in(m.uid) {
				keep = append(keep, m)
				continue
			}
			if cmd == "UID COPY" {
				keep = append(keep, m)
			}
			uid := s.uidNext[args[1]]
			s.uidNext[args[1]]++
			dest = append(dest, &fakeMsg{uid: uid, body: m.body})
			src, dst = append(src, strconv.Itoa(int(m.uid))), append(dst, strconv.Itoa(int(uid)))
		}
		s.folders[f.sel], s.folders[args[1]] = keep, dest
		if len(src) > 0 {
			f.printf("%s OK [COPYUID 9 %s %s] done", tag, strings.Join(src, ","), strings.Join(dst, ","))
			return true
		}
	case "UID EXPUNGE":
		in := uidSet(args[0], f.maxUID())
		msgs := s.folders[f.sel]
		for i := len(msgs) - 1; i >= 0; i-- {
			if in(msgs[i].uid) && msgs[i].deleted {
				f.printf("* %d EXPUNGE", i+1)
				msgs = slices.Delete(msgs, i, i+1)
				f.known--
			}
		}
		s.folders[f.sel] = msgs
	case "EXPUNGE":
		f.printf("%s NO the tests forbid a plain EXPUNGE", tag)
		return true
	default:
		f.printf("%s BAD unknown command %s", tag, cmd)
		return true
	}
	f.announce()
	f.printf("%s OK %s completed", tag, cmd)
	return true
}

// writeFetch writes one FETCH response in the server's configured order, with RFC822.SIZE and
// INTERNALDATE when withMeta (the command asked for them).
func (f *fakeSession) writeFetch(seq int, m *fakeMsg, withMeta bool) bool {
	uid := fmt.Sprintf("UID %d", m.uid)
	var meta string
	if withMeta {
		meta = fmt.Sprintf("RFC822.SIZE %d INTERNALDATE \"02-Mar-2026 10:00:00 +0000\"", len(m.body))
	}
	before, after := strings.TrimSpace(uid+" "+meta), "" // uid-first
	switch f.s.order {
	case "uid-last":
		before, after = meta, uid
	case "meta-last":
		before, after = uid, meta
	}
	fmt.Fprintf(f.w, "* %d FETCH (%s {%d}\r\n", seq, strings.TrimSpace(before+" BODY[]"), len(m.body))
	if m.uid == f.s.cutUID {
		f.w.Write(m.body[:len(m.body)/2])
		f.w.Flush()
		return false
	}
	f.w.Write(m.body)
	fmt.Fprintf(f.w, "%s)\r\n", strings.TrimRight(" "+after, " "))
	return true
}
