// Package storetest is the conformance suite every store.Store implementation runs: the same
// behaviour on SQLite and on PostgreSQL.
package storetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// Open gives a fresh, empty store for one test; the suite closes it.
type Open func(t *testing.T) store.Store

// Secrets are the plain-text secrets the suite stores; implementations' own tests look for them in
// their raw files.
var Secrets = []string{
	"Qx48Q~SuiteClientSecretValue.0123456789ab",
	"SuiteSmtpPassword-4f1e",
	"SuiteUserExchangePassword-77a1",
	"SuiteAccountPassword-9c2d",
	"SuiteAccountOwnSecret~5b6e",
	"-----BEGIN PRIVATE KEY-----SuiteKey-----END PRIVATE KEY-----",
}

// FindSecret reports how one of Secrets shows in b — as it is, UTF-16LE, base64 (standard or
// URL-safe; the padded forms contain the unpadded) or hex (either case) — or nil when none does.
// Implementations' tests run it over their files and tables.
func FindSecret(b []byte) []byte {
	for _, sec := range Secrets {
		for _, enc := range encodings(sec) {
			if bytes.Contains(b, enc) {
				return enc
			}
		}
	}
	return nil
}

// encodings are the ways a secret could show up in a file or a table.
func encodings(s string) [][]byte {
	u16 := utf16.Encode([]rune(s))
	le := make([]byte, 0, 2*len(u16))
	for _, r := range u16 {
		le = append(le, byte(r), byte(r>>8))
	}
	return [][]byte{
		[]byte(s), le,
		[]byte(base64.RawStdEncoding.EncodeToString([]byte(s))), []byte(base64.RawURLEncoding.EncodeToString([]byte(s))),
		[]byte(hex.EncodeToString([]byte(s))), bytes.ToUpper([]byte(hex.EncodeToString([]byte(s)))),
	}
}

// Run runs the suite.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.Store)
	}{
		{"Empty", testEmpty},
		{"System", testSystem},
		{"Users", testUsers},
		{"IncomingAccounts", testAccounts},
		{"Webshop", testWebshop},
		{"Audit", testAudit},
		{"Concurrent", testConcurrent},
		{"Mail", testMail}, {"LeftInPlace", testLeftInPlace},
		{"Claims", testClaims}, {"NewestFirst", testNewestFirst},
		{"MailConcurrent", testMailConcurrent},
		{"Tokens", testTokens},
		{"Webhooks", testWebhooks}, {"DeliveryClaims", testDeliveryClaims},
		{"Outbox", testOutbox}, {"OutboxClaimRace", testOutboxClaimRace},
		{"Operators", testOperators},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tt.f(t, s)
		})
	}
}

// Fill stores one of everything, with every secret in Secrets.
func Fill(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	sys := settings.System{
		EmailMethod: settings.MethodExchangeOnline, ClientID: "6f1d3c2a-9b7e-4e2f-8a11-3c5d7e9f0a21", TenantID: "contoso.onmicrosoft.com",
		AuthFlow: settings.FlowClientSecret, ClientSecret: settings.NewSecret(Secrets[0]), Password: settings.NewSecret(Secrets[1]),
		ClientSecretExpires: mustDate("2027-03-31"), ClientKey: settings.NewSecret(Secrets[5]),
	}
	must(t, s.PutSystem(ctx, sys, "test"))
	must(t, s.PutUser(ctx, settings.User{Name: "WEBSHOP", EmailMethod: settings.Ptr(settings.MethodExchangeOnline),
		EmailAddress: settings.Ptr("webshop@contoso.example"), ExchangeUsername: settings.Ptr("webshop@contoso.example"),
		ExchangePassword: settings.Ptr(settings.NewSecret(Secrets[2]))}, "test"))
	_, err := s.AddIncomingAccount(ctx, settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor,
		ExchangeUsername: "m2m@contoso.example", ExchangePassword: settings.NewSecret(Secrets[3])}, "test")
	must(t, err)
	_, err = s.AddIncomingAccount(ctx, settings.IncomingAccount{Address: "invoices@contoso.example", Type: settings.TypeSupplierInvoice,
		ClientSecret: settings.Ptr(settings.NewSecret(Secrets[4]))}, "test")
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustDate(s string) settings.Date {
	d, err := settings.ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

func testEmpty(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.Config(ctx)
	must(t, err)
	if c.System != (settings.System{}) || len(c.Users) != 0 || len(c.Accounts) != 0 || c.Webshop != (settings.Webshop{}) {
		t.Errorf("a new store is not empty: %+v", c)
	}
	if _, err := s.User(ctx, "ANNA"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User of a missing user: %v", err)
	}
	if _, err := s.IncomingAccount(ctx, "x@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IncomingAccount of a missing account: %v", err)
	}
	if err := s.RemoveIncomingAccount(ctx, "x@example.com", "test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RemoveIncomingAccount of a missing account: %v", err)
	}
	if err := s.DeleteUser(ctx, "ANNA", "test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser of a missing user: %v", err)
	}
}

