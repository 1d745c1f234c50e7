package exo

// Implementation notes (SMTP submission front end).
//
// Follows microsoft-protocol-facts.md §3.3 (SMTP doc sample and observed session), §3.5 and the §7
// checklist, and go-dependencies-and-style.md §1.5. The server is written on net/textproto rather than
// go-smtp's server, because go-smtp hard-codes its reply texts ("Service Ready", "Roger, accepting
// mail", "235 2.0.0 Authentication succeeded", "354 Go ahead", its EHLO list) and Exchange's are
// quoted byte for byte in §3.3; go-smtp stays the client in the tests. Its gotcha (MaxLineLength 2000
// is too short for "AUTH XOAUTH2 <multi-KB token>") does not apply: command lines may be 64 KiB.
//
//   - Greeting "220 <host> Microsoft ESMTP MAIL Service ready at <date> [<id>]".
//   - EHLO before TLS: SIZE 157286400, PIPELINING, DSN, ENHANCEDSTATUSCODES, STARTTLS, 8BITMIME,
//     BINARYMIME, CHUNKING, SMTPUTF8 (no AUTH before TLS); after STARTTLS ("220 2.0.0 SMTP server
//     ready") STARTTLS is replaced by "AUTH LOGIN XOAUTH2".
//   - AUTH XOAUTH2 inline or after an empty "334 "; "235 2.7.0 Authentication successful";
//     DenyProtocolDisabled → "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is
//     disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [...]";
//     every other denial → "535 5.7.3 Authentication unsuccessful [...]". AUTH LOGIN (basic) →
//     "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [...]". AUTH before
//     TLS → "504 5.7.4 Unrecognized authentication type [...]".
//   - MAIL FROM before AUTH → "530 5.7.57 Client not authenticated to send mail. [...]" (observed, see
//     simonrob/email-oauth2-proxy#295); "250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 Start
//     mail input; end with <CRLF>.<CRLF>".
//   - Send As is checked at the end of DATA (or the last BDAT) against the From header with
//     Authorizer.CanSendAs: "554 5.2.252 SendAsDenied; <who> not allowed to send as <from>;
//     STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process
//     message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. ..."
//     Accepted mail goes into the INBOX of every recipient that has a mailbox in the store.
//   - The bracketed suffix Exchange appends ("[host timestamp id]") is reproduced with the emulator's
//     host name, the clock and a random id.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"inkorg/internal/xoauth2"
)

const (
	smtpMaxLine    = 64 << 10
	smtpMaxMessage = 157286400 // Exchange Online's advertised SIZE
	smtpIdle       = 10 * time.Minute

	smtpAuthDisabled = "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
)

// SMTPConfig configures the SMTP submission front end.
type SMTPConfig struct {
	Store      *MailStore
	Authorizer Authorizer
	TLSConfig  *tls.Config // required, for STARTTLS; cloned with NextProtos nil
	Logger     *slog.Logger
	Host       string           // default 127.0.0.1
	Port       int              // 0: chosen by the kernel
	Domain     string           // the server's host name in replies; default DefaultServerName
	Clock      func() time.Time // timestamps in replies; default time.Now
}

// SMTPServer is Exchange Online's client submission endpoint (smtp.office365.com:587).
type SMTPServer struct {
	cfg SMTPConfig
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	faults SMTPFaults
}

// SMTPFaults are the failures the SMTP front end injects on demand, each once (the next message it
// meets fires it and disarms it). The zero value injects nothing.
type SMTPFaults struct {
	// DropAtMail closes the connection when MAIL FROM arrives, without a reply: the message was never
	// handed over.
	DropAtMail bool
	// DropAfterData accepts and delivers the next message, then closes the connection instead of
	// sending the 250: the client cannot know whether it was accepted.
	DropAfterData bool
}

