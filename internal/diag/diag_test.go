package diag

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

var facts = Facts{TenantID: "8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f", ClientID: "3f6e9a2b-1c4d-4e5f-8a7b-9c0d1e2f3a4b",
	AppOnly: true, Mailbox: "m2m@contoso.example", Username: "webshop@contoso.example", ServicePrincipalID: "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
	SecretExpires: "2026-11-01", From: "info@contoso.example"}

func body(code int, oauth, desc string) []byte {
	return fmt.Appendf(nil, `{"error":%q,"error_description":"AADSTS%d: %s\r\nTrace ID: tr-1\r\nCorrelation ID: co-1\r\nTimestamp: 2026-11-22 10:00:00Z","error_codes":[%d],"trace_id":"tr-1","correlation_id":"co-1"}`, oauth, code, desc, code)
}

func TestFromEntraCatalogue(t *testing.T) {
	tests := []struct {
		code            int
		oauth           string
		summary, remedy string
		kind            Kind
	}{
		{7000215, "invalid_client", "client secret is wrong", "not its Secret ID", KindConfig},
		{7000222, "invalid_client", "expired on 2026-11-01", "create a new client secret", KindConfig},
		{700016, "unauthorized_client", "3f6e9a2b-1c4d-4e5f-8a7b-9c0d1e2f3a4b exists in the directory 8d2c1f4e", "Overview page", KindConfig},
		{90002, "invalid_request", "does not exist", "Directory (tenant) ID", KindConfig},
		{900023, "invalid_request", "not a valid Directory (tenant) ID", "verified domains", KindConfig},
		{50194, "invalid_request", "multi-tenant endpoint", "tenant GUID", KindConfig},
		{50126, "invalid_grant", "webshop@contoso.example is wrong", "AD FS", KindConfig},
		{50034, "invalid_grant", "does not exist", "user principal name", KindConfig},
		{50057, "invalid_grant", "is disabled", "enable the account", KindConfig},
		{50076, "invalid_grant", "multi-factor authentication", "Client secret", KindConfig},
		{53003, "invalid_grant", "Conditional Access", "trace id tr-1", KindConfig},
		{65001, "invalid_grant", "not been consented", "/8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f/adminconsent?client_id=3f6e9a2b-1c4d-4e5f-8a7b-9c0d1e2f3a4b", KindConfig},
		{7000218, "invalid_client", "does not allow the User name/Password flow", "Allow public client flows", KindConfig},
		{70011, "invalid_scope", "scope is not valid", "report it", KindConfig},
		{50196, "temporarily_unavailable", "too many identical", "backs off", KindTransient},
		{4242424, "server_error", "Something odd", "error?code=4242424", KindConfig},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			e := FromEntra(400, body(tt.code, tt.oauth, "Something odd."), facts)
			if e.Stage != StageToken || e.AADSTS != tt.code || e.Code != fmt.Sprintf("AADSTS%d", tt.code) || e.Kind != tt.kind ||
				e.TraceID != "tr-1" || e.CorrelationID != "co-1" || e.OAuth != tt.oauth {
				t.Errorf("%+v", e)
			}
			if !strings.Contains(e.Summary, tt.summary) || !strings.Contains(e.Remedy, tt.remedy) {
				t.Errorf("summary %q / remedy %q, want %q / %q", e.Summary, e.Remedy, tt.summary, tt.remedy)
			}
			if strings.Contains(e.Server, "Trace ID") {
				t.Errorf("server words keep the trace lines: %q", e.Server)
			}
		})
	}
}

