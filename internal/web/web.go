// Package web is inkorg's admin web UI: the seeds' four procedures (System settings, Users, Settings
// for incoming e-mail, Webshop – Administration) in English and Swedish, an accounts dashboard, the
// message lists and viewer, the outbox and the audit log; and the front door of the settings REST API
// (package settingsapi), which it authenticates with the same sessions.
//
// Security: operators sign in with a name and password (argon2id hashes in the store; failed attempts
// are limited per IP address and per name); a session is a random token in an HttpOnly, SameSite=Strict
// cookie (Secure when the request came over TLS or Config.SecureCookies), stored only as its SHA-256,
// with an absolute expiry. Every state-changing request needs the session's CSRF token (a form field
// "csrf", or the header X-CSRF-Token for the API). Roles: admin may do everything; user only their
// own e-mail settings. Every response carries a CSP without inline script, frame-ancestors 'none',
// nosniff and no-referrer. Nothing but /login, /static/ and /healthz answers without a session (the
// ERP API under /api/v1/ keeps its own bearer tokens: Config.API). Secrets are never rendered, only
// "set" or "not set".
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"inkorg/internal/settingsapi"
	"inkorg/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Cookie names.
const (
	sessionCookie = "inkorg_session"
	loginCookie   = "inkorg_login" // the login form's CSRF token (double submit), before there is a session
	langCookie    = "inkorg_lang"
	csrfHeader    = "X-CSRF-Token"
)

// Config configures the UI.
type Config struct {
	Store store.Store
	// API serves /healthz and the ERP's API under /api/v1/ (api.New); nil: those answer 404.
	API http.Handler
	// Validate runs the doctor for "Validate selected address"; nil: the button reports it unavailable.
	Validate settingsapi.Validator
	Logger   *slog.Logger     // nil: discard
	Clock    func() time.Time // nil: time.Now
	// SecureCookies sets the Secure attribute on every cookie (behind a TLS-terminating proxy); cookies
	// are Secure anyway for requests that arrive over TLS.
	SecureCookies bool
	SessionTTL    time.Duration // 0: 8 hours
	// Failed sign-ins allowed in LoginWindow per IP address and per operator name; 0: 20 and 5 in 15 minutes.
	LoginFailuresPerIP, LoginFailuresPerName int
	LoginWindow                              time.Duration
}

// Handler is the UI and the settings API behind one http.Handler.
type Handler struct {
	cfg      Config
	pages    map[string]*template.Template
	static   http.Handler
	settings http.Handler
	svc      settingsapi.Service
	byIP     *limiter
	byName   *limiter
	mux      *http.ServeMux
	// dummyHash is checked for an unknown name, so a sign-in takes as long whether the name exists or not.
	dummyHash []byte
}

// New parses the templates and builds the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("web: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.LoginFailuresPerIP == 0 {
		cfg.LoginFailuresPerIP = 20
	}
	if cfg.LoginFailuresPerName == 0 {
		cfg.LoginFailuresPerName = 5
	}
	if cfg.LoginWindow == 0 {
		cfg.LoginWindow = 15 * time.Minute
	}
	h := &Handler{cfg: cfg, pages: map[string]*template.Template{},
		svc:    settingsapi.Service{Store: cfg.Store, Clock: cfg.Clock},
		byIP:   newLimiter(cfg.LoginFailuresPerIP, cfg.LoginWindow),
		byName: newLimiter(cfg.LoginFailuresPerName, cfg.LoginWindow),
	}
	var err error
	if h.dummyHash, err = HashPassword("not a password of anyone's"); err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(templateFuncs()).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		h.pages[base] = t
	}
	sub, _ := fs.Sub(staticFS, "static")
	h.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	h.settings = settingsapi.New(settingsapi.Config{Store: cfg.Store, Validate: cfg.Validate, Logger: cfg.Logger, Clock: cfg.Clock})
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /login", h.loginPage)
	m.HandleFunc("POST /login", h.login)
	m.Handle("GET /static/", h.static)
	m.HandleFunc("/healthz", h.toAPI)
	m.HandleFunc("/api/v1/", h.toAPI)
	for _, p := range settingsapi.Routes() {
		m.Handle(p, h.authed(h.settings, true))
	}
	page := func(pattern string, f func(w http.ResponseWriter, r *http.Request, s *session)) {
		m.Handle(pattern, h.authed(h.pageFunc(f), false))
	}
	page("POST /logout", h.logout)
	page("GET /{$}", h.dashboard)
	page("GET /system", h.admin(h.systemPage))
	page("POST /system", h.admin(h.saveSystem))
	page("GET /users", h.usersPage)
	page("POST /users", h.admin(h.openUser))
	page("GET /users/{name}", h.userPage)
	page("POST /users/{name}", h.saveUser)
	page("GET /incoming", h.admin(h.incomingPage))
	page("POST /incoming", h.admin(h.addAccount))
	page("POST /incoming/validate", h.admin(h.validateSelected))
	page("GET /incoming/{id}", h.admin(h.accountPage))
	page("POST /incoming/{id}", h.admin(h.saveAccount))
	page("POST /incoming/{id}/delete", h.admin(h.deleteAccount))
	page("POST /incoming/{id}/validate", h.admin(h.validateAccount))
	page("GET /webshop", h.admin(h.webshopPage))
	page("POST /webshop", h.admin(h.saveWebshop))
	page("GET /messages", h.admin(h.messagesPage))
	page("GET /messages/{id}", h.admin(h.messagePage))
	page("GET /outbox", h.admin(h.outboxPage))
	page("GET /audit", h.admin(h.auditPage))
	page("/", func(w http.ResponseWriter, r *http.Request, s *session) {
		h.errorPage(w, r, s, http.StatusNotFound, "Not found: "+r.URL.Path)
	})
	h.mux = m
}

