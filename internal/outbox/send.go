package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"inkorg/internal/diag"
	"inkorg/internal/entra"
	"inkorg/internal/graph"
	"inkorg/internal/settings"
	"inkorg/internal/smtpsend"
	"inkorg/internal/store"
)

// The transports, as recorded on a message.
const (
	TransportSMTPOAuth = "smtp-xoauth2" // Exchange Online SMTP submission with XOAUTH2
	TransportGraph     = "graph"        // Microsoft Graph sendMail
	TransportSMTP      = "smtp"         // SMTP with user name and password
)

// transportOf is the transport an effective user's settings choose, or an error for a method that
// sends nothing through inkorg.
func transportOf(eu settings.EffectiveUser) (string, error) {
	switch eu.EmailMethod.Value {
	case settings.MethodExchangeOnline:
		if eu.SendTransport.Value == settings.SendGraph {
			return TransportGraph, nil
		}
		return TransportSMTPOAuth, nil
	case settings.MethodExchangeServer, settings.MethodSMTP:
		return TransportSMTP, nil
	}
	return "", &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings",
		Summary: fmt.Sprintf("the e-mail method of %s is %q: inkorg does not send this user's mail", eu.Name, eu.EmailMethod.Value),
		Remedy:  "set the e-mail method to exchange-online, exchange-server or smtp, then resend the message"}
}

func identity(sys settings.System, eu settings.EffectiveUser) entra.Identity {
	return entra.IdentityFor(sys, eu.Exchange, eu.ExchangeUsername.Value, eu.ExchangePassword.Value)
}

func record(e *diag.Error, at time.Time) store.ErrorRecord {
	return store.ErrorRecord{At: at, Stage: string(e.Stage), Kind: string(e.Kind), Code: e.Code, Summary: e.Summary, Remedy: e.Remedy,
		Actions: e.Actions, Server: e.Server, TraceID: e.TraceID}
}

// errAccepted wraps the failure to record an acceptance: the message went out.
var errAccepted = errors.New("accepted by the server")

// attempt claims one due message and sends it.
func (o *Outbox) attempt(m store.Outgoing) {
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.Timeout+30*time.Second)
	defer cancel()
	log := o.log.With("id", m.ID, "sender", m.Sender)
	c, err := o.cfg.Store.Config(ctx)
	if err != nil {
		log.Error("outbox: read settings", "err", err)
		return
	}
	asUser := m.Sender
	if m.Webshop {
		asUser = ""
	}
	eu, err := sender(c, asUser, m.Webshop)
	if err != nil {
		eu = settings.EffectiveUser{Name: m.Sender}
	}
	transport, terr := transportOf(eu)
	if err != nil {
		terr = &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings", Summary: err.Error(),
			Remedy: "restore the sender's e-mail settings, then resend the message"}
	}
	now := o.cfg.Clock()
	claimed, err := o.cfg.Store.ClaimOutgoing(ctx, m.ID, transport, now, now.Add(o.cfg.Lease))
	if errors.Is(err, store.ErrOutgoingState) {
		return // another sender took it
	}
	if err != nil {
		log.Error("outbox: claim", "err", err)
		return
	}
	if terr == nil {
		terr = o.send(ctx, c.System, eu, transport, claimed)
	}
	if errors.Is(terr, errAccepted) {
		log.Error("outbox: the server accepted the message but the acceptance could not be recorded; it stays in sending and becomes unknown when its lease ends", "err", terr)
		return
	}
	if terr == nil {
		return
	}
	o.failed(ctx, claimed, terr)
}

// failed records a failed attempt: unknown, retry or permanent failure.
func (o *Outbox) failed(ctx context.Context, m store.Outgoing, err error) {
	log := o.log.With("id", m.ID, "sender", m.Sender)
	e := diag.As(err)
	if e == nil {
		e = &diag.Error{Stage: diag.StageSend, Kind: diag.KindTransient, Code: "error", Summary: err.Error(), Remedy: "inkorg retries with backoff", Err: err}
	}
	now := o.cfg.Clock()
	rec := record(e, now)
	var serr error
	switch {
	case e.MaybeDone:
		// The message was handed over whole and the server's answer lost: it may have been accepted.
		// Never resend blindly. (A connection that broke before that is retried like any transient
		// failure: the server cannot have accepted a message it did not receive whole.)
		rec.Summary = "the connection broke after the message was submitted, before the server answered; the server may have accepted it: " + e.Summary
		rec.Remedy = "check the recipient's mailbox or the sender's Sent Items, then resolve the message (resend, or mark it sent)"
		serr = o.cfg.Store.OutgoingUnknown(ctx, m.ID, rec)
		log.Warn("outgoing message state unknown", "code", e.Code, "err", e.Summary)
	case e.Kind == diag.KindConfig:
		serr = o.cfg.Store.OutgoingFailed(ctx, m.ID, rec)
		log.Warn("outgoing message failed", "code", e.Code, "summary", e.Summary, "remedy", e.Remedy)
	case m.Attempts >= o.cfg.MaxAttempts:
		rec.Summary = fmt.Sprintf("gave up after %d attempts: %s", m.Attempts, rec.Summary)
		serr = o.cfg.Store.OutgoingFailed(ctx, m.ID, rec)
		log.Warn("outgoing message failed", "code", e.Code, "attempts", m.Attempts)
	default:
		wait := o.cfg.Backoff(m.Attempts)
		if ra := time.Duration(e.RetryAfterMS) * time.Millisecond; ra > wait {
			wait = ra
		}
		serr = o.cfg.Store.OutgoingRetry(ctx, m.ID, now.Add(wait), rec)
		log.Info("outgoing message will be retried", "code", e.Code, "attempt", m.Attempts, "in", wait)
	}
	if serr != nil {
		log.Error("outbox: record the outcome", "err", serr)
	}
}

