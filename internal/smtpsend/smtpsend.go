// Package smtpsend is inkorg's SMTP edge: it submits mail to Exchange Online (STARTTLS on port 587,
// SASL XOAUTH2) or to any SMTP server (STARTTLS or implicit TLS, user name and password). It wraps
// go-smtp's client behind a small API of ours and turns every refusal into a *diag.Error with the
// server's words and the remedy (5.7.139 SMTP AUTH disabled, 5.7.3, 5.2.252 SendAsDenied…).
package smtpsend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"inkorg/internal/diag"
	"inkorg/internal/xoauth2"
)

// Security is how the connection is protected.
type Security int

// The choices: STARTTLS (Exchange Online, port 587) or implicit TLS (port 465). inkorg never sends a
// password or a token over a connection without TLS.
const (
	StartTLS Security = iota
	ImplicitTLS
)

// Config says where and how to connect.
type Config struct {
	Addr      string
	Security  Security
	TLSConfig *tls.Config
	LocalName string // EHLO name; default "localhost"
	Timeout   time.Duration
	Logger    *slog.Logger
	Facts     diag.Facts
}

// Conn is one SMTP submission connection.
type Conn struct {
	c   *smtp.Client
	cfg Config
}

// Dial connects, says EHLO and (for StartTLS) switches to TLS.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, &diag.Error{Stage: diag.StageConnect, Kind: diag.KindConfig, Code: "address", Summary: fmt.Sprintf("%q is not host:port", cfg.Addr), Err: err}
	}
	tc := cfg.TLSConfig.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	nd := &net.Dialer{Timeout: cfg.Timeout}
	var raw net.Conn
	if cfg.Security == ImplicitTLS {
		raw, err = (&tls.Dialer{NetDialer: nd, Config: tc}).DialContext(ctx, "tcp", cfg.Addr)
	} else {
		raw, err = nd.DialContext(ctx, "tcp", cfg.Addr)
	}
	if err != nil {
		return nil, dialError(err, cfg.Addr)
	}
	raw.SetDeadline(time.Now().Add(cfg.Timeout))
	var c *smtp.Client
	if cfg.Security == ImplicitTLS {
		c = smtp.NewClient(raw)
	} else {
		sc := &startTLSConn{Conn: raw}
		c, err = smtp.NewClientStartTLS(sc, tc)
		if err != nil {
			raw.Close()
			if smtpErr(err) != nil && !sc.sent {
				// The greeting or EHLO was refused, not STARTTLS.
				return nil, fromSMTP(diag.StageConnect, err, cfg.Facts)
			}
			e := dialError(err, cfg.Addr)
			if se := smtpErr(err); se != nil || strings.Contains(err.Error(), "STARTTLS") {
				e.Stage, e.Kind, e.Code = diag.StageTLS, diag.KindConfig, "starttls"
				if se != nil && se.Code/100 == 4 {
					e.Kind = diag.KindTransient // 454 TLS not available due to temporary reason
				}
				e.Summary = "STARTTLS with " + cfg.Addr + " failed: " + err.Error()
				e.Remedy = "check that the server offers STARTTLS on this port (Exchange Online: smtp.office365.com:587)"
			}
			return nil, e
		}
	}
	c.CommandTimeout, c.SubmissionTimeout = cfg.Timeout, cfg.Timeout
	name := cfg.LocalName
	if name == "" {
		name = "localhost"
	}
	if err := c.Hello(name); err != nil {
		c.Close()
		if smtpErr(err) == nil {
			// With STARTTLS the TLS handshake happens here, on the first command after it.
			if e := dialError(err, cfg.Addr); e.Stage == diag.StageTLS {
				return nil, e
			}
		}
		return nil, fromSMTP(diag.StageConnect, err, cfg.Facts)
	}
	return &Conn{c: c, cfg: cfg}, nil
}

