package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"inkorg/internal/api"
	"inkorg/internal/cloud"
	"inkorg/internal/config"
	"inkorg/internal/doctor"
	"inkorg/internal/entra"
	"inkorg/internal/ingest"
	"inkorg/internal/outbox"
	"inkorg/internal/store"
	"inkorg/internal/web"
	"inkorg/internal/webhook"
)

const serveUsage = `usage: inkorg serve [--config FILE] [--db …] [--addr 127.0.0.1:8025] [--cloud FILE] [--log-format text|json] [--log-level info]

Runs the service: a worker per incoming e-mail account (fetch, store durably, then move on the server),
the ERP's REST API and webhooks on --addr. Settings changed with "inkorg settings …" are picked up
within seconds. SIGTERM or Ctrl-C stops it cleanly: a batch in flight is committed whole or not at all.
Each flag can also come from the environment (INKORG_DB, INKORG_ADDR, …) or a config file of
"key = value" lines; flags win over the environment, the environment over the file. The reference:
docs/configuration.md.

Example:
  inkorg token create erp            # once: the ERP's API token
  inkorg serve --addr 127.0.0.1:8025
  INKORG_LOG_FORMAT=json inkorg serve --config /etc/inkorg/inkorg.conf
`

// newLogger makes the service's logger.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// service is everything serve runs, in start order.
type service struct {
	store           store.Store
	ingest          *ingest.Manager
	outbox          *outbox.Outbox
	webhooks        *webhook.Dispatcher
	http            *http.Server
	ln              net.Listener
	shutdownTimeout time.Duration
}

// startService starts the service's parts on an open store, listening on addr, with the other
// settings at their defaults (the demo uses this).
func startService(ctx context.Context, st store.Store, cl cloud.Endpoints, addr string, log *slog.Logger, now func() time.Time) (*service, error) {
	cfg := config.Defaults()
	cfg.Addr = addr
	return startServiceConfig(ctx, st, cl, cfg, log, now)
}

// startServiceConfig starts the service's parts on an open store as cfg says (Addr, Reload,
// ShutdownTimeout; the store and the cloud are already open).
func startServiceConfig(ctx context.Context, st store.Store, cl cloud.Endpoints, cfg config.Serve, log *slog.Logger, now func() time.Time) (*service, error) {
	s := &service{store: st, shutdownTimeout: cfg.ShutdownTimeout}
	// started are the parts running so far; when a later one cannot start they stop, newest first.
	var started []func() error
	fail := func(err error) (*service, error) {
		for i := len(started) - 1; i >= 0; i-- {
			started[i]()
		}
		return nil, err
	}
	tokens := entra.New(entra.Config{Cloud: cl, Logger: log.With("component", "entra"), Clock: now})
	s.ingest = ingest.New(ingest.Config{Store: st, Tokens: tokens, Cloud: cl, Logger: log.With("component", "ingest"), Clock: now, Reload: cfg.Reload, MaxBatches: cfg.MaxBatches})
	if err := s.ingest.Start(ctx); err != nil {
		return fail(fmt.Errorf("start ingestion: %w", err))
	}
	started = append(started, s.ingest.Close)
	s.outbox = outbox.New(outbox.Config{Store: st, Tokens: tokens, Cloud: cl, Logger: log.With("component", "outbox"), Clock: now})
	if err := s.outbox.Start(ctx); err != nil {
		return fail(fmt.Errorf("start the outbox: %w", err))
	}
	started = append(started, s.outbox.Close)
	s.webhooks = webhook.New(webhook.Config{Store: st, Logger: log.With("component", "webhook"), Clock: now})
	if err := s.webhooks.Start(ctx); err != nil {
		return fail(fmt.Errorf("start webhooks: %w", err))
	}
	started = append(started, s.webhooks.Close)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", cfg.Addr, err))
	}
	started = append(started, ln.Close)
	s.ln = ln
	doc := &doctor.Doctor{Tokens: tokens, Cloud: cl, Clock: now, Logger: log.With("component", "doctor")}
	ui, err := web.New(web.Config{Store: st, API: api.New(api.Config{Store: st, Outbox: s.outbox, Logger: log.With("component", "api"), Clock: now}),
		Validate: doc.CheckAccount, Logger: log.With("component", "web"), Clock: now})
	if err != nil {
		return fail(fmt.Errorf("start the web UI: %w", err))
	}
	s.http = &http.Server{Handler: ui,
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn)}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "component", "api", "err", err)
		}
	}()
	return s, nil
}

// Addr is where the API listens.
func (s *service) Addr() string { return s.ln.Addr().String() }

// close stops the parts in reverse order: no new API requests, then the workers (each finishes or
// abandons its batch whole), then the webhooks.
func (s *service) close() {
	d := s.shutdownTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close() // the requests still running after the timeout lose their connections
	}
	s.ingest.Close()
	s.outbox.Close()
	s.webhooks.Close()
}

func cmdServe(e *env, args []string) error {
	f := newFlags(e, "serve", serveUsage)
	flags := config.AddFlags(f.FlagSet)
	if err := f.parse(args); err != nil {
		return err
	}
	cfg, err := flags.Load(e.getenv)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) && ce.FromFlag() {
			return f.usageErr("%v", err)
		}
		return fmt.Errorf("configuration: %w", err)
	}
	base, err := newLogger(e.stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := base.With("component", "serve")
	// The database, key file and cloud come from cfg alone: the helpers shared with the other
	// commands see cfg's values where they would read the environment.
	ce := *e
	ce.getenv = func(k string) string {
		switch k {
		case "INKORG_DB":
			return cfg.DB
		case "INKORG_KEY_FILE":
			return cfg.KeyFile
		case "INKORG_CLOUD":
			return cfg.Cloud
		}
		return e.getenv(k)
	}
	cl, err := loadCloud(&ce, cfg.Cloud)
	if err != nil {
		return err
	}
	st, err := openStore(&ce, cfg.DB, false)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := startServiceConfig(e.ctx, st, cl, cfg, base, e.now)
	if err != nil {
		return err
	}
	log.Info("inkorg is running", "api", "http://"+s.Addr()+"/api/v1/", "cloud", cl.Name, "version", version)
	if toks, _ := st.APITokens(e.ctx); len(toks) == 0 {
		log.Warn("no API token exists yet: the ERP cannot read messages until you run: inkorg token create NAME")
	}
	<-e.ctx.Done()
	log.Info("stopping: finishing the batches in flight")
	s.close()
	log.Info("stopped")
	return nil
}
