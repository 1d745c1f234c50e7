// Package outbox is inkorg's outgoing queue. The ERP (through the API or `inkorg send`) submits a
// message as a user or as the webshop; Submit resolves the sender's effective settings, composes the
// message to its exact bytes and stores it durably (queued) before it answers. The sender — one
// dispatcher, with at most PerSender sends at a time per sender identity and Concurrency in all —
// takes due messages and sends each by the transport the sender's settings choose:
//
//   - exchange-online, "Send with" smtp: SMTP submission to the cloud's SMTP host (STARTTLS), SASL
//     XOAUTH2 with a token for the sender (app-only: signed in as the From mailbox; User name/Password:
//     as the token's own user, who then sends as From);
//   - exchange-online, "Send with" graph: Microsoft Graph sendMail, the MIME message base64-encoded;
//   - exchange-server and smtp: SMTP with the user name and password (port 0 = 587 with STARTTLS, 465
//     implicit TLS);
//   - outlook-client: nothing is queued; Submit returns an .eml draft with X-Unsent: 1.
//
// Temporary failures (SMTP 4xx, network errors before the message was handed over, Graph 429 with its
// Retry-After, 5xx of Graph, token endpoint outages) are retried with exponential backoff up to
// MaxAttempts; permanent ones (SMTP 5xx such as 5.7.139 SMTP AUTH disabled, 5.7.3, 5.2.252 SendAsDenied,
// 5.7.30; Graph 403; a missing permission in the token) fail the message at once with the typed reason
// and its remedy.
//
// Exactly once, as far as SMTP allows. Before a transport talks to the server the message is claimed
// durably ("sending", with a lease), and the server's acceptance (250 after DATA, Graph's 202) is
// recorded durably before the sender does anything else. There remains one instant that no protocol
// closes: after the server has the whole message and before its acceptance is on disk (the reply is
// lost with a broken connection, or the process dies). A message caught there is never resent blindly,
// because the server may well have accepted it and the recipient would get it twice: a connection that
// broke after the message was handed over marks it "unknown" at once, and a message still in "sending"
// when its lease has run out (its process died) is marked "unknown" by the next sender's recovery
// sweep. The same holds for Graph: a lost 202 is as ambiguous as a lost 250. "unknown" messages are
// listed (the API shows the state; Resolve settles one — resend it, or record that it arrived).
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/compose"
	"inkorg/internal/entra"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// Config configures an Outbox.
type Config struct {
	Store  store.Store
	Tokens *entra.Provider
	Cloud  cloud.Endpoints
	Logger *slog.Logger
	Clock  func() time.Time

	Concurrency  int           // sends at once in all; default 8
	PerSender    int           // sends at once per sender identity; default 2
	PollInterval time.Duration // how often to look for due messages; default 1s
	Timeout      time.Duration // one attempt's network timeout; default 2 minutes
	Lease        time.Duration // how long a claim lasts before recovery calls it unknown; default 10 minutes (> Timeout)
	MaxAttempts  int           // temporary failures before giving up; default 10
	// Backoff is the wait after the n-th failed attempt (n ≥ 1); default 30s·2ⁿ⁻¹, at most 1 hour. A
	// server's Retry-After is honoured when longer.
	Backoff func(n int) time.Duration
	// TokenFunc, when set, replaces Tokens: tests against peers that mint their own tokens (Dovecot).
	TokenFunc func(ctx context.Context, id entra.Identity, p entra.Purpose) (string, error)
}

// Outbox is the outgoing queue and its sender. New → Start → Close; Submit works without Start.
type Outbox struct {
	cfg Config
	log *slog.Logger

	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]bool // message ids
	perSend  map[string]int  // sender key → sends in flight
	started  bool
}

