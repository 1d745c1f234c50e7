package entra

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"inkorg/internal/emulator/scenario"
)

const (
	tid        = "8d2c1f4e-5b6a-4c3d-9e8f-0a1b2c3d4e5f"
	confID     = "3f6e9a2b-1c4d-4e5f-8a7b-9c0d1e2f3a4b"
	confSecret = "abc8Q~good-secret-value-0000000000000000"
	oldSecret  = "old8Q~expired-secret-value-000000000000"
	pubID      = "7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"
	multiID    = "11111111-2222-4333-8444-555555555555"
	bareID     = "22222222-3333-4444-8555-666666666666"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testScenario(t testing.TB, now time.Time, certPEM string) *scenario.Scenario {
	t.Helper()
	s := &scenario.Scenario{
		Tenants: []scenario.Tenant{{ID: tid, Name: "Contoso", Domains: []string{"contoso.example"}}},
		Apps: []scenario.App{
			{Name: "conf", ClientID: confID, SingleTenant: true,
				Secrets: []scenario.Secret{
					{ID: "aaaaaaaa-0000-4000-8000-000000000001", Value: confSecret, Expires: now.Add(24 * time.Hour)},
					{ID: "aaaaaaaa-0000-4000-8000-000000000002", Value: oldSecret, Expires: now.Add(-time.Hour)},
				},
				Certificates: []scenario.Certificate{{PEM: certPEM}},
				Roles:        []string{"IMAP.AccessAsApp", "SMTP.SendAsApp", "Mail.ReadWrite", "Mail.Send"},
			},
			{Name: "pub", ClientID: pubID, PublicClient: true, SingleTenant: true,
				DelegatedScopes: []string{"IMAP.AccessAsUser.All", "SMTP.Send", "offline_access"}},
			{Name: "multi", ClientID: multiID, PublicClient: true, DelegatedScopes: []string{"IMAP.AccessAsUser.All"}},
			{Name: "bare", ClientID: bareID, PublicClient: true, SingleTenant: true},
		},
		Users: []scenario.User{
			{UPN: "anna@contoso.example", DisplayName: "Anna", Password: "anna-pw"},
			{UPN: "mfa@contoso.example", Password: "mfa-pw", MFA: true},
			{UPN: "off@contoso.example", Password: "off-pw", Disabled: true},
			{UPN: "ca@contoso.example", Password: "ca-pw", ConditionalAccessBlocked: true},
		},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// testCert makes an RSA key and a self-signed certificate for the client assertion.
func testCert(t testing.TB) (*rsa.PrivateKey, *x509.Certificate, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "inkorg test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

type fixture struct {
	srv    *Server
	ts     *httptest.Server
	clock  *testClock
	key    *rsa.PrivateKey
	cert   *x509.Certificate
	client *http.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clock := &testClock{t: time.Now()}
	key, cert, certPEM := testCert(t)
	srv, err := New(Config{Scenario: testScenario(t, clock.Now(), certPEM), Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(func() { srv.Close(); ts.Close() })
	return &fixture{srv: srv, ts: ts, clock: clock, key: key, cert: cert, client: ts.Client()}
}

func (f *fixture) post(t *testing.T, tenant string, form url.Values, basic []string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.ts.URL+"/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, m
}

func cc(clientID, secret, scope string) url.Values {
	v := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "scope": {scope}}
	if secret != "" {
		v.Set("client_secret", secret)
	}
	return v
}

func ropc(clientID, user, pass, scope string) url.Values {
	return url.Values{"grant_type": {"password"}, "client_id": {clientID}, "username": {user},
		"password": {pass}, "scope": {scope}, "client_info": {"1"}}
}

const (
	exoDefault = "https://outlook.office365.com/.default"
	imapScope  = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send openid profile offline_access"
)

func TestTokenErrors(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		tenant string
		form   url.Values
		basic  []string
		status int
		error  string
		code   int
		prefix string
		sub    string
	}{
		{"wrong secret", tid, cc(confID, "nope", exoDefault), nil, 401, "invalid_client", 7000215,
			"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + confID + "'.", ""},
		{"secret ID instead of value", tid, cc(confID, "aaaaaaaa-0000-4000-8000-000000000001", exoDefault), nil, 401, "invalid_client", 7000215, "AADSTS7000215: ", ""},
		{"expired secret", tid, cc(confID, oldSecret, exoDefault), nil, 401, "invalid_client", 7000222,
			"AADSTS7000222: The provided client secret keys for app '" + confID + "' are expired.", ""},
		{"unknown app", tid, cc("99999999-9999-4999-8999-999999999999", "x", exoDefault), nil, 400, "unauthorized_client", 700016,
			"AADSTS700016: Application with identifier '99999999-9999-4999-8999-999999999999' was not found in the directory 'Contoso'.", ""},
		{"unknown tenant guid", "00000000-1111-4222-8333-444444444444", cc(confID, confSecret, exoDefault), nil, 400, "invalid_request", 90002,
			"AADSTS90002: Tenant '00000000-1111-4222-8333-444444444444' not found.", ""},
		{"unknown tenant name", "fabrikam.example", cc(confID, confSecret, exoDefault), nil, 400, "invalid_request", 90002, "AADSTS90002: Tenant 'fabrikam.example' not found.", ""},
		{"malformed tenant", "not_a_tenant", cc(confID, confSecret, exoDefault), nil, 400, "invalid_request", 900023,
			"AADSTS900023: Specified tenant identifier 'not_a_tenant' is neither a valid DNS name, nor a valid external domain.", ""},
		{"wrong password", tid, ropc(pubID, "anna@contoso.example", "bad", imapScope), nil, 400, "invalid_grant", 50126,
			"AADSTS50126: Error validating credentials due to invalid username or password.", ""},
		{"unknown user", tid, ropc(pubID, "nobody@contoso.example", "x", imapScope), nil, 400, "invalid_grant", 50034,
			"AADSTS50034: The user account {EUII Hidden} does not exist in the " + tid + " directory.", "bad_token"},
		{"disabled user", tid, ropc(pubID, "off@contoso.example", "off-pw", imapScope), nil, 400, "invalid_grant", 50057, "AADSTS50057: The user account is disabled.", ""},
		{"mfa", tid, ropc(pubID, "mfa@contoso.example", "mfa-pw", imapScope), nil, 400, "invalid_grant", 50076,
			"AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000002-0000-0ff1-ce00-000000000000'.", "basic_action"},
		{"conditional access", tid, ropc(pubID, "ca@contoso.example", "ca-pw", imapScope), nil, 400, "invalid_grant", 53003,
			"AADSTS53003: Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.", "message_only"},
		{"no consent", tid, ropc(bareID, "anna@contoso.example", "anna-pw", imapScope), nil, 400, "invalid_grant", 65001,
			"AADSTS65001: The user or administrator has not consented to use the application with ID '" + bareID + "' named 'bare'.", "consent_required"},
		{"public client flows not allowed", tid, ropc(confID, "anna@contoso.example", "anna-pw", imapScope), nil, 401, "invalid_client", 7000218,
			"AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", ""},
		{"bad scope", tid, ropc(pubID, "anna@contoso.example", "anna-pw", "https://outlook.office.com/Bogus.Scope"), nil, 400, "invalid_scope", 70011,
			"AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope https://outlook.office.com/Bogus.Scope is not valid.", ""},
		{"missing scope", tid, cc(confID, confSecret, ""), nil, 400, "invalid_scope", 70011, "AADSTS70011: The provided request must include a 'scope' input parameter.", ""},
		{"single tenant on common", "common", cc(confID, confSecret, exoDefault), nil, 400, "invalid_request", 50194,
			"AADSTS50194: Application '" + confID + "'(conf) is not configured as a multi-tenant application.", ""},
		{"ropc on common", "common", ropc(multiID, "anna@contoso.example", "anna-pw", imapScope), nil, 400, "invalid_request", 9001023, "AADSTS9001023: ", ""},
		{"cc without .default", tid, cc(confID, confSecret, "https://outlook.office365.com/IMAP.AccessAsApp"), nil, 400, "invalid_scope", 1002012, "AADSTS1002012: ", ""},
		{"two resources", tid, cc(confID, confSecret, exoDefault+" https://graph.microsoft.com/.default"), nil, 400, "invalid_scope", 28000, "AADSTS28000: ", ""},
		{"unknown resource", tid, cc(confID, confSecret, "https://vault.azure.net/.default"), nil, 400, "invalid_resource", 500011, "AADSTS500011: ", ""},
		{"public client sends secret", tid, func() url.Values {
			v := ropc(pubID, "anna@contoso.example", "anna-pw", imapScope)
			v.Set("client_secret", "x")
			return v
		}(), nil, 401, "invalid_client", 700025, "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be presented.", ""},
		{"no credential cc", tid, cc(confID, "", exoDefault), nil, 401, "invalid_client", 7000218, "AADSTS7000218: ", ""},
		{"missing grant", tid, url.Values{"client_id": {confID}}, nil, 400, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'grant_type'.", ""},
		{"unsupported grant", tid, url.Values{"client_id": {confID}, "grant_type": {"magic"}}, nil, 400, "unsupported_grant_type", 70003, "AADSTS70003: ", ""},
		{"bad refresh token", tid, url.Values{"client_id": {pubID}, "grant_type": {"refresh_token"}, "refresh_token": {"junk"}}, nil, 400, "invalid_grant", 9002313, "AADSTS9002313: ", ""},
		{"wrong secret basic", tid, cc(confID, "", exoDefault), []string{confID, "nope"}, 401, "invalid_client", 7000215, "AADSTS7000215: ", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, m := f.post(t, tc.tenant, tc.form, tc.basic)
			if status != tc.status {
				t.Errorf("status = %d, want %d (%v)", status, tc.status, m)
			}
			if m["error"] != tc.error {
				t.Errorf("error = %v, want %s", m["error"], tc.error)
			}
			codes, _ := m["error_codes"].([]any)
			if len(codes) != 1 || codes[0] != float64(tc.code) {
				t.Errorf("error_codes = %v, want [%d]", m["error_codes"], tc.code)
			}
			desc, _ := m["error_description"].(string)
			if !strings.HasPrefix(desc, tc.prefix) {
				t.Errorf("error_description = %q\nwant prefix %q", desc, tc.prefix)
			}
			if !strings.Contains(desc, "\r\nTrace ID: "+m["trace_id"].(string)+"\r\nCorrelation ID: "+m["correlation_id"].(string)+"\r\nTimestamp: "+m["timestamp"].(string)) {
				t.Errorf("description lacks the trace lines: %q", desc)
			}
			if sub, _ := m["suberror"].(string); sub != tc.sub {
				t.Errorf("suberror = %q, want %q", sub, tc.sub)
			}
			if uri, _ := m["error_uri"].(string); !strings.HasSuffix(uri, "/error?code="+strconv.Itoa(tc.code)) {
				t.Errorf("error_uri = %q", uri)
			}
			if _, ok := m["access_token"]; ok {
				t.Error("error response carries an access token")
			}
		})
	}
	// The log holds every request, outcome and no secret.
	logJSON, _ := json.Marshal(f.srv.Requests())
	for _, secret := range []string{confSecret, oldSecret, "anna-pw", "nope"} {
		if strings.Contains(string(logJSON), secret) {
			t.Errorf("request log holds a secret %q", secret)
		}
	}
	if n := len(f.srv.Requests()); n != len(cases) {
		t.Errorf("request log has %d entries, want %d", n, len(cases))
	}
}

func TestClientCredentialsTokenShape(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		form  url.Values
		basic []string
		aud   string
		roles []string
		acr   string
	}{
		{"form secret exchange", cc(confID, confSecret, exoDefault+" openid profile offline_access"), nil, "https://outlook.office365.com", []string{"IMAP.AccessAsApp", "SMTP.SendAsApp"}, "1"},
		{"basic secret exchange", cc(confID, "", exoDefault), []string{confID, confSecret}, "https://outlook.office365.com", []string{"IMAP.AccessAsApp", "SMTP.SendAsApp"}, "1"},
		{"ps.outlook.com", cc(confID, confSecret, "https://ps.outlook.com/.default"), nil, "https://ps.outlook.com", []string{"IMAP.AccessAsApp", "SMTP.SendAsApp"}, "1"},
		{"graph", cc(confID, confSecret, "https://graph.microsoft.com/.default"), nil, "https://graph.microsoft.com", []string{"Mail.ReadWrite", "Mail.Send"}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, m := f.post(t, "contoso.example", tc.form, tc.basic)
			if status != 200 {
				t.Fatalf("status %d: %v", status, m)
			}
			if m["token_type"] != "Bearer" || m["expires_in"] != float64(3599) || m["ext_expires_in"] != float64(3599) {
				t.Errorf("response = %v", m)
			}
			for _, k := range []string{"refresh_token", "id_token", "scope"} {
				if _, ok := m[k]; ok {
					t.Errorf("client credentials response has %s", k)
				}
			}
			c, err := f.srv.Verifier().Verify(m["access_token"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if c.Audience != tc.aud || c.Issuer != "https://sts.windows.net/"+tid+"/" || c.TenantID != tid ||
				c.AppID != confID || c.AppIDACR != tc.acr || !c.AppOnly() || c.Version != "1.0" ||
				strings.Join(c.Roles, ",") != strings.Join(tc.roles, ",") || c.ObjectID == "" || c.UPN != "" {
				t.Errorf("claims = %+v", c)
			}
			if got := c.ExpiresAt.Sub(f.clock.Now()); got < 3598*time.Second || got > 3600*time.Second {
				t.Errorf("lifetime %v", got)
			}
			hdr := jwtPart(t, m["access_token"].(string), 0)
			if hdr["alg"] != "RS256" || hdr["kid"] == "" || hdr["typ"] != "JWT" {
				t.Errorf("header = %v", hdr)
			}
		})
	}
}

func jwtPart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPasswordAndRefresh(t *testing.T) {
	f := newFixture(t)
	status, m := f.post(t, tid, ropc(pubID, "Anna@contoso.example", "anna-pw", imapScope), nil)
	if status != 200 {
		t.Fatalf("status %d: %v", status, m)
	}
	for _, k := range []string{"access_token", "refresh_token", "id_token", "client_info", "scope"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("missing %s in %v", k, m)
		}
	}
	if m["scope"] != "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send openid profile offline_access" {
		t.Errorf("scope = %q", m["scope"])
	}
	c, err := f.srv.Verifier().Verify(m["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c.Audience != "https://outlook.office.com" || c.UPN != "anna@contoso.example" || c.AppOnly() ||
		!c.HasScope("IMAP.AccessAsUser.All") || !c.HasScope("SMTP.Send") || c.AppIDACR != "0" || len(c.Roles) != 0 {
		t.Errorf("claims = %+v", c)
	}
	ci, _ := base64.RawURLEncoding.DecodeString(m["client_info"].(string))
	if !strings.Contains(string(ci), `"utid":"`+tid+`"`) {
		t.Errorf("client_info = %s", ci)
	}
	if id := jwtPart(t, m["id_token"].(string), 1); id["preferred_username"] != "anna@contoso.example" || id["aud"] != pubID {
		t.Errorf("id_token = %v", id)
	}

	// Refresh.
	f.clock.Add(2 * time.Hour)
	if _, err := f.srv.Verifier().Verify(m["access_token"].(string)); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("old token: %v, want expired", err)
	}
	status, m2 := f.post(t, tid, url.Values{"grant_type": {"refresh_token"}, "client_id": {pubID},
		"refresh_token": {m["refresh_token"].(string)}, "scope": {imapScope}, "client_info": {"1"}}, nil)
	if status != 200 {
		t.Fatalf("refresh status %d: %v", status, m2)
	}
	if _, err := f.srv.Verifier().Verify(m2["access_token"].(string)); err != nil {
		t.Error(err)
	}
	// A refresh token belongs to its client.
	status, m3 := f.post(t, tid, url.Values{"grant_type": {"refresh_token"}, "client_id": {multiID},
		"refresh_token": {m["refresh_token"].(string)}, "scope": {imapScope}}, nil)
	if status != 400 || m3["error_codes"].([]any)[0] != float64(70000) {
		t.Errorf("foreign refresh: %d %v", status, m3)
	}
	// A bare scope name means Graph: the token is issued for Graph (and IMAP will refuse it).
	status, m4 := f.post(t, tid, ropc(pubID, "anna@contoso.example", "anna-pw", "IMAP.AccessAsUser.All"), nil)
	if status != 200 {
		t.Fatalf("bare scope: %d %v", status, m4)
	}
	if c, _ := f.srv.Verifier().Verify(m4["access_token"].(string)); c.Audience != "https://graph.microsoft.com" {
		t.Errorf("bare scope audience %q", c.Audience)
	}
	// The organizations alias resolves the user's tenant for a multi-tenant app.
	if status, m5 := f.post(t, "organizations", ropc(multiID, "anna@contoso.example", "anna-pw", "https://outlook.office.com/IMAP.AccessAsUser.All"), nil); status != 200 {
		t.Errorf("organizations: %d %v", status, m5)
	}
}

func TestFaults(t *testing.T) {
	f := newFixture(t)
	// Secret expired now.
	if err := f.srv.ExpireSecret(confID, ""); err != nil {
		t.Fatal(err)
	}
	if status, m := f.post(t, tid, cc(confID, confSecret, exoDefault), nil); status != 401 || m["error_codes"].([]any)[0] != float64(7000222) {
		t.Errorf("expired now: %d %v", status, m)
	}
	f.srv.ClearFaults()
	if status, _ := f.post(t, tid, cc(confID, confSecret, exoDefault), nil); status != 200 {
		t.Errorf("after clear: %d", status)
	}
	// Secret expiry by the clock.
	f.clock.Add(25 * time.Hour)
	if status, m := f.post(t, tid, cc(confID, confSecret, exoDefault), nil); status != 401 || m["error_codes"].([]any)[0] != float64(7000222) {
		t.Errorf("expired by clock: %d %v", status, m)
	}
	f.clock.Add(-25 * time.Hour)
	// 5xx.
	f.srv.SetFaults(Faults{Status: 503})
	if status, m := f.post(t, tid, cc(confID, confSecret, exoDefault), nil); status != 503 || m["error"] != "temporarily_unavailable" {
		t.Errorf("5xx: %d %v", status, m)
	}
	// Stall beyond the client's deadline.
	f.srv.SetFaults(Faults{Stall: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", f.ts.URL+"/"+tid+"/oauth2/v2.0/token", strings.NewReader(cc(confID, confSecret, exoDefault).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	if resp, err := f.client.Do(req); err == nil {
		resp.Body.Close()
		t.Error("stalled request answered")
	}
	if time.Since(start) > 2*time.Second {
		t.Error("client deadline not honoured")
	}
	f.srv.ClearFaults()
}

func TestDiscovery(t *testing.T) {
	f := newFixture(t)
	get := func(path string) (int, map[string]any) {
		resp, err := f.client.Get(f.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
		return resp.StatusCode, m
	}
	host := strings.TrimPrefix(f.ts.URL, "https://")
	status, m := get("/contoso.example/v2.0/.well-known/openid-configuration")
	if status != 200 || m["issuer"] != "https://"+host+"/"+tid+"/v2.0" || m["token_endpoint"] != "https://"+host+"/"+tid+"/oauth2/v2.0/token" {
		t.Errorf("openid-configuration: %d %v", status, m)
	}
	status, m = get("/00000000-1111-4222-8333-444444444444/v2.0/.well-known/openid-configuration")
	if status != 400 || m["error"] != "invalid_tenant" || m["error_codes"].([]any)[0] != float64(90002) {
		t.Errorf("unknown tenant discovery: %d %v", status, m)
	}
	status, m = get("/" + tid + "/discovery/v2.0/keys")
	keys, _ := m["keys"].([]any)
	if status != 200 || len(keys) != 1 || keys[0].(map[string]any)["kid"] != f.srv.key.kid {
		t.Errorf("keys: %d %v", status, m)
	}
	status, m = get("/common/discovery/instance?api-version=1.1&authorization_endpoint=https://" + host + "/" + tid + "/oauth2/v2.0/authorize")
	if status != 200 || m["tenant_discovery_endpoint"] != "https://"+host+"/"+tid+"/v2.0/.well-known/openid-configuration" {
		t.Errorf("instance: %d %v", status, m)
	}
	status, m = get("/common/UserRealm/anna@contoso.example?api-version=1.0")
	if status != 200 || m["account_type"] != "Managed" || m["domain_name"] != "contoso.example" {
		t.Errorf("user realm: %d %v", status, m)
	}
	if _, m = get("/common/UserRealm/x@elsewhere.example?api-version=1.0"); m["account_type"] != "Unknown" {
		t.Errorf("user realm unknown: %v", m)
	}
}

func TestVerifierRejects(t *testing.T) {
	f := newFixture(t)
	_, m := f.post(t, tid, cc(confID, confSecret, exoDefault), nil)
	tok := m["access_token"].(string)
	other, err := New(Config{Scenario: f.srv.sc, Clock: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	for name, bad := range map[string]string{
		"garbage":       "not.a.jwt",
		"other key":     func() string { _, m := otherToken(t, other); return m }(),
		"tampered body": parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"x"}`)) + "." + parts[2],
	} {
		if _, err := f.srv.Verifier().Verify(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func otherToken(t *testing.T, s *Server) (int, string) {
	mux := http.NewServeMux()
	s.Register(mux)
	ts := httptest.NewTLSServer(mux)
	defer ts.Close()
	form := cc(confID, confSecret, exoDefault)
	resp, err := ts.Client().PostForm(ts.URL+"/"+tid+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	tok, _ := m["access_token"].(string)
	return resp.StatusCode, tok
}

func TestRefreshTokenPrune(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	f.srv.mu.Lock()
	defer f.srv.mu.Unlock()
	for i := 0; i < maxRefreshTokens; i++ {
		exp := now.Add(time.Hour)
		if i%4 == 0 {
			exp = now.Add(-time.Hour) // already expired
		}
		f.srv.refresh[strconv.Itoa(i)] = &refreshGrant{issued: now.Add(time.Duration(i) * time.Millisecond), expires: exp}
	}
	f.srv.pruneRefreshLocked(now)
	if n := len(f.srv.refresh); n >= maxRefreshTokens || n == 0 {
		t.Fatalf("after prune %d tokens", n)
	}
}
