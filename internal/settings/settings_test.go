package settings

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const (
	appID    = "6f1d3c2a-9b7e-4e2f-8a11-3c5d7e9f0a21"
	tenantID = "0f6a5c2e-1d3b-4a7c-9e8f-2b4d6f8a0c1e"
	secretV  = "Qx48Q~s0meRe4lSecretValue.With~Chars_123"
)

var today = DateOf(time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC))

func date(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

func exoSystem(flow AuthFlow) System {
	s := System{EmailMethod: MethodExchangeOnline, ClientID: appID, TenantID: tenantID, AuthFlow: flow}
	if flow == FlowClientSecret {
		s.ClientSecret, s.ClientSecretExpires = NewSecret(secretV), date("2027-06-30")
	}
	return s
}

func TestSecretNeverShowsItsValue(t *testing.T) {
	s := NewSecret(secretV)
	u := User{Name: "ANNA", ExchangePassword: &s}
	sys := exoSystem(FlowClientSecret)
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "secret", s, "system", sys)
	js, _ := json.Marshal(ResolveUser(sys, u))
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", s, sys, sys, s, s), fmt.Sprintf("%+v", u),
		logged.String(), string(js), Problems(CheckSystem(System{ClientSecret: s}, nil)).Error(),
	} {
		if strings.Contains(out, secretV) || strings.Contains(out, "Qx48Q") {
			t.Fatalf("secret value leaked: %s", out)
		}
	}
	if !strings.Contains(string(js), `"exchangePassword":{"value":"set","source":"user"`) {
		t.Errorf("effective JSON does not say the password is set by the user: %s", js)
	}
	if s.Reveal() != secretV || !s.IsSet() || (Secret{}).IsSet() || (Secret{}).String() != "not set" {
		t.Error("Reveal/IsSet/String")
	}
}

func TestResolveUser(t *testing.T) {
	smtp := System{EmailMethod: MethodSMTP, ServerAddress: "smtp.example.com", Port: 587, UseSSL: true, Username: "relay", Password: NewSecret("pw")}
	tests := []struct {
		name  string
		sys   System
		user  User
		check func(t *testing.T, e EffectiveUser)
	}{
		{"everything inherited", smtp, User{Name: "ANNA"}, func(t *testing.T, e EffectiveUser) {
			want(t, e.EmailMethod, MethodSMTP, SourceSystem)
			want(t, e.ServerAddress, "smtp.example.com", SourceSystem)
			want(t, e.Port, 587, SourceSystem)
			want(t, e.UseSSL, true, SourceSystem)
			want(t, e.ExchangeUsername, "relay", SourceSystem)
			want(t, e.CopyToSelf, CopyNone, SourceDefault)
			want(t, e.Signature, "", SourceDefault)
			want(t, e.EmailAddress, "", SourceDefault)
			if !e.ClientID.NotApplicable || e.ServerAddress.NotApplicable {
				t.Error("applicability under smtp")
			}
		}},
		{"user overrides each field", smtp, User{Name: "ANNA", EmailAddress: Ptr("anna@contoso.example"),
			ExchangeUsername: Ptr("anna"), ExchangePassword: Ptr(NewSecret("x")), CopyToSelf: Ptr(CopyBcc), Signature: Ptr("Anna")},
			func(t *testing.T, e EffectiveUser) {
				want(t, e.EmailAddress, "anna@contoso.example", SourceUser)
				want(t, e.ExchangeUsername, "anna", SourceUser)
				want(t, e.CopyToSelf, CopyBcc, SourceUser)
				want(t, e.Signature, "Anna", SourceUser)
				if e.ExchangePassword.Source != SourceUser || e.ExchangePassword.Value.Reveal() != "x" {
					t.Error("password override")
				}
			}},
		{"user overrides the method", smtp, User{Name: "ANNA", EmailMethod: Ptr(MethodExchangeOnline)}, func(t *testing.T, e EffectiveUser) {
			want(t, e.EmailMethod, MethodExchangeOnline, SourceUser)
			// Under Exchange Online the system's SMTP user name is not the user's.
			want(t, e.ExchangeUsername, "", SourceDefault)
			if e.ClientID.NotApplicable || !e.ServerAddress.NotApplicable {
				t.Error("applicability under exchange-online")
			}
		}},
		{"exchange online client secret", exoSystem(FlowClientSecret), User{Name: "ANNA"}, func(t *testing.T, e EffectiveUser) {
			want(t, e.ClientID, appID, SourceSystem)
			want(t, e.TenantID, tenantID, SourceSystem)
			want(t, e.AuthFlow, FlowClientSecret, SourceSystem)
			want(t, e.ClientSecretExpires, date("2027-06-30"), SourceSystem)
			if !e.ExchangeUsername.NotApplicable || !e.ExchangePassword.NotApplicable || e.ClientSecret.NotApplicable {
				t.Error("user name/password apply only to the User name/Password flow")
			}
		}},
		{"exchange online username password", exoSystem(FlowUsernamePassword), User{Name: "ANNA"}, func(t *testing.T, e EffectiveUser) {
			if e.ExchangeUsername.NotApplicable || !e.ClientSecret.NotApplicable {
				t.Error("applicability under username-password")
			}
		}},
		{"outlook client", System{EmailMethod: MethodOutlookClient}, User{Name: "ANNA"}, func(t *testing.T, e EffectiveUser) {
			if !e.CopyToSelf.NotApplicable || !e.ExchangeUsername.NotApplicable || e.Signature.NotApplicable {
				t.Error("applicability under outlook-client")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, ResolveUser(tt.sys, tt.user)) })
	}
}