// New makes an Outbox.
func New(cfg Config) *Outbox {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.PerSender <= 0 {
		cfg.PerSender = 2
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 10 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Cloud.Authority == "" {
		cfg.Cloud = cloud.Global()
	}
	return &Outbox{cfg: cfg, log: cfg.Logger.With("component", "outbox"), wake: make(chan struct{}, 1),
		inflight: map[string]bool{}, perSend: map[string]int{}}
}

// DefaultBackoff is 30 s after the first failure, doubling, at most an hour.
func DefaultBackoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// Start recovers messages left in "sending" by a dead process (as unknown) and starts the sender.
func (o *Outbox) Start(ctx context.Context) error {
	o.mu.Lock()
	if o.started {
		o.mu.Unlock()
		return errors.New("outbox: already started")
	}
	o.started = true
	o.mu.Unlock()
	if err := o.recover(ctx); err != nil {
		return err
	}
	ctx, o.cancel = context.WithCancel(context.WithoutCancel(ctx))
	o.wg.Add(1)
	go o.dispatch(ctx)
	return nil
}

// Close stops the sender and waits for the sends in flight (each bounded by Timeout).
func (o *Outbox) Close() error {
	if o.cancel != nil {
		o.cancel()
	}
	o.wg.Wait()
	return nil
}

func (o *Outbox) recover(ctx context.Context) error {
	ids, err := o.cfg.Store.RecoverOutgoing(ctx, o.cfg.Clock())
	if err != nil {
		return fmt.Errorf("outbox: recover: %w", err)
	}
	for _, id := range ids {
		o.log.Warn("outgoing message left in sending by a stopped process: marked unknown, not resent (the server may have accepted it)", "id", id)
	}
	return nil
}

func (o *Outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func senderKey(m store.Outgoing) string { return strings.ToUpper(m.Sender) }

func (o *Outbox) dispatch(ctx context.Context) {
	defer o.wg.Done()
	t := time.NewTicker(o.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := o.recover(ctx); err != nil && ctx.Err() == nil {
			o.log.Error("outbox recovery sweep", "err", err)
		}
		due, err := o.cfg.Store.DueOutgoing(ctx, o.cfg.Clock(), 200)
		if err != nil && ctx.Err() == nil {
			o.log.Error("outbox: read due messages", "err", err)
		}
		for _, m := range due {
			o.mu.Lock()
			total := len(o.inflight)
			k := senderKey(m)
			ok := !o.inflight[m.ID] && total < o.cfg.Concurrency && o.perSend[k] < o.cfg.PerSender
			if ok {
				o.inflight[m.ID] = true
				o.perSend[k]++
			}
			o.mu.Unlock()
			if !ok {
				continue
			}
			o.wg.Add(1)
			go func() {
				defer o.wg.Done()
				o.attempt(m)
				o.mu.Lock()
				delete(o.inflight, m.ID)
				o.perSend[k]--
				if o.perSend[k] == 0 {
					delete(o.perSend, k)
				}
				o.mu.Unlock()
				o.poke()
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.wake:
		}
	}
}

// Resolve settles a message in unknown: resend queues it again; otherwise it is recorded as sent.
// A failed message can be resent too (after its cause was fixed).
func (o *Outbox) Resolve(ctx context.Context, id string, resend bool) error {
	if err := o.cfg.Store.ResolveOutgoing(ctx, id, resend, o.cfg.Clock()); err != nil {
		return err
	}
	o.poke()
	return nil
}

// Status returns a message's record.
func (o *Outbox) Status(ctx context.Context, id string) (store.Outgoing, error) {
	return o.cfg.Store.Outgoing(ctx, id)
}

// Wait polls a message until it is sent, failed or unknown (or ctx ends).
func (o *Outbox) Wait(ctx context.Context, id string) (store.Outgoing, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		m, err := o.cfg.Store.Outgoing(ctx, id)
		if err != nil {
			return m, err
		}
		if Final(m.State) {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-t.C:
		}
	}
}

// Final reports whether a state is the end of the road (until someone resolves it).
func Final(s store.OutgoingState) bool {
	return s == store.OutSent || s == store.OutFailed || s == store.OutUnknown
}

// RequestError is a submitted message the outbox refuses: the caller's mistake, with the field.
type RequestError struct {
	Field    string
	Message  string
	NotFound bool // the named user does not exist
}

func (e *RequestError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

func reqErr(field, format string, args ...any) error {
	return &RequestError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Request is a message to send.
type Request struct {
	AsUser        string
	AsWebshop     bool
	To, Cc, Bcc   []string
	ReplyTo       []string
	Subject       string
	Text, HTML    string
	Attachments   []compose.Attachment
	InReplyTo     string
	RelatedRecord string
}

// Result is what Submit did: queued a message (ID, Message) or, under outlook-client, made a draft.
type Result struct {
	ID      string
	Message store.Outgoing
	Draft   []byte // the .eml for the user's own mail program (X-Unsent: 1); nothing was queued
}

// sender resolves whose settings send a message.
func sender(c settings.Config, asUser string, asWebshop bool) (settings.EffectiveUser, error) {
	switch {
	case asWebshop && strings.TrimSpace(asUser) != "":
		return settings.EffectiveUser{}, reqErr("asUser", "give asUser or asWebshop, not both")
	case asWebshop:
		w := settings.ResolveWebshop(c)
		if w.User == nil {
			return settings.EffectiveUser{}, reqErr("asWebshop", "Webshop – Administration has no e-mail method; set it to according-to-user-settings (inkorg settings webshop set --email-method according-to-user-settings)")
		}
		return *w.User, nil
	case strings.TrimSpace(asUser) == "":
		return settings.EffectiveUser{}, reqErr("asUser", "give the user to send as (asUser) or asWebshop")
	}
	u, ok := c.User(strings.TrimSpace(asUser))
	if !ok {
		return settings.EffectiveUser{}, &RequestError{Field: "asUser", Message: fmt.Sprintf("there is no user %q with e-mail settings (inkorg settings user list)", asUser), NotFound: true}
	}
	return settings.ResolveUser(c.System, u), nil
}

// Submit composes and stores a message (or, under outlook-client, returns its draft).
func (o *Outbox) Submit(ctx context.Context, r Request) (Result, error) {
	c, err := o.cfg.Store.Config(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("outbox: read settings: %w", err)
	}
	eu, err := sender(c, r.AsUser, r.AsWebshop)
	if err != nil {
		return Result{}, err
	}
	method := eu.EmailMethod.Value
	if !method.Valid() {
		return Result{}, reqErr("asUser", "no e-mail method is set for %s (System settings › E-mail method)", eu.Name)
	}
	fromAddr := strings.TrimSpace(eu.EmailAddress.Value)
	if fromAddr == "" {
		return Result{}, reqErr("asUser", "the user %s has no e-mail address (inkorg settings user set %s --email-address …)", eu.Name, eu.Name)
	}
	from, err := compose.ParseAddress("from", fromAddr)
	if err != nil {
		return Result{}, reqErr("asUser", "the user %s's e-mail address %q is not valid", eu.Name, fromAddr)
	}
	m := compose.Message{From: from, Subject: r.Subject, Text: r.Text, HTML: r.HTML, Signature: eu.Signature.Value,
		Attachments: r.Attachments, InReplyTo: r.InReplyTo, Date: o.cfg.Clock(), Draft: method == settings.MethodOutlookClient}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]*mail.Address
	}{{"to", r.To, &m.To}, {"cc", r.Cc, &m.Cc}, {"bcc", r.Bcc, &m.Bcc}, {"replyTo", r.ReplyTo, &m.ReplyTo}} {
		as, err := compose.ParseAddresses(l.name, l.in)
		if err != nil {
			return Result{}, reqErr("", "%s", strings.TrimPrefix(err.Error(), compose.ErrInvalid.Error()+": "))
		}
		*l.out = as
	}
	if len(m.To)+len(m.Cc)+len(m.Bcc) == 0 {
		return Result{}, reqErr("to", "give at least one recipient")
	}
	switch eu.CopyToSelf.Value {
	case settings.CopyCc:
		if !eu.CopyToSelf.NotApplicable {
			m.Cc = append(m.Cc, &mail.Address{Address: from.Address})
		}
	case settings.CopyBcc:
		if !eu.CopyToSelf.NotApplicable {
			m.Bcc = append(m.Bcc, &mail.Address{Address: from.Address})
		}
	}
	b, err := compose.Build(m)
	if err != nil {
		return Result{}, reqErr("", "%s", strings.TrimPrefix(err.Error(), compose.ErrInvalid.Error()+": "))
	}
	if m.Draft {
		return Result{Draft: b.Raw}, nil
	}
	var bcc []string
	for _, a := range m.Bcc {
		bcc = append(bcc, a.Address)
	}
	rec, err := o.cfg.Store.EnqueueOutgoing(ctx, store.Outgoing{Sender: eu.Name, Webshop: r.AsWebshop, From: from.Address, Recipients: b.Recipients,
		Bcc: bcc, Subject: compose.CleanText(r.Subject), MessageID: b.MessageID, RelatedRecord: compose.CleanText(r.RelatedRecord), Raw: b.Raw})
	if err != nil {
		return Result{}, fmt.Errorf("outbox: queue: %w", err)
	}
	o.log.Info("outgoing message queued", "id", rec.ID, "sender", rec.Sender, "recipients", len(rec.Recipients), "bytes", rec.Size)
	o.poke()
	return Result{ID: rec.ID, Message: rec}, nil
}
