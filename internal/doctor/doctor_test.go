package doctor

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/entra"
	"inkorg/internal/settings"
	"inkorg/internal/testutil/emutest"
)

type world struct {
	emu *emutest.Emulator
	d   *Doctor
}

func newWorld(t *testing.T, edit func(*scenario.Scenario)) *world {
	t.Helper()
	e := emutest.Start(t, edit)
	return &world{emu: e, d: &Doctor{Tokens: entra.New(entra.Config{Cloud: e.Cloud}), Cloud: e.Cloud, Timeout: 10 * time.Second}}
}

func (w *world) app(public bool) emulator.InfoApp { return w.emu.App(public) }

func (w *world) password(upn string) settings.Secret { return w.emu.Password(upn) }

// clientSecretConfig is what an administrator enters for the Client secret flow.
func (w *world) clientSecretConfig() settings.Config {
	a := w.app(false)
	return settings.Config{
		System: settings.System{EmailMethod: settings.MethodExchangeOnline, ClientID: a.ClientID, TenantID: w.emu.Info().TenantID,
			AuthFlow: settings.FlowClientSecret, ClientSecret: settings.NewSecret(a.ClientSecret)},
		Users: []settings.User{{Name: "WEBSHOP", EmailMethod: settings.Ptr(settings.MethodExchangeOnline), EmailAddress: settings.Ptr("webshop@contoso.example")},
			{Name: "ANNA", EmailAddress: settings.Ptr("anna@contoso.example")}},
		Accounts: []settings.IncomingAccount{{Address: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor}},
		Webshop:  settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings},
	}
}

// userPasswordConfig is the User name/Password flow: each sender and account has its own account.
func (w *world) userPasswordConfig() settings.Config {
	a := w.app(true)
	return settings.Config{
		System: settings.System{EmailMethod: settings.MethodExchangeOnline, ClientID: a.ClientID, TenantID: w.emu.Info().TenantID, AuthFlow: settings.FlowUsernamePassword},
		Users: []settings.User{
			{Name: "WEBSHOP", EmailMethod: settings.Ptr(settings.MethodExchangeOnline), EmailAddress: settings.Ptr("webshop@contoso.example"),
				ExchangeUsername: settings.Ptr("webshop@contoso.example"), ExchangePassword: settings.Ptr(w.password("webshop@contoso.example"))},
			{Name: "ANNA", EmailAddress: settings.Ptr("anna@contoso.example"), ExchangeUsername: settings.Ptr("anna@contoso.example"),
				ExchangePassword: settings.Ptr(w.password("anna@contoso.example"))},
		},
		Accounts: []settings.IncomingAccount{{Address: "info@contoso.example", Type: settings.TypeGeneral,
			ExchangeUsername: "anna@contoso.example", ExchangePassword: w.password("anna@contoso.example")}},
		Webshop: settings.Webshop{EmailMethod: settings.WebshopAccordingToUserSettings},
	}
}

func steps(r Report) string {
	var b strings.Builder
	for _, s := range r.Steps {
		b.WriteString(s.Name + "=" + string(s.Status) + " ")
	}
	return strings.TrimSpace(b.String())
}

func text(r Report) string {
	var b bytes.Buffer
	r.WriteText(&b)
	return b.String()
}

func TestAllStepsPass(t *testing.T) {
	w := newWorld(t, nil)
	ctx := context.Background()
	cs, up := w.clientSecretConfig(), w.userPasswordConfig()
	for _, tt := range []struct {
		name string
		rep  Report
		want string
	}{
		{"account, client secret", w.d.CheckAccount(ctx, cs, "m2m@contoso.example"), "settings=passed token=passed claims=passed connect/TLS=passed authenticate=passed select INBOX=passed"},
		{"webshop, client secret, test send", w.d.CheckWebshop(ctx, cs, "anna@contoso.example"), "settings=passed token=passed claims=passed connect/TLS=passed authenticate=passed test send=passed"},
		{"user, username-password", w.d.CheckUser(ctx, up, "ANNA", ""), "settings=passed token=passed claims=passed connect/TLS=passed authenticate=passed test send=unused"},
		{"account, username-password (shared mailbox)", w.d.CheckAccount(ctx, up, "info@contoso.example"), "settings=passed token=passed claims=passed connect/TLS=passed authenticate=passed select INBOX=passed"},
		{"webshop, username-password", w.d.CheckWebshop(ctx, up, "erik@contoso.example"), "settings=passed token=passed claims=passed connect/TLS=passed authenticate=passed test send=passed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.rep.OK || steps(tt.rep) != tt.want {
				t.Fatalf("got %s\n%s", steps(tt.rep), text(tt.rep))
			}
			if !strings.Contains(text(tt.rep), "All checks passed.") || !strings.Contains(text(tt.rep), "✓ token") {
				t.Errorf("%s", text(tt.rep))
			}
		})
	}
	// The test messages arrived.
	ms, err := w.emu.Store().Messages("erik@contoso.example", "INBOX")
	if err != nil || len(ms) != 1 || !strings.Contains(ms[0].Subject, "inkorg doctor") {
		t.Errorf("erik's INBOX: %+v %v", ms, err)
	}
}