func want[T comparable](t *testing.T, f Field[T], v T, s Source) {
	t.Helper()
	if f.Value != v || f.Source != s {
		t.Errorf("got %v from %s, want %v from %s", f.Value, f.Source, v, s)
	}
}

func TestResolveAccount(t *testing.T) {
	sys := exoSystem(FlowClientSecret)
	a := IncomingAccount{Address: "m2m@contoso.example", Type: TypeMonitorToMonitor}
	e := ResolveAccount(sys, a)
	want(t, e.ClientID, appID, SourceSystem)
	want(t, e.AuthFlow, FlowClientSecret, SourceSystem)
	want(t, e.Type, TypeMonitorToMonitor, SourceAccount)
	want(t, e.EmailMethod, MethodExchangeOnline, SourceSystem)
	if !e.ExchangePassword.NotApplicable || !e.ExchangeUsername.NotApplicable {
		t.Error("the seeds disable User name/Password (Exchange) under client-secret")
	}

	// An account with its own secret: the expiry follows the secret, not the system's.
	a.ClientSecret = Ptr(NewSecret("other-secret-value"))
	e = ResolveAccount(sys, a)
	if e.ClientSecret.Source != SourceAccount || e.ClientSecretExpires.Source != SourceAccount || !e.ClientSecretExpires.Value.IsZero() {
		t.Errorf("account secret: %+v %+v", e.ClientSecret, e.ClientSecretExpires)
	}
	// Overriding the flow makes the mailbox credentials apply.
	a = IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, AuthFlow: Ptr(FlowUsernamePassword), ExchangeUsername: "m2m@contoso.example"}
	e = ResolveAccount(sys, a)
	want(t, e.AuthFlow, FlowUsernamePassword, SourceAccount)
	want(t, e.ExchangeUsername, "m2m@contoso.example", SourceAccount)
	if e.ExchangeUsername.NotApplicable || !e.ClientSecret.NotApplicable {
		t.Error("applicability after a flow override")
	}
	want(t, e.Folder, DefaultFolder, SourceDefault)
	want(t, e.ProcessedFolder, DefaultProcessedFolder, SourceDefault)
	want(t, e.PollSeconds, 60, SourceDefault)
	a.ProcessedFolder, a.PollInterval = "ERP/Done", 90*time.Second
	e = ResolveAccount(sys, a)
	want(t, e.ProcessedFolder, "ERP/Done", SourceAccount)
	want(t, e.PollSeconds, 90, SourceAccount)
	if js, _ := json.Marshal(e); !strings.Contains(string(js), `"availableTo":{"value":[],"source":"account"}`) {
		t.Errorf("availableTo JSON: %s", js)
	}
}

