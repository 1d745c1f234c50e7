package entra

import (
	"context"
	"sync"
	"testing"
	"time"

	"inkorg/internal/cloud"
	"inkorg/internal/diag"
	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
	"inkorg/internal/settings"
	"inkorg/internal/testutil/emutest"
)

// startEmulator runs the emulator with the default scenario, changed by edit, and returns it with the
// cloud its emulator.json describes.
func startEmulator(t *testing.T, edit func(*scenario.Scenario)) (*emulator.Emulator, cloud.Endpoints) {
	t.Helper()
	e := emutest.Start(t, edit)
	return e.Emulator, e.Cloud
}

func appIdentity(emu *emulator.Emulator) Identity {
	info := emu.Info()
	for _, a := range info.Apps {
		if !a.PublicClient {
			return Identity{TenantID: info.TenantID, ClientID: a.ClientID, Flow: settings.FlowClientSecret, Secret: settings.NewSecret(a.ClientSecret)}
		}
	}
	panic("no confidential app")
}

func userIdentity(emu *emulator.Emulator, upn string) Identity {
	info := emu.Info()
	id := Identity{TenantID: info.TenantID, Flow: settings.FlowUsernamePassword, Username: upn}
	for _, a := range info.Apps {
		if a.PublicClient && id.ClientID == "" {
			id.ClientID = a.ClientID
		}
	}
	for _, u := range info.Users {
		if u.UPN == upn {
			id.Password = settings.NewSecret(u.Password)
		}
	}
	return id
}

func issued(emu *emulator.Emulator) int {
	n := 0
	for _, r := range emu.Entra().Requests() {
		if r.Outcome == "issued" {
			n++
		}
	}
	return n
}

func TestClientSecretTokenIsSharedAndCached(t *testing.T) {
	emu, c := startEmulator(t, nil)
	p := New(Config{Cloud: c})
	id := appIdentity(emu)
	ctx := context.Background()

	// Fifty mailboxes of one app ask at once: one token request.
	var wg sync.WaitGroup
	toks := make([]Token, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Go(func() { toks[i], errs[i] = p.Token(ctx, id, PurposeIMAP) })
	}
	wg.Wait()
	for i := range 50 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if toks[i].Value() != toks[0].Value() {
			t.Fatal("concurrent callers got different tokens")
		}
	}
	if n := issued(emu); n != 1 {
		t.Fatalf("%d token requests for 50 concurrent callers, want 1", n)
	}
	tok, err := p.Token(ctx, id, PurposeSMTP) // same resource: MSAL's cache answers
	if err != nil {
		t.Fatal(err)
	}
	if n := issued(emu); n != 1 {
		t.Errorf("SMTP after IMAP cost a request (%d)", n)
	}
	if d := time.Until(tok.ExpiresOn); d < 50*time.Minute || d > 2*time.Hour {
		t.Errorf("token lives %v", d)
	}
	if tok.Claims.Audience != "https://outlook.office365.com" || tok.Claims.AppID != id.ClientID || tok.Claims.ObjectID == "" {
		t.Errorf("claims %+v", tok.Claims)
	}
	for _, pur := range []Purpose{PurposeIMAP, PurposeSMTP} {
		if e := CheckClaims(tok, pur, true, p.Facts(id, "m2m@contoso.example")); e != nil {
			t.Errorf("%s: %v", pur, e)
		}
	}
	g, err := p.Token(ctx, id, PurposeGraphRead)
	if err != nil {
		t.Fatal(err)
	}
	if g.Claims.Audience != "https://graph.microsoft.com" || CheckClaims(g, PurposeGraphRead, true, diag.Facts{}) != nil {
		t.Errorf("graph claims %+v", g.Claims)
	}
	// A Graph token used for IMAP is named before Exchange says "AUTHENTICATE failed".
	e := CheckClaims(g, PurposeIMAP, true, p.Facts(id, "m2m@contoso.example"))
	if e == nil || e.Stage != diag.StageClaims || e.Code != "aud" {
		t.Fatalf("graph token for IMAP: %v", e)
	}
	if fmtS := e.Error(); !contains(fmtS, "needs a token for Office 365 Exchange Online", "IMAP.AccessAsApp") {
		t.Errorf("%s", fmtS)
	}
	if contains(tok.String(), tok.Value()) {
		t.Error("Token.String shows the token")
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !stringsContains(s, p) {
			return false
		}
	}
	return true
}