// SetFaults arms the faults (replacing those armed).
func (s *SMTPServer) SetFaults(f SMTPFaults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Faults returns the faults still armed.
func (s *SMTPServer) Faults() SMTPFaults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// fire disarms and reports the fault that pick selects.
func (s *SMTPServer) fire(pick func(*SMTPFaults) *bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	armed := pick(&s.faults)
	fired := *armed
	*armed = false
	return fired
}

// NewSMTPServer validates cfg and returns a server; call Start.
func NewSMTPServer(cfg SMTPConfig) (*SMTPServer, error) {
	if cfg.Store == nil || cfg.Authorizer == nil || cfg.TLSConfig == nil {
		return nil, errors.New("exo: SMTP server needs a Store, an Authorizer and a TLSConfig")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultServerName
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	tc := cfg.TLSConfig.Clone()
	tc.NextProtos = nil
	cfg.TLSConfig = tc
	return &SMTPServer{cfg: cfg, log: cfg.Logger.With("component", "exo-smtp"), conns: make(map[net.Conn]struct{})}, nil
}

// Start listens on Host:Port and serves until Close or until ctx ends.
func (s *SMTPServer) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)))
	if err != nil {
		return fmt.Errorf("exo: smtp listen: %w", err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		ln.Close()
	}()
	s.log.Info("SMTP listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the listening address (host:port).
func (s *SMTPServer) Addr() string { return s.ln.Addr().String() }

// Close stops listening, closes every connection and waits for all goroutines.
func (s *SMTPServer) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *SMTPServer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("SMTP accept", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sc := &smtpConn{srv: s, conn: c}
			sc.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			sc.conn.Close()
		}()
	}
}

// smtpConn is one client connection.
type smtpConn struct {
	srv  *SMTPServer
	conn net.Conn // the TLS conn after STARTTLS
	br   *bufio.Reader
	tls  bool

	helo      bool
	principal *Principal
	from      string
	rcpts     []string
	bdat      *bytes.Buffer
}

// diag is Exchange's bracketed suffix: [host timestamp id].
func (c *smtpConn) diag() string {
	var id [8]byte
	rand.Read(id[:])
	return fmt.Sprintf("[%s %s %s]", c.srv.cfg.Domain, c.srv.cfg.Clock().UTC().Format("2006-01-02T15:04:05.000Z"), strings.ToUpper(hex.EncodeToString(id[:])))
}

func (c *smtpConn) reply(lines ...string) error {
	c.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	_, err := io.WriteString(c.conn, b.String())
	return err
}

func (c *smtpConn) resetTxn() { c.from, c.rcpts, c.bdat = "", nil, nil }

func (c *smtpConn) serve() {
	c.br = bufio.NewReaderSize(c.conn, 16<<10)
	id := make([]byte, 8)
	rand.Read(id)
	if c.reply(fmt.Sprintf("220 %s Microsoft ESMTP MAIL Service ready at %s [%s]", c.srv.cfg.Domain,
		c.srv.cfg.Clock().UTC().Format("Mon, 2 Jan 2006 15:04:05 -0700"), strings.ToUpper(hex.EncodeToString(id)))) != nil {
		return
	}
	for {
		c.conn.SetReadDeadline(time.Now().Add(smtpIdle))
		line, err := readLine(c.br, smtpMaxLine)
		if errors.Is(err, errLineTooLong) {
			c.reply("500 5.5.6 Line too long " + c.diag())
			return
		}
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		var rerr error
		switch verb {
		case "EHLO", "HELO":
			rerr = c.hello(verb, arg)
		case "STARTTLS":
			if c.tls {
				rerr = c.reply("503 5.5.2 Send hello first " + c.diag())
				break
			}
			if err := c.reply("220 2.0.0 SMTP server ready"); err != nil {
				return
			}
			tc := tls.Server(c.conn, c.srv.cfg.TLSConfig)
			c.conn.SetDeadline(time.Now().Add(30 * time.Second))
			if err := tc.Handshake(); err != nil {
				return
			}
			c.conn.SetDeadline(time.Time{})
			c.conn, c.tls, c.helo, c.principal = tc, true, false, nil
			c.br = bufio.NewReaderSize(tc, 16<<10)
			c.resetTxn()
		case "AUTH":
			rerr = c.auth(arg)
		case "MAIL":
			if c.srv.fire(func(f *SMTPFaults) *bool { return &f.DropAtMail }) {
				c.srv.log.Info("SMTP fault: connection dropped at MAIL")
				return
			}
			rerr = c.mail(arg)
		case "RCPT":
			rerr = c.rcpt(arg)
		case "DATA":
			rerr = c.data()
		case "BDAT":
			rerr = c.bdatCmd(arg)
		case "RSET":
			c.resetTxn()
			rerr = c.reply("250 2.0.0 Resetting")
		case "NOOP":
			rerr = c.reply("250 2.0.0 OK")
		case "QUIT":
			c.reply("221 2.0.0 Service closing transmission channel")
			return
		case "VRFY":
			rerr = c.reply("252 2.1.5 Cannot VRFY user, but will take message for this user and attempt delivery " + c.diag())
		default:
			rerr = c.reply("500 5.3.3 Unrecognized command '" + verb + "' " + c.diag())
		}
		if rerr != nil {
			return
		}
	}
}