func TestResolveWebshop(t *testing.T) {
	c := Config{System: exoSystem(FlowUsernamePassword)}
	if w := ResolveWebshop(c); w.User != nil || w.EmailMethod.Source != SourceDefault {
		t.Fatalf("webshop without a method: %+v", w)
	}
	c.Webshop.EmailMethod = WebshopAccordingToUserSettings
	w := ResolveWebshop(c)
	if w.User == nil || w.User.Name != WebshopUser {
		t.Fatalf("according to user settings without a WEBSHOP user: %+v", w)
	}
	want(t, w.User.EmailMethod, MethodExchangeOnline, SourceSystem)
	c.Users = []User{{Name: "webshop", EmailAddress: Ptr("shop@contoso.example"), EmailMethod: Ptr(MethodExchangeOnline)}}
	w = ResolveWebshop(c)
	want(t, w.EmailMethod, WebshopAccordingToUserSettings, SourceWebshop)
	want(t, w.User.EmailAddress, "shop@contoso.example", SourceUser)
	want(t, w.User.EmailMethod, MethodExchangeOnline, SourceUser)
}

// problem is one expected problem: its path and a fragment of its message.
type problem struct{ path, fragment string }

func expect(t *testing.T, got Problems, sev Severity, wants ...problem) {
	t.Helper()
	got = got.only(sev)
	if len(got) != len(wants) {
		t.Fatalf("got %d %ss, want %d:\n%s", len(got), sev, len(wants), got.Error())
	}
	for i, w := range wants {
		if got[i].Path != w.path || !strings.Contains(got[i].Message, w.fragment) {
			t.Errorf("problem %d: got %s, want %s containing %q", i, got[i], w.path, w.fragment)
		}
	}
}

