package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"inkorg/internal/api"
	"inkorg/internal/cloud"
	"inkorg/internal/emulator"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/web"
)

const demoUsage = `usage: inkorg demo [--dir DIR]

Starts the emulator (a local Microsoft Entra ID + Exchange Online) and seeds inkorg's settings for it,
as an administrator would after following the help page: Exchange Online with the Client secret flow,
the user WEBSHOP, the webshop according to user settings, and one incoming e-mail account per type.
Runs until Ctrl-C. Everything lives in DIR (default: a new temporary directory): inkorg.db and its key,
and emulator/emulator.json with the emulator's addresses and credentials.

Example:
  inkorg demo --dir ./demo --addr 127.0.0.1:8025
`

func cmdDemo(e *env, args []string) error {
	f := newFlags(e, "demo", demoUsage)
	dir := f.String("dir", "", "the demo's directory (default: a new temporary directory)")
	addr := f.String("addr", "127.0.0.1:8025", "where the ERP API listens")
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
	emu, err := emulator.New(emulator.Config{Dir: filepath.Join(*dir, "emulator"), Logger: slog.New(slog.DiscardHandler)})
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
	// Mail arrives in the emulated mailboxes, as it would from suppliers and customers.
	samples := demoMessages()
	for _, m := range samples {
		if _, err := emu.Store().Deliver(m.to, "INBOX", m.raw); err != nil {
			return fmt.Errorf("demo: deliver sample mail: %w", err)
		}
	}
	token, err := demoToken(e, st)
	if err != nil {
		return err
	}
	adminPassword, err := demoAdmin(e, st)
	if err != nil {
		return err
	}
	cl, err := cloud.Load(emu.InfoFile())
	if err != nil {
		return err
	}
	svc, err := startService(e.ctx, st, cl, *addr, logger, e.now)
	if err != nil {
		return fmt.Errorf("demo: start inkorg: %w", err)
	}
	defer svc.close()
	fmt.Fprintf(e.stdout, "Ingesting %d sample messages …\n", len(samples))
	stored := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && e.ctx.Err() == nil; time.Sleep(100 * time.Millisecond) {
		ms, err := st.Messages(e.ctx, store.MessageQuery{})
		if err != nil {
			return err
		}
		if stored = len(ms); stored >= len(samples) {
			break
		}
	}
	info := emu.Info()
	api := "http://" + svc.Addr() + "/api/v1"
	fmt.Fprintf(e.stdout, `
inkorg demo is ready.
  Settings       validated ✓ (%d users with own settings, %d incoming accounts, webshop according to user settings)
  Incoming mail  %d of %d sample messages stored and moved to %s on the server
  Admin UI       %s   (user admin, password %s)
  ERP API        %s   (token: %s)
  Entra ID       %s/%s  (token endpoint /oauth2/v2.0/token)
  Exchange IMAP  %s  (implicit TLS, XOAUTH2)
  Exchange SMTP  %s  (STARTTLS, XOAUTH2)
  Emulator admin %s
  CA certificate %s
  Credentials    %s

Look around (in another terminal):
  curl -H "Authorization: Bearer %s" "%s/messages?type=monitor-to-monitor"
  curl -H "Authorization: Bearer %s" %s/accounts
  go run ./cmd/inkorg doctor --account m2m@contoso.example --db %s --cloud %s
  go run ./cmd/inkorg settings user show WEBSHOP --effective --db %s
  curl --cacert %s -X POST --data-binary @some.eml %s/mailboxes/m2m@contoso.example/messages   # more mail

Press Ctrl-C to stop.
`, len(c.Users), len(c.Accounts), stored, len(samples), settings.DefaultProcessedFolder, "http://"+svc.Addr()+"/", adminPassword, api, token, info.Authority, info.TenantID, info.IMAP, info.SMTP,
		info.Admin, info.CAFile, emu.InfoFile(), token, api, token, api, db, emu.InfoFile(), db, info.CAFile, info.Admin)
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
	// One incoming e-mail account per mailbox of the default scenario that serves a type.
	for _, a := range []struct {
		local string
		typ   settings.IncomingType
	}{
		{"m2m", settings.TypeMonitorToMonitor},
		{"invoices", settings.TypeSupplierInvoice},
		{"orders", settings.TypeCustomerOrder},
		{"info", settings.TypeGeneral},
	} {
		_, err := st.AddIncomingAccount(ctx, settings.IncomingAccount{Address: at(a.local), Type: a.typ}, actor)
		if err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
	}
	return st.PutWebshop(ctx, settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings}, actor)
}