func TestUsernamePasswordTokenRefreshes(t *testing.T) {
	emu, c := startEmulator(t, nil)
	p := New(Config{Cloud: c})
	id := userIdentity(emu, "anna@contoso.example")
	ctx := context.Background()
	tok, err := p.Token(ctx, id, PurposeIMAP)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Claims.User() != "anna@contoso.example" || CheckClaims(tok, PurposeIMAP, false, diag.Facts{}) != nil {
		t.Fatalf("claims %+v", tok.Claims)
	}
	// Entra puts every consented scope of the resource in scp, as the real one does.
	if e := CheckClaims(tok, PurposeSMTP, false, diag.Facts{}); e != nil {
		t.Errorf("delegated token lacks SMTP.Send: %v", e)
	}
	if e := CheckClaims(tok, PurposeGraphRead, false, diag.Facts{}); e == nil || e.Code != "aud" {
		t.Errorf("an Exchange token is not a Graph token: %v", e)
	}
	again, _ := p.Token(ctx, id, PurposeIMAP)
	if !again.FromCache {
		t.Error("second call not from the cache")
	}
	// After Forget, MSAL refreshes with the refresh token instead of sending the password again.
	p.Forget(id, PurposeIMAP)
	if _, err := p.Token(ctx, id, PurposeIMAP); err != nil {
		t.Fatal(err)
	}
	var grants []string
	for _, r := range emu.Entra().Requests() {
		grants = append(grants, r.GrantType)
	}
	if len(grants) < 1 || grants[0] != "password" {
		t.Errorf("grants %v", grants)
	}
}

func TestTokenErrors(t *testing.T) {
	emu, c := startEmulator(t, func(s *scenario.Scenario) {
		s.Users = append(s.Users,
			scenario.User{UPN: "mfa@contoso.example", Password: "Mfa-Pass-1", MFA: true},
			scenario.User{UPN: "gone@contoso.example", Password: "Gone-Pass-1", Disabled: true},
			scenario.User{UPN: "blocked@contoso.example", Password: "Blocked-Pass-1", ConditionalAccessBlocked: true})
		s.Apps = append(s.Apps, scenario.App{Name: "unconsented", ClientID: "44444444-5555-4666-8777-888888888888", TenantID: scenario.DefaultTenantID,
			ObjectID: "44444444-5555-4666-8777-999999999999", PublicClient: true, SingleTenant: true})
		expired := s.Apps[0]
		expired.Name, expired.ClientID, expired.ObjectID = "expired", "55555555-5555-4666-8777-888888888888", "55555555-5555-4666-8777-999999999999"
		expired.Secrets = []scenario.Secret{{ID: "66666666-5555-4666-8777-888888888888", Value: "Exp8Q~ExpiredSecretValue000000000000000", Expires: time.Now().Add(-48 * time.Hour)}}
		s.Apps = append(s.Apps, expired)
	})
	withUser := func(upn, pw string) func() Identity {
		return func() Identity {
			id := userIdentity(emu, "anna@contoso.example")
			id.Username, id.Password = upn, settings.NewSecret(pw)
			return id
		}
	}
	ctx := context.Background()
	good := appIdentity(emu)
	tests := []struct {
		name  string
		id    func() Identity
		code  string
		stage diag.Stage
	}{
		{"wrong secret", func() Identity { id := good; id.Secret = settings.NewSecret("wrong-secret-value"); return id }, "AADSTS7000215", diag.StageToken},
		{"unknown app", func() Identity { id := good; id.ClientID = "11111111-2222-3333-4444-555555555555"; return id }, "AADSTS700016", diag.StageToken},
		{"unknown tenant", func() Identity { id := good; id.TenantID = "99999999-2222-3333-4444-555555555555"; return id }, "AADSTS90002", diag.StageToken},
		{"wrong password", func() Identity {
			id := userIdentity(emu, "anna@contoso.example")
			id.Password = settings.NewSecret("nope")
			return id
		}, "AADSTS50126", diag.StageToken},
		{"mfa", withUser("mfa@contoso.example", "Mfa-Pass-1"), "AADSTS50076", diag.StageToken},
		{"disabled user", withUser("gone@contoso.example", "Gone-Pass-1"), "AADSTS50057", diag.StageToken},
		{"conditional access", withUser("blocked@contoso.example", "Blocked-Pass-1"), "AADSTS53003", diag.StageToken},
		{"unknown user", withUser("nobody@contoso.example", "x"), "AADSTS50034", diag.StageToken},
		{"no consent", func() Identity {
			id := withUser("anna@contoso.example", "")()
			id.Password = userIdentity(emu, "anna@contoso.example").Password
			id.ClientID = "44444444-5555-4666-8777-888888888888"
			return id
		}, "AADSTS65001", diag.StageToken},
		{"expired secret", func() Identity {
			return Identity{TenantID: good.TenantID, ClientID: "55555555-5555-4666-8777-888888888888", Flow: settings.FlowClientSecret, Secret: settings.NewSecret("Exp8Q~ExpiredSecretValue000000000000000")}
		}, "AADSTS7000222", diag.StageToken},
		{"public flows off", func() Identity {
			id := userIdentity(emu, "anna@contoso.example")
			id.ClientID = good.ClientID
			return id
		}, "AADSTS7000218", diag.StageToken},
		{"no secret", func() Identity { id := good; id.Secret = settings.Secret{}; return id }, "settings", diag.StageSettings},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(Config{Cloud: c})
			_, err := p.Token(ctx, tt.id(), PurposeIMAP)
			e := diag.As(err)
			if e == nil || e.Code != tt.code || e.Stage != tt.stage || e.Remedy == "" {
				t.Fatalf("got %v (%+v), want %s", err, e, tt.code)
			}
			if tt.stage == diag.StageToken && e.TraceID == "" {
				t.Errorf("no trace id: %+v", e)
			}
			if stringsContains(err.Error(), "wrong-secret-value") {
				t.Error("the secret is in the error")
			}
		})
	}
}

