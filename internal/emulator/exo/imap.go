package exo

// Implementation notes (IMAP front end).
//
// Follows microsoft-protocol-facts.md §3.1–§3.3 and the §7 checklist, and go-dependencies-and-style.md
// Part B (go-imap v2 beta.8 internals):
//
//   - Implicit TLS (port 993 in production). The listener gets its own tls.Config with NextProtos
//     ["imap"], because imapclient.DialTLS offers ALPN "imap" and a config shared with an HTTPS
//     server (h2, http/1.1) would fail the handshake (Part B §2.5, TLS gotcha).
//   - The not-authenticated state is ours, not go-imap's: go-imap hard-codes its greeting
//     ("IMAP server ready" with a CAPABILITY code), its pre-login capability list, the
//     "[AUTHENTICATIONFAILED]" code on NO, and reads AUTHENTICATE continuation lines through a 4 KiB
//     bufio.Reader.ReadLine ("SASL response too long", Part B §2.5). Our front end speaks Exchange's
//     exact words (§3.3): greeting "* OK The Microsoft Exchange IMAP4 service is ready. [base64 of the
//     server FQDN in UTF-16LE]", Exchange's pre-login CAPABILITY (AUTH=XOAUTH2 only), XOAUTH2 in the
//     SASL-IR and "+" continuation forms with lines up to 256 KiB, "OK AUTHENTICATE completed.",
//     "NO AUTHENTICATE failed.", "NO LOGIN failed." (basic auth off), and the "authenticated but not
//     connected" mode ("BAD User is authenticated but not connected." to every later command).
//   - After a successful AUTHENTICATE the connection is handed to go-imap's imapserver as a PREAUTH
//     connection (through an in-process listener); its PREAUTH greeting line is swallowed, so the
//     client sees one continuous session. From then on go-imap parses commands, and imapSession
//     (imapsession.go) serves the MailStore: SELECT/EXAMINE, LIST, STATUS, FETCH (BODY.PEEK[] leaves
//     \Seen alone), STORE, SEARCH, COPY, UID MOVE, EXPUNGE, IDLE (through go-imap's MailboxTracker),
//     NAMESPACE, APPEND, CREATE/DELETE/RENAME.
//   - Post-login CAPABILITY is go-imap's: IMAP4rev1 SASL-IR LITERAL- UNSELECT ENABLE IDLE UTF8=ACCEPT
//     NAMESPACE UIDPLUS MOVE CHILDREN LITERAL+ (close to Exchange's; ID is not served after login).
//   - Faults (faults.go): throttling uses the words quoted in field-notes.md #13 and public reports:
//     "BAD Request is throttled. Suggested Backoff Time: N milliseconds".

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"inkorg/internal/xoauth2"
)

// Exchange Online's IMAP words (microsoft-protocol-facts.md §3.3).
const (
	imapGreetingText  = "The Microsoft Exchange IMAP4 service is ready."
	imapPreAuthCaps   = "IMAP4 IMAP4rev1 AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
	imapAuthOK        = "OK AUTHENTICATE completed."
	imapAuthFailed    = "NO AUTHENTICATE failed."
	imapLoginFailed   = "NO LOGIN failed."
	imapNotConnected  = "BAD User is authenticated but not connected."
	imapInvalidState  = "BAD Command received in Invalid state."
	imapCommandError  = "BAD Command Error. 12"
	imapBye           = "* BYE Microsoft Exchange Server IMAP4 server signing off."
	maxIMAPLine       = 256 << 10 // longest pre-login command or SASL line we accept
	preAuthIdleTimout = 2 * time.Minute
)

// DefaultServerName is the FQDN the emulator's front ends announce (Exchange shows its own host).
const DefaultServerName = "EMU01MB0001.emulator.prod.outlook.com"

// IMAPConfig configures the IMAP front end.
type IMAPConfig struct {
	Store      *MailStore
	Authorizer Authorizer
	TLSConfig  *tls.Config // required: implicit TLS; cloned, NextProtos set to ["imap"]
	Logger     *slog.Logger
	Host       string // default 127.0.0.1
	Port       int    // 0: chosen by the kernel
	ServerName string // FQDN encoded in the greeting; default DefaultServerName
}