func testSystem(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := settings.System{EmailMethod: settings.MethodSMTP, ServerAddress: "smtp.example.com", Port: 465, UseSSL: true,
		Username: "relay", Password: settings.NewSecret(Secrets[1]), ClientID: "dormant", ClientSecretExpires: mustDate("2027-01-02"),
		ClientCertificate: "-----BEGIN CERTIFICATE-----\nnot parsed by the store\n-----END CERTIFICATE-----\n", ClientKey: settings.NewSecret(Secrets[5])}
	must(t, s.PutSystem(ctx, want, "test"))
	got, err := s.System(ctx)
	must(t, err)
	if got != want || got.Password.Reveal() != Secrets[1] || got.ClientKey.Reveal() != Secrets[5] {
		t.Errorf("System = %+v, want %+v", got, want)
	}
	want.Password, want.ClientKey = settings.Secret{}, settings.Secret{}
	want.ClientSecretExpires = settings.Date{}
	must(t, s.PutSystem(ctx, want, "test"))
	if got, _ = s.System(ctx); got != want {
		t.Errorf("clearing: System = %+v", got)
	}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	anna := settings.User{Name: "Anna", EmailAddress: settings.Ptr("anna@contoso.example"), CopyToSelf: settings.Ptr(settings.CopyBcc),
		Signature: settings.Ptr("Anna Svensson\nContoso AB"), ExchangePassword: settings.Ptr(settings.NewSecret(Secrets[2]))}
	must(t, s.PutUser(ctx, anna, "test"))
	got, err := s.User(ctx, "ANNA")
	must(t, err)
	if got.Name != "Anna" || *got.EmailAddress != *anna.EmailAddress || *got.CopyToSelf != settings.CopyBcc ||
		*got.Signature != *anna.Signature || got.ExchangePassword.Reveal() != Secrets[2] || got.EmailMethod != nil || got.ExchangeUsername != nil {
		t.Errorf("User = %+v", got)
	}
	// An override set to nothing stays an override; a nil one inherits.
	upd := settings.User{Name: "ANNA", EmailMethod: settings.Ptr(settings.MethodOutlookClient), ExchangePassword: settings.Ptr(settings.Secret{})}
	must(t, s.PutUser(ctx, upd, "test"))
	got, _ = s.User(ctx, "anna")
	if got.Name != "Anna" || got.EmailAddress != nil || *got.EmailMethod != settings.MethodOutlookClient || got.ExchangePassword == nil || got.ExchangePassword.IsSet() {
		t.Errorf("after update: %+v", got)
	}
	must(t, s.PutUser(ctx, settings.User{Name: "WEBSHOP"}, "test"))
	us, err := s.Users(ctx)
	must(t, err)
	if len(us) != 2 || us[0].Name != "Anna" || us[1].Name != "WEBSHOP" {
		t.Errorf("Users = %+v", us)
	}
	must(t, s.DeleteUser(ctx, "anna", "test"))
	if _, err := s.User(ctx, "Anna"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

func testAccounts(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.AddIncomingAccount(ctx, settings.IncomingAccount{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor,
		AvailableTo: []string{"SALES", "ANNA"}, ExchangeUsername: "m2m", ExchangePassword: settings.NewSecret(Secrets[3])}, "test")
	must(t, err)
	if a.ID == 0 {
		t.Fatal("no ID")
	}
	if _, err := s.AddIncomingAccount(ctx, settings.IncomingAccount{Address: "M2M@Contoso.example", Type: settings.TypeGeneral}, "test"); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate address: %v", err)
	}
	b, err := s.AddIncomingAccount(ctx, settings.IncomingAccount{Address: "invoices@contoso.example", Type: settings.TypeSupplierInvoice,
		ClientID: settings.Ptr("11111111-2222-3333-4444-555555555555"), AuthFlow: settings.Ptr(settings.FlowClientSecret),
		ClientSecret: settings.Ptr(settings.NewSecret(Secrets[4])), ClientSecretExpires: settings.Ptr(mustDate("2027-02-03"))}, "test")
	must(t, err)
	got, err := s.IncomingAccount(ctx, "INVOICES@contoso.example")
	must(t, err)
	if got.ID != b.ID || *got.ClientID != "11111111-2222-3333-4444-555555555555" || got.TenantID != nil || *got.AuthFlow != settings.FlowClientSecret ||
		got.ClientSecret.Reveal() != Secrets[4] || got.ClientSecretExpires.String() != "2027-02-03" || got.AvailableTo == nil || len(got.AvailableTo) != 0 {
		t.Errorf("IncomingAccount = %+v", got)
	}
	got.Type, got.ClientSecret, got.ClientSecretExpires = settings.TypeGeneral, nil, nil
	must(t, s.PutIncomingAccount(ctx, got, "test"))
	all, err := s.IncomingAccounts(ctx)
	must(t, err)
	if len(all) != 2 || all[0].Address != "m2m@contoso.example" || all[0].ExchangePassword.Reveal() != Secrets[3] ||
		strings.Join(all[0].AvailableTo, ",") != "SALES,ANNA" || all[1].Type != settings.TypeGeneral || all[1].ClientSecret != nil {
		t.Errorf("IncomingAccounts = %+v", all)
	}
	all[1].Address = "m2m@contoso.example"
	if err := s.PutIncomingAccount(ctx, all[1], "test"); !errors.Is(err, store.ErrExists) {
		t.Errorf("renaming onto a taken address: %v", err)
	}
	if err := s.PutIncomingAccount(ctx, settings.IncomingAccount{ID: 999, Address: "x@example.com"}, "test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("updating a missing account: %v", err)
	}
	must(t, s.RemoveIncomingAccount(ctx, "M2M@contoso.example", "test"))
	if all, _ = s.IncomingAccounts(ctx); len(all) != 1 {
		t.Errorf("after remove: %+v", all)
	}
}

func testWebshop(t *testing.T, s store.Store) {
	ctx := context.Background()
	must(t, s.PutWebshop(ctx, settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings}, "test"))
	w, err := s.Webshop(ctx)
	must(t, err)
	if w.EmailMethod != settings.WebshopAccordingToUserSettings {
		t.Errorf("Webshop = %+v", w)
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	Fill(t, s)
	sys, _ := s.System(ctx)
	sys.ClientSecret = settings.NewSecret("Another~SecretValue.Rotated")
	sys.TenantID = "0f6a5c2e-1d3b-4a7c-9e8f-2b4d6f8a0c1e"
	must(t, s.PutSystem(ctx, sys, "cli:alice"))
	must(t, s.PutSystem(ctx, sys, "cli:alice")) // no change, no entry
	es, err := s.Audit(ctx, 1000)
	must(t, err)
	if len(es) < 2 {
		t.Fatalf("audit has %d entries", len(es))
	}
	got := map[string]store.AuditEntry{}
	for _, e := range es {
		for _, sec := range append(Secrets, "Another~SecretValue.Rotated") {
			if strings.Contains(e.Old+e.New, sec) {
				t.Errorf("audit shows a secret: %+v", e)
			}
		}
		key := e.Entity + "." + e.Field
		if _, seen := got[key]; !seen {
			got[key] = e // newest first
		}
	}
	for key, want := range map[string][3]string{
		"system.clientSecret":                             {"cli:alice", "set", "changed"},
		"system.tenantId":                                 {"cli:alice", "contoso.onmicrosoft.com", "0f6a5c2e-1d3b-4a7c-9e8f-2b4d6f8a0c1e"},
		"system.emailMethod":                              {"test", "", "exchange-online"},
		"users[WEBSHOP].exchangePassword":                 {"test", "(inherited)", "set"},
		"incoming[m2m@contoso.example].type":              {"test", "", "monitor-to-monitor"},
		"incoming[invoices@contoso.example].clientSecret": {"test", "(inherited)", "set"},
	} {
		e, ok := got[key]
		if !ok || e.Actor != want[0] || e.Old != want[1] || e.New != want[2] || e.At.IsZero() {
			t.Errorf("audit %s = %+v, want %v", key, e, want)
		}
	}
	if es[0].Actor != "cli:alice" {
		t.Errorf("newest entry first: %+v", es[0])
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			errs <- s.PutUser(ctx, settings.User{Name: fmt.Sprintf("U%02d", i), EmailAddress: settings.Ptr(fmt.Sprintf("u%d@contoso.example", i))}, "test")
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	us, err := s.Users(ctx)
	must(t, err)
	if len(us) != 20 {
		t.Errorf("%d users after 20 concurrent writes", len(us))
	}
}