func TestMissingRoleIsNamed(t *testing.T) {
	emu, c := startEmulator(t, func(s *scenario.Scenario) {
		s.Apps[0].Roles = []string{scenario.RoleMailReadWrite, scenario.RoleMailSend} // Graph only
	})
	p := New(Config{Cloud: c})
	id := appIdentity(emu)
	tok, err := p.Token(context.Background(), id, PurposeIMAP)
	if err != nil {
		t.Fatal(err)
	}
	e := CheckClaims(tok, PurposeIMAP, true, p.Facts(id, "m2m@contoso.example"))
	if e == nil || e.Code != "permission" || !contains(e.Error(), "IMAP.AccessAsApp", "Office 365 Exchange Online", "adminconsent?client_id="+id.ClientID) {
		t.Fatalf("%v", e)
	}
}

func TestUntrustedCA(t *testing.T) {
	emu, c := startEmulator(t, nil)
	c.RootCAs = nil // the system's roots do not know the emulator's CA
	p := New(Config{Cloud: c})
	_, err := p.Token(context.Background(), appIdentity(emu), PurposeIMAP)
	if e := diag.As(err); e == nil || e.Stage != diag.StageTLS {
		t.Fatalf("%v", err)
	}
}

func TestDecodeClaims(t *testing.T) {
	for _, s := range []string{"", "a.b", "a.!!!.c", "a.e30.c"} {
		_, err := DecodeClaims(s)
		if s == "a.e30.c" {
			if err != nil {
				t.Errorf("%q: %v", s, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q decoded", s)
		}
	}
}

func FuzzDecodeClaims(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.sig")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeClaims(s)
		if err == nil {
			_ = CheckClaims(Token{value: s, Claims: c}, PurposeIMAP, true, diag.Facts{})
		}
	})
}

func TestCertificateFlow(t *testing.T) {
	certPEM, keyPEM := newRSACert(t)
	emu, c := startEmulator(t, func(s *scenario.Scenario) {
		s.Apps[0].Certificates = []scenario.Certificate{{PEM: certPEM}}
	})
	id := appIdentity(emu)
	id.Flow, id.Secret, id.Certificate, id.Key = settings.FlowCertificate, settings.Secret{}, []byte(certPEM), settings.NewSecret(keyPEM)
	p := New(Config{Cloud: c})
	tok, err := p.Token(context.Background(), id, PurposeIMAP)
	if err != nil {
		t.Fatal(err)
	}
	if e := CheckClaims(tok, PurposeIMAP, true, diag.Facts{}); e != nil {
		t.Fatal(e)
	}
	reqs := emu.Entra().Requests()
	if len(reqs) == 0 || !stringsContains(reqs[len(reqs)-1].Credential, "certificate") {
		t.Errorf("the token was not obtained with the certificate: %+v", reqs)
	}
	// A certificate the app registration does not know is refused by Entra ID.
	other, otherKey := newRSACert(t)
	id.Certificate, id.Key = []byte(other), settings.NewSecret(otherKey)
	_, err = New(Config{Cloud: c}).Token(context.Background(), id, PurposeIMAP)
	if e := diag.As(err); e == nil || e.Stage != diag.StageToken || e.AADSTS == 0 {
		t.Fatalf("unknown certificate: %v", err)
	}
	id.Key = settings.NewSecret("not a key")
	_, err = New(Config{Cloud: c}).Token(context.Background(), id, PurposeIMAP)
	if e := diag.As(err); e == nil || e.Stage != diag.StageSettings {
		t.Fatalf("bad key: %v", err)
	}
}