// IMAPServer is Exchange Online's IMAP4 front end (implicit TLS, XOAUTH2 only).
type IMAPServer struct {
	cfg    IMAPConfig
	log    *slog.Logger
	faults faultState

	ctx       context.Context
	cancel    context.CancelFunc
	ln        net.Listener
	handoff   *handoffListener
	imap      *imapserver.Server
	serveDone chan struct{}
	wg        sync.WaitGroup // accept loop, front ends, imapserver.Serve
	sessWG    sync.WaitGroup // go-imap sessions; Add only under mu while !closed

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // connections still in the front end
	closed bool
}

// NewIMAPServer validates cfg and returns a server; call Start.
func NewIMAPServer(cfg IMAPConfig) (*IMAPServer, error) {
	if cfg.Store == nil || cfg.Authorizer == nil || cfg.TLSConfig == nil {
		return nil, errors.New("exo: IMAP server needs a Store, an Authorizer and a TLSConfig")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ServerName == "" {
		cfg.ServerName = DefaultServerName
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tc := cfg.TLSConfig.Clone()
	tc.NextProtos = []string{"imap"}
	cfg.TLSConfig = tc
	return &IMAPServer{cfg: cfg, log: cfg.Logger.With("component", "exo-imap"), conns: make(map[net.Conn]struct{})}, nil
}

// Start listens on Host:Port and serves until Close or until ctx ends.
func (s *IMAPServer) Start(ctx context.Context) error {
	ln, err := tls.Listen("tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)), s.cfg.TLSConfig)
	if err != nil {
		return fmt.Errorf("exo: imap listen: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.ln = ln
	s.handoff = newHandoffListener(ln.Addr())
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapMove: {},
			imap.CapChildren: {}, imap.CapLiteralPlus: {},
		},
		Logger: printfLogger{s.log},
	})
	s.serveDone = make(chan struct{})
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		defer close(s.serveDone)
		if err := s.imap.Serve(s.handoff); err != nil {
			s.log.Debug("imapserver stopped", "err", err)
		}
	}()
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	go func() { defer s.wg.Done(); <-s.ctx.Done(); s.shutdown() }()
	s.log.Info("IMAP listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the listening address (host:port).
func (s *IMAPServer) Addr() string { return s.ln.Addr().String() }

// SetFaults replaces the injected faults; safe from any goroutine.
func (s *IMAPServer) SetFaults(f IMAPFaults) { s.faults.set(f) }

// Faults returns the faults in force (DropAfterFetch reads 0 once it has fired).
func (s *IMAPServer) Faults() IMAPFaults { return s.faults.get() }

// Close stops listening, closes every connection and waits for all goroutines.
func (s *IMAPServer) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	s.sessWG.Wait()
	return nil
}

func (s *IMAPServer) shutdown() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.handoff.Close()
	// Only after Serve has returned: go-imap's Close waits on a WaitGroup that Serve adds to outside
	// its lock, so closing while Serve starts is a data race inside go-imap.
	<-s.serveDone
	s.imap.Close() // closes the connections it serves; each session's Close marks sessWG done
}

func (s *IMAPServer) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *IMAPServer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("IMAP accept", "err", err)
			}
			return
		}
		if !s.track(c, true) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.frontEnd(c)
		}()
	}
}

func (s *IMAPServer) greeting() string {
	u := utf16.Encode([]rune(strings.ToUpper(s.cfg.ServerName)))
	b := make([]byte, 0, 2*len(u))
	for _, r := range u {
		b = append(b, byte(r), byte(r>>8))
	}
	return "* OK " + imapGreetingText + " [" + base64.StdEncoding.EncodeToString(b) + "]\r\n"
}

