// Package imapsource is inkorg's IMAP edge: it connects to Exchange Online (or any IMAP server) over
// implicit TLS, signs in with SASL XOAUTH2 or with a user name and password, and opens mailboxes. It
// wraps go-imap v2's client behind a small API of ours, so that a fork or an upgrade of that (beta)
// library stays in this package, and turns every refusal into a *diag.Error with Exchange's own words
// and the remedy.
package imapsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"inkorg/internal/diag"
	"inkorg/internal/xoauth2"
)

// Config says where and how to connect.
type Config struct {
	Addr      string      // host:port, implicit TLS
	TLSConfig *tls.Config // verified against the cloud's roots; ServerName is set from Addr when empty
	Timeout   time.Duration
	Logger    *slog.Logger
	Facts     diag.Facts // the IDs errors name
}

// Conn is one signed-in (or about to be) IMAP connection.
type Conn struct {
	c       *imapclient.Client
	raw     net.Conn
	cfg     Config
	timeout time.Duration
}

// Dial connects and waits for the greeting. Errors are *diag.Error at the connect or TLS stage.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
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
	tc.NextProtos = []string{"imap"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: cfg.Timeout}, Config: tc}
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, dialError(err, cfg.Addr)
	}
	conn := &Conn{raw: raw, cfg: cfg, timeout: cfg.Timeout}
	conn.c = imapclient.New(raw, &imapclient.Options{})
	raw.SetDeadline(time.Now().Add(cfg.Timeout))
	if err := conn.c.WaitGreeting(); err != nil {
		raw.Close()
		return nil, &diag.Error{Stage: diag.StageConnect, Kind: diag.KindTransient, Code: "greeting", Summary: "the IMAP server at " + cfg.Addr + " sent no greeting", Err: err,
			Remedy: "check that the address is an IMAP server with implicit TLS (port 993)"}
	}
	raw.SetDeadline(time.Time{})
	return conn, nil
}

// dialError classifies a failed TCP/TLS dial.
func dialError(err error, addr string) *diag.Error {
	var certErr *tls.CertificateVerificationError
	e := &diag.Error{Stage: diag.StageConnect, Kind: diag.KindTransient, Code: "network", Server: err.Error(), Err: err,
		Summary: "cannot reach " + addr, Remedy: "check the address, the network and the firewall (outgoing port " + portOf(addr) + "); inkorg retries by itself"}
	switch {
	case errors.As(err, &certErr) || strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:"):
		e.Stage, e.Kind, e.Code = diag.StageTLS, diag.KindConfig, "tls"
		e.Summary = "the TLS handshake with " + addr + " failed: " + err.Error()
		e.Remedy = "check that the server offers implicit TLS on this port and that its certificate is trusted (with a cloud file: its caFile)"
	case strings.Contains(err.Error(), "no such host"):
		e.Kind, e.Code, e.Summary = diag.KindConfig, "dns", "the host name in "+addr+" does not exist"
		e.Remedy = "check the server address"
	case strings.Contains(err.Error(), "connection refused"):
		e.Code, e.Summary = "refused", addr+" refused the connection"
	}
	return e
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// Capabilities lists what the server offers now.
func (c *Conn) Capabilities() []string {
	var out []string
	for k := range c.c.Caps() {
		out = append(out, string(k))
	}
	return out
}

func (c *Conn) deadline() func() {
	c.raw.SetDeadline(time.Now().Add(c.timeout))
	return func() { c.raw.SetDeadline(time.Time{}) }
}

// AuthenticateXOAUTH2 signs in with an access token for the mailbox user.
func (c *Conn) AuthenticateXOAUTH2(user, token string) error {
	defer c.deadline()()
	if !c.c.Caps().Has(imap.AuthCap(xoauth2.Mechanism)) {
		return &diag.Error{Stage: diag.StageAuthenticate, Kind: diag.KindConfig, Code: "IMAP no XOAUTH2",
			Summary: "the IMAP server does not offer XOAUTH2 sign-in", Remedy: "check that the address is Exchange Online's IMAP (outlook.office365.com:993)"}
	}
	if err := c.c.Authenticate(xoauth2.NewClient(user, token)); err != nil {
		return c.imapError(diag.StageAuthenticate, err)
	}
	return nil
}

// Login signs in with a user name and password (Exchange on-premises and other IMAP servers).
func (c *Conn) Login(user, password string) error {
	defer c.deadline()()
	if err := c.c.Login(user, password).Wait(); err != nil {
		return c.imapError(diag.StageAuthenticate, err)
	}
	return nil
}

// Mailbox is what SELECT says about a mailbox.
type Mailbox struct {
	Name        string
	Messages    uint32
	UIDValidity uint32
	UIDNext     uint32
}

// Select opens a mailbox read-write.
func (c *Conn) Select(name string) (Mailbox, error) {
	defer c.deadline()()
	d, err := c.c.Select(name, nil).Wait()
	if err != nil {
		return Mailbox{}, c.imapError(diag.StageSelect, err)
	}
	return Mailbox{Name: name, Messages: d.NumMessages, UIDValidity: d.UIDValidity, UIDNext: uint32(d.UIDNext)}, nil
}

// imapError turns a client error into a *diag.Error.
func (c *Conn) imapError(stage diag.Stage, err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		text := ie.Text
		e := diag.FromIMAP(stage, string(ie.Type), text, c.cfg.Facts)
		e.Err = err
		return e
	}
	return &diag.Error{Stage: stage, Kind: diag.KindTransient, Code: "network", Summary: "the connection to " + c.cfg.Addr + " broke", Server: err.Error(),
		Remedy: "inkorg reconnects by itself", Err: err}
}

// Close logs out (briefly) and closes the connection.
func (c *Conn) Close() error {
	c.raw.SetDeadline(time.Now().Add(2 * time.Second))
	_ = c.c.Logout().Wait()
	return c.c.Close()
}
