// Package graph is the emulator's Microsoft Graph mail subset: the REST endpoints a mail integration
// calls on https://graph.microsoft.com/v1.0, served from the emulator's exo.MailStore so that what a
// Graph client sees is what IMAP and SMTP clients see.
//
// Served (GET unless noted), under /v1.0 or with that prefix already stripped, for users/{id},
// users('{id}') and me:
//
//	mailFolders                                   ($filter=displayName eq '…', $top, $skip)
//	mailFolders/{folder}                          (an id or a well-known name: inbox, archive, …)
//	mailFolders/{folder}/childFolders
//	mailFolders/{folder}/messages                 ($top, $skip, $orderby=receivedDateTime [asc|desc])
//	mailFolders/{folder}/messages/delta           (@odata.nextLink / @odata.deltaLink, @removed, 410)
//	[mailFolders/{folder}/]messages/{id}          (GET; PATCH {"isRead": …} → 200)
//	[mailFolders/{folder}/]messages/{id}/$value   (the delivered bytes, unchanged)
//	[mailFolders/{folder}/]messages/{id}/move     (POST {"destinationId": …} → 201, new id)
//	sendMail                                      (POST JSON, or base64 MIME as text/plain → 202)
//
// Authentication goes through the exo.Authorizer with exo.ProtocolGraph; failures are answered in
// Graph's error JSON (401 InvalidAuthenticationToken, 403 ErrorAccessDenied, 404 ErrorItemNotFound /
// ErrorInvalidUser, 410 SyncStateNotFound, 429 ApplicationThrottled with Retry-After, …) with
// request-id, date and client-request-id in innerError.
package graph

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"inkorg/internal/emulator/exo"
)

// Defaults of Config.
const (
	DefaultMaxSyncStates      = 1024
	DefaultSyncStateTTL       = 7 * 24 * time.Hour
	DefaultMailboxConcurrency = 4 // Outlook's documented limit per app and mailbox
)

// Config configures a Handler.
type Config struct {
	Store      *exo.MailStore   // required
	Authorizer exo.Authorizer   // required
	Clock      func() time.Time // nil: time.Now
	Logger     *slog.Logger     // nil: discard
	// BaseURL is the public URL of /v1.0, used in @odata links (e.g. "https://127.0.0.1:8443/v1.0");
	// "" derives it from each request: https://{Host}/v1.0 (http:// without TLS).
	BaseURL string
	// Rand makes request ids, Message-IDs and the delta-token epoch; nil: crypto/rand. Tests pass a
	// deterministic reader.
	Rand io.Reader
	// MaxSyncStates bounds the delta sync states kept (oldest dropped first; a dropped state's token
	// gets 410). 0: DefaultMaxSyncStates.
	MaxSyncStates int
	// SyncStateTTL is how long a delta or skip token stays valid. 0: DefaultSyncStateTTL.
	SyncStateTTL time.Duration
	// MailboxConcurrency is the number of concurrent requests allowed per app and mailbox before 429
	// ApplicationThrottled. 0: DefaultMailboxConcurrency; negative: unlimited.
	MailboxConcurrency int
}

// Faults are injected failures; the zero value is none.
type Faults struct {
	// Throttle answers every authenticated request with 429 ApplicationThrottled for this long from
	// SetFaults, with Retry-After set to the seconds remaining (rounded up).
	Throttle time.Duration
	// Unavailable answers the next N requests with 503, before authentication.
	Unavailable int
}

