// Package emulator assembles inkorg's local Microsoft cloud: a generated CA (DIR/ca.pem), one HTTPS
// listener serving Entra ID (package entra), the Microsoft Graph mail subset under /v1.0 and the admin
// API under /_emulator, Exchange Online's IMAP
// (implicit TLS) and SMTP submission (STARTTLS) front ends (package exo), all authorizing through the
// scenario (package scenario). Start writes DIR/emulator.json, the file inkorg's --cloud FILE reads,
// once everything listens. It runs in-process (tests) or as `inkorg emulator`.
package emulator

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"inkorg/internal/emulator/certs"
	"inkorg/internal/emulator/entra"
	"inkorg/internal/emulator/exo"
	"inkorg/internal/emulator/graph"
	"inkorg/internal/emulator/scenario"
)

// InfoFileName is the name of the file Start writes into Config.Dir.
const InfoFileName = "emulator.json"

// CAFileName is the name of the CA certificate file Start writes into Config.Dir.
const CAFileName = "ca.pem"

// Config configures an Emulator.
type Config struct {
	Dir          string             // required: ca.pem and emulator.json are written here
	ScenarioFile string             // a scenario JSON file; or
	Scenario     *scenario.Scenario // a scenario (validated by New); neither: scenario.Default with random credentials
	Host         string             // listen address of all front ends; default 127.0.0.1
	Logger       *slog.Logger       // nil: discard
	Clock        func() time.Time   // nil: time.Now; token lifetimes and secret expiry follow it
}

// Info is the content of emulator.json.
type Info struct {
	Authority string     `json:"authority"` // https://HOST:PORT, MSAL's authority is Authority + "/" + tenant
	IMAP      string     `json:"imap"`      // HOST:PORT, implicit TLS
	SMTP      string     `json:"smtp"`      // HOST:PORT, STARTTLS
	Graph     string     `json:"graph"`     // https://HOST:PORT/v1.0
	Admin     string     `json:"admin"`     // https://HOST:PORT/_emulator
	CAFile    string     `json:"caFile"`    // absolute path of ca.pem
	TenantID  string     `json:"tenantId"`
	Apps      []InfoApp  `json:"apps"`
	Users     []InfoUser `json:"users"`
	Mailboxes []string   `json:"mailboxes"`
}

// InfoApp is one app registration in emulator.json.
type InfoApp struct {
	Name         string `json:"name"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"` // the first secret's value; "" when the app has none
	PublicClient bool   `json:"publicClient"`
}

// InfoUser is one user in emulator.json.
type InfoUser struct {
	UPN      string `json:"upn"`
	Password string `json:"password"`
}

// Emulator is the assembled emulator. New → Start → Close.
type Emulator struct {
	cfg   Config
	log   *slog.Logger
	clock func() time.Time
	sc    *scenario.Scenario
	ca    *certs.Authority
	entra *entra.Server
	store *exo.MailStore
	auth  *authorizer
	imap  *exo.IMAPServer
	smtp  *exo.SMTPServer
	graph *graph.Handler // the Graph mail subset, served under /v1.0

	httpLn  net.Listener
	httpSrv *http.Server
	httpWG  sync.WaitGroup
	cancel  context.CancelFunc
	info    Info
	started bool
	closed  bool
	mu      sync.Mutex
}