// demoToken makes the demo's API token (a new one each run; the old ones are revoked).
func demoToken(e *env, st store.Store) (string, error) {
	tok, err := newAPIToken()
	if err != nil {
		return "", err
	}
	_ = st.RevokeAPIToken(e.ctx, "demo")
	if _, err := st.CreateAPIToken(e.ctx, "demo", api.HashToken(tok)); err != nil {
		return "", fmt.Errorf("demo: API token: %w", err)
	}
	return tok, nil
}

type demoMessage struct {
	to  string
	raw []byte
}

// demoMessages are sample mail: Monitor-to-Monitor documents with their PDF and XML, a supplier
// invoice, a customer's order and a general question.
func demoMessages() []demoMessage {
	m2m := func(n int, subject, root, number string) demoMessage {
		xml := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><%s><DocumentNumber>%s</DocumentNumber><Buyer>Contoso AB</Buyer></%s>`, root, number, root)
		pdf := "%PDF-1.4\n% " + subject + "\n%%EOF\n"
		raw := fmt.Sprintf("From: Supplier AB <m2m@supplier.example>\r\nTo: m2m@contoso.example\r\nSubject: %s %s\r\n"+
			"Message-ID: <demo-m2m-%d@supplier.example>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m2m\"\r\n\r\n"+
			"--m2m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMonitor-to-Monitor: %s %s attached (PDF and XML).\r\n"+
			"--m2m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"%s.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n"+
			"--m2m\r\nContent-Type: application/xml\r\nContent-Disposition: attachment; filename=\"%s.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--m2m--\r\n",
			subject, number, n, time.Now().UTC().Format(time.RFC1123Z), subject, number, number, base64.StdEncoding.EncodeToString([]byte(pdf)),
			number, base64.StdEncoding.EncodeToString([]byte(xml)))
		return demoMessage{"m2m@contoso.example", []byte(raw)}
	}
	plain := func(n int, to, from, subject, body string) demoMessage {
		return demoMessage{to, fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <demo-%d@example.com>\r\nDate: %s\r\n\r\n%s\r\n",
			from, to, subject, n, time.Now().UTC().Format(time.RFC1123Z), body)}
	}
	return []demoMessage{
		m2m(1, "Purchase order", "PurchaseOrder", "PO-10001"),
		m2m(2, "Order confirmation", "OrderConfirmation", "OC-20417"),
		m2m(3, "Invoice", "Invoice", "INV-88120"),
		m2m(4, "Dispatch advice", "DispatchAdvice", "DA-55102"),
		plain(5, "invoices@contoso.example", "Billing <billing@vendor.example>", "Invoice 4471 for October", "Please find our invoice 4471 attached."),
		plain(6, "orders@contoso.example", "Buyer <buyer@customer.example>", "Order: 40 pcs art. 1203", "Please deliver 40 pieces of article 1203 by Friday."),
		plain(7, "info@contoso.example", "Visitor <visitor@example.org>", "Opening hours", "Are you open on Saturdays?"),
	}
}

// demoAdmin gives the demo an operator "admin" with a fresh random password (the old one, if any, is
// replaced), so the admin UI can be tried at once.
func demoAdmin(e *env, st store.Store) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(b)
	hash, err := web.HashPassword(pw)
	if err != nil {
		return "", err
	}
	_ = st.RemoveOperator(e.ctx, "admin")
	if _, err := st.CreateOperator(e.ctx, store.Operator{Name: "admin", Role: store.RoleAdmin}, hash); err != nil {
		return "", fmt.Errorf("demo: admin operator: %w", err)
	}
	return pw, nil
}
