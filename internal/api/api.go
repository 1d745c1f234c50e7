// Package api is the ERP's pull side of incoming mail: a REST API over HTTP, authenticated with bearer
// tokens (inkorg token create), that lists the stored messages by a cursor, hands out their raw bytes and
// attachments, and takes the ERP's acknowledgements.
//
// Routes (everything under /api/v1/ needs "Authorization: Bearer TOKEN"):
//
//	GET  /healthz                                    "ok" (no authentication)
//	GET  /api/v1/messages?type=T&account=A&after=CURSOR&limit=N&unacked=true
//	                                                 {"messages": [...], "next": "CURSOR"}
//	GET  /api/v1/messages/{id}                       one message
//	GET  /api/v1/messages/{id}/raw                   the exact bytes (message/rfc822), ETag = sha256
//	GET  /api/v1/messages/{id}/attachments/{n}       the decoded attachment n
//	POST /api/v1/messages/{id}/ack                   {"id", "ackedAt"}; idempotent
//	GET  /api/v1/accounts                            the incoming accounts and their workers' state
//	GET  /api/v1/openapi.json                        the OpenAPI 3 description (no authentication)
//
// The ERP pages with the cursor: it keeps the "next" of each response and passes it as "after" in the
// next request; an empty page means it has everything for now (poll again later with the same cursor).
// Every error is JSON: {"error": {"code": "...", "message": "..."}}. Only a token's SHA-256 is
// looked up, and neither the token nor the Authorization header is ever logged.
package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"inkorg/internal/openapi"
	"inkorg/internal/outbox"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// Config configures the API handler.
type Config struct {
	Store  store.Store
	Logger *slog.Logger     // nil: discard
	Clock  func() time.Time // nil: time.Now
	// Accounts lists the incoming accounts for GET /api/v1/accounts; nil: the store's accounts joined
	// with the workers' states.
	Accounts func(ctx context.Context) ([]AccountView, error)
	// Outbox takes POST /api/v1/mail (mail.go); nil: those routes answer 503.
	Outbox *outbox.Outbox
}

// AccountView is one incoming account as GET /api/v1/accounts shows it.
type AccountView struct {
	ID        int64                 `json:"id"`
	Address   string                `json:"address"`
	Type      settings.IncomingType `json:"type"`
	State     string                `json:"state"` // starting, idle, fetching, backoff, paused, stopped; "unknown" before a worker reports
	Detail    string                `json:"detail,omitempty"`
	LastPoll  *time.Time            `json:"lastPoll"`
	Backlog   int                   `json:"backlog"`
	LastError *store.ErrorRecord    `json:"lastError,omitempty"`
}

// maxTokenLen bounds what is hashed and looked up; inkorg's tokens are 47 characters.
const maxTokenLen = 512

type handler struct {
	cfg  Config
	mux  *http.ServeMux
	spec http.Handler // GET /api/v1/openapi.json
}

// New returns the API as an http.Handler.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	h := &handler{cfg: cfg, spec: openapi.Handler()}
	if h.cfg.Accounts == nil {
		h.cfg.Accounts = h.storeAccounts
	}
	api := http.NewServeMux()
	root := http.NewServeMux()
	for _, g := range groupRoutes(routeTable()) {
		m := methods{}
		for method, serve := range g.serve {
			m[method] = func(w http.ResponseWriter, r *http.Request) { serve(h, w, r) }
		}
		if g.public {
			root.Handle(g.path, m)
		} else {
			api.Handle(g.path, m)
		}
	}
	api.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such API route: "+r.URL.Path+" (see /api/v1/messages and /api/v1/accounts)")
	})
	root.Handle("/api/v1/", h.authenticate(api))
	root.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "not found: "+r.URL.Path+" (the API is under /api/v1/)")
	})
	h.mux = root
	return h
}

// route is one method and path the API answers. A public route needs no bearer token.
type route struct {
	method, path string
	public       bool
	serve        func(h *handler, w http.ResponseWriter, r *http.Request)
}

// routeTable is every route New registers, and what Routes and PublicRoutes list.
func routeTable() []route {
	rs := []route{
		{http.MethodGet, "/healthz", true, func(_ *handler, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		}},
		// The description is public, like /healthz: it holds no data, and the ERP's developers and their
		// tools (code generators, Swagger UI) read it before they have a token.
		{http.MethodGet, "/api/v1/openapi.json", true, func(h *handler, w http.ResponseWriter, r *http.Request) {
			h.spec.ServeHTTP(w, r)
		}},
		{http.MethodGet, "/api/v1/messages", false, (*handler).listMessages},
		{http.MethodGet, "/api/v1/messages/{id}", false, (*handler).getMessage},
		{http.MethodGet, "/api/v1/messages/{id}/raw", false, (*handler).getRaw},
		{http.MethodGet, "/api/v1/messages/{id}/attachments/{n}", false, (*handler).getAttachment},
		{http.MethodPost, "/api/v1/messages/{id}/ack", false, (*handler).ack},
		{http.MethodGet, "/api/v1/accounts", false, (*handler).accounts},
	}
	return append(rs, mailRoutes()...)
}