// Handler serves the Graph mail subset. It is an http.Handler; it holds no goroutines or listeners, so
// it needs no Start or Close: mount it on the emulator's HTTPS listener.
type Handler struct {
	store       *exo.MailStore
	auth        exo.Authorizer
	clock       func() time.Time
	log         *slog.Logger
	base        string
	maxStates   int
	stateTTL    time.Duration
	concurrency int

	mu            sync.Mutex
	rnd           io.Reader
	epoch         [4]byte
	throttleUntil time.Time
	unavailable   int
	states        map[uint64]*syncState
	stateOrder    []uint64 // ids in creation order, for eviction
	lastState     uint64
	inflight      map[string]int
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Authorizer == nil {
		return nil, errors.New("graph: Config.Store and Config.Authorizer are required")
	}
	h := &Handler{
		store: cfg.Store, auth: cfg.Authorizer, clock: cfg.Clock, log: cfg.Logger,
		base: strings.TrimSuffix(cfg.BaseURL, "/"), maxStates: cfg.MaxSyncStates, stateTTL: cfg.SyncStateTTL,
		concurrency: cfg.MailboxConcurrency, rnd: cfg.Rand,
		states: make(map[uint64]*syncState), inflight: make(map[string]int),
	}
	if h.clock == nil {
		h.clock = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.rnd == nil {
		h.rnd = rand.Reader
	}
	if h.maxStates <= 0 {
		h.maxStates = DefaultMaxSyncStates
	}
	if h.stateTTL <= 0 {
		h.stateTTL = DefaultSyncStateTTL
	}
	if h.concurrency == 0 {
		h.concurrency = DefaultMailboxConcurrency
	}
	if _, err := io.ReadFull(h.rnd, h.epoch[:]); err != nil {
		return nil, fmt.Errorf("graph: read random epoch: %w", err)
	}
	return h, nil
}

// SetFaults replaces the injected faults. Safe for concurrent use.
func (h *Handler) SetFaults(f Faults) {
	now := h.clock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.throttleUntil = time.Time{}
	if f.Throttle > 0 {
		h.throttleUntil = now.Add(f.Throttle)
	}
	h.unavailable = max(f.Unavailable, 0)
}

// ThrottleLeft is how much longer the Throttle fault set by SetFaults runs (0 when none does).
func (h *Handler) ThrottleLeft() time.Duration {
	now := h.clock()
	h.mu.Lock()
	defer h.mu.Unlock()
	return max(h.throttleUntil.Sub(now), 0)
}

// ExpireSyncStates forgets every delta sync state: every outstanding $deltatoken and $skiptoken then
// gets 410 SyncStateNotFound, as after Exchange drops a sync state.
func (h *Handler) ExpireSyncStates() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.states)
	h.stateOrder = nil
}

// request is one request being served.
type request struct {
	w        http.ResponseWriter
	r        *http.Request
	now      time.Time
	id       string // request-id
	clientID string // client-request-id
	me       bool
	user     string // the {id} of users/{id}, or the token's UPN for /me
	mailbox  string // the store's address
	p        exo.Principal
	c        claims
	rest     []string         // path elements after users/{id} or me
	folders  []exo.FolderInfo // memo of the mailbox's folders for this request
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	rq := &request{w: sw, r: r, now: h.clock(), id: h.newUUID()}
	rq.clientID = r.Header.Get("client-request-id")
	if rq.clientID == "" || len(rq.clientID) > 128 {
		rq.clientID = rq.id
	}
	sw.Header().Set("request-id", rq.id)
	sw.Header().Set("client-request-id", rq.clientID)
	if err := h.serve(rq); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			h.log.Error("graph: internal error", "method", r.Method, "path", r.URL.Path, "request_id", rq.id, "err", err)
			ae = errorf(http.StatusInternalServerError, "generalException", "An internal server error occurred.")
		}
		writeError(sw, rq.now, rq.id, rq.clientID, ae)
	}
	h.log.Debug("graph request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "request_id", rq.id)
}