// startTLSConn notes whether the STARTTLS command has been written, so that a refused greeting or
// EHLO is not reported as a refused STARTTLS.
type startTLSConn struct {
	net.Conn
	sent bool
}

func (c *startTLSConn) Write(b []byte) (int, error) {
	if !c.sent && strings.HasPrefix(strings.ToUpper(string(b[:min(len(b), 8)])), "STARTTLS") {
		c.sent = true
	}
	return c.Conn.Write(b)
}

func dialError(err error, addr string) *diag.Error {
	return diag.FromDial(err, addr, "check that the server's certificate is trusted (with a cloud file: its caFile)")
}

func smtpErr(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

func fromSMTP(stage diag.Stage, err error, f diag.Facts) error {
	if se := smtpErr(err); se != nil {
		enh := ""
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
			enh = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		e := diag.FromSMTP(stage, se.Code, enh, se.Message, f)
		e.Err = err
		return e
	}
	return &diag.Error{Stage: stage, Kind: diag.KindTransient, Code: "network", Summary: "the SMTP connection broke", Server: err.Error(),
		Remedy: "inkorg retries by itself", Err: err}
}

// AuthenticateXOAUTH2 signs in with an access token for the sending mailbox.
func (c *Conn) AuthenticateXOAUTH2(user, token string) error {
	if ok, _ := c.c.Extension("AUTH"); !ok {
		return &diag.Error{Stage: diag.StageAuthenticate, Kind: diag.KindConfig, Code: "SMTP no AUTH", Summary: "the SMTP server offers no sign-in",
			Remedy: "check the address: Exchange Online's submission server is smtp.office365.com:587"}
	}
	if err := c.c.Auth(xoauth2.NewClient(user, token)); err != nil {
		return fromSMTP(diag.StageAuthenticate, err, c.cfg.Facts)
	}
	return nil
}

// Login signs in with a user name and password (PLAIN, or LOGIN when that is all the server offers).
func (c *Conn) Login(user, password string) error {
	var a sasl.Client = sasl.NewPlainClient("", user, password)
	if !c.c.SupportsAuth("PLAIN") && c.c.SupportsAuth("LOGIN") {
		a = sasl.NewLoginClient(user, password)
	}
	if err := c.c.Auth(a); err != nil {
		return fromSMTP(diag.StageAuthenticate, err, c.cfg.Facts)
	}
	return nil
}

// Send submits one message. The server's acceptance (250 after DATA) is the return of nil. A connection
// that breaks before the message's final dot is sent leaves the message surely not accepted (a
// "network" error, to be retried); one that breaks after it (the reply lost) may have been accepted:
// its error has MaybeDone set.
func (c *Conn) Send(from string, to []string, msg io.Reader) error {
	f := c.cfg.Facts
	f.From = from
	if err := c.c.Mail(from, nil); err != nil {
		return fromSMTP(diag.StageSend, err, f)
	}
	for _, r := range to {
		if err := c.c.Rcpt(r, nil); err != nil {
			return fromSMTP(diag.StageSend, err, f)
		}
	}
	w, err := c.c.Data()
	if err != nil {
		return fromSMTP(diag.StageSend, err, f)
	}
	if _, err := io.Copy(w, msg); err != nil {
		// Not w.Close(): that would send the final dot, and a server that still listens would take
		// the message cut short. Dropping the connection makes it discard the transaction.
		c.c.Close()
		return fromSMTP(diag.StageSend, err, f)
	}
	if err := w.Close(); err != nil { // the final dot, then the server's reply
		err := fromSMTP(diag.StageSend, err, f)
		if e := diag.As(err); e != nil && e.Code == "network" {
			e.MaybeDone = true
			e.Summary = "the SMTP connection broke after the whole message was sent, before the server's reply"
			e.Remedy = "the server may have accepted it: check before sending it again"
		}
		return err
	}
	return nil
}

// Close says QUIT and closes.
func (c *Conn) Close() error {
	_ = c.c.Quit()
	return c.c.Close()
}
