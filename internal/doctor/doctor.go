// Package doctor walks the steps of a connection one at a time — settings → token → claims →
// connect/TLS → authenticate → select INBOX (incoming accounts) or test send (users and the webshop) —
// and reports each with ✓ or ✗, its time, and for a failure what is wrong and what the tenant
// administrator must do, with the real IDs filled in. The CLI, the API and the UI show the same report.
package doctor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"inkorg/internal/cloud"
	"inkorg/internal/diag"
	"inkorg/internal/entra"
	"inkorg/internal/imapsource"
	"inkorg/internal/settings"
	"inkorg/internal/smtpsend"
)

// Status is a step's outcome.
type Status string

// The outcomes.
const (
	Passed  Status = "passed"
	Failed  Status = "failed"
	Skipped Status = "skipped" // an earlier step failed
	Unused  Status = "unused"  // the method or flow does not have this step
)

// Step is one checked step.
type Step struct {
	Name     string        `json:"name"`
	Status   Status        `json:"status"`
	Duration time.Duration `json:"-"`
	Millis   int64         `json:"ms"`
	Detail   string        `json:"detail,omitempty"`
	Error    *Failure      `json:"error,omitempty"`
}

// Failure is the JSON form of a diag.Error.
type Failure struct {
	Stage         string   `json:"stage"`
	Code          string   `json:"code,omitempty"`
	Summary       string   `json:"summary"`
	Remedy        string   `json:"remedy,omitempty"`
	Actions       []string `json:"actions,omitempty"`
	Server        string   `json:"server,omitempty"`
	TraceID       string   `json:"traceId,omitempty"`
	CorrelationID string   `json:"correlationId,omitempty"`
}

func failure(e *diag.Error) *Failure {
	return &Failure{Stage: string(e.Stage), Code: e.Code, Summary: e.Summary, Remedy: e.Remedy, Actions: e.Actions, Server: e.Server,
		TraceID: e.TraceID, CorrelationID: e.CorrelationID}
}

// Report is the whole check of one target.
type Report struct {
	Target   string             `json:"target"`
	What     string             `json:"what"`
	OK       bool               `json:"ok"`
	Steps    []Step             `json:"steps"`
	Warnings []settings.Problem `json:"warnings,omitempty"`
}

// Doctor runs checks.
type Doctor struct {
	Tokens *entra.Provider
	Cloud  cloud.Endpoints
	Clock  func() time.Time
	Logger *slog.Logger
	// Timeout bounds each network step.
	Timeout time.Duration
}

// run is one check in progress.
type run struct {
	d      *Doctor
	r      *Report
	failed bool
}

// step runs f unless an earlier step failed, and records it.
func (r *run) step(name string, f func() (string, error)) {
	if r.failed {
		r.r.Steps = append(r.r.Steps, Step{Name: name, Status: Skipped})
		return
	}
	start := r.d.now()
	detail, err := f()
	dur := r.d.now().Sub(start)
	s := Step{Name: name, Status: Passed, Duration: dur, Millis: dur.Milliseconds(), Detail: detail}
	if err != nil {
		r.failed = true
		s.Status = Failed
		e := diag.As(err)
		if e == nil {
			e = &diag.Error{Stage: diag.Stage(name), Summary: err.Error()}
		}
		s.Error = failure(e)
	}
	r.r.Steps = append(r.r.Steps, s)
}

func (r *run) unused(name, why string) {
	r.r.Steps = append(r.r.Steps, Step{Name: name, Status: Unused, Detail: why})
}

func (d *Doctor) now() time.Time {
	if d.Clock == nil {
		return time.Now()
	}
	return d.Clock()
}

func (d *Doctor) timeout() time.Duration {
	if d.Timeout == 0 {
		return 30 * time.Second
	}
	return d.Timeout
}

// settingsStep reports the validation problems of the target's own paths and the system settings.
func (r *run) settingsStep(c settings.Config, prefixes ...string) {
	ps := settings.Validate(c, settings.DateOf(r.d.now()))
	var errs []string
	for _, p := range ps {
		relevant := strings.HasPrefix(p.Path, "system.")
		for _, pre := range prefixes {
			relevant = relevant || strings.HasPrefix(p.Path, pre)
		}
		if !relevant {
			continue
		}
		if p.Severity == settings.SeverityWarning {
			r.r.Warnings = append(r.r.Warnings, p)
			continue
		}
		errs = append(errs, p.Path+": "+p.Message)
	}
	r.step("settings", func() (string, error) {
		if len(errs) > 0 {
			return "", &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings",
				Summary: fmt.Sprintf("%d problem(s) in the settings", len(errs)), Remedy: strings.Join(errs, "; ")}
		}
		return "valid", nil
	})
}

