// Package settingsapi is the settings REST API: the same procedures as "inkorg settings …" and the
// admin web UI, as JSON over HTTP. It does not authenticate: the caller (package web) signs the
// operator in, checks the CSRF header and puts the Principal into the request's context; this package
// enforces the roles (an admin may do everything, a user only read and change their own e-mail
// settings).
//
// Routes:
//
//	GET/PUT    /api/v1/settings/system
//	GET        /api/v1/users
//	GET/PUT    /api/v1/users/{name}/email-settings
//	GET        /api/v1/users/{name}/email-settings/effective
//	GET/POST   /api/v1/incoming-accounts
//	GET/PUT/DELETE /api/v1/incoming-accounts/{id}
//	POST       /api/v1/incoming-accounts/{id}/validate      the doctor's steps
//	GET/PUT    /api/v1/settings/webshop
//
// A PUT changes the fields present in its JSON object and keeps the rest. Secrets are write-only:
// responses show "set" or "not set"; a PUT with a secret field sets it, "set" keeps it. A change that
// settings.Check* refuses answers 422 with every problem's field path and message. Errors are
// {"error": {"code", "message", "problems"?}}.
package settingsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"inkorg/internal/doctor"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// Principal is the signed-in operator a request acts for.
type Principal struct {
	Name string
	Role store.Role
	User string // role user: the ERP user whose e-mail settings they may read and change
}

// Admin reports whether p may do everything.
func (p Principal) Admin() bool { return p.Role == store.RoleAdmin }

// MayEditUser reports whether p may read and change the e-mail settings of ERP user name.
func (p Principal) MayEditUser(name string) bool {
	return p.Admin() || (p.Role == store.RoleUser && p.User != "" && strings.EqualFold(p.User, name))
}

// Actor is how p appears in the audit log.
func (p Principal) Actor() string { return "web:" + p.Name }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Validator checks an incoming account with the doctor.
type Validator func(ctx context.Context, c settings.Config, address string) doctor.Report

// Config configures the API.
type Config struct {
	Store    store.Store
	Validate Validator        // nil: POST …/validate answers 503
	Logger   *slog.Logger     // nil: discard
	Clock    func() time.Time // nil: time.Now
}

type handler struct {
	cfg Config
	mux *http.ServeMux
}

// maxBody bounds a request body (a certificate PEM is the largest field).
const maxBody = 1 << 20

// New returns the API's handler. Every request must carry a Principal (WithPrincipal); one without
// answers 401.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	h := &handler{cfg: cfg, mux: http.NewServeMux()}
	m := h.mux
	m.HandleFunc("GET /api/v1/settings/system", h.admin(h.getSystem))
	m.HandleFunc("PUT /api/v1/settings/system", h.admin(h.putSystem))
	m.HandleFunc("GET /api/v1/users", h.listUsers)
	m.HandleFunc("GET /api/v1/users/{name}/email-settings", h.self(h.getUser))
	m.HandleFunc("PUT /api/v1/users/{name}/email-settings", h.self(h.putUser))
	m.HandleFunc("GET /api/v1/users/{name}/email-settings/effective", h.self(h.getEffective))
	m.HandleFunc("GET /api/v1/incoming-accounts", h.admin(h.listAccounts))
	m.HandleFunc("POST /api/v1/incoming-accounts", h.admin(h.addAccount))
	m.HandleFunc("GET /api/v1/incoming-accounts/{id}", h.admin(h.getAccount))
	m.HandleFunc("PUT /api/v1/incoming-accounts/{id}", h.admin(h.putAccount))
	m.HandleFunc("DELETE /api/v1/incoming-accounts/{id}", h.admin(h.deleteAccount))
	m.HandleFunc("POST /api/v1/incoming-accounts/{id}/validate", h.admin(h.validateAccount))
	m.HandleFunc("GET /api/v1/settings/webshop", h.admin(h.getWebshop))
	m.HandleFunc("PUT /api/v1/settings/webshop", h.admin(h.putWebshop))
	return h
}

// Routes are the path patterns the API answers (for a router in front of it).
func Routes() []string {
	return []string{"/api/v1/settings/", "/api/v1/users", "/api/v1/users/", "/api/v1/incoming-accounts", "/api/v1/incoming-accounts/"}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := PrincipalFrom(r.Context()); !ok {
		WriteError(w, http.StatusUnauthorized, "unauthenticated", "sign in first", nil)
		return
	}
	_, pattern := h.mux.Handler(r)
	if pattern == "" {
		WriteError(w, http.StatusNotFound, "not_found", "no such settings API route: "+r.Method+" "+r.URL.Path, nil)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *handler) admin(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p, _ := PrincipalFrom(r.Context()); !p.Admin() {
			WriteError(w, http.StatusForbidden, "forbidden", "only an administrator may do this", nil)
			return
		}
		f(w, r)
	}
}