func (h *Handler) serve(rq *request) error {
	if h.takeUnavailable() {
		return errorf(http.StatusServiceUnavailable, codeUnavailable, msgUnavailable)
	}
	elems, err := splitPath(rq.r.URL.EscapedPath())
	if err != nil {
		return errorf(http.StatusBadRequest, codeBadRequest, "Invalid request URL.")
	}
	switch {
	case len(elems) >= 2 && strings.EqualFold(elems[0], "users"):
		rq.user, rq.rest = elems[1], elems[2:]
	case len(elems) >= 1 && strings.EqualFold(elems[0], "me"):
		rq.me, rq.rest = true, elems[1:]
	default:
		seg := ""
		if len(elems) > 0 {
			seg = elems[0]
		}
		return errorf(http.StatusBadRequest, codeBadRequest, "Resource not found for the segment '"+seg+"'.")
	}
	if err := h.authenticate(rq.r.Context(), rq); err != nil {
		return err
	}
	if err := h.throttled(rq.now); err != nil {
		return err
	}
	release, err := h.acquire(rq.p.AppID, rq.mailbox)
	if err != nil {
		return err
	}
	defer release()
	return h.route(rq)
}

// takeUnavailable consumes one injected 503.
func (h *Handler) takeUnavailable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.unavailable > 0 {
		h.unavailable--
		return true
	}
	return false
}

func (h *Handler) throttled(now time.Time) error {
	h.mu.Lock()
	until := h.throttleUntil
	h.mu.Unlock()
	if !now.Before(until) {
		return nil
	}
	left := until.Sub(now)
	secs := int((left + time.Second - 1) / time.Second)
	e := errorf(http.StatusTooManyRequests, codeThrottled, msgThrottled)
	e.retryAfter = max(secs, 1)
	return e
}

// acquire counts a request against the app's concurrency limit on the mailbox.
func (h *Handler) acquire(appID, mailbox string) (func(), error) {
	if h.concurrency < 0 {
		return func() {}, nil
	}
	key := appID + "\x00" + strings.ToLower(mailbox)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inflight[key] >= h.concurrency {
		e := errorf(http.StatusTooManyRequests, codeThrottled, msgThrottled)
		e.retryAfter = 1
		return nil, e
	}
	h.inflight[key]++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.inflight[key]--; h.inflight[key] <= 0 {
			delete(h.inflight, key)
		}
	}, nil
}

// authenticate checks the bearer token through the Authorizer and fills rq.p, rq.c and rq.mailbox.
func (h *Handler) authenticate(ctx context.Context, rq *request) error {
	scheme, tok, _ := strings.Cut(rq.r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return errorf(http.StatusUnauthorized, codeInvalidToken, msgTokenEmpty)
	}
	c, decoded := peekClaims(tok)
	if rq.me {
		if decoded && c.appOnly {
			return errorf(http.StatusBadRequest, codeBadRequest, msgMeAppOnly)
		}
		rq.user = c.upn
	}
	p, err := h.auth.Authorize(ctx, exo.ProtocolGraph, rq.user, tok)
	if err != nil {
		var d *exo.Denial
		if !errors.As(err, &d) {
			return fmt.Errorf("graph: authorize %s: %w", rq.user, err)
		}
		h.log.Info("graph: access denied", "mailbox", rq.user, "reason", d.Reason, "request_id", rq.id)
		return h.denial(rq, d, tok, c, decoded)
	}
	if !decoded {
		// The Authorizer vouched for a token whose permissions cannot be read: fail closed.
		return errorf(http.StatusForbidden, codeAccessDenied, msgAccessDenied)
	}
	rq.p, rq.c, rq.mailbox = p, c, p.Mailbox
	if rq.mailbox == "" {
		rq.mailbox = rq.user
	}
	if !h.store.HasMailbox(rq.mailbox) {
		return invalidUser(rq.user)
	}
	return nil
}