func TestCheckSystem(t *testing.T) {
	tests := []struct {
		name    string
		sys     System
		changed []string
		want    []problem
	}{
		{"valid client secret", exoSystem(FlowClientSecret), []string{"emailMethod", "clientId", "tenantId", "authFlow", "clientSecret"}, nil},
		{"valid domain tenant", System{EmailMethod: MethodExchangeOnline, TenantID: "contoso.onmicrosoft.com"}, nil, nil},
		{"client id not a guid", System{ClientID: "my-app"}, nil, []problem{{"system.clientId", "is a GUID"}}},
		{"tenant common", System{TenantID: "common"}, nil, []problem{{"system.tenantId", "multi-tenant"}}},
		{"tenant organizations", System{TenantID: "Organizations"}, nil, []problem{{"system.tenantId", "multi-tenant"}}},
		{"tenant consumers", System{TenantID: "consumers"}, nil, []problem{{"system.tenantId", "personal Microsoft accounts"}}},
		{"tenant consumer guid", System{TenantID: consumerTenant}, nil, []problem{{"system.tenantId", "personal Microsoft accounts"}}},
		{"tenant garbage", System{TenantID: "contoso"}, nil, []problem{{"system.tenantId", "verified domains"}}},
		{"secret id pasted", System{ClientSecret: NewSecret("3f2b8c1d-0a9e-4b7c-8d6f-5e4a3b2c1d0e")}, nil, []problem{{"system.clientSecret", "this looks like the Secret ID — paste the secret's Value"}}},
		{"client id pasted as secret", System{ClientID: appID, ClientSecret: NewSecret(appID + "x")}, nil, nil},
		{"secret with line break", System{ClientSecret: NewSecret("abc\ndef")}, nil, []problem{{"system.clientSecret", "line breaks"}}},
		{"secret under username-password", exoSystem(FlowUsernamePassword), []string{"clientSecret"}, []problem{{"system.clientSecret", "not used with the authentication flow User name/Password"}}},
		{"server address under exchange online", exoSystem(FlowClientSecret), []string{"serverAddress"}, []problem{{"system.serverAddress", "does not apply to the e-mail method"}}},
		{"client id under smtp", System{EmailMethod: MethodSMTP, ClientID: appID}, []string{"clientId"}, []problem{{"system.clientId", "does not apply"}}},
		{"unchanged dormant values are kept quietly", System{EmailMethod: MethodSMTP, ClientID: appID}, []string{"emailMethod"}, nil},
		{"port too big", System{EmailMethod: MethodSMTP, Port: 70000}, nil, []problem{{"system.port", "between 0 and 65535"}}},
		{"port negative", System{EmailMethod: MethodSMTP, Port: -1}, nil, []problem{{"system.port", "between 0 and 65535"}}},
		{"server with scheme", System{ServerAddress: "https://mail.example.com"}, nil, []problem{{"system.serverAddress", `without "https://"`}}},
		{"server with port", System{ServerAddress: "mail.example.com:587"}, nil, []problem{{"system.serverAddress", "put the port number in Port"}}},
		{"unknown method", System{EmailMethod: "pop3"}, nil, []problem{{"system.emailMethod", `unknown e-mail method "pop3"`}}},
		{"unknown flow", System{AuthFlow: "device-code"}, nil, []problem{{"system.authFlow", "unknown authentication flow"}}},
		{"nothing applies without a method", System{ClientID: appID}, []string{"clientId"}, []problem{{"system.clientId", "until an e-mail method is chosen"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expect(t, CheckSystem(tt.sys, tt.changed), SeverityError, tt.want...) })
	}
	// The Application ID pasted into the secret field.
	expect(t, CheckSystem(System{ClientID: appID, ClientSecret: NewSecret(strings.ToUpper(appID))}, nil), SeverityError,
		problem{"system.clientSecret", "looks like the Secret ID"})
}

func TestCheckUserAndAccount(t *testing.T) {
	cs, up := exoSystem(FlowClientSecret), exoSystem(FlowUsernamePassword)
	tests := []struct {
		name string
		got  Problems
		want []problem
	}{
		{"bad address", CheckUser(cs, User{Name: "ANNA", EmailAddress: Ptr("Anna <anna@contoso.example>")}, nil), []problem{{"users[ANNA].emailAddress", "not an e-mail address"}}},
		{"address without domain dot", CheckUser(cs, User{Name: "ANNA", EmailAddress: Ptr("anna@localhost")}, nil), []problem{{"users[ANNA].emailAddress", "not an e-mail address"}}},
		{"no name", CheckUser(cs, User{Name: " "}, nil), []problem{{"users[].name", "needs a name"}}},
		{"unknown copy", CheckUser(cs, User{Name: "ANNA", CopyToSelf: Ptr(CopyToSelf("to"))}, nil), []problem{{"users[ANNA].copyToSelf", "unknown choice"}}},
		{"empty method override", CheckUser(cs, User{Name: "ANNA", EmailMethod: Ptr(EmailMethod(""))}, nil), []problem{{"users[ANNA].emailMethod", "or inherit"}}},
		{"password under client secret", CheckUser(cs, User{Name: "ANNA", ExchangePassword: Ptr(NewSecret("pw"))}, []string{"exchangePassword"}), []problem{{"users[ANNA].exchangePassword", "not used with the authentication flow Client secret"}}},
		{"password under username-password", CheckUser(up, User{Name: "ANNA", ExchangePassword: Ptr(NewSecret("pw"))}, []string{"exchangePassword"}), nil},
		{"copy under outlook", CheckUser(cs, User{Name: "ANNA", EmailMethod: Ptr(MethodOutlookClient), CopyToSelf: Ptr(CopyCc)}, []string{"copyToSelf"}), []problem{{"users[ANNA].copyToSelf", "does not apply"}}},
		{"account ok", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeMonitorToMonitor}, nil), nil},
		{"account unknown type", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: "fax"}, nil), []problem{{"incoming[m2m@contoso.example].type", `unknown type "fax"`}}},
		{"account no type", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example"}, nil), []problem{{"incoming[m2m@contoso.example].type", "choose the account's type"}}},
		{"account no address", CheckAccount(cs, IncomingAccount{Type: TypeGeneral}, nil), []problem{{"incoming[].address", "needs its e-mail address"}}},
		{"account password under client secret", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, ExchangeUsername: "m2m"}, []string{"exchangeUsername"}), []problem{{"incoming[m2m@contoso.example].exchangeUsername", "seeds disable this field"}}},
		{"account secret id override", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, ClientSecret: Ptr(NewSecret("3f2b8c1d-0a9e-4b7c-8d6f-5e4a3b2c1d0e"))}, []string{"clientSecret"}), []problem{{"incoming[m2m@contoso.example].clientSecret", "Secret ID"}}},
		{"account bad tenant override", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, TenantID: Ptr("common")}, nil), []problem{{"incoming[m2m@contoso.example].tenantId", "multi-tenant"}}},
		{"account empty role", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, AvailableTo: []string{"SALES", ""}}, nil), []problem{{"incoming[m2m@contoso.example].availableTo[1]", "empty"}}},
		{"account override under smtp", CheckAccount(System{EmailMethod: MethodSMTP}, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, ClientID: Ptr(appID)}, []string{"clientId"}), []problem{{"incoming[m2m@contoso.example].clientId", "does not apply"}}},
		{"webshop unknown", CheckWebshop(Webshop{EmailMethod: "smtp"}), []problem{{"webshop.emailMethod", "According to user settings"}}},
		{"processed folder is the folder read", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, ProcessedFolder: "inbox"}, nil), []problem{{"incoming[m2m@contoso.example].processedFolder", "must differ from the folder read (INBOX)"}}},
		{"leave in place may keep the folder", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, ProcessedFolder: "INBOX", LeaveInPlace: true}, nil), nil},
		{"failed folder is the folder read", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, Folder: "ERP", FailedFolder: "erp"}, nil), []problem{{"incoming[m2m@contoso.example].failedFolder", "must differ"}}},
		{"folder with wildcard", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, Folder: "In*"}, nil), []problem{{"incoming[m2m@contoso.example].folder", "cannot hold"}}},
		{"polling too often", CheckAccount(cs, IncomingAccount{Address: "m2m@contoso.example", Type: TypeGeneral, PollInterval: 2 * time.Second}, nil), []problem{{"incoming[m2m@contoso.example].pollInterval", "at most every 10s"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expect(t, tt.got, SeverityError, tt.want...) })
	}
}

