package web

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"inkorg/internal/doctor"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
	"inkorg/internal/store/storetest"
)

const (
	adminPW   = "correct horse battery staple"
	annaPW    = "anna's long password"
	theSecret = "Qx48Q~WebTestClientSecretValue.0123456789"
)

type fixture struct {
	st  store.Store
	srv *httptest.Server
	now time.Time
	mu  sync.Mutex
}

func (f *fixture) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "inkorg.db"), Key: func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dir, "inkorg.key"), true)
		return s, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func addOperator(t testing.TB, st store.Store, name string, role store.Role, user, pw string) {
	t.Helper()
	hash, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateOperator(context.Background(), store.Operator{Name: name, Role: role, User: user}, hash); err != nil {
		t.Fatal(err)
	}
}

func newFixture(t *testing.T, tweak func(*Config)) *fixture {
	f := &fixture{st: openStore(t), now: time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)}
	addOperator(t, f.st, "root", store.RoleAdmin, "", adminPW)
	addOperator(t, f.st, "anna", store.RoleUser, "ANNA", annaPW)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "erp api") })
	cfg := Config{Store: f.st, API: api, Clock: f.clock, Validate: func(ctx context.Context, c settings.Config, address string) doctor.Report {
		return doctor.Report{Target: "incoming account " + address, OK: true, Steps: []doctor.Step{{Name: "token", Status: doctor.Passed}, {Name: "select INBOX", Status: doctor.Passed}}}
	}}
	if tweak != nil {
		tweak(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// client is a browser: a cookie jar, no redirects followed.
type client struct {
	t    *testing.T
	f    *fixture
	http *http.Client
	csrf string
}

func (f *fixture) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, f: f, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.f.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := csrfRE.FindStringSubmatch(string(b)); m != nil {
		c.csrf = m[1]
	}
	return resp, string(b)
}

func (c *client) login(name, pw string) *http.Response {
	c.t.Helper()
	c.do("GET", "/login", nil, nil)
	resp, _ := c.do("POST", "/login", url.Values{"csrf": {c.csrf}, "name": {name}, "password": {pw}}, nil)
	return resp
}

func (c *client) signedIn(name, pw string) *client {
	c.t.Helper()
	if resp := c.login(name, pw); resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign in as %s: %d", name, resp.StatusCode)
	}
	c.do("GET", "/users/ANNA", nil, nil) // picks up the session's CSRF token
	return c
}

func TestLoginSessionCookieAndHeaders(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t)
	resp, body := c.do("GET", "/login", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `name="password"`) {
		t.Fatalf("login page: %d", resp.StatusCode)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors 'none'", "script-src 'self'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(body, "<script>") || strings.Contains(body, " onclick=") || strings.Contains(body, "style=") {
		t.Errorf("inline script or style: CSP %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers: %v", resp.Header)
	}
	resp = c.login("root", adminPW)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sess *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			sess = ck
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure {
		t.Fatalf("session cookie = %+v (plain HTTP: not Secure)", sess)
	}
	if resp, body := c.do("GET", "/", nil, nil); resp.StatusCode != 200 || !strings.Contains(body, "Sign out") {
		t.Fatalf("dashboard: %d", resp.StatusCode)
	}
	// The session expires.
	f.advance(9 * time.Hour)
	if resp, _ := c.do("GET", "/", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after expiry: %d, want a redirect to /login", resp.StatusCode)
	}

	// Secure cookies behind TLS.
	f2 := newFixture(t, func(c *Config) { c.SecureCookies = true })
	c2 := f2.client(t)
	c2.do("GET", "/login", nil, nil)
	resp, _ = c2.do("POST", "/login", url.Values{"csrf": {c2.csrf}, "name": {"root"}, "password": {adminPW}}, nil)
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie && !ck.Secure {
			t.Errorf("SecureCookies: session cookie not Secure")
		}
	}

	// Sign out ends the session on the server too.
	c3 := f2.client(t).signedIn("root", adminPW)
	u, _ := url.Parse(f2.srv.URL)
	old := c3.http.Jar.Cookies(u)
	if resp, _ := c3.do("POST", "/logout", url.Values{"csrf": {c3.csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	c3.http.Jar.SetCookies(u, old)
	if resp, _ := c3.do("GET", "/system", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the old session after sign out: %d", resp.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.LoginFailuresPerName, c.LoginFailuresPerIP = 3, 6 })
	c := f.client(t)
	for i := range 3 {
		if resp := c.login("root", "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, resp.StatusCode)
		}
	}
	resp := c.login("root", adminPW)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("the right password after 3 failures: %d, want 429 with Retry-After", resp.StatusCode)
	}
	// Another name from the same IP still works until the IP's own limit.
	if resp := c.login("anna", annaPW); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("anna: %d", resp.StatusCode)
	}
	for range 3 {
		c.login("nobody", "x")
	}
	if resp := f.client(t).login("anna", annaPW); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after 6 failures from the IP: %d, want 429", resp.StatusCode)
	}
	f.advance(16 * time.Minute)
	if resp := f.client(t).login("root", adminPW); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after the window: %d", resp.StatusCode)
	}
	// The login form itself needs its CSRF token.
	c2 := f.client(t)
	c2.do("GET", "/login", nil, nil)
	if resp, _ := c2.do("POST", "/login", url.Values{"name": {"root"}, "password": {adminPW}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without CSRF: %d", resp.StatusCode)
	}
}

