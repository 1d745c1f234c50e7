// Package imapsource is inkorg's IMAP edge: it connects to Exchange Online (or any IMAP server) over
// implicit TLS, signs in with SASL XOAUTH2 or with a user name and password, opens mailboxes, and does
// what the ingest worker needs: find new UIDs (SearchNewer), stream them with UID FETCH BODY.PEEK[]
// (FetchInto, never setting \Seen), move them on (Move, with a UIDPLUS-only fallback when MOVE is
// missing), create folders (EnsureFolder) and wait for new mail with IDLE or NOOP polling (Wait). It
// wraps go-imap v2's client behind a small API of ours, so that a fork or an upgrade of that (beta)
// library stays in this package, and turns every refusal into a *diag.Error with Exchange's own words
// and the remedy.
//
// A Conn runs one command at a time: its methods must not be called concurrently.
package imapsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
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

	// SpoolDir holds the temporary files for message bodies larger than SpoolThreshold that FetchInto
	// has to buffer (empty: os.TempDir()). The files are named inkorg-spool-* and removed after use;
	// any left there by a crash may be deleted while no FetchInto runs.
	SpoolDir string
	// SpoolThreshold is the largest body FetchInto buffers in memory (0: DefaultSpoolThreshold).
	SpoolThreshold int64
	// FetchBatch is the number of UIDs per UID FETCH command (0: DefaultFetchBatch).
	FetchBatch int
	// ReadAhead is the largest body FetchInto reads off the connection ahead of fn, while fn works on
	// the messages before it (0: DefaultReadAhead; negative: none, every body is streamed to fn).
	// At most ReadAheadMessages bodies, and ReadAheadBytes (or one body), are held so.
	ReadAhead int64
	// SizeAndDate makes FetchInto ask for RFC822.SIZE and INTERNALDATE besides UID and the body. Without
	// it Fetched.Size is the body's length and InternalDate is zero: ingestion needs neither, and
	// the server is spared the work (Dovecot looks at each message's file for them).
	SizeAndDate bool
	// PollInterval is how often Wait sends NOOP when the server offers no IDLE (0:
	// DefaultPollInterval).
	PollInterval time.Duration
}

// Defaults for Config.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultSpoolThreshold = 1 << 20
	DefaultFetchBatch     = 250
	DefaultReadAhead      = 256 << 10
	DefaultPollInterval   = 30 * time.Second
)

// ReadAheadMessages and ReadAheadBytes bound what FetchInto holds read ahead: so many bodies, so many
// bytes (one body of up to Config.ReadAhead bytes is read ahead in any case).
const (
	ReadAheadMessages = 32
	ReadAheadBytes    = 1 << 20
)

func (cfg *Config) setDefaults() {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.SpoolThreshold <= 0 {
		cfg.SpoolThreshold = DefaultSpoolThreshold
	}
	if cfg.FetchBatch <= 0 {
		cfg.FetchBatch = DefaultFetchBatch
	}
	if cfg.ReadAhead == 0 {
		cfg.ReadAhead = DefaultReadAhead
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

// Conn is one signed-in (or about to be) IMAP connection.
type Conn struct {
	c       *imapclient.Client
	raw     net.Conn
	cfg     Config
	timeout time.Duration

	delim string // the server's hierarchy delimiter, once asked (EnsureFolder, Move)

	// Written by go-imap's reader goroutine through the unilateral data handler, read by Wait.
	mu      sync.Mutex
	count   uint32        // messages in the selected mailbox, as far as EXISTS and EXPUNGE told
	newMail bool          // an EXISTS raised count since SELECT or since Wait last reported it
	wake    chan struct{} // poked (never blocking) on every EXISTS
	active  *fetchState   // the running FetchInto, for FETCH responses go-imap hands to the handler
}

// Dial connects and waits for the greeting. Errors are *diag.Error at the connect or TLS stage.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	cfg.setDefaults()
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
	conn := &Conn{raw: raw, cfg: cfg, timeout: cfg.Timeout, wake: make(chan struct{}, 1)}
	conn.c = imapclient.New(raw, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: conn.onMailbox,
		Expunge: conn.onExpunge,
		Fetch:   conn.onFetch,
	}})
	raw.SetDeadline(time.Now().Add(cfg.Timeout))
	if err := conn.c.WaitGreeting(); err != nil {
		raw.Close()
		return nil, &diag.Error{Stage: diag.StageConnect, Kind: diag.KindTransient, Code: "greeting", Summary: "the IMAP server at " + cfg.Addr + " sent no greeting", Err: err,
			Remedy: "check that the address is an IMAP server with implicit TLS (port 993)"}
	}
	raw.SetDeadline(time.Time{})
	return conn, nil
}

func dialError(err error, addr string) *diag.Error {
	return diag.FromDial(err, addr, "check that the server offers implicit TLS on this port and that its certificate is trusted (with a cloud file: its caFile)")
}

// Capabilities lists what the server offers now.
func (c *Conn) Capabilities() []string {
	var out []string
	for k := range c.c.Caps() {
		out = append(out, string(k))
	}
	return out
}

// HasIDLE reports whether the server offers IDLE (RFC 2177, or IMAP4rev2), so that Wait idles
// instead of polling.
func (c *Conn) HasIDLE() bool { return c.c.Caps().Has(imap.CapIdle) }

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

// Select opens a mailbox read-write. Wait counts new mail from the message count SELECT reports.
func (c *Conn) Select(name string) (Mailbox, error) {
	defer c.deadline()()
	d, err := c.c.Select(name, nil).Wait()
	if err != nil {
		return Mailbox{}, c.imapError(diag.StageSelect, err)
	}
	c.mu.Lock()
	c.count, c.newMail = d.NumMessages, false
	c.mu.Unlock()
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

// Close logs out (briefly) and closes the connection. A connection that is already closed (it
// broke, or FetchInto closed it) closes without error.
func (c *Conn) Close() error {
	select {
	case <-c.c.Closed():
		c.c.Close()
		return nil
	default:
	}
	c.raw.SetDeadline(time.Now().Add(2 * time.Second))
	_ = c.c.Logout().Wait()
	return c.c.Close()
}