func TestValidateCompleteness(t *testing.T) {
	webshopUser := User{Name: WebshopUser, EmailMethod: Ptr(MethodExchangeOnline), EmailAddress: Ptr("webshop@contoso.example")}
	m2m := IncomingAccount{Address: "m2m@contoso.example", Type: TypeMonitorToMonitor}
	tests := []struct {
		name     string
		cfg      Config
		errors   []problem
		warnings []problem
	}{
		{"empty", Config{}, []problem{{"system.emailMethod", "choose an e-mail method"}}, nil},
		{"complete client secret", Config{System: exoSystem(FlowClientSecret), Users: []User{webshopUser}, Accounts: []IncomingAccount{m2m},
			Webshop: Webshop{EmailMethod: WebshopAccordingToUserSettings}}, nil, nil},
		{"exchange online missing everything", Config{System: System{EmailMethod: MethodExchangeOnline}}, []problem{
			{"system.clientId", "Application (client) ID"}, {"system.tenantId", "Directory (tenant) ID"}, {"system.authFlow", "choose the authentication flow"}}, nil},
		{"client secret missing", Config{System: System{EmailMethod: MethodExchangeOnline, ClientID: appID, TenantID: tenantID, AuthFlow: FlowClientSecret}},
			[]problem{{"system.clientSecret", "needs the client secret's Value"}}, nil},
		{"client secret expired", Config{System: func() System { s := exoSystem(FlowClientSecret); s.ClientSecretExpires = date("2026-11-01"); return s }()},
			[]problem{{"system.clientSecretExpires", "the client secret expired on 2026-11-01: create a new client secret"}}, nil},
		{"client secret expires soon", Config{System: func() System { s := exoSystem(FlowClientSecret); s.ClientSecretExpires = date("2026-12-06"); return s }()},
			nil, []problem{{"system.clientSecretExpires", "expires on 2026-12-06, in 14 days"}}},
		{"client secret expires today", Config{System: func() System { s := exoSystem(FlowClientSecret); s.ClientSecretExpires = today; return s }()},
			nil, []problem{{"system.clientSecretExpires", "expires today"}}},
		{"smtp needs a server", Config{System: System{EmailMethod: MethodSMTP}}, []problem{{"system.serverAddress", "needs the mail server's address"}}, nil},
		{"webshop user missing", Config{System: exoSystem(FlowClientSecret), Webshop: Webshop{EmailMethod: WebshopAccordingToUserSettings}},
			[]problem{{"users[WEBSHOP].emailMethod", "needs e-mail settings"}, {"users[WEBSHOP].emailAddress", "WEBSHOP needs the e-mail address"}}, nil},
		{"webshop under username-password lacks its exchange password", Config{System: exoSystem(FlowUsernamePassword),
			Users:   []User{func() User { u := webshopUser; u.ExchangeUsername = Ptr("webshop@contoso.example"); return u }()},
			Webshop: Webshop{EmailMethod: WebshopAccordingToUserSettings}},
			[]problem{{"users[WEBSHOP].exchangePassword", "needs this user's Password (Exchange) (the webshop sends according to the user settings of WEBSHOP)"}}, nil},
		{"webshop on outlook", Config{System: exoSystem(FlowClientSecret), Users: []User{func() User { u := webshopUser; u.EmailMethod = Ptr(MethodOutlookClient); return u }()},
			Webshop: Webshop{EmailMethod: WebshopAccordingToUserSettings}}, []problem{{"users[WEBSHOP].emailMethod", "cannot hand its mail to Outlook"}}, nil},
		{"webshop not in use: WEBSHOP is an ordinary user", Config{System: exoSystem(FlowClientSecret), Users: []User{{Name: WebshopUser}}}, nil, nil},
		{"user under username-password", Config{System: exoSystem(FlowUsernamePassword), Users: []User{{Name: "ANNA", ExchangeUsername: Ptr("anna@contoso.example")}}},
			[]problem{{"users[ANNA].exchangePassword", "needs this user's Password (Exchange)"}}, nil},
		{"account under username-password", Config{System: exoSystem(FlowUsernamePassword), Accounts: []IncomingAccount{m2m}},
			[]problem{{"incoming[m2m@contoso.example].exchangeUsername", "User name/Password needs the mailbox's User name (Exchange)"},
				{"incoming[m2m@contoso.example].exchangePassword", "needs the mailbox's Password (Exchange)"}}, nil},
		{"account under smtp", Config{System: System{EmailMethod: MethodSMTP, ServerAddress: "mail.example.com"}, Accounts: []IncomingAccount{{Address: "in@example.com", Type: TypeGeneral, ExchangeUsername: "in", ExchangePassword: NewSecret("pw")}}}, nil, nil},
		{"account on outlook", Config{System: System{EmailMethod: MethodOutlookClient}, Accounts: []IncomingAccount{m2m}},
			[]problem{{"incoming[m2m@contoso.example].emailMethod", "choose a server-based method"}}, nil},
		{"account twice", Config{System: exoSystem(FlowClientSecret), Accounts: []IncomingAccount{m2m, {Address: "M2M@contoso.example", Type: TypeGeneral}}},
			[]problem{{"incoming[M2M@contoso.example].address", "registered twice"}}, nil},
		{"account's own expired secret", Config{System: exoSystem(FlowClientSecret), Accounts: []IncomingAccount{{Address: "m2m@contoso.example", Type: TypeGeneral,
			ClientSecret: Ptr(NewSecret("another-secret-value")), ClientSecretExpires: Ptr(date("2025-01-01"))}}},
			[]problem{{"incoming[m2m@contoso.example].clientSecretExpires", "expired on 2025-01-01"}}, nil},
		{"account flow override needs credentials", Config{System: exoSystem(FlowClientSecret), Accounts: []IncomingAccount{{Address: "m2m@contoso.example", Type: TypeGeneral, AuthFlow: Ptr(FlowUsernamePassword)}}},
			[]problem{{"incoming[m2m@contoso.example].exchangeUsername", "User name (Exchange)"}, {"incoming[m2m@contoso.example].exchangePassword", "Password (Exchange)"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := Validate(tt.cfg, today)
			expect(t, ps, SeverityError, tt.errors...)
			expect(t, ps, SeverityWarning, tt.warnings...)
			if ps.HasErrors() != (len(tt.errors) > 0) {
				t.Error("HasErrors")
			}
		})
	}
}

func TestAvailableTo(t *testing.T) {
	a := IncomingAccount{}
	if !a.AvailableToAny("ANNA") {
		t.Error("empty list means everybody")
	}
	a.AvailableTo = []string{"Sales"}
	if !a.AvailableToAny("ANNA", "SALES") || a.AvailableToAny("ERIK") {
		t.Error("role match")
	}
}

func FuzzCheckSystem(f *testing.F) {
	for _, s := range []string{appID, "common", "contoso.onmicrosoft.com", "", "a:b", "https://x", "x\ny"} {
		f.Add(s, s, s, 0)
	}
	f.Fuzz(func(t *testing.T, clientID, tenantID, server string, port int) {
		for _, m := range EmailMethods() {
			s := System{EmailMethod: m, ClientID: clientID, TenantID: tenantID, ServerAddress: server, Port: port, ClientSecret: NewSecret(tenantID)}
			for _, p := range append(CheckSystem(s, []string{"clientId", "serverAddress"}), Validate(Config{System: s}, today)...) {
				if p.Path == "" || p.Message == "" {
					t.Fatalf("problem without path or message: %+v", p)
				}
				if len(tenantID) > 6 && strings.Contains(p.Message, tenantID) && p.Path == "system.clientSecret" {
					t.Fatalf("secret echoed in a message: %s", p)
				}
			}
		}
	})
}

func TestExpiryReminder(t *testing.T) {
	for days, want := range map[int]int{-1: 0, 0: 7, 7: 7, 8: 14, 14: 14, 15: 30, 30: 30, 31: 0} {
		if got := ExpiryReminder(days); got != want {
			t.Errorf("ExpiryReminder(%d) = %d, want %d", days, got, want)
		}
	}
}

func TestServerAddresses(t *testing.T) {
	s := func(port int) Server {
		return Server{ServerAddress: field("mail.example.com", SourceSystem), Port: field(port, SourceSystem)}
	}
	for _, tt := range []struct {
		port     int
		imap     string
		smtp     string
		implicit bool
	}{
		{0, "mail.example.com:993", "mail.example.com:587", false},
		{465, "mail.example.com:465", "mail.example.com:465", true},
		{2525, "mail.example.com:2525", "mail.example.com:2525", false},
	} {
		addr, implicit := s(tt.port).SMTPAddr()
		if got := s(tt.port).IMAPAddr(); got != tt.imap || addr != tt.smtp || implicit != tt.implicit {
			t.Errorf("port %d: IMAP %s, SMTP %s %v", tt.port, got, addr, implicit)
		}
	}
}