// isSettingsAPI reports whether path belongs to the settings API rather than the ERP's API.
func isSettingsAPI(path string) bool {
	for _, p := range settingsapi.Routes() {
		if path == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(path, p)) {
			return true
		}
	}
	return false
}

func (h *Handler) toAPI(w http.ResponseWriter, r *http.Request) {
	if h.cfg.API == nil {
		http.NotFound(w, r)
		return
	}
	h.cfg.API.ServeHTTP(w, r)
}

// ServeHTTP sets the security headers and routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		hd.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

// session is a signed-in request's operator and tokens.
type session struct {
	op    store.Operator
	token string
	csrf  string
	lang  Lang
}

func (s *session) principal() settingsapi.Principal {
	return settingsapi.Principal{Name: s.op.Name, Role: s.op.Role, User: s.op.User}
}

type sessionKey struct{}

// currentSession finds the request's session from its cookie.
func (h *Handler) currentSession(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, store.ErrNotFound
	}
	_, op, err := h.cfg.Store.SessionByHash(r.Context(), tokenHash(c.Value), h.cfg.Clock())
	if err != nil {
		return nil, err
	}
	return &session{op: op, token: c.Value, csrf: csrfFor(c.Value), lang: langOf(r)}, nil
}

func langOf(r *http.Request) Lang {
	if c, err := r.Cookie(langCookie); err == nil && c.Value == string(Swedish) {
		return Swedish
	}
	return English
}

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// authed requires a session and, for a state-changing request, its CSRF token (the header for the
// API, the form field "csrf" for a page).
func (h *Handler) authed(next http.Handler, api bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := h.currentSession(r)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				h.cfg.Logger.Error("read session", "err", err)
			}
			switch {
			case api:
				settingsapi.WriteError(w, http.StatusUnauthorized, "unauthenticated", "sign in at /login first", nil)
			case safeMethod(r.Method):
				http.Redirect(w, r, "/login", http.StatusSeeOther)
			default:
				http.Error(w, "sign in first", http.StatusUnauthorized)
			}
			return
		}
		if !safeMethod(r.Method) {
			var got string
			if api {
				got = r.Header.Get(csrfHeader)
			} else {
				r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
				got = r.PostFormValue("csrf")
			}
			if !sameToken(got, s.csrf) {
				if api {
					settingsapi.WriteError(w, http.StatusForbidden, "csrf", "the request lacks its CSRF token (header "+csrfHeader+")", nil)
				} else {
					http.Error(w, "the form lacks its CSRF token: reload the page and try again", http.StatusForbidden)
				}
				return
			}
		}
		ctx := settingsapi.WithPrincipal(r.Context(), s.principal())
		ctx = context.WithValue(ctx, sessionKey{}, s)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (h *Handler) pageFunc(f func(w http.ResponseWriter, r *http.Request, s *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := r.Context().Value(sessionKey{}).(*session)
		if lang := r.URL.Query().Get("lang"); safeMethod(r.Method) && (lang == string(English) || lang == string(Swedish)) {
			h.setCookie(w, r, langCookie, lang, 365*24*time.Hour, false)
			q := r.URL.Query()
			q.Del("lang")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		f(w, r, s)
	})
}