// CheckAccount checks an incoming e-mail account: can inkorg open its INBOX?
func (d *Doctor) CheckAccount(ctx context.Context, c settings.Config, address string) Report {
	a, ok := c.Account(address)
	rep := &Report{Target: "incoming account " + address}
	r := &run{d: d, r: rep}
	if !ok {
		r.step("settings", func() (string, error) {
			return "", &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "unknown account",
				Summary: "there is no incoming e-mail account " + address, Remedy: "list the accounts with: inkorg settings incoming list"}
		})
		return finish(rep)
	}
	e := settings.ResolveAccount(c.System, a)
	rep.What = describe(e.EmailMethod.Value, e.AuthFlow.Value)
	r.settingsStep(c, settings.AccountPath(a.Address))
	d.imapSteps(ctx, r, e.EmailMethod.Value, e.Server, entra.IdentityFor(c.System, e.Exchange, e.ExchangeUsername.Value, e.ExchangePassword.Value), a.Address)
	return finish(rep)
}

// CheckUser checks that a user's mail can go out; with sendTo, it sends a test message.
func (d *Doctor) CheckUser(ctx context.Context, c settings.Config, name, sendTo string) Report {
	u, ok := c.User(name)
	if !ok {
		u = settings.User{Name: name}
	}
	rep := &Report{Target: "user " + u.Name}
	r := &run{d: d, r: rep}
	d.userSteps(ctx, r, c, settings.ResolveUser(c.System, u), sendTo, settings.UserPath(u.Name))
	return finish(rep)
}

// CheckWebshop checks the webshop's mail, which goes out with the settings of the user WEBSHOP.
func (d *Doctor) CheckWebshop(ctx context.Context, c settings.Config, sendTo string) Report {
	rep := &Report{Target: "the webshop"}
	r := &run{d: d, r: rep}
	w := settings.ResolveWebshop(c)
	if w.User == nil {
		r.step("settings", func() (string, error) {
			return "", &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "settings",
				Summary: "Webshop – Administration has no e-mail method", Remedy: "inkorg settings webshop set --email-method according-to-user-settings"}
		})
		return finish(rep)
	}
	d.userSteps(ctx, r, c, *w.User, sendTo, settings.UserPath(settings.WebshopUser), "webshop.")
	return finish(rep)
}

func finish(r *Report) Report {
	r.OK = true
	for _, s := range r.Steps {
		if s.Status == Failed {
			r.OK = false
		}
	}
	return *r
}

func describe(m settings.EmailMethod, f settings.AuthFlow) string {
	if m == settings.MethodExchangeOnline {
		return m.Label() + ", " + f.Label()
	}
	return m.Label()
}

// tokenSteps runs token and claims and returns the token (empty when a step failed).
func (d *Doctor) tokenSteps(ctx context.Context, r *run, id entra.Identity, p entra.Purpose, mailbox string) (entra.Token, diag.Facts) {
	facts := d.Tokens.Facts(id, mailbox)
	var tok entra.Token
	r.step("token", func() (string, error) {
		var err error
		tok, err = d.Tokens.Token(ctx, id, p)
		if err != nil {
			return "", err
		}
		who := "app " + id.ClientID
		if !id.AppOnly() {
			who = id.Username
		}
		return fmt.Sprintf("%s in tenant %s, valid until %s", who, id.TenantID, tok.ExpiresOn.Local().Format("15:04")), nil
	})
	r.step("claims", func() (string, error) {
		if e := entra.CheckClaims(tok, p, id.AppOnly(), facts); e != nil {
			return "", e
		}
		c := tok.Claims
		if c.Audience == "" {
			return "opaque token: Exchange decides", nil
		}
		perms := strings.Join(c.Roles, " ")
		if !id.AppOnly() {
			perms = c.Scope
		}
		return fmt.Sprintf("aud %s, %s", c.Audience, perms), nil
	})
	if id.AppOnly() && tok.Claims.ObjectID != "" {
		facts.ServicePrincipalID = tok.Claims.ObjectID
	}
	return tok, facts
}

// imapAddr is where to read: Exchange Online's IMAP, or the configured server (port 0 = 993).
func (d *Doctor) imapAddr(m settings.EmailMethod, s settings.Server) string {
	if m == settings.MethodExchangeOnline {
		return d.Cloud.IMAP
	}
	return s.IMAPAddr()
}