// denial turns an Authorizer's refusal into Graph's answer. exo.Denial does not say which check failed
// for DenyBadToken, so the token's (unverified) claims pick the message, in the order Graph checks.
func (h *Handler) denial(rq *request, d *exo.Denial, tok string, c claims, decoded bool) error {
	switch d.Kind {
	case exo.DenyNotConnected, exo.DenyProtocolDisabled:
		return errorf(http.StatusForbidden, codeAccessDenied, msgODataDisabled)
	case exo.DenyLoginRefused:
		return errorf(http.StatusUnauthorized, codeInvalidToken, msgTokenInvalid)
	}
	switch {
	case !decoded && !strings.Contains(tok, "."):
		return errorf(http.StatusUnauthorized, codeInvalidToken, msgNotJWT)
	case !decoded:
		return errorf(http.StatusUnauthorized, codeInvalidToken, msgTokenInvalid)
	case !c.exp.IsZero() && !rq.now.Before(c.exp):
		return errorf(http.StatusUnauthorized, codeInvalidToken, msgTokenExpired)
	case !c.graphAudience():
		return errorf(http.StatusUnauthorized, codeInvalidToken, msgBadAudience)
	case !c.anyMail():
		return errorf(http.StatusForbidden, codeAccessDenied, msgAccessDenied)
	case rq.user != "" && !h.store.HasMailbox(rq.user):
		return invalidUser(rq.user)
	case !c.appOnly && !strings.EqualFold(c.upn, rq.user):
		return errorf(http.StatusForbidden, codeAccessDenied, msgAccessDenied)
	}
	return errorf(http.StatusUnauthorized, codeInvalidToken, msgTokenInvalid)
}

// need answers 403 unless the token grants p.
func (rq *request) need(p permission) error {
	if !rq.c.grants(p) {
		return errorf(http.StatusForbidden, codeAccessDenied, msgAccessDenied)
	}
	return nil
}

func isName(elem, name string) bool {
	return strings.EqualFold(strings.TrimPrefix(strings.ToLower(elem), "microsoft.graph."), name)
}

func (h *Handler) route(rq *request) error {
	r, rest := rq.r, rq.rest
	method := func(m string) error {
		if r.Method != m && !(m == http.MethodGet && r.Method == http.MethodHead) {
			return errorf(http.StatusMethodNotAllowed, codeBadRequest, "The HTTP method '"+r.Method+"' is not allowed for this resource.")
		}
		return nil
	}
	n := len(rest)
	switch {
	case n == 0:
		return errorf(http.StatusNotImplemented, codeNotImplemented, "The emulator serves only the mail resources of a user.")
	case n == 1 && isName(rest[0], "sendmail"):
		if err := method(http.MethodPost); err != nil {
			return err
		}
		return h.sendMail(rq)
	case n >= 1 && isName(rest[0], "mailfolders"):
		if n == 1 {
			if err := method(http.MethodGet); err != nil {
				return err
			}
			return h.listFolders(rq, nil)
		}
		folder := rest[1]
		switch {
		case n == 2:
			if err := method(http.MethodGet); err != nil {
				return err
			}
			return h.getFolder(rq, folder)
		case n == 3 && isName(rest[2], "childfolders"):
			if err := method(http.MethodGet); err != nil {
				return err
			}
			f, err := h.resolveFolder(rq, folder)
			if err != nil {
				return err
			}
			return h.listFolders(rq, &f)
		case n == 3 && isName(rest[2], "messages"):
			if err := method(http.MethodGet); err != nil {
				return err
			}
			return h.listMessages(rq, folder)
		case n == 4 && isName(rest[2], "messages") && isName(rest[3], "delta"):
			if err := method(http.MethodGet); err != nil {
				return err
			}
			return h.delta(rq, folder)
		case n >= 4 && isName(rest[2], "messages"):
			return h.routeMessage(rq, rest[3:], method)
		}
	case n >= 2 && isName(rest[0], "messages"):
		return h.routeMessage(rq, rest[1:], method)
	case n == 1 && isName(rest[0], "messages"):
		return errorf(http.StatusNotImplemented, codeNotImplemented, "The emulator serves messages per folder: use mailFolders/{id}/messages.")
	}
	seg := ""
	for _, e := range rest {
		seg = e
	}
	return errorf(http.StatusBadRequest, codeBadRequest, "Resource not found for the segment '"+seg+"'.")
}