func (c *smtpConn) hello(verb, arg string) error {
	if strings.TrimSpace(arg) == "" {
		return c.reply("501 5.5.4 Invalid domain name " + c.diag())
	}
	c.helo = true
	c.resetTxn()
	host, _, _ := net.SplitHostPort(c.conn.RemoteAddr().String())
	first := fmt.Sprintf("%s Hello [%s]", c.srv.cfg.Domain, host)
	if verb == "HELO" {
		return c.reply("250 " + first)
	}
	caps := []string{first, "SIZE " + strconv.Itoa(smtpMaxMessage), "PIPELINING", "DSN", "ENHANCEDSTATUSCODES"}
	if c.tls {
		caps = append(caps, "AUTH LOGIN XOAUTH2")
	} else {
		caps = append(caps, "STARTTLS")
	}
	caps = append(caps, "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8")
	lines := make([]string, len(caps))
	for i, cp := range caps {
		sep := "-"
		if i == len(caps)-1 {
			sep = " "
		}
		lines[i] = "250" + sep + cp
	}
	return c.reply(lines...)
}

// readAuthLine reads one SASL response line; ok is false when the client cancelled ("*").
func (c *smtpConn) readAuthLine() (resp []byte, ok bool, err error) {
	c.conn.SetReadDeadline(time.Now().Add(smtpIdle))
	line, err := readLine(c.br, smtpMaxLine)
	if err != nil {
		return nil, false, err
	}
	if line == "*" {
		return nil, false, nil
	}
	resp, derr := decodeSASL(line)
	if derr != nil {
		return nil, true, base64Error{}
	}
	return resp, true, nil
}

func (c *smtpConn) auth(arg string) error {
	switch {
	case !c.helo:
		return c.reply("503 5.5.2 Send hello first " + c.diag())
	case c.principal != nil:
		return c.reply("503 5.5.2 Already authenticated " + c.diag())
	}
	mech, ir, hasIR := strings.Cut(strings.TrimSpace(arg), " ")
	mech = strings.ToUpper(mech)
	if !c.tls || (mech != xoauth2.Mechanism && mech != "LOGIN") {
		return c.reply("504 5.7.4 Unrecognized authentication type " + c.diag())
	}
	if mech == "LOGIN" {
		// Basic auth is off: take the user name and password, then refuse.
		for _, prompt := range []string{"334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"} {
			if hasIR && prompt == "334 VXNlcm5hbWU6" {
				continue
			}
			if err := c.reply(prompt); err != nil {
				return err
			}
			if _, ok, err := c.readAuthLine(); err != nil || !ok {
				if err != nil && !errors.Is(err, base64Error{}) {
					return err
				}
				return c.reply("501 5.0.0 Authentication cancelled " + c.diag())
			}
		}
		return c.reply("535 5.7.139 Authentication unsuccessful, basic authentication is disabled. " + c.diag())
	}

	var denial *Denial
	var p Principal
	srv := xoauth2.NewServer(func(user, token string) error {
		ctx, cancel := context.WithTimeout(c.srv.ctx, 30*time.Second)
		defer cancel()
		var err error
		p, err = c.srv.cfg.Authorizer.Authorize(ctx, ProtocolSMTP, user, token)
		if err != nil {
			if !errors.As(err, &denial) {
				c.srv.log.Error("SMTP authorize", "mailbox", user, "err", err)
				denial = &Denial{Kind: DenyBadToken, Reason: "internal: " + err.Error()}
			}
			return denial
		}
		if p.Mailbox == "" {
			p.Mailbox = user
		}
		return nil
	})
	var resp []byte
	if hasIR {
		var err error
		if resp, err = decodeSASL(ir); err != nil {
			return c.reply("501 5.5.2 Cannot Decode response " + c.diag())
		}
	}
	for {
		_, done, err := srv.Next(resp)
		if done {
			c.principal = &p
			c.srv.log.Info("SMTP authenticated", "mailbox", p.Mailbox, "appid", p.AppID, "apponly", p.AppOnly)
			return c.reply("235 2.7.0 Authentication successful")
		}
		if err != nil {
			if denial == nil {
				denial = &Denial{Kind: DenyBadToken, Reason: err.Error()}
			}
			c.srv.log.Info("SMTP authentication refused", "kind", denial.Kind, "reason", denial.Reason)
			if denial.Kind == DenyProtocolDisabled {
				return c.reply("535 5.7.139 " + smtpAuthDisabled + " " + c.diag())
			}
			return c.reply("535 5.7.3 Authentication unsuccessful " + c.diag())
		}
		if err := c.reply("334 "); err != nil {
			return err
		}
		r, ok, err := c.readAuthLine()
		if err != nil {
			if errors.Is(err, base64Error{}) {
				return c.reply("501 5.5.2 Cannot Decode response " + c.diag())
			}
			return err
		}
		if !ok {
			return c.reply("501 5.0.0 Authentication cancelled " + c.diag())
		}
		resp = r
	}
}