// admin lets only administrators through.
func (h *Handler) admin(f func(w http.ResponseWriter, r *http.Request, s *session)) func(w http.ResponseWriter, r *http.Request, s *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if s.op.Role != store.RoleAdmin {
			h.errorPage(w, r, s, http.StatusForbidden, s.lang.T("You may only change your own e-mail settings."))
			return
		}
		f(w, r, s)
	}
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, ttl time.Duration, httpOnly bool) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: httpOnly, SameSite: http.SameSiteStrictMode,
		Secure: h.cfg.SecureCookies || r.TLS != nil}
	if ttl < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(ttl / time.Second)
	}
	http.SetCookie(w, c)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type loginData struct {
	base
	Name string
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if lang := r.URL.Query().Get("lang"); lang == string(English) || lang == string(Swedish) {
		h.setCookie(w, r, langCookie, lang, 365*24*time.Hour, false)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	h.renderLogin(w, r, http.StatusOK, "", "")
}

func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, name, msg string) {
	// Keep a login token the browser already has: a second tab, or the browser's own request for
	// /favicon.ico redirected here, must not invalidate the form already shown.
	tok := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == 43 {
		tok = c.Value
	} else {
		tok = newToken()
	}
	h.setCookie(w, r, loginCookie, tok, 30*time.Minute, true)
	l := langOf(r)
	h.render(w, status, "login", loginData{base: base{L: l, CSRF: tok, Title: l.T("Sign in"), Path: "/login", Error: msg}, Name: name})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	lang := langOf(r)
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue("csrf"), c.Value) {
		http.Error(w, "the sign-in form lacks its CSRF token: reload the page and try again", http.StatusForbidden)
		return
	}
	now := h.cfg.Clock()
	ip := clientIP(r)
	name := strings.TrimSpace(r.PostFormValue("name"))
	nameKey := strings.ToLower(name)
	if b1, wait1 := h.byIP.blocked(ip, now); b1 {
		h.tooMany(w, r, name, wait1)
		return
	}
	if b2, wait2 := h.byName.blocked(nameKey, now); b2 {
		h.tooMany(w, r, name, wait2)
		return
	}
	op, err := h.cfg.Store.Operator(r.Context(), name)
	hash := op.PasswordHash
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.cfg.Logger.Error("sign-in: read operator", "err", err)
		}
		hash = h.dummyHash
	}
	ok, herr := CheckPassword(hash, r.PostFormValue("password"))
	if err != nil || herr != nil || !ok {
		h.byIP.fail(ip, now)
		h.byName.fail(nameKey, now)
		h.cfg.Logger.Warn("failed sign-in", "name", name, "ip", ip)
		h.renderLogin(w, r, http.StatusUnauthorized, name, lang.T("Wrong name or password."))
		return
	}
	h.byName.reset(nameKey)
	tok := newToken()
	if err := h.cfg.Store.CreateSession(r.Context(), store.Session{Hash: tokenHash(tok), OperatorID: op.ID, CreatedAt: now,
		ExpiresAt: now.Add(h.cfg.SessionTTL)}); err != nil {
		h.cfg.Logger.Error("sign-in: store session", "err", err)
		http.Error(w, "the session could not be stored; see the service log", http.StatusInternalServerError)
		return
	}
	if n, err := h.cfg.Store.DeleteExpiredSessions(r.Context(), now); err == nil && n > 0 {
		h.cfg.Logger.Debug("removed expired sessions", "n", n)
	}
	h.setCookie(w, r, loginCookie, "", -1, true)
	h.setCookie(w, r, sessionCookie, tok, h.cfg.SessionTTL, true)
	h.cfg.Logger.Info("signed in", "operator", op.Name, "role", op.Role, "ip", ip)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, name string, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
	h.renderLogin(w, r, http.StatusTooManyRequests, name, langOf(r).T("Too many attempts; try again later."))
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := h.cfg.Store.DeleteSession(r.Context(), tokenHash(s.token)); err != nil {
		h.cfg.Logger.Error("sign out", "err", err)
	}
	h.setCookie(w, r, sessionCookie, "", -1, true)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (h *Handler) render(w http.ResponseWriter, status int, page string, data any) {
	t, ok := h.pages[page]
	if !ok {
		http.Error(w, "no page "+page, http.StatusInternalServerError)
		return
	}
	var buf strings.Builder
	if err := t.Execute(&buf, data); err != nil {
		h.cfg.Logger.Error("render page", "page", page, "err", err)
		http.Error(w, "the page could not be shown; see the service log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, buf.String())
}