// routeMessage serves messages/{id}[/$value|/move]; elems starts with the id.
func (h *Handler) routeMessage(rq *request, elems []string, method func(string) error) error {
	id := elems[0]
	switch {
	case len(elems) == 1 && rq.r.Method == http.MethodPatch:
		return h.patchMessage(rq, id)
	case len(elems) == 1:
		if err := method(http.MethodGet); err != nil {
			return err
		}
		return h.getMessage(rq, id)
	case len(elems) == 2 && elems[1] == "$value":
		if err := method(http.MethodGet); err != nil {
			return err
		}
		return h.getValue(rq, id)
	case len(elems) == 2 && isName(elems[1], "move"):
		if err := method(http.MethodPost); err != nil {
			return err
		}
		return h.moveMessage(rq, id)
	}
	return errorf(http.StatusBadRequest, codeBadRequest, "Resource not found for the segment '"+elems[len(elems)-1]+"'.")
}

// splitPath splits an escaped URL path into elements, dropping a leading /v1.0 and unfolding OData key
// syntax: "users('a@b')/mailFolders('inbox')" gives users, a@b, mailFolders, inbox; "delta()" gives delta.
func splitPath(escaped string) ([]string, error) {
	p := strings.TrimPrefix(escaped, "/")
	if len(p) >= 4 && strings.EqualFold(p[:4], "v1.0") && (len(p) == 4 || p[4] == '/') {
		p = strings.TrimPrefix(p[4:], "/")
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, nil
	}
	var out []string
	for _, raw := range strings.Split(p, "/") {
		seg, err := url.PathUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("graph: path segment %q: %w", raw, err)
		}
		if seg == "" {
			return nil, errors.New("graph: empty path segment")
		}
		i := strings.IndexByte(seg, '(')
		if i <= 0 || !strings.HasSuffix(seg, ")") {
			out = append(out, seg)
			continue
		}
		name, key := seg[:i], seg[i+1:len(seg)-1]
		out = append(out, name)
		if key == "" {
			continue
		}
		if len(key) >= 2 && key[0] == '\'' && key[len(key)-1] == '\'' {
			inner := key[1 : len(key)-1]
			if strings.Count(inner, "'")%2 != 0 || strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
				return nil, fmt.Errorf("graph: bad key literal %q", key)
			}
			key = strings.ReplaceAll(inner, "''", "'")
		}
		if key == "" {
			return nil, errors.New("graph: empty key")
		}
		out = append(out, key)
	}
	return out, nil
}

// baseURL is the public URL of /v1.0 for links.
func (h *Handler) baseURL(r *http.Request) string {
	if h.base != "" {
		return h.base
	}
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + "/v1.0"
}

// userPath is the users/{id} (or me) part of links.
func (rq *request) userPath() string {
	if rq.me {
		return "me"
	}
	return "users/" + url.PathEscape(rq.user)
}

// newUUID returns a random (version 4) UUID from the handler's random source.
func (h *Handler) newUUID() string {
	var b [16]byte
	h.mu.Lock()
	_, err := io.ReadFull(h.rnd, b[:])
	h.mu.Unlock()
	if err != nil {
		// A random source that fails is a broken test double; ids stay unique enough for the log.
		b = [16]byte{}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// odataContentType is the Content-Type of Graph's JSON answers.
const odataContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", odataContentType)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the status is sent; a failed write means the client went away
	return nil
}

// readJSON decodes a request body of at most limit bytes.
func readJSON(r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("graph: read body: %w", err)
	}
	if int64(len(body)) > limit {
		return errorf(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large.")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return errorf(http.StatusBadRequest, codeBadRequest, msgEmptyPayload)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(http.StatusBadRequest, codeBadRequest, msgBadJSON)
	}
	return nil
}