// base64Error marks a SASL line that is not base64 (decodeSASL's error type varies).
type base64Error struct{}

func (base64Error) Error() string { return "not base64" }

// parsePath extracts the address from "FROM:<a@b> PARAMS" / "TO:<a@b>".
func parsePath(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", false
	}
	return rest[1:end], true
}

func (c *smtpConn) mail(arg string) error {
	switch {
	case !c.helo:
		return c.reply("503 5.5.2 Send hello first " + c.diag())
	case c.principal == nil:
		return c.reply("530 5.7.57 Client not authenticated to send mail. " + c.diag())
	case c.from != "":
		return c.reply("503 5.5.2 Sender already specified " + c.diag())
	}
	from, ok := parsePath(arg, "FROM:")
	if !ok {
		return c.reply("501 5.1.7 Invalid address " + c.diag())
	}
	if from == "" {
		from = "<>"
	}
	c.from = from
	return c.reply("250 2.1.0 Sender OK")
}

func (c *smtpConn) rcpt(arg string) error {
	if c.from == "" {
		return c.reply("503 5.5.2 Need mail command " + c.diag())
	}
	to, ok := parsePath(arg, "TO:")
	if !ok || to == "" {
		return c.reply("501 5.1.3 Invalid address " + c.diag())
	}
	c.rcpts = append(c.rcpts, to)
	return c.reply("250 2.1.5 Recipient OK")
}

func (c *smtpConn) data() error {
	if c.from == "" {
		return c.reply("503 5.5.2 Need mail command " + c.diag())
	}
	if len(c.rcpts) == 0 {
		return c.reply("503 5.5.2 Need rcpt command " + c.diag())
	}
	if err := c.reply("354 Start mail input; end with <CRLF>.<CRLF>"); err != nil {
		return err
	}
	c.conn.SetReadDeadline(time.Now().Add(smtpIdle))
	raw, tooBig, err := readDotData(c.br, smtpMaxMessage)
	if err != nil {
		return err
	}
	if tooBig {
		c.resetTxn()
		return c.reply("552 5.3.4 Message size exceeds fixed maximum message size " + c.diag())
	}
	return c.finish(raw)
}

