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
	"inkorg/internal/entra"
	"inkorg/internal/ingest"
	"inkorg/internal/store"
	"inkorg/internal/webhook"
)

const serveUsage = `usage: inkorg serve [--db …] [--addr 127.0.0.1:8025] [--cloud FILE] [--log-format text|json] [--log-level info]

Runs the service: a worker per incoming e-mail account (fetch, store durably, then move on the server),
the ERP's REST API and webhooks on --addr. Settings changed with "inkorg settings …" are picked up
within seconds. SIGTERM or Ctrl-C stops it cleanly: a batch in flight is committed whole or not at all.

Example:
  inkorg token create erp            # once: the ERP's API token
  inkorg serve --addr 127.0.0.1:8025
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
	store    store.Store
	ingest   *ingest.Manager
	webhooks *webhook.Dispatcher
	http     *http.Server
	ln       net.Listener
}

// startService starts the service's parts on an open store. ready, when set, is called with the
// API's address once everything listens.
func startService(ctx context.Context, st store.Store, cl cloud.Endpoints, addr string, log *slog.Logger, now func() time.Time) (*service, error) {
	s := &service{store: st}
	tokens := entra.New(entra.Config{Cloud: cl, Logger: log.With("component", "entra"), Clock: now})
	s.ingest = ingest.New(ingest.Config{Store: st, Tokens: tokens, Cloud: cl, Logger: log.With("component", "ingest"), Clock: now})
	if err := s.ingest.Start(ctx); err != nil {
		return nil, fmt.Errorf("start ingestion: %w", err)
	}
	s.webhooks = webhook.New(webhook.Config{Store: st, Logger: log.With("component", "webhook"), Clock: now})
	if err := s.webhooks.Start(ctx); err != nil {
		s.ingest.Close()
		return nil, fmt.Errorf("start webhooks: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.webhooks.Close()
		s.ingest.Close()
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.http = &http.Server{Handler: api.New(api.Config{Store: st, Logger: log.With("component", "api"), Clock: now}),
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is where the API listens.
func (s *service) Addr() string { return s.ln.Addr().String() }

// close stops the parts in reverse order: no new API requests, then the workers (each finishes or
// abandons its batch whole), then the webhooks.
func (s *service) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.http.Shutdown(ctx)
	s.ingest.Close()
	s.webhooks.Close()
}

func cmdServe(e *env, args []string) error {
	f := newFlags(e, "serve", serveUsage)
	db := dbFlag(f)
	cloudFile := cloudFlag(f)
	addr := f.String("addr", "", "where the API listens (default $INKORG_ADDR, else 127.0.0.1:8025)")
	logFormat := f.String("log-format", "text", "text or json")
	logLevel := f.String("log-level", "info", "debug, info, warn or error")
	if err := f.parse(args); err != nil {
		return err
	}
	if *addr == "" {
		*addr = e.getenv("INKORG_ADDR")
	}
	if *addr == "" {
		*addr = "127.0.0.1:8025"
	}
	log, err := newLogger(e.stderr, *logFormat, *logLevel)
	if err != nil {
		return f.usageErr("%v", err)
	}
	cl, err := loadCloud(e, *cloudFile)
	if err != nil {
		return err
	}
	st, err := openStore(e, *db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := startService(e.ctx, st, cl, *addr, log, e.now)
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