func TestFromEntraFixtures(t *testing.T) {
	for file, want := range map[string]struct {
		code          int
		trace, server string
	}{
		"7000215.json":        {7000215, "0c8c7b4e-1a2b-4c3d-8e9f-0a1b2c3d4e00", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '3f6e9a2b-1c4d-4e5f-8a7b-9c0d1e2f3a4b'."},
		"53003.json":          {53003, "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "AADSTS53003: Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."},
		"90002.json":          {90002, "a", ""},
		"v1-70002-50126.json": {50126, "t", "AADSTS50126: Error validating credentials due to invalid username or password."},
	} {
		b, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		e := FromEntra(400, b, facts)
		if e.AADSTS != want.code || e.TraceID != want.trace || (want.server != "" && e.Server != want.server) {
			t.Errorf("%s: %+v", file, e)
		}
	}
}

func TestFromEntraNotJSON(t *testing.T) {
	e := FromEntra(503, []byte("<html>Service Unavailable</html>"), facts)
	if e.Kind != KindTransient || e.Code != "HTTP 503" {
		t.Errorf("%+v", e)
	}
	e = FromEntra(404, []byte("not found"), facts)
	if e.Kind != KindConfig || !strings.Contains(e.Remedy, "authority") {
		t.Errorf("%+v", e)
	}
}

func TestFromIMAP(t *testing.T) {
	e := FromIMAP(StageAuthenticate, "NO", "AUTHENTICATE failed.", facts)
	if e.Code != "IMAP NO" || e.Server != "NO AUTHENTICATE failed." || !strings.Contains(e.Remedy, "IMAP.AccessAsApp") ||
		!strings.Contains(strings.Join(e.Actions, "\n"), `Add-MailboxPermission -Identity "m2m@contoso.example" -User 5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d -AccessRights FullAccess`) ||
		!strings.Contains(strings.Join(e.Actions, "\n"), "New-ServicePrincipal -AppId 3f6e9a2b-1c4d-4e5f-8a7b-9c0d1e2f3a4b -ObjectId 5a4b3c2d") {
		t.Errorf("%+v", e)
	}
	e = FromIMAP(StageSelect, "BAD", "User is authenticated but not connected.", facts)
	if !strings.Contains(e.Summary, "no access to the mailbox m2m@contoso.example") || len(e.Actions) != 3 {
		t.Errorf("%+v", e)
	}
	e = FromIMAP(StageSelect, "BAD", "Request is throttled. Suggested Backoff Time: 25000 milliseconds", facts)
	if e.Kind != KindThrottled || e.RetryAfterMS != 25000 {
		t.Errorf("%+v", e)
	}
	delegated := facts
	delegated.AppOnly = false
	e = FromIMAP(StageAuthenticate, "NO", "AUTHENTICATE failed.", delegated)
	if !strings.Contains(e.Remedy, "IMAP.AccessAsUser.All") {
		t.Errorf("%+v", e)
	}
}

func TestFromSMTP(t *testing.T) {
	for _, tt := range []struct {
		code            int
		enh, text, want string
		kind            Kind
	}{
		{535, "5.7.139", "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.", `-SmtpClientAuthenticationDisabled $false`, KindConfig},
		{535, "5.7.3", "Authentication unsuccessful [X]", "New-ServicePrincipal", KindConfig},
		{554, "5.2.252", "SendAsDenied; a@x not allowed to send as b@x", `Add-RecipientPermission -Identity "info@contoso.example" -Trustee 5a4b3c2d`, KindConfig},
		{550, "5.7.30", "Basic authentication is not supported for Client Submission.", "", KindConfig},
		{451, "4.4.0", "Try later", "", KindTransient},
		{550, "5.1.1", "Recipient address rejected: User unknown", "check the recipient addresses", KindConfig},
		{554, "5.4.1", "Relay access denied", "the sender must be signed in", KindConfig},
		{552, "5.3.4", "Message size exceeds fixed limit", "smaller attachments", KindConfig},
		{554, "5.0.0", "Something else", "the server's own words", KindConfig},
	} {
		e := FromSMTP(StageSend, tt.code, tt.enh, tt.text, facts)
		if e.Kind != tt.kind || !strings.Contains(strings.Join(e.Actions, "\n")+e.Remedy, tt.want) || !strings.HasPrefix(e.Code, fmt.Sprintf("SMTP %d", tt.code)) {
			t.Errorf("%d %s: %+v", tt.code, tt.enh, e)
		}
	}
}

func TestErrorWrapping(t *testing.T) {
	inner := errors.New("boom")
	var err error = fmt.Errorf("account x: %w", &Error{Stage: StageConnect, Kind: KindTransient, Summary: "cannot reach", Err: inner})
	if As(err) == nil || !IsKind(err, KindTransient) || !errors.Is(err, inner) || !strings.Contains(err.Error(), "connect: cannot reach") {
		t.Errorf("%v", err)
	}
}

func FuzzFromEntra(f *testing.F) {
	for _, n := range []string{"7000215.json", "53003.json", "90002.json"} {
		b, _ := os.ReadFile("testdata/" + n)
		f.Add(400, b)
	}
	f.Add(500, []byte("{"))
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		e := FromEntra(status, b, facts)
		if e.Code == "" || e.Remedy == "" || e.Stage != StageToken {
			t.Fatalf("incomplete error %+v", e)
		}
	})
}