// readDotData reads DATA up to the "." line, undoing dot-stuffing and keeping the line endings as
// sent (net/textproto's DotReader would turn CRLF into LF). Past max bytes it keeps reading but drops.
func readDotData(br *bufio.Reader, max int) (raw []byte, tooBig bool, err error) {
	var buf bytes.Buffer
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > smtpMaxLine*16 { // a line this long is garbage; stop buffering it
				buf.Write(line)
				line = line[:0]
				tooBig = true
			}
			continue
		}
		if err != nil {
			return nil, false, err
		}
		if string(line) == ".\r\n" || string(line) == ".\n" {
			return buf.Bytes(), tooBig || buf.Len() > max, nil
		}
		l := line
		if l[0] == '.' {
			l = l[1:]
		}
		if buf.Len()+len(l) <= max {
			buf.Write(l)
		} else {
			tooBig = true
		}
		line = line[:0]
	}
}

// bdatCmd handles CHUNKING: "BDAT <size> [LAST]".
func (c *smtpConn) bdatCmd(arg string) error {
	f := strings.Fields(arg)
	n, err := strconv.Atoi(f0(f))
	if err != nil || n < 0 || len(f) > 2 || (len(f) == 2 && !strings.EqualFold(f[1], "LAST")) {
		return c.reply("501 5.5.4 Invalid arguments " + c.diag())
	}
	c.conn.SetReadDeadline(time.Now().Add(smtpIdle))
	chunk := make([]byte, n)
	if _, err := io.ReadFull(c.br, chunk); err != nil {
		return err
	}
	switch {
	case c.from == "":
		return c.reply("503 5.5.2 Need mail command " + c.diag())
	case len(c.rcpts) == 0:
		return c.reply("503 5.5.2 Need rcpt command " + c.diag())
	}
	if c.bdat == nil {
		c.bdat = &bytes.Buffer{}
	}
	if c.bdat.Len()+n > smtpMaxMessage {
		c.resetTxn()
		return c.reply("552 5.3.4 Message size exceeds fixed maximum message size " + c.diag())
	}
	c.bdat.Write(chunk)
	if len(f) == 2 {
		return c.finish(c.bdat.Bytes())
	}
	return c.reply(fmt.Sprintf("250 2.0.0 BDAT %d bytes received", n))
}

func f0(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// finish checks Send As and delivers an accepted message; the transaction ends either way.
func (c *smtpConn) finish(raw []byte) error {
	defer c.resetTxn()
	from := c.from
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		if a, err := mail.ParseAddress(msg.Header.Get("From")); err == nil {
			from = a.Address
		}
	}
	p := *c.principal
	ctx, cancel := context.WithTimeout(c.srv.ctx, 30*time.Second)
	defer cancel()
	if !c.srv.cfg.Authorizer.CanSendAs(ctx, p, from) {
		who := p.UPN
		if who == "" {
			who = p.Mailbox
		}
		c.srv.log.Info("SMTP SendAsDenied", "principal", who, "from", from)
		return c.reply(fmt.Sprintf("554 5.2.252 SendAsDenied; %s not allowed to send as %s; "+
			"STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "+
			"Failed to process message due to a permanent exception with message "+
			"[BeginDiagnosticData]Cannot submit message. 0.35250:1F009983, 1.36674:0A000000, 1.61250:00000000 "+
			"[Hostname=%s]", who, from, c.srv.cfg.Domain))
	}
	delivered := 0
	for _, rcpt := range c.rcpts {
		if !c.srv.cfg.Store.HasMailbox(rcpt) {
			continue
		}
		if _, err := c.srv.cfg.Store.Deliver(rcpt, "INBOX", raw); err != nil {
			c.srv.log.Error("SMTP delivery", "rcpt", rcpt, "err", err)
			continue
		}
		delivered++
	}
	c.srv.log.Info("SMTP message accepted", "from", from, "rcpts", len(c.rcpts), "delivered", delivered, "bytes", len(raw))
	if c.srv.fire(func(f *SMTPFaults) *bool { return &f.DropAfterData }) {
		c.srv.log.Info("SMTP fault: message accepted, connection dropped before the reply")
		return errDropped
	}
	var id [16]byte
	rand.Read(id[:])
	return c.reply(fmt.Sprintf("250 2.0.0 OK <%s@%s> [Hostname=%s]", strings.ToUpper(hex.EncodeToString(id[:])), c.srv.cfg.Domain, c.srv.cfg.Domain))
}