// accepted records the server's acceptance.
func (o *Outbox) accepted(ctx context.Context, m store.Outgoing, reply string) error {
	if err := o.cfg.Store.OutgoingSent(ctx, m.ID, o.cfg.Clock(), reply); err != nil {
		return fmt.Errorf("%w: record it: %w", errAccepted, err)
	}
	o.log.Info("outgoing message sent", "id", m.ID, "sender", m.Sender, "transport", m.Transport, "attempt", m.Attempts)
	return nil
}

func (o *Outbox) token(ctx context.Context, id entra.Identity, p entra.Purpose, facts diag.Facts) (string, diag.Facts, error) {
	if o.cfg.TokenFunc != nil {
		t, err := o.cfg.TokenFunc(ctx, id, p)
		return t, facts, err
	}
	if o.cfg.Tokens == nil {
		return "", facts, &diag.Error{Stage: diag.StageToken, Kind: diag.KindConfig, Code: "tokens", Summary: "no token provider configured"}
	}
	t, facts, err := o.cfg.Tokens.CheckedToken(ctx, id, p, facts)
	if err != nil {
		return "", facts, err
	}
	return t.Value(), facts, nil
}

func (o *Outbox) forget(id entra.Identity, p entra.Purpose) {
	if o.cfg.Tokens != nil {
		o.cfg.Tokens.Forget(id, p)
	}
}

// send runs one attempt over the chosen transport; nil means the acceptance is recorded.
func (o *Outbox) send(ctx context.Context, sys settings.System, eu settings.EffectiveUser, transport string, m store.Outgoing) error {
	raw, err := o.cfg.Store.OutgoingRaw(ctx, m.ID)
	if err != nil {
		return fmt.Errorf("outbox: read message: %w", err)
	}
	id := identity(sys, eu)
	facts := diag.Facts{Authority: o.cfg.Cloud.Authority, TenantID: id.TenantID, ClientID: id.ClientID, AppOnly: id.AppOnly(),
		Mailbox: m.From, Username: id.Username, From: m.From}
	switch transport {
	case TransportGraph:
		tok, facts, err := o.token(ctx, id, entra.PurposeGraphSend, facts)
		if err != nil {
			return err
		}
		mailbox := m.From
		if !id.AppOnly() {
			mailbox = id.Username
		}
		full := raw
		if len(m.Bcc) > 0 {
			full = append([]byte("Bcc: "+strings.Join(m.Bcc, ", ")+"\r\n"), raw...)
		}
		gc := graph.New(graph.Config{BaseURL: o.cfg.Cloud.Graph, HTTP: o.cfg.Cloud.HTTPClient(), Logger: o.log})
		sctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
		defer cancel()
		if err := gc.SendMail(sctx, tok, mailbox, full, facts); err != nil {
			if e := diag.As(err); e != nil && e.Stage == diag.StageAuthenticate {
				o.forget(id, entra.PurposeGraphSend)
			}
			return err
		}
		return o.accepted(ctx, m, "202 Accepted")
	case TransportSMTPOAuth:
		tok, facts, err := o.token(ctx, id, entra.PurposeSMTP, facts)
		if err != nil {
			return err
		}
		user := m.From
		if !id.AppOnly() {
			user = id.Username
		}
		return o.smtp(ctx, smtpsend.Config{Addr: o.cfg.Cloud.SMTP, Security: smtpsend.StartTLS, TLSConfig: o.cfg.Cloud.TLSConfig(""),
			Timeout: o.cfg.Timeout, Logger: o.log, Facts: facts}, m, raw, func(c *smtpsend.Conn) error {
			if err := c.AuthenticateXOAUTH2(user, tok); err != nil {
				o.forget(id, entra.PurposeSMTP)
				return err
			}
			return nil
		})
	default:
		addr, sec := serverAddr(eu.Server)
		if eu.ServerAddress.Value == "" {
			return &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings", Summary: "no server address is set",
				Remedy: "set System settings › Server address"}
		}
		facts.AppOnly = false
		return o.smtp(ctx, smtpsend.Config{Addr: addr, Security: sec, TLSConfig: o.cfg.Cloud.TLSConfig(""), Timeout: o.cfg.Timeout, Logger: o.log,
			Facts: facts}, m, raw, func(c *smtpsend.Conn) error {
			if eu.ExchangeUsername.Value == "" {
				return nil
			}
			return c.Login(eu.ExchangeUsername.Value, eu.ExchangePassword.Value.Reveal())
		})
	}
}

// serverAddr is the on-premises or SMTP server (port 0 = 587 with STARTTLS; 465 is implicit TLS).
func serverAddr(s settings.Server) (string, smtpsend.Security) {
	addr, implicit := s.SMTPAddr()
	if implicit {
		return addr, smtpsend.ImplicitTLS
	}
	return addr, smtpsend.StartTLS
}

func (o *Outbox) smtp(ctx context.Context, cfg smtpsend.Config, m store.Outgoing, raw []byte, auth func(*smtpsend.Conn) error) error {
	sctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	c, err := smtpsend.Dial(sctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := auth(c); err != nil {
		return err
	}
	if err := c.Send(m.From, m.Recipients, bytes.NewReader(raw)); err != nil {
		return err
	}
	return o.accepted(ctx, m, "250 accepted after DATA")
}
