package outbox

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/entra"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"

	"inkorg/internal/testutil/emutest"
)

// clock is a settable test clock (starts at the real time).
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func openStore(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "inkorg.db"), Key: func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dir, "inkorg.key"), true)
		return s, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type world struct {
	emu   *emulator.Emulator
	cloud cloud.Endpoints
	st    store.Store
	dir   string
}

func startEmulator(t *testing.T, edit func(*scenario.Scenario)) *world {
	t.Helper()
	e := emutest.Start(t, edit)
	dir := t.TempDir()
	st := openStore(t, dir)
	t.Cleanup(func() { st.Close() })
	return &world{emu: e.Emulator, cloud: e.Cloud, st: st, dir: dir}
}

// configure stores the Client secret flow, users ANNA and WEBSHOP (signature, copy to self as Bcc),
// and the webshop according to user settings.
func (w *world) configure(t *testing.T, transport settings.SendTransport) {
	t.Helper()
	ctx := context.Background()
	var app emulator.InfoApp
	for _, a := range w.emu.Info().Apps {
		if !a.PublicClient {
			app = a
		}
	}
	must(t, w.st.PutSystem(ctx, settings.System{EmailMethod: settings.MethodExchangeOnline, ClientID: app.ClientID, TenantID: w.emu.Info().TenantID,
		AuthFlow: settings.FlowClientSecret, ClientSecret: settings.NewSecret(app.ClientSecret), SendTransport: transport}, "test"))
	must(t, w.st.PutUser(ctx, settings.User{Name: "WEBSHOP", EmailMethod: settings.Ptr(settings.MethodExchangeOnline),
		EmailAddress: settings.Ptr("webshop@contoso.example"), CopyToSelf: settings.Ptr(settings.CopyBcc),
		Signature: settings.Ptr("Contoso Webshop\nhttps://shop.contoso.example")}, "test"))
	must(t, w.st.PutUser(ctx, settings.User{Name: "ANNA", EmailAddress: settings.Ptr("anna@contoso.example"), CopyToSelf: settings.Ptr(settings.CopyCc),
		Signature: settings.Ptr("Anna Lind")}, "test"))
	must(t, w.st.PutWebshop(ctx, settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings}, "test"))
}

func (w *world) outbox(t *testing.T, edit func(*Config)) *Outbox {
	t.Helper()
	cfg := Config{Store: w.st, Tokens: entra.New(entra.Config{Cloud: w.cloud}), Cloud: w.cloud, PollInterval: 20 * time.Millisecond,
		Timeout: 10 * time.Second, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}
	if edit != nil {
		edit(&cfg)
	}
	o := New(cfg)
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, o *Outbox, id string) store.Outgoing {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := o.Wait(ctx, id)
	if err != nil {
		t.Fatalf("waiting for %s: %v (state %s)", id, err, m.State)
	}
	return m
}