// routes are every page and API route, with a body for the state-changing ones.
var routes = []struct {
	method, path string
	admin        bool // only an admin; otherwise anna may use it
}{
	{"GET", "/", true}, {"GET", "/system", true}, {"POST", "/system", true}, {"GET", "/users", false}, {"POST", "/users", true},
	{"GET", "/users/BOB", true}, {"POST", "/users/BOB", true}, {"GET", "/users/ANNA", false}, {"POST", "/users/ANNA", false},
	{"GET", "/incoming", true}, {"POST", "/incoming", true}, {"POST", "/incoming/validate", true}, {"GET", "/incoming/1", true},
	{"POST", "/incoming/1", true}, {"POST", "/incoming/1/delete", true}, {"POST", "/incoming/1/validate", true},
	{"GET", "/webshop", true}, {"POST", "/webshop", true}, {"GET", "/messages", true}, {"GET", "/messages/m_x", true},
	{"GET", "/outbox", true}, {"GET", "/audit", true}, {"POST", "/logout", false},
	{"GET", "/api/v1/settings/system", true}, {"PUT", "/api/v1/settings/system", true}, {"GET", "/api/v1/users", false},
	{"GET", "/api/v1/users/BOB/email-settings", true}, {"PUT", "/api/v1/users/BOB/email-settings", true},
	{"GET", "/api/v1/users/BOB/email-settings/effective", true}, {"GET", "/api/v1/users/ANNA/email-settings", false},
	{"PUT", "/api/v1/users/ANNA/email-settings", false}, {"GET", "/api/v1/incoming-accounts", true},
	{"POST", "/api/v1/incoming-accounts", true}, {"GET", "/api/v1/incoming-accounts/1", true}, {"PUT", "/api/v1/incoming-accounts/1", true},
	{"DELETE", "/api/v1/incoming-accounts/1", true}, {"POST", "/api/v1/incoming-accounts/1/validate", true},
	{"GET", "/api/v1/settings/webshop", true}, {"PUT", "/api/v1/settings/webshop", true},
}