// routeGroup is the routes of one path: ServeMux takes each path once, and methods picks the handler.
type routeGroup struct {
	path   string
	public bool
	serve  map[string]func(h *handler, w http.ResponseWriter, r *http.Request)
}

func groupRoutes(rs []route) []routeGroup {
	var gs []routeGroup
	index := map[string]int{}
	for _, r := range rs {
		i, ok := index[r.path]
		if !ok {
			i = len(gs)
			index[r.path] = i
			gs = append(gs, routeGroup{path: r.path, public: r.public, serve: map[string]func(*handler, http.ResponseWriter, *http.Request){}})
		}
		gs[i].serve[r.method] = r.serve
	}
	return gs
}

// Routes are the patterns New registers, "METHOD /path" as net/http writes them (GET also answers HEAD).
func Routes() []string {
	var out []string
	for _, r := range routeTable() {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

// PublicRoutes are the Routes that answer without a bearer token.
func PublicRoutes() []string {
	var out []string
	for _, r := range routeTable() {
		if r.public {
			out = append(out, r.method+" "+r.path)
		}
	}
	return out
}

// ServeHTTP adds the security headers, logs the request and recovers from a panic.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.cfg.Clock()
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	hd.Set("Referrer-Policy", "no-referrer")
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	info := &requestInfo{}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.cfg.Logger.Error("api: panic serving a request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
			if !rec.wrote {
				writeError(rec, http.StatusInternalServerError, "internal", "internal error")
			}
		}
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status, "bytes", rec.bytes,
			"duration", h.cfg.Clock().Sub(start).Round(time.Microsecond), "remote", r.RemoteAddr}
		if q := logQuery(r); q != "" {
			attrs = append(attrs, "query", q)
		}
		if info.token != "" {
			attrs = append(attrs, "token", info.token)
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		h.cfg.Logger.Log(r.Context(), level, "api request", attrs...)
	}()
	h.mux.ServeHTTP(rec, r)
}

// logQuery is the query for the log: only the known parameters, so a token a client put in the URL by
// mistake never reaches the log.
func logQuery(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	q := r.URL.Query()
	var parts []string
	for _, k := range listParams() {
		if v, ok := q[k]; ok {
			parts = append(parts, k+"="+strings.Join(v, ","))
		}
	}
	if len(parts) < len(q) {
		parts = append(parts, "(other parameters not logged)")
	}
	return strings.Join(parts, "&")
}

type infoKey struct{}

// requestInfo carries what the log line needs from inside the handlers: the token's name.
type requestInfo struct{ token string }

// recorder remembers the status and size of a response for the log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// methods routes a path by method; another method gets a JSON 405 with Allow. GET also serves HEAD.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if f, ok := m[method]; ok {
		f(w, r)
		return
	}
	var allow []string
	for k := range m {
		allow = append(allow, k)
		if k == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
}

// HashToken is what the store keeps of an API token: its SHA-256.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// authenticate lets a request through only with a valid bearer token.
func (h *handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="inkorg"`)
			writeError(w, http.StatusUnauthorized, "unauthorized",
				`this API needs the header "Authorization: Bearer TOKEN"; create a token with "inkorg token create NAME"`)
			return
		}
		var t store.APIToken
		var err error
		if len(token) <= maxTokenLen {
			t, err = h.cfg.Store.APITokenByHash(r.Context(), HashToken(token))
		} else {
			err = store.ErrNotFound
		}
		if errors.Is(err, store.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="inkorg", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "invalid_token",
				`the bearer token is not valid (unknown or revoked); "inkorg token list" shows the tokens, "inkorg token create NAME" makes a new one`)
			return
		}
		if err != nil {
			h.cfg.Logger.Error("api: look up API token", "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "the token could not be checked: the store is unavailable; try again")
			return
		}
		if info, _ := r.Context().Value(infoKey{}).(*requestInfo); info != nil {
			info.token = t.Name
		}
		next.ServeHTTP(w, r)
	})
}

// bearer takes the token out of an Authorization header value.
func bearer(v string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func (h *handler) storeAccounts(ctx context.Context) ([]AccountView, error) {
	accounts, err := h.cfg.Store.IncomingAccounts(ctx)
	if err != nil {
		return nil, err
	}
	states, err := h.cfg.Store.AccountStates(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[int64]store.AccountState{}
	for _, s := range states {
		byID[s.AccountID] = s
	}
	out := make([]AccountView, 0, len(accounts))
	for _, a := range accounts {
		v := AccountView{ID: a.ID, Address: a.Address, Type: a.Type, State: "unknown"}
		if s, ok := byID[a.ID]; ok {
			v.State, v.Detail, v.Backlog, v.LastError = s.State, s.Detail, s.Backlog, s.LastError
			if !s.LastPoll.IsZero() {
				p := s.LastPoll.UTC()
				v.LastPoll = &p
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func (h *handler) accounts(w http.ResponseWriter, r *http.Request) {
	list, err := h.cfg.Accounts(r.Context())
	if err != nil {
		h.internal(w, "list accounts", err)
		return
	}
	if list == nil {
		list = []AccountView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": list})
}
