// Package ingest reads incoming mail: one worker per incoming e-mail account keeps one connection to
// its mailbox, fetches new messages in batches (UID FETCH BODY.PEEK[], by a UIDVALIDITY + UID cursor),
// commits each batch durably to the store, and only then moves the messages on the server to the
// account's processed folder (or the failed folder, with the reason stored). Nothing depends on the
// \Seen flag; a crash at any instant loses nothing and duplicates nothing (see store.Mail).
//
// The Manager watches the settings: it starts a worker for each account, restarts it when the account's
// effective settings change, and stops it when the account is removed. A worker that meets a
// configuration problem (a wrong secret, a missing permission) pauses with the typed error and its
// remedy instead of hammering the tenant; changing the settings starts it again.
package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/entra"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// Config configures the Manager.
type Config struct {
	Store  store.Store
	Tokens *entra.Provider
	Cloud  cloud.Endpoints
	Logger *slog.Logger
	Clock  func() time.Time
	// Dial connects a worker to its mailbox; nil: IMAP (imapsource) with the account's settings.
	Dial DialFunc
	// Reload is how often the settings are read again (default 5 s).
	Reload time.Duration
	// BatchSize and BatchBytes bound one durable batch (defaults 500 messages, 16 MiB).
	BatchSize  int
	BatchBytes int
	// MaxBatches bounds the batches in flight (fetched, not yet committed) across all accounts, and
	// with them the memory that message bytes take, however many mailboxes catch up at once (default
	// 8; a mailbox with a backlog keeps two in flight when it can).
	MaxBatches int
	// Backoff bounds the wait between reconnects after a transient failure (defaults 1 s … 5 min).
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds each network step (default 60 s).
	Timeout time.Duration
	// Holder names this process in the accounts' claims (default host:pid:random), and ClaimTTL is
	// how long a claim lasts unless renewed (default 60 s). A process standing by looks every third
	// of it: it takes an account over within ClaimTTL/3 of a clean stop (which releases the claim),
	// and within about 4/3 ClaimTTL of the holder's death.
	Holder   string
	ClaimTTL time.Duration
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Reload == 0 {
		c.Reload = 5 * time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = 16 << 20
	}
	if c.MaxBatches <= 0 {
		c.MaxBatches = 8
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.Dial == nil {
		c.Dial = imapDialer(c)
	}
	if c.Holder == "" {
		host, _ := os.Hostname()
		var r [4]byte
		rand.Read(r[:])
		c.Holder = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(r[:]))
	}
	if c.ClaimTTL == 0 {
		c.ClaimTTL = 60 * time.Second
	}
}

// Manager runs the workers.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	slots  *batchSlots
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	workers map[int64]*running
	kick    chan struct{}
}

type running struct {
	hash   string
	cancel context.CancelFunc
	done   chan struct{}
}

// New makes a Manager.
func New(cfg Config) *Manager {
	cfg.defaults()
	return &Manager{cfg: cfg, log: cfg.Logger, slots: newBatchSlots(cfg.MaxBatches), workers: map[int64]*running{}, kick: make(chan struct{}, 1)}
}

// Start reads the settings and starts the workers; it keeps watching the settings until Close.
func (m *Manager) Start(ctx context.Context) error {
	ctx, m.cancel = context.WithCancel(ctx)
	m.done = make(chan struct{})
	if err := m.reconcile(ctx); err != nil {
		m.cancel()
		close(m.done)
		return err
	}
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.cfg.Reload)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-m.kick:
			}
			if err := m.reconcile(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("reading the settings failed", "err", err)
			}
		}
	}()
	return nil
}

// Reload makes the Manager read the settings now (after a change through the API, say).
func (m *Manager) Reload() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Close stops every worker: a batch in flight is committed or abandoned whole (never half), and the
// server is left as the store says.
func (m *Manager) Close() error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	<-m.done
	m.mu.Lock()
	ws := m.workers
	m.workers = map[int64]*running{}
	m.mu.Unlock()
	for _, w := range ws {
		w.cancel()
		<-w.done
	}
	return nil
}

// reconcile starts, restarts and stops workers to match the settings.
func (m *Manager) reconcile(ctx context.Context) error {
	c, err := m.cfg.Store.Config(ctx)
	if err != nil {
		return err
	}
	want := map[int64]settings.IncomingAccount{}
	for _, a := range c.Accounts {
		want[a.ID] = a
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, w := range m.workers {
		a, ok := want[id]
		if ok && w.hash == accountHash(c.System, a) {
			continue
		}
		w.cancel()
		<-w.done
		delete(m.workers, id)
		if !ok {
			m.log.Info("account removed: worker stopped", "account_id", id)
			m.cfg.Store.PutAccountState(context.WithoutCancel(ctx), store.AccountState{AccountID: id, State: "stopped"})
		}
	}
	for id, a := range want {
		if _, ok := m.workers[id]; ok {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		r := &running{hash: accountHash(c.System, a), cancel: cancel, done: make(chan struct{})}
		m.workers[id] = r
		w := newWorker(&m.cfg, m.slots, c.System, a)
		go func() {
			defer close(r.done)
			w.run(wctx)
		}()
	}
	return nil
}

// accountHash changes whenever anything that decides how an account is read changes, secrets
// included (they are hashed, never stored or logged).
func accountHash(s settings.System, a settings.IncomingAccount) string {
	e := settings.ResolveAccount(s, a)
	h := sha256.New()
	json.NewEncoder(h).Encode(e)
	for _, v := range []string{e.ClientSecret.Value.Reveal(), e.ExchangePassword.Value.Reveal(), s.ClientKey.Reveal(), s.ClientCertificate} {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