// New loads the scenario, generates the CA and the token signing key, creates the mail store with the
// scenario's mailboxes and the front ends. Nothing listens before Start.
func New(cfg Config) (*Emulator, error) {
	if cfg.Dir == "" {
		return nil, errors.New("emulator: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	cfg.Dir = dir
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var sc *scenario.Scenario
	switch {
	case cfg.Scenario != nil && cfg.ScenarioFile != "":
		return nil, errors.New("emulator: set Config.Scenario or Config.ScenarioFile, not both")
	case cfg.Scenario != nil:
		sc = cfg.Scenario
		if err := sc.Validate(); err != nil {
			return nil, fmt.Errorf("emulator: %w", err)
		}
	case cfg.ScenarioFile != "":
		if sc, err = scenario.Load(cfg.ScenarioFile); err != nil {
			return nil, fmt.Errorf("emulator: %w", err)
		}
	default:
		sc = scenario.Default(cfg.Clock())
		if err := sc.RandomizeCredentials(rand.Reader); err != nil {
			return nil, fmt.Errorf("emulator: %w", err)
		}
	}
	e := &Emulator{cfg: cfg, log: cfg.Logger.With("component", "emulator"), clock: cfg.Clock, sc: sc}
	if e.ca, err = certs.New(cfg.Clock(), cfg.Host); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	if e.entra, err = entra.New(entra.Config{Scenario: sc, Clock: cfg.Clock, Logger: cfg.Logger.With("component", "entra")}); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	e.store = exo.NewMailStore(cfg.Clock)
	for _, m := range sc.Mailboxes {
		if err := e.store.CreateMailbox(m.Address); err != nil {
			return nil, fmt.Errorf("emulator: %w", err)
		}
		for _, f := range m.Folders {
			if err := e.store.CreateFolder(m.Address, f); err != nil {
				return nil, fmt.Errorf("emulator: mailbox %s: %w", m.Address, err)
			}
		}
	}
	e.auth = &authorizer{verifier: e.entra.Verifier(), sc: sc}
	if e.graph, err = graph.New(graph.Config{Store: e.store, Authorizer: e.auth, Clock: cfg.Clock, Logger: cfg.Logger.With("component", "graph")}); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	if e.imap, err = exo.NewIMAPServer(exo.IMAPConfig{Store: e.store, Authorizer: e.auth, TLSConfig: e.ca.IMAPConfig(),
		Logger: cfg.Logger, Host: cfg.Host}); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	if e.smtp, err = exo.NewSMTPServer(exo.SMTPConfig{Store: e.store, Authorizer: e.auth, TLSConfig: e.ca.SMTPConfig(),
		Logger: cfg.Logger, Host: cfg.Host, Clock: cfg.Clock}); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	return e, nil
}

// Start listens (ports chosen by the kernel), writes DIR/ca.pem and then DIR/emulator.json. The
// front ends stop when ctx ends or on Close. The HTTPS listener serves Entra ID, the Graph mail
// subset under /v1.0 and the admin API under /_emulator.
func (e *Emulator) Start(ctx context.Context) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("emulator: already started")
	}
	e.started = true
	if err := os.MkdirAll(e.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	caFile := filepath.Join(e.cfg.Dir, CAFileName)
	if err := e.ca.WriteCAFile(caFile); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	ctx, e.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			e.closeLocked()
		}
	}()

	mux := http.NewServeMux()
	e.entra.Register(mux)
	admin := http.NewServeMux()
	e.registerAdmin(admin)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/_emulator" || strings.HasPrefix(r.URL.Path, "/_emulator/"):
			admin.ServeHTTP(w, r)
		case r.URL.Path == "/v1.0" || strings.HasPrefix(r.URL.Path, "/v1.0/"):
			e.graph.ServeHTTP(w, r)
		default:
			mux.ServeHTTP(w, r)
		}
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(e.cfg.Host, "0"))
	if err != nil {
		return fmt.Errorf("emulator: https listen: %w", err)
	}
	e.httpLn = ln
	e.httpSrv = &http.Server{
		Handler:           handler,
		TLSConfig:         e.ca.HTTPSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	e.httpWG.Add(2)
	go func() {
		defer e.httpWG.Done()
		if err := e.httpSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("https server stopped", "err", err)
		}
	}()
	go func() {
		defer e.httpWG.Done()
		<-ctx.Done()
		_ = e.httpSrv.Close()
	}()
	if err := e.imap.Start(ctx); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	if err := e.smtp.Start(ctx); err != nil {
		return fmt.Errorf("emulator: %w", err)
	}

	base := "https://" + ln.Addr().String()
	e.info = Info{
		Authority: base,
		IMAP:      e.imap.Addr(),
		SMTP:      e.smtp.Addr(),
		Graph:     base + "/v1.0",
		Admin:     base + "/_emulator",
		CAFile:    caFile,
		TenantID:  e.sc.Tenants[0].ID,
		Apps:      []InfoApp{},
		Users:     []InfoUser{},
		Mailboxes: []string{},
	}
	for _, a := range e.sc.Apps {
		ia := InfoApp{Name: a.Name, ClientID: a.ClientID, PublicClient: a.PublicClient}
		for _, s := range a.Secrets {
			if s.Expires.IsZero() || e.clock().Before(s.Expires) {
				ia.ClientSecret = s.Value
				break
			}
		}
		e.info.Apps = append(e.info.Apps, ia)
	}
	for _, u := range e.sc.Users {
		e.info.Users = append(e.info.Users, InfoUser{UPN: u.UPN, Password: u.Password})
	}
	for _, m := range e.sc.Mailboxes {
		e.info.Mailboxes = append(e.info.Mailboxes, m.Address)
	}
	if err := writeInfo(filepath.Join(e.cfg.Dir, InfoFileName), e.info); err != nil {
		return err
	}
	e.log.Info("emulator ready", "authority", e.info.Authority, "imap", e.info.IMAP, "smtp", e.info.SMTP,
		"info_file", e.InfoFile())
	return nil
}

// writeInfo writes emulator.json atomically (mode 0600: it holds secrets and passwords).
func writeInfo(path string, info Info) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("emulator: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("emulator: write %s: %w", path, err)
	}
	return nil
}

// Close stops every front end and waits for their goroutines. It is safe to call more than once.
func (e *Emulator) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closeLocked()
	return nil
}

func (e *Emulator) closeLocked() {
	if e.closed {
		return
	}
	e.closed = true
	e.entra.Close() // releases stalled token requests
	if e.cancel != nil {
		e.cancel()
	}
	if e.httpSrv != nil {
		_ = e.httpSrv.Close()
	} else if e.httpLn != nil {
		_ = e.httpLn.Close()
	}
	e.httpWG.Wait()
	_ = e.imap.Close()
	_ = e.smtp.Close()
}

// Info returns what emulator.json holds (valid after Start).
func (e *Emulator) Info() Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.info
}

// InfoFile is the path of emulator.json.
func (e *Emulator) InfoFile() string { return filepath.Join(e.cfg.Dir, InfoFileName) }

// Scenario returns the scenario in force (read-only).
func (e *Emulator) Scenario() *scenario.Scenario { return e.sc }

// Entra returns the Entra ID server (request log, faults, verifier).
func (e *Emulator) Entra() *entra.Server { return e.entra }

// Store returns the mail store.
func (e *Emulator) Store() *exo.MailStore { return e.store }

// IMAP returns the IMAP front end (faults).
func (e *Emulator) IMAP() *exo.IMAPServer { return e.imap }

// SMTP returns the SMTP front end.
func (e *Emulator) SMTP() *exo.SMTPServer { return e.smtp }

// Certs returns the emulator's CA.
func (e *Emulator) Certs() *certs.Authority { return e.ca }

// TLSClientConfig returns a client TLS configuration trusting only the emulator's CA.
func (e *Emulator) TLSClientConfig() *tls.Config { return e.ca.ClientConfig() }

// HTTPClient returns an HTTP client trusting the emulator's CA (for MSAL's WithHTTPClient).
func (e *Emulator) HTTPClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: e.ca.ClientConfig(), ForceAttemptHTTP2: true},
	}
}