func (d *Doctor) imapSteps(ctx context.Context, r *run, m settings.EmailMethod, s settings.Server, id entra.Identity, mailbox string) {
	if !m.ServerBased() {
		r.unused("connect", "the e-mail method hands mail to Outlook; inkorg reads nothing from a server")
		return
	}
	var tok entra.Token
	facts := diag.Facts{Mailbox: mailbox, Username: id.Username}
	if m == settings.MethodExchangeOnline {
		tok, facts = d.tokenSteps(ctx, r, id, entra.PurposeIMAP, mailbox)
	} else {
		r.unused("token", "user name and password, no OAuth")
		r.unused("claims", "user name and password, no OAuth")
	}
	addr := d.imapAddr(m, s)
	var conn *imapsource.Conn
	r.step("connect/TLS", func() (string, error) {
		var err error
		conn, err = imapsource.Dial(ctx, imapsource.Config{Addr: addr, TLSConfig: d.Cloud.TLSConfig(""), Timeout: d.timeout(), Facts: facts})
		if err != nil {
			return "", err
		}
		return addr + ", TLS verified", nil
	})
	if conn != nil {
		defer conn.Close()
	}
	r.step("authenticate", func() (string, error) {
		if m == settings.MethodExchangeOnline {
			if err := conn.AuthenticateXOAUTH2(mailbox, tok.Value()); err != nil {
				return "", err
			}
			return "XOAUTH2 as " + mailbox, nil
		}
		if err := conn.Login(id.Username, id.Password.Reveal()); err != nil {
			return "", err
		}
		return "LOGIN as " + id.Username, nil
	})
	r.step("select INBOX", func() (string, error) {
		mb, err := conn.Select("INBOX")
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d messages, UIDVALIDITY %d", mb.Messages, mb.UIDValidity), nil
	})
}

// smtpAddr is where to send: Exchange Online's submission server, or the configured server (port 0 =
// 587 with STARTTLS; 465 is implicit TLS).
func (d *Doctor) smtpAddr(m settings.EmailMethod, s settings.Server) (string, smtpsend.Security) {
	if m == settings.MethodExchangeOnline {
		return d.Cloud.SMTP, smtpsend.StartTLS
	}
	addr, implicit := s.SMTPAddr()
	if implicit {
		return addr, smtpsend.ImplicitTLS
	}
	return addr, smtpsend.StartTLS
}

func (d *Doctor) userSteps(ctx context.Context, r *run, c settings.Config, e settings.EffectiveUser, sendTo string, prefixes ...string) {
	r.r.What = describe(e.EmailMethod.Value, e.AuthFlow.Value)
	r.settingsStep(c, prefixes...)
	m := e.EmailMethod.Value
	from := e.EmailAddress.Value
	if !m.ServerBased() {
		r.unused("connect", "the e-mail method hands mail to the user's own Outlook")
		return
	}
	var tok entra.Token
	facts := diag.Facts{Mailbox: from, Username: e.ExchangeUsername.Value, From: from}
	id := entra.IdentityFor(c.System, e.Exchange, e.ExchangeUsername.Value, e.ExchangePassword.Value)
	if m == settings.MethodExchangeOnline {
		tok, facts = d.tokenSteps(ctx, r, id, entra.PurposeSMTP, from)
		facts.From = from
	} else {
		r.unused("token", "user name and password, no OAuth")
		r.unused("claims", "user name and password, no OAuth")
	}
	addr, sec := d.smtpAddr(m, e.Server)
	var conn *smtpsend.Conn
	r.step("connect/TLS", func() (string, error) {
		var err error
		conn, err = smtpsend.Dial(ctx, smtpsend.Config{Addr: addr, Security: sec, TLSConfig: d.Cloud.TLSConfig(""), Timeout: d.timeout(), Facts: facts})
		if err != nil {
			return "", err
		}
		return addr + ", TLS verified", nil
	})
	if conn != nil {
		defer conn.Close()
	}
	r.step("authenticate", func() (string, error) {
		if m == settings.MethodExchangeOnline {
			// App-only: sign in as the mailbox sent from. Delegated: as the token's own user, who
			// then sends as the From address (Send As).
			user := from
			if !id.AppOnly() {
				user = id.Username
			}
			if err := conn.AuthenticateXOAUTH2(user, tok.Value()); err != nil {
				return "", err
			}
			return "XOAUTH2 as " + user, nil
		}
		if e.ExchangeUsername.Value == "" {
			return "no sign-in (no user name set)", nil
		}
		if err := conn.Login(e.ExchangeUsername.Value, e.ExchangePassword.Value.Reveal()); err != nil {
			return "", err
		}
		return "as " + e.ExchangeUsername.Value, nil
	})
	if sendTo == "" {
		r.unused("test send", "give --send-to ADDRESS to send a test message")
		return
	}
	r.step("test send", func() (string, error) {
		msg, err := testMessage(from, sendTo, d.now())
		if err != nil {
			return "", err
		}
		if err := conn.Send(from, []string{sendTo}, bytes.NewReader(msg)); err != nil {
			return "", err
		}
		return "accepted for " + sendTo, nil
	})
}

// testMessage is the doctor's test mail.
func testMessage(from, to string, now time.Time) ([]byte, error) {
	var h mail.Header
	h.SetDate(now)
	h.SetAddressList("From", []*mail.Address{{Address: from}})
	h.SetAddressList("To", []*mail.Address{{Address: to}})
	h.SetSubject("inkorg doctor: test message")
	if err := h.GenerateMessageID(); err != nil {
		return nil, err
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	var b bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&b, h)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "This message was sent by \"inkorg doctor\" to check that mail from %s goes out.\r\n", from)
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
