package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"inkorg/internal/emulator"
	"inkorg/internal/settings"
	"inkorg/internal/store"
)

const demoUsage = `usage: inkorg demo [--dir DIR]

Starts the emulator (a local Microsoft Entra ID + Exchange Online) and seeds inkorg's settings for it,
as an administrator would after following the help page: Exchange Online with the Client secret flow,
the user WEBSHOP, the webshop according to user settings, and one incoming e-mail account per type.
Runs until Ctrl-C. Everything lives in DIR (default: a new temporary directory): inkorg.db and its key,
and emulator/emulator.json with the emulator's addresses and credentials.
`

// demoAccounts are the incoming e-mail accounts the demo registers, one per mailbox of the default
// scenario that serves a type.
var demoAccounts = []struct {
	local string
	typ   settings.IncomingType
}{
	{"m2m", settings.TypeMonitorToMonitor},
	{"invoices", settings.TypeSupplierInvoice},
	{"orders", settings.TypeCustomerOrder},
	{"info", settings.TypeGeneral},
}

func cmdDemo(e *env, args []string) error {
	f := newFlags(e, "demo", demoUsage)
	dir := f.String("dir", "", "the demo's directory (default: a new temporary directory)")
	if err := f.parse(args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "inkorg-demo-")
		if err != nil {
			return err
		}
		*dir = d
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintf(e.stdout, "Starting the emulator (Entra ID + Exchange Online) in %s …\n", filepath.Join(*dir, "emulator"))
	emu, err := emulator.New(emulator.Config{Dir: filepath.Join(*dir, "emulator"), Logger: logger.With("component", "emulator")})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := emu.Start(e.ctx); err != nil {
		return fmt.Errorf("demo: start the emulator: %w", err)
	}
	defer emu.Close()

	db := filepath.Join(*dir, "inkorg.db")
	st, err := openStore(e, "sqlite:"+db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(e.stdout, "Seeding the settings in %s …\n", db)
	if err := seedDemo(e.ctx, st, emu, "demo"); err != nil {
		return fmt.Errorf("demo: seed settings: %w", err)
	}
	c, err := st.Config(e.ctx)
	if err != nil {
		return err
	}
	ps := settings.Validate(c, settings.DateOf(e.now()))
	for _, p := range ps {
		fmt.Fprintf(e.stdout, "  %s: %s: %s\n", p.Severity, p.Path, p.Message)
	}
	if ps.HasErrors() {
		return errors.New("demo: the seeded settings do not validate (a bug: please report it)")
	}
	info := emu.Info()
	fmt.Fprintf(e.stdout, `
inkorg demo is ready.
  Settings       validated ✓ (%d users with own settings, %d incoming accounts, webshop according to user settings)
  Entra ID       %s/%s  (token endpoint /oauth2/v2.0/token)
  Exchange IMAP  %s  (implicit TLS, XOAUTH2)
  Exchange SMTP  %s  (STARTTLS, XOAUTH2)
  Emulator admin %s
  CA certificate %s
  Credentials    %s

Look around (in another terminal):
  go run ./cmd/inkorg settings validate --db %s
  go run ./cmd/inkorg settings user show WEBSHOP --effective --db %s
  go run ./cmd/inkorg settings incoming list --db %s
  curl --cacert %s %s/mailboxes/m2m@contoso.example/folders

Press Ctrl-C to stop.
`, len(c.Users), len(c.Accounts), info.Authority, info.TenantID, info.IMAP, info.SMTP, info.Admin, info.CAFile, emu.InfoFile(), db, db, db, info.CAFile, info.Admin)
	<-e.ctx.Done()
	fmt.Fprintln(e.stdout, "Stopping.")
	return nil
}

// seedDemo writes the settings an administrator would enter for the emulated tenant. It can run again
// on the same database: accounts already registered are left alone.
func seedDemo(ctx context.Context, st store.Store, emu *emulator.Emulator, actor string) error {
	info, sc := emu.Info(), emu.Scenario()
	var app emulator.InfoApp
	for _, a := range info.Apps {
		if !a.PublicClient && a.ClientSecret != "" {
			app = a
			break
		}
	}
	if app.ClientID == "" {
		return errors.New("the emulator's scenario has no confidential app with a secret")
	}
	sys := settings.System{
		EmailMethod:  settings.MethodExchangeOnline,
		ClientID:     app.ClientID,
		TenantID:     info.TenantID,
		AuthFlow:     settings.FlowClientSecret,
		ClientSecret: settings.NewSecret(app.ClientSecret),
	}
	for _, a := range sc.Apps {
		if a.ClientID == app.ClientID && len(a.Secrets) > 0 {
			sys.ClientSecretExpires = settings.DateOf(a.Secrets[0].Expires)
		}
	}
	if err := st.PutSystem(ctx, sys, actor); err != nil {
		return err
	}
	domain := "contoso.example"
	if len(sc.Tenants) > 0 && len(sc.Tenants[0].Domains) > 0 {
		domain = sc.Tenants[0].Domains[0]
	}
	at := func(local string) string { return local + "@" + domain }
	users := []settings.User{
		{Name: settings.WebshopUser, EmailMethod: settings.Ptr(settings.MethodExchangeOnline), EmailAddress: settings.Ptr(at("webshop"))},
		{Name: "ANNA", EmailAddress: settings.Ptr(at("anna")), CopyToSelf: settings.Ptr(settings.CopyBcc),
			Signature: settings.Ptr("Anna Lind\nSales, Contoso AB")},
		{Name: "ERIK", EmailAddress: settings.Ptr(at("erik"))},
	}
	for _, u := range users {
		if err := st.PutUser(ctx, u, actor); err != nil {
			return err
		}
	}
	for _, a := range demoAccounts {
		_, err := st.AddIncomingAccount(ctx, settings.IncomingAccount{Address: at(a.local), Type: a.typ}, actor)
		if err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
	}
	return st.PutWebshop(ctx, settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings}, actor)
}