// frontEnd speaks Exchange's not-authenticated state on c, then hands c to go-imap or closes it.
func (s *IMAPServer) frontEnd(c net.Conn) {
	handedOff := false
	defer func() {
		s.track(c, false)
		if !handedOff {
			c.Close()
		}
	}()
	br := bufio.NewReaderSize(c, 16<<10)
	w := func(lines ...string) error {
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := io.WriteString(c, strings.Join(lines, ""))
		return err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := w(s.greeting()); err != nil {
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(preAuthIdleTimout))
		line, err := readLine(br, maxIMAPLine)
		if err != nil {
			return
		}
		s.faults.stall(s.ctx)
		tag, cmd, arg := splitCommand(line)
		if tag == "" {
			if w("* "+imapCommandError+"\r\n") != nil {
				return
			}
			continue
		}
		var werr error
		switch cmd {
		case "CAPABILITY":
			werr = w("* CAPABILITY "+imapPreAuthCaps+"\r\n", tag+" OK CAPABILITY completed.\r\n")
		case "NOOP":
			werr = w(tag + " OK NOOP completed.\r\n")
		case "ID":
			werr = w("* ID NIL\r\n", tag+" OK ID completed.\r\n")
		case "LOGOUT":
			w(imapBye+"\r\n", tag+" OK LOGOUT completed.\r\n")
			return
		case "LOGIN":
			werr = w(tag + " " + imapLoginFailed + "\r\n")
		case "AUTHENTICATE":
			p, denial, ok := s.authenticate(c, br, w, tag, arg)
			switch {
			case !ok:
				return
			case denial == nil:
				if w(tag+" "+imapAuthOK+"\r\n") != nil {
					return
				}
				c.SetDeadline(time.Time{})
				ac := &authConn{Conn: c, br: br, principal: p}
				if s.handoff.push(s.ctx, ac) {
					handedOff = true
				}
				return
			case denial.Kind == DenyNotConnected:
				if w(tag+" "+imapAuthOK+"\r\n") != nil {
					return
				}
				s.notConnected(br, w, c)
				return
			default:
				werr = w(tag + " " + imapAuthFailed + "\r\n")
			}
		case "SELECT", "EXAMINE", "LIST", "LSUB", "STATUS", "FETCH", "UID", "STORE", "SEARCH", "COPY", "MOVE",
			"EXPUNGE", "IDLE", "APPEND", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "NAMESPACE",
			"CLOSE", "UNSELECT", "CHECK", "STARTTLS", "ENABLE":
			werr = w(tag + " " + imapInvalidState + "\r\n")
		default:
			werr = w(tag + " " + imapCommandError + "\r\n")
		}
		if werr != nil {
			return
		}
	}
}

// authenticate runs one AUTHENTICATE exchange. ok is false when the connection must close; denial is
// nil when the client is in.
func (s *IMAPServer) authenticate(c net.Conn, br *bufio.Reader, w func(...string) error, tag, arg string) (Principal, *Denial, bool) {
	mech, ir, hasIR := strings.Cut(arg, " ")
	var p Principal
	var denial *Denial
	if !strings.EqualFold(mech, xoauth2.Mechanism) {
		return p, &Denial{Kind: DenyBadToken, Reason: "mechanism " + mech + " not offered"}, true
	}
	srv := xoauth2.NewServer(func(user, token string) error {
		if s.faults.refuseLogins() {
			denial = &Denial{Kind: DenyLoginRefused, Reason: "fault: refuse logins"}
			return denial
		}
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		defer cancel()
		var err error
		p, err = s.cfg.Authorizer.Authorize(ctx, ProtocolIMAP, user, token)
		if err != nil {
			if !errors.As(err, &denial) {
				s.log.Error("IMAP authorize", "mailbox", user, "err", err)
				denial = &Denial{Kind: DenyBadToken, Reason: "internal: " + err.Error()}
			}
			s.log.Info("IMAP authentication refused", "mailbox", user, "kind", denial.Kind, "reason", denial.Reason)
			return denial
		}
		if p.Mailbox == "" {
			p.Mailbox = user
		}
		s.log.Info("IMAP authenticated", "mailbox", p.Mailbox, "appid", p.AppID, "apponly", p.AppOnly)
		return nil
	})
	var resp []byte
	if hasIR {
		var err error
		if resp, err = decodeSASL(ir); err != nil {
			return p, &Denial{Kind: DenyBadToken, Reason: "initial response is not base64"}, true
		}
	}
	for {
		_, done, err := srv.Next(resp)
		if done {
			return p, nil, true
		}
		if err != nil {
			if denial == nil {
				denial = &Denial{Kind: DenyBadToken, Reason: err.Error()}
			}
			return p, denial, true
		}
		if w("+ \r\n") != nil {
			return p, nil, false
		}
		c.SetReadDeadline(time.Now().Add(preAuthIdleTimout))
		line, err := readLine(br, maxIMAPLine)
		if err != nil {
			return p, nil, false
		}
		if line == "*" {
			return p, &Denial{Kind: DenyBadToken, Reason: "cancelled by the client"}, true
		}
		if resp, err = decodeSASL(line); err != nil {
			return p, &Denial{Kind: DenyBadToken, Reason: "response is not base64"}, true
		}
	}
}