func TestBrokenTenantsNameTheFix(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		edit    func(*scenario.Scenario)
		config  func(w *world) settings.Config
		check   func(w *world, c settings.Config) Report
		failAt  string
		expects []string
	}{
		{"no mailbox permission", func(s *scenario.Scenario) { s.ServicePrincipals[0].FullAccess = nil },
			(*world).clientSecretConfig, func(w *world, c settings.Config) Report { return w.d.CheckAccount(ctx, c, "m2m@contoso.example") },
			"select INBOX", []string{"BAD User is authenticated but not connected.", "Add-MailboxPermission -Identity \"m2m@contoso.example\" -User " + scenario.DefaultAppObjectID + " -AccessRights FullAccess"}},
		{"no service principal", func(s *scenario.Scenario) { s.ServicePrincipals = nil },
			(*world).clientSecretConfig, func(w *world, c settings.Config) Report { return w.d.CheckAccount(ctx, c, "m2m@contoso.example") },
			"", []string{"New-ServicePrincipal -AppId " + scenario.DefaultAppClientID + " -ObjectId " + scenario.DefaultAppObjectID}},
		{"IMAP disabled", func(s *scenario.Scenario) {
			for i := range s.Mailboxes {
				if strings.HasPrefix(s.Mailboxes[i].Address, "m2m@") {
					s.Mailboxes[i].IMAPEnabled = settings.Ptr(false)
				}
			}
		}, (*world).clientSecretConfig, func(w *world, c settings.Config) Report { return w.d.CheckAccount(ctx, c, "m2m@contoso.example") },
			"authenticate", []string{"NO AUTHENTICATE failed.", `Set-CASMailbox -Identity "m2m@contoso.example" -ImapEnabled $true`}},
		{"IMAP permission under Graph only", func(s *scenario.Scenario) {
			s.Apps[0].Roles = []string{scenario.RoleMailReadWrite, scenario.RoleMailSend}
		},
			(*world).clientSecretConfig, func(w *world, c settings.Config) Report { return w.d.CheckAccount(ctx, c, "m2m@contoso.example") },
			"claims", []string{"IMAP.AccessAsApp", "Office 365 Exchange Online", "adminconsent?client_id=" + scenario.DefaultAppClientID}},
		{"SMTP AUTH disabled", func(s *scenario.Scenario) { s.Tenants[0].SMTPAuthDisabled = true },
			(*world).clientSecretConfig, func(w *world, c settings.Config) Report { return w.d.CheckWebshop(ctx, c, "") },
			"authenticate", []string{"5.7.139", `Set-CASMailbox -Identity "webshop@contoso.example" -SmtpClientAuthenticationDisabled $false`}},
		{"wrong client secret", nil,
			func(w *world) settings.Config {
				c := w.clientSecretConfig()
				c.System.ClientSecret = settings.NewSecret("Not8Q~TheRightSecretValueAtAll000000000")
				return c
			}, func(w *world, c settings.Config) Report { return w.d.CheckAccount(ctx, c, "m2m@contoso.example") },
			"token", []string{"AADSTS7000215", "not its Secret ID", "Trace ID"}},
		{"expired secret in settings", nil,
			func(w *world) settings.Config {
				c := w.clientSecretConfig()
				c.System.ClientSecretExpires = settings.DateOf(time.Now().AddDate(0, 0, -3))
				return c
			}, func(w *world, c settings.Config) Report { return w.d.CheckAccount(ctx, c, "m2m@contoso.example") },
			"settings", []string{"the client secret expired on", "token", "skipped"}},
		{"secret expires in 10 days", nil,
			func(w *world) settings.Config {
				c := w.clientSecretConfig()
				c.System.ClientSecretExpires = settings.DateOf(time.Now().AddDate(0, 0, 10))
				return c
			}, func(w *world, c settings.Config) Report { return w.d.CheckAccount(ctx, c, "m2m@contoso.example") },
			"", []string{"! system.clientSecretExpires", "in 10 days"}},
		{"MFA on the webshop's account", func(s *scenario.Scenario) {
			for i := range s.Users {
				if strings.HasPrefix(s.Users[i].UPN, "webshop@") {
					s.Users[i].MFA = true
				}
			}
		}, (*world).userPasswordConfig, func(w *world, c settings.Config) Report { return w.d.CheckWebshop(ctx, c, "") },
			"token", []string{"AADSTS50076", "multi-factor", "Client secret"}},
		{"webshop lacks its password", nil,
			func(w *world) settings.Config {
				c := w.userPasswordConfig()
				c.Users[0].ExchangePassword = nil
				return c
			},
			func(w *world, c settings.Config) Report { return w.d.CheckWebshop(ctx, c, "") },
			"settings", []string{"users[WEBSHOP].exchangePassword"}},
		{"unknown account", nil, (*world).clientSecretConfig,
			func(w *world, c settings.Config) Report { return w.d.CheckAccount(ctx, c, "nobody@contoso.example") },
			"settings", []string{"inkorg settings incoming list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.edit)
			rep := tt.check(w, tt.config(w))
			out := text(rep)
			if tt.failAt != "" && !strings.Contains(steps(rep), tt.failAt+"=failed") {
				t.Fatalf("want failure at %s, got %s\n%s", tt.failAt, steps(rep), out)
			}
			for _, e := range tt.expects {
				if !strings.Contains(out, e) {
					t.Errorf("report lacks %q:\n%s", e, out)
				}
			}
			if strings.Contains(out, "Not8Q~TheRight") {
				t.Error("the secret is in the report")
			}
		})
	}
}