func (h *handler) self(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p, _ := PrincipalFrom(r.Context()); !p.MayEditUser(r.PathValue("name")) {
			WriteError(w, http.StatusForbidden, "forbidden", "you may only see and change your own e-mail settings", nil)
			return
		}
		f(w, r)
	}
}

// WriteError writes {"error": {"code", "message", "problems"}}.
func WriteError(w http.ResponseWriter, status int, code, message string, problems settings.Problems) {
	body := map[string]any{"code": code, "message": message}
	if len(problems) > 0 {
		body["problems"] = problems
	}
	writeJSON(w, status, map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *InputError
	var ps settings.Problems
	switch {
	case errors.As(err, &ie):
		WriteError(w, http.StatusBadRequest, "bad_request", ie.Error(), nil)
	case errors.As(err, &ps):
		WriteError(w, http.StatusUnprocessableEntity, "invalid_settings", "the settings were not saved: "+ps.Errors()[0].Message, ps.Errors())
	case errors.Is(err, store.ErrNotFound):
		WriteError(w, http.StatusNotFound, "not_found", err.Error(), nil)
	case errors.Is(err, store.ErrExists):
		WriteError(w, http.StatusConflict, "exists", err.Error(), nil)
	default:
		h.cfg.Logger.Error("settings API", "method", r.Method, "path", r.URL.Path, "err", err)
		WriteError(w, http.StatusInternalServerError, "internal", "the settings could not be read or saved; see the service log", nil)
	}
}

func readInput(r *http.Request) (Input, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxBody {
		return nil, &InputError{Message: "the body is too large"}
	}
	return ParseJSON(body)
}

// Service is the operations both the API and the web UI perform, with their checks.
type Service struct {
	Store store.Store
	Clock func() time.Time
}

func (s Service) today() settings.Date {
	if s.Clock == nil {
		return settings.DateOf(time.Now())
	}
	return settings.DateOf(s.Clock())
}

// SaveSystem applies in to the stored system settings; a settings.Problems error when refused.
func (s Service) SaveSystem(ctx context.Context, in Input, actor string) (settings.System, error) {
	old, err := s.Store.System(ctx)
	if err != nil {
		return old, err
	}
	sys, changed, err := ApplySystem(old, in)
	if err != nil {
		return old, err
	}
	if ps := settings.CheckSystem(sys, changed); ps.HasErrors() {
		return old, ps
	}
	return sys, s.Store.PutSystem(ctx, sys, actor)
}

// LoadUser returns a user's settings, or empty overrides for a user without any.
func (s Service) LoadUser(ctx context.Context, name string) (settings.User, error) {
	u, err := s.Store.User(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return settings.User{Name: strings.TrimSpace(name)}, nil
	}
	return u, err
}

// SaveUser applies in to a user's overrides (creating the user's settings when needed).
func (s Service) SaveUser(ctx context.Context, name string, in Input, actor string) (settings.User, error) {
	sys, err := s.Store.System(ctx)
	if err != nil {
		return settings.User{}, err
	}
	old, err := s.LoadUser(ctx, name)
	if err != nil {
		return old, err
	}
	u, changed, err := ApplyUser(old, in)
	if err != nil {
		return old, err
	}
	if ps := settings.CheckUser(sys, u, changed); ps.HasErrors() {
		return old, ps
	}
	return u, s.Store.PutUser(ctx, u, actor)
}

// AccountByID finds an incoming account by its ID.
func (s Service) AccountByID(ctx context.Context, id int64) (settings.IncomingAccount, error) {
	as, err := s.Store.IncomingAccounts(ctx)
	if err != nil {
		return settings.IncomingAccount{}, err
	}
	for _, a := range as {
		if a.ID == id {
			return a, nil
		}
	}
	return settings.IncomingAccount{}, fmt.Errorf("incoming account %d: %w", id, store.ErrNotFound)
}

// AddAccount registers a new incoming account from in.
func (s Service) AddAccount(ctx context.Context, in Input, actor string) (settings.IncomingAccount, error) {
	sys, err := s.Store.System(ctx)
	if err != nil {
		return settings.IncomingAccount{}, err
	}
	a, changed, err := ApplyAccount(settings.IncomingAccount{}, in)
	if err != nil {
		return a, err
	}
	if ps := settings.CheckAccount(sys, a, changed); ps.HasErrors() {
		return a, ps
	}
	return s.Store.AddIncomingAccount(ctx, a, actor)
}

// SaveAccount applies in to the incoming account with the ID.
func (s Service) SaveAccount(ctx context.Context, id int64, in Input, actor string) (settings.IncomingAccount, error) {
	sys, err := s.Store.System(ctx)
	if err != nil {
		return settings.IncomingAccount{}, err
	}
	old, err := s.AccountByID(ctx, id)
	if err != nil {
		return old, err
	}
	a, changed, err := ApplyAccount(old, in)
	if err != nil {
		return old, err
	}
	if ps := settings.CheckAccount(sys, a, changed); ps.HasErrors() {
		return old, ps
	}
	return a, s.Store.PutIncomingAccount(ctx, a, actor)
}

// RemoveAccount removes the incoming account with the ID.
func (s Service) RemoveAccount(ctx context.Context, id int64, actor string) error {
	a, err := s.AccountByID(ctx, id)
	if err != nil {
		return err
	}
	return s.Store.RemoveIncomingAccount(ctx, a.Address, actor)
}

// SaveWebshop applies in to Webshop – Administration's settings.
func (s Service) SaveWebshop(ctx context.Context, in Input, actor string) (settings.Webshop, error) {
	old, err := s.Store.Webshop(ctx)
	if err != nil {
		return old, err
	}
	w, err := ApplyWebshop(old, in)
	if err != nil {
		return old, err
	}
	if ps := settings.CheckWebshop(w); ps.HasErrors() {
		return old, ps
	}
	return w, s.Store.PutWebshop(ctx, w, actor)
}

// Snapshot is the whole configuration as read at one moment, with its problems (errors and warnings).
// A page or response that shows several records reads one Snapshot, not the store once per record.
type Snapshot struct {
	settings.Config
	Problems settings.Problems
}

// Snapshot reads the whole configuration once and validates it.
func (s Service) Snapshot(ctx context.Context) (Snapshot, error) {
	c, err := s.Store.Config(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Config: c, Problems: settings.Validate(c, s.today())}, nil
}

// Under returns the problems whose path starts with prefix (nil when there are none).
func (sn Snapshot) Under(prefix string) settings.Problems {
	var out settings.Problems
	for _, p := range sn.Problems {
		if strings.HasPrefix(p.Path, prefix) {
			out = append(out, p)
		}
	}
	return out
}

// Warnings are the whole configuration's problems (errors and warnings) under a path prefix.
func (s Service) Warnings(ctx context.Context, prefix string) (settings.Problems, error) {
	sn, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return sn.Under(prefix), nil
}

func (h *handler) svc() Service { return Service{Store: h.cfg.Store, Clock: h.cfg.Clock} }

func actor(r *http.Request) string {
	p, _ := PrincipalFrom(r.Context())
	return p.Actor()
}

// SystemView is GET /api/v1/settings/system.
type SystemView struct {
	Settings settings.System   `json:"settings"`
	Problems settings.Problems `json:"problems"`
}

func (h *handler) systemView(w http.ResponseWriter, r *http.Request, status int) {
	sn, err := h.svc().Snapshot(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, status, SystemView{Settings: sn.System, Problems: nonNil(sn.Under("system."))})
}

func nonNil(ps settings.Problems) settings.Problems {
	if ps == nil {
		return settings.Problems{}
	}
	return ps
}

func (h *handler) getSystem(w http.ResponseWriter, r *http.Request) {
	h.systemView(w, r, http.StatusOK)
}

func (h *handler) putSystem(w http.ResponseWriter, r *http.Request) {
	in, err := readInput(r)
	if err == nil {
		_, err = h.svc().SaveSystem(r.Context(), in, actor(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.systemView(w, r, http.StatusOK)
}

// UserView is one user's e-mail settings: the overrides and the effective values with their sources.
type UserView struct {
	Name      string                 `json:"name"`
	Settings  settings.User          `json:"settings"`
	Effective settings.EffectiveUser `json:"effective"`
	Problems  settings.Problems      `json:"problems"`
}

func userViewOf(sn Snapshot, u settings.User) UserView {
	return UserView{Name: u.Name, Settings: u, Effective: settings.ResolveUser(sn.System, u), Problems: nonNil(sn.Under(settings.UserPath(u.Name)))}
}

func (h *handler) userView(ctx context.Context, name string) (UserView, error) {
	u, err := h.svc().LoadUser(ctx, name)
	if err != nil {
		return UserView{}, err
	}
	sn, err := h.svc().Snapshot(ctx)
	if err != nil {
		return UserView{}, err
	}
	return userViewOf(sn, u), nil
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	users, err := h.cfg.Store.Users(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var shown []settings.User
	seen := false
	for _, u := range users {
		if p.MayEditUser(u.Name) {
			seen = seen || strings.EqualFold(u.Name, p.User)
			shown = append(shown, u)
		}
	}
	if !p.Admin() && !seen && p.User != "" {
		u, err := h.svc().LoadUser(r.Context(), p.User)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		shown = append(shown, u)
	}
	out := []UserView{}
	if len(shown) > 0 {
		sn, err := h.svc().Snapshot(r.Context())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, u := range shown {
			out = append(out, userViewOf(sn, u))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (h *handler) getUser(w http.ResponseWriter, r *http.Request) {
	v, err := h.userView(r.Context(), r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) getEffective(w http.ResponseWriter, r *http.Request) {
	v, err := h.userView(r.Context(), r.PathValue("name"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v.Effective)
}

func (h *handler) putUser(w http.ResponseWriter, r *http.Request) {
	in, err := readInput(r)
	if err == nil {
		_, err = h.svc().SaveUser(r.Context(), r.PathValue("name"), in, actor(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.getUser(w, r)
}

// AccountView is one incoming account: its settings and the effective values with their sources.
type AccountView struct {
	ID        int64                     `json:"id"`
	Settings  settings.IncomingAccount  `json:"settings"`
	Effective settings.EffectiveAccount `json:"effective"`
	Problems  settings.Problems         `json:"problems"`
}

func accountViewOf(sn Snapshot, a settings.IncomingAccount) AccountView {
	return AccountView{ID: a.ID, Settings: a, Effective: settings.ResolveAccount(sn.System, a), Problems: nonNil(sn.Under(settings.AccountPath(a.Address)))}
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("incoming account %q: %w", r.PathValue("id"), store.ErrNotFound)
	}
	return id, nil
}

func (h *handler) listAccounts(w http.ResponseWriter, r *http.Request) {
	as, err := h.cfg.Store.IncomingAccounts(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := []AccountView{}
	if len(as) > 0 {
		sn, err := h.svc().Snapshot(r.Context())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		for _, a := range as {
			out = append(out, accountViewOf(sn, a))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out})
}

func (h *handler) writeAccount(w http.ResponseWriter, r *http.Request, a settings.IncomingAccount, status int) {
	sn, err := h.svc().Snapshot(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, status, accountViewOf(sn, a))
}

func (h *handler) addAccount(w http.ResponseWriter, r *http.Request) {
	in, err := readInput(r)
	var a settings.IncomingAccount
	if err == nil {
		a, err = h.svc().AddAccount(r.Context(), in, actor(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/incoming-accounts/%d", a.ID))
	h.writeAccount(w, r, a, http.StatusCreated)
}

func (h *handler) getAccount(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var a settings.IncomingAccount
	if err == nil {
		a, err = h.svc().AccountByID(r.Context(), id)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeAccount(w, r, a, http.StatusOK)
}

func (h *handler) putAccount(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	var in Input
	if err == nil {
		in, err = readInput(r)
	}
	var a settings.IncomingAccount
	if err == nil {
		a, err = h.svc().SaveAccount(r.Context(), id, in, actor(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeAccount(w, r, a, http.StatusOK)
}

func (h *handler) deleteAccount(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = h.svc().RemoveAccount(r.Context(), id, actor(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) validateAccount(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Validate == nil {
		WriteError(w, http.StatusServiceUnavailable, "unavailable", "the doctor is not available in this process", nil)
		return
	}
	id, err := pathID(r)
	var a settings.IncomingAccount
	if err == nil {
		a, err = h.svc().AccountByID(r.Context(), id)
	}
	var c settings.Config
	if err == nil {
		c, err = h.cfg.Store.Config(r.Context())
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h.cfg.Validate(r.Context(), c, a.Address))
}

// WebshopView is GET /api/v1/settings/webshop.
type WebshopView struct {
	Settings  settings.Webshop          `json:"settings"`
	Effective settings.EffectiveWebshop `json:"effective"`
	Problems  settings.Problems         `json:"problems"`
}

func (h *handler) getWebshop(w http.ResponseWriter, r *http.Request) {
	sn, err := h.svc().Snapshot(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, WebshopView{Settings: sn.Webshop, Effective: settings.ResolveWebshop(sn.Config), Problems: nonNil(sn.Under("webshop"))})
}

func (h *handler) putWebshop(w http.ResponseWriter, r *http.Request) {
	in, err := readInput(r)
	if err == nil {
		_, err = h.svc().SaveWebshop(r.Context(), in, actor(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.getWebshop(w, r)
}