func TestEveryRouteRefusesTheUnauthenticatedAndTheWrongRole(t *testing.T) {
	f := newFixture(t, nil)
	anon := f.client(t)
	anna := f.client(t).signedIn("anna", annaPW)
	admin := f.client(t).signedIn("root", adminPW)
	for _, rt := range routes {
		api := strings.HasPrefix(rt.path, "/api/")
		send := func(c *client, withCSRF bool) *http.Response {
			var form url.Values
			hdr := map[string]string{}
			if rt.method != "GET" {
				form = url.Values{}
				if withCSRF && !api {
					form.Set("csrf", c.csrf)
				}
				if withCSRF && api {
					hdr[csrfHeader] = c.csrf
				}
				if api {
					hdr["Content-Type"] = "application/json"
				}
			}
			resp, _ := c.do(rt.method, rt.path, form, hdr)
			return resp
		}
		// Unauthenticated: a redirect to /login for a page read, 401 otherwise; never 2xx.
		resp := send(anon, false)
		want := http.StatusUnauthorized
		if !api && rt.method == "GET" {
			want = http.StatusSeeOther
		}
		if resp.StatusCode != want || (want == http.StatusSeeOther && resp.Header.Get("Location") != "/login") {
			t.Errorf("unauthenticated %s %s = %d, want %d", rt.method, rt.path, resp.StatusCode, want)
		}
		// Without the CSRF token: refused before anything happens.
		if rt.method != "GET" {
			if resp := send(admin, false); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s without CSRF = %d, want 403", rt.method, rt.path, resp.StatusCode)
			}
		}
		// The wrong role.
		if rt.admin && rt.path != "/" && rt.path != "/users" {
			if resp := send(anna, true); resp.StatusCode != http.StatusForbidden {
				t.Errorf("anna %s %s = %d, want 403", rt.method, rt.path, resp.StatusCode)
			}
		}
	}
	// A user goes straight to their own settings.
	if resp, _ := anna.do("GET", "/", nil, nil); resp.Header.Get("Location") != "/users/ANNA" {
		t.Errorf("anna's start page: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Only /login, /static/ and /healthz (and the ERP API with its own tokens) answer without a session.
	for _, p := range []string{"/login", "/static/app.css", "/static/app.js", "/healthz"} {
		if resp, _ := anon.do("GET", p, nil, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s unauthenticated = %d", p, resp.StatusCode)
		}
	}
	if _, body := anon.do("GET", "/api/v1/messages", nil, nil); body != "erp api" {
		t.Errorf("/api/v1/messages went to %q, want the ERP API", body)
	}
}

func TestProceduresAndSecrets(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(t).signedIn("root", adminPW)
	c.do("GET", "/system", nil, nil)
	resp, body := c.do("POST", "/system", url.Values{"csrf": {c.csrf}, "emailMethod": {"exchange-online"}, "clientId": {"6f1d3c2a-9b7e-4e2f-8a11-3c5d7e9f0a21"},
		"tenantId": {"contoso.onmicrosoft.com"}, "authFlow": {"client-secret"}, "clientSecret": {theSecret}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save system: %d %s", resp.StatusCode, body)
	}
	_, body = c.do("GET", "/system?saved=1", nil, nil)
	if strings.Contains(body, theSecret) || !strings.Contains(body, `id="state-clientSecret">set<`) || !strings.Contains(body, "Saved.") {
		t.Errorf("system page after saving: secret shown or not marked set")
	}
	if !regexp.MustCompile(`data-field="serverAddress">\s*<label[^>]*>[^<]*</label>\s*<div class="input">\s*<input[^>]*disabled`).MatchString(body) {
		t.Errorf("serverAddress is not disabled under Exchange Online")
	}
	// A refused change: 422, the field's message, nothing saved.
	resp, body = c.do("POST", "/system", url.Values{"csrf": {c.csrf}, "clientSecret": {"0d2e1c6b-7a8f-4e3d-9b1a-2c3d4e5f6a7b"}}, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Secret ID") {
		t.Errorf("a Secret ID as the secret: %d", resp.StatusCode)
	}
	// A user's override, in Swedish.
	c.do("GET", "/system?lang=sv", nil, nil)
	resp, _ = c.do("POST", "/users/ANNA", url.Values{"csrf": {c.csrf}, "emailAddress": {"anna@contoso.example"}, "emailMethod": {""}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save user: %d", resp.StatusCode)
	}
	_, body = c.do("GET", "/users/ANNA", nil, nil)
	for _, want := range []string{"Metod för e-post", "Program-ID (klient)", "Katalog-ID (klientorganisation)", "Autentiseringsflöde", "Klienthemlighet",
		"Användarnamn (Exchange)", "Lösenord (Exchange)", "Inställningar för inkommande e-post", "Webbshop Administration", "systeminställningar", "användaren"} {
		if !strings.Contains(body, want) {
			t.Errorf("the Swedish user page lacks %q", want)
		}
	}
	if strings.Contains(body, theSecret) {
		t.Error("the secret is on the user page")
	}
	// An incoming account, validated.
	resp, _ = c.do("POST", "/incoming", url.Values{"csrf": {c.csrf}, "address": {"m2m@contoso.example"}, "type": {"monitor-to-monitor"}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add account: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	c.do("GET", loc, nil, nil)
	_, body = c.do("POST", strings.TrimSuffix(loc, "?saved=1")+"/validate", url.Values{"csrf": {c.csrf}}, nil)
	if !strings.Contains(body, "✓") || !strings.Contains(body, "select INBOX") {
		t.Errorf("validate: no ✓ steps")
	}
	_, body = c.do("POST", "/incoming/validate", url.Values{"csrf": {c.csrf}, "id": {"1"}}, nil)
	if !strings.Contains(body, `id="report"`) {
		t.Errorf("validate selected address: no report")
	}
	// Webshop and the read-only pages render.
	if resp, _ := c.do("POST", "/webshop", url.Values{"csrf": {c.csrf}, "emailMethod": {"according-to-user-settings"}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("webshop: %d", resp.StatusCode)
	}
	for _, p := range []string{"/", "/webshop", "/users", "/incoming", "/messages", "/messages?type=monitor-to-monitor", "/outbox", "/audit"} {
		resp, body := c.do("GET", p, nil, nil)
		if resp.StatusCode != 200 || strings.Contains(body, theSecret) {
			t.Errorf("GET %s = %d (or shows the secret)", p, resp.StatusCode)
		}
	}
	// The settings API with the session and the CSRF header.
	resp, body = c.do("GET", "/api/v1/settings/system", nil, nil)
	if resp.StatusCode != 200 || strings.Contains(body, theSecret) || !strings.Contains(body, `"clientSecret": "set"`) {
		t.Errorf("API GET system: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("PUT", f.srv.URL+"/api/v1/settings/system", strings.NewReader(`{"tenantId":"fabrikam.onmicrosoft.com"}`))
	req.Header.Set(csrfHeader, c.csrf)
	r2, err := c.http.Do(req)
	if err != nil || r2.StatusCode != 200 {
		t.Errorf("API PUT with CSRF header: %v %v", r2, err)
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword(adminPW)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(h), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash = %s", h)
	}
	for _, tt := range []struct {
		pw   string
		want bool
	}{{adminPW, true}, {adminPW + " ", false}, {"", false}} {
		if ok, err := CheckPassword(h, tt.pw); ok != tt.want || err != nil {
			t.Errorf("CheckPassword(%q) = %v, %v", tt.pw, ok, err)
		}
	}
	if _, err := HashPassword("short"); err == nil {
		t.Error("a short password was accepted")
	}
}

func FuzzCheckPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=16,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "pw")
	f.Add("$argon2id$v=19$m=0,t=0,p=0$$", "")
	f.Add("garbage", "x")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		if len(hash) > 300 {
			return
		}
		if strings.Contains(hash, "m=") {
			// bound the work a fuzzed cost can ask for
			var m int
			for _, part := range strings.Split(hash, "$") {
				if strings.HasPrefix(part, "m=") {
					for _, ch := range part[2:] {
						if ch < '0' || ch > '9' {
							break
						}
						m = m*10 + int(ch-'0')
						if m > 1<<16 {
							return
						}
					}
				}
			}
		}
		CheckPassword([]byte(hash), pw)
	})
}

// TestMessagesPageShowsTheNewest: with more messages than one store page, the page lists the newest
// 200, newest first.
func TestMessagesPageShowsTheNewest(t *testing.T) {
	f := newFixture(t, nil)
	const n = store.MaxPage + 250
	var ms []store.NewMessage
	for i := 1; i <= n; i++ {
		ms = append(ms, storetest.NewMessage(i, uint32(i), ""))
	}
	if _, err := f.st.CommitBatch(context.Background(), store.Batch{AccountID: 1, Account: "m2m@contoso.example", Type: settings.TypeMonitorToMonitor,
		Folder: "INBOX", UIDValidity: 1, LastUID: n, Messages: ms}); err != nil {
		t.Fatal(err)
	}
	c := f.client(t).signedIn("root", adminPW)
	resp, body := c.do("GET", "/messages", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /messages = %d", resp.StatusCode)
	}
	subjects := regexp.MustCompile(`>message (\d+)</a>`).FindAllStringSubmatch(body, -1)
	if len(subjects) != 200 {
		t.Fatalf("%d messages listed, want 200", len(subjects))
	}
	for i, s := range subjects {
		if want := strconv.Itoa(n - i); s[1] != want {
			t.Fatalf("row %d is message %s, want %s", i, s[1], want)
		}
	}
}
