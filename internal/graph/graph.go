// Package graph is inkorg's thin Microsoft Graph client (net/http, not the Graph SDK) for sending:
// POST /users/{mailbox}/sendMail with the whole MIME message base64-encoded as text/plain, answered
// by 202 Accepted. Every other answer becomes a *diag.Error with Graph's code and message, the
// request id, and a remedy: 401 (token refused or expired), 403 ErrorAccessDenied (no Mail.Send, or
// an application access policy), 403 ErrorSendAsDenied, 429 with Retry-After (KindThrottled), 5xx
// and network failures (KindTransient), 400 (the message itself: KindConfig).
package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"inkorg/internal/diag"
)

// Config configures a Client.
type Config struct {
	BaseURL string       // e.g. https://graph.microsoft.com/v1.0
	HTTP    *http.Client // nil: http.DefaultClient
	Logger  *slog.Logger
}

// Client talks to Graph.
type Client struct {
	cfg Config
	log *slog.Logger
}

// New makes a Client.
func New(cfg Config) *Client {
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Client{cfg: cfg, log: log}
}

// SendMail sends raw (a complete MIME message; Bcc recipients as a Bcc header) from mailbox. nil
// means Graph accepted it (202). facts name the IDs in a remedy.
func (c *Client) SendMail(ctx context.Context, token, mailbox string, raw []byte, facts diag.Facts) error {
	if c.cfg.BaseURL == "" {
		return &diag.Error{Stage: diag.StageSettings, Kind: diag.KindConfig, Code: "graph", Summary: "no Microsoft Graph endpoint is configured",
			Remedy: "give a cloud file with a graph address, or send with SMTP"}
	}
	u := c.cfg.BaseURL + "/users/" + url.PathEscape(mailbox) + "/sendMail"
	body := base64.StdEncoding.EncodeToString(raw)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("graph sendMail: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		// A failed dial never handed the message over (StageConnect); any later failure may have lost
		// Graph's 202 (StageSend): the caller must not resend such a message blindly.
		stage := diag.StageSend
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			stage = diag.StageConnect
		}
		return &diag.Error{Stage: stage, Kind: diag.KindTransient, Code: "network", Summary: "the request to Microsoft Graph failed",
			Server: err.Error(), Remedy: "check the network and the firewall; inkorg retries by itself", MaybeDone: stage == diag.StageSend, Err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
		return nil
	}
	e := FromResponse(resp.StatusCode, resp.Header, b, facts)
	c.log.Info("graph sendMail refused", "status", resp.StatusCode, "code", e.Code, "mailbox", mailbox, "request_id", e.TraceID)
	return e
}

type errorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID string `json:"request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// FromResponse turns a Graph error response into a *diag.Error.
func FromResponse(status int, h http.Header, body []byte, f diag.Facts) *diag.Error {
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	code, msg := eb.Error.Code, eb.Error.Message
	e := &diag.Error{Stage: diag.StageSend, Kind: diag.KindConfig, Code: strings.TrimSpace(fmt.Sprintf("Graph %d %s", status, code)),
		Server: strings.TrimSpace(code + ": " + msg), TraceID: eb.Error.InnerError.RequestID}
	if e.TraceID == "" {
		e.TraceID = h.Get("request-id")
	}
	from := or(f.From, "the From address")
	switch {
	case status == http.StatusTooManyRequests:
		e.Kind, e.Summary, e.Remedy = diag.KindThrottled, "Microsoft Graph is throttling this app and mailbox", "inkorg waits as Graph asks (Retry-After) and tries again"
		e.RetryAfterMS = 10_000
		if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s >= 0 {
			e.RetryAfterMS = int64(s) * 1000
		}
	case status >= 500:
		e.Kind, e.Summary, e.Remedy = diag.KindTransient, "Microsoft Graph failed ("+strconv.Itoa(status)+")", "inkorg retries with backoff"
	case status == http.StatusUnauthorized:
		e.Stage = diag.StageAuthenticate
		e.Summary = "Microsoft Graph refused the access token: " + msg
		e.Remedy = "check that the token is for Microsoft Graph (https://graph.microsoft.com/.default) and not expired"
		if strings.Contains(strings.ToLower(msg), "expired") {
			e.Kind, e.Remedy = diag.KindTransient, "inkorg gets a new token and retries"
		}
	case status == http.StatusForbidden && (code == "ErrorSendAsDenied" || strings.Contains(strings.ToLower(msg), "on behalf of")):
		e.Summary = "the sender may not send as " + from
		if f.AppOnly {
			e.Remedy = "with an application permission the app may send as any mailbox unless an application access policy limits it; check the policy, or send as the mailbox itself"
		} else {
			e.Remedy = "give " + or(f.Username, "the account") + " Send As on " + from
			e.Actions = []string{fmt.Sprintf("Add-RecipientPermission -Identity \"%s\" -Trustee \"%s\" -AccessRights SendAs", from, or(f.Username, "<user>"))}
		}
	case status == http.StatusForbidden:
		e.Summary = "Microsoft Graph denied sending as " + or(f.Mailbox, "the mailbox") + ": " + msg
		perm := "the delegated permission Mail.Send"
		if f.AppOnly {
			perm = "the application permission Mail.Send"
		}
		e.Remedy = "in Entra ID › App registrations › the app › API permissions › Microsoft Graph, add " + perm +
			" and grant admin consent (" + f.ConsentURL() + "); if it is there, an application access policy excludes this mailbox"
	case status == http.StatusNotFound:
		e.Summary = "Microsoft Graph does not know the mailbox " + or(f.Mailbox, "") + ": " + msg
		e.Remedy = "check the user's e-mail address"
	default:
		e.Summary = "Microsoft Graph refused the message: " + msg
		e.Remedy = "check the message (recipients, size); the server's words are above"
	}
	return e
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