// notConnected answers every command like Exchange does for an identity without mailbox access.
func (s *IMAPServer) notConnected(br *bufio.Reader, w func(...string) error, c net.Conn) {
	for {
		c.SetReadDeadline(time.Now().Add(preAuthIdleTimout))
		line, err := readLine(br, maxIMAPLine)
		if err != nil {
			return
		}
		tag, cmd, _ := splitCommand(line)
		if cmd == "LOGOUT" {
			w(imapBye+"\r\n", tag+" OK LOGOUT completed.\r\n")
			return
		}
		if tag == "" {
			tag = "*"
		}
		if w(tag+" "+imapNotConnected+"\r\n") != nil {
			return
		}
	}
}

func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// splitCommand splits "tag COMMAND args"; tag is "" when the line has no command.
func splitCommand(line string) (tag, cmd, arg string) {
	tag, rest, ok := strings.Cut(line, " ")
	if !ok || tag == "" || rest == "" {
		return "", "", ""
	}
	cmd, arg, _ = strings.Cut(rest, " ")
	return tag, strings.ToUpper(cmd), arg
}

var errLineTooLong = errors.New("exo: line too long")

// readLine reads a CRLF- (or LF-) terminated line of at most max bytes, without the terminator.
func readLine(br *bufio.Reader, max int) (string, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > max+2 {
			return "", errLineTooLong
		}
		buf = append(buf, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	return strings.TrimRight(string(buf), "\r\n"), nil
}

// authConn is a connection that passed our AUTHENTICATE, handed to go-imap. Reads drain the front
// end's buffered reader first; the first line go-imap writes (its PREAUTH greeting) is swallowed.
//
// go-imap's server flushes after every response line. While corked (see cork), writes are held
// back and go out together: the updates of one poll (the EXPUNGE responses after a MOVE of
// thousands of messages), or the lines of a FETCH without bodies, leave in a few TLS records and
// system calls, as a real server's buffered output does, instead of one of each per line.
type authConn struct {
	net.Conn
	br        *bufio.Reader
	principal Principal
	greeted   bool

	mu     sync.Mutex
	corked bool
	held   []byte
}

// corkFlushAt is how much a corked connection holds before it writes anyway (a TLS record's worth).
const corkFlushAt = 16 << 10

// cork holds writes back until uncork.
func (c *authConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// whileCorked runs f with the writes held back, and returns its error or else uncork's.
func (c *authConn) whileCorked(f func() error) error {
	c.cork()
	err := f()
	if uerr := c.uncork(); err == nil {
		err = uerr
	}
	return err
}

// uncork writes what was held back and lets writes through again.
func (c *authConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

func (c *authConn) flushLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	return err
}

func (c *authConn) Read(p []byte) (int, error) { return c.br.Read(p) }

func (c *authConn) Write(p []byte) (int, error) {
	if c.greeted {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.corked {
			if err := c.flushLocked(); err != nil {
				return 0, err
			}
			return c.Conn.Write(p)
		}
		c.held = append(c.held, p...)
		if len(c.held) >= corkFlushAt {
			if err := c.flushLocked(); err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
	i := strings.IndexByte(string(p), '\n')
	if i < 0 {
		return len(p), nil
	}
	c.greeted = true
	if i+1 == len(p) {
		return len(p), nil
	}
	n, err := c.Conn.Write(p[i+1:])
	return i + 1 + n, err
}

// handoffListener feeds authenticated connections to imapserver.Serve.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) push(ctx context.Context, c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
	case <-ctx.Done():
	}
	return false
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// printfLogger adapts slog for go-imap's Printf logger.
type printfLogger struct{ l *slog.Logger }

func (p printfLogger) Printf(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }
