package settingsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"inkorg/internal/doctor"
	"inkorg/internal/secrets"
	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/store/sqlite"
)

const (
	clientID = "6f1d3c2a-9b7e-4e2f-8a11-3c5d7e9f0a21"
	secret   = "Qx48Q~ApiTestClientSecretValue.0123456789"
)

func openStore(t *testing.T) store.Store {
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

// server serves the API with the principal given in the X-Test-Operator header ("name:role:user").
func server(t *testing.T, st store.Store) *httptest.Server {
	h := New(Config{Store: st, Validate: func(ctx context.Context, c settings.Config, address string) doctor.Report {
		return doctor.Report{Target: "incoming account " + address, OK: true, Steps: []doctor.Step{{Name: "token", Status: doctor.Passed}}}
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("X-Test-Operator"); v != "" {
			f := strings.SplitN(v+"::", ":", 4)
			r = r.WithContext(WithPrincipal(r.Context(), Principal{Name: f[0], Role: store.Role(f[1]), User: f[2]}))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, who, method, path, body string) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if who != "" {
		req.Header.Set("X-Test-Operator", who)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	var m map[string]any
	json.Unmarshal(buf.Bytes(), &m)
	return resp.StatusCode, m, buf.String()
}

const admin, anna, bob = "root:admin:", "anna:user:ANNA", "bob:user:BOB"

func TestRoles(t *testing.T) {
	srv := server(t, openStore(t))
	tests := []struct {
		who, method, path, body string
		want                    int
	}{
		{"", "GET", "/api/v1/settings/system", "", 401},
		{"", "GET", "/api/v1/users", "", 401},
		{"", "PUT", "/api/v1/users/ANNA/email-settings", `{}`, 401},
		{anna, "GET", "/api/v1/settings/system", "", 403},
		{anna, "PUT", "/api/v1/settings/system", `{"emailMethod":"smtp"}`, 403},
		{anna, "GET", "/api/v1/incoming-accounts", "", 403},
		{anna, "POST", "/api/v1/incoming-accounts", `{}`, 403},
		{anna, "GET", "/api/v1/incoming-accounts/1", "", 403},
		{anna, "PUT", "/api/v1/incoming-accounts/1", `{}`, 403},
		{anna, "DELETE", "/api/v1/incoming-accounts/1", "", 403},
		{anna, "POST", "/api/v1/incoming-accounts/1/validate", "", 403},
		{anna, "GET", "/api/v1/settings/webshop", "", 403},
		{anna, "PUT", "/api/v1/settings/webshop", `{}`, 403},
		{anna, "GET", "/api/v1/users/BOB/email-settings", "", 403},
		{anna, "PUT", "/api/v1/users/BOB/email-settings", `{}`, 403},
		{anna, "GET", "/api/v1/users/BOB/email-settings/effective", "", 403},
		{anna, "GET", "/api/v1/users/anna/email-settings", "", 200},
		{anna, "PUT", "/api/v1/users/ANNA/email-settings", `{"signature":"Anna"}`, 200},
		{anna, "GET", "/api/v1/users/ANNA/email-settings/effective", "", 200},
		{anna, "GET", "/api/v1/users", "", 200},
		{admin, "GET", "/api/v1/settings/system", "", 200},
		{admin, "GET", "/api/v1/users/BOB/email-settings", "", 200},
		{admin, "GET", "/api/v1/incoming-accounts/99", "", 404},
		{admin, "GET", "/api/v1/settings/nothing", "", 404},
		{admin, "PATCH", "/api/v1/settings/system", "", 404},
	}
	for _, tt := range tests {
		if got, _, body := call(t, srv, tt.who, tt.method, tt.path, tt.body); got != tt.want {
			t.Errorf("%s %s %s = %d, want %d: %s", tt.who, tt.method, tt.path, got, tt.want, body)
		}
	}
	_, m, _ := call(t, srv, bob, "GET", "/api/v1/users", "")
	if users := m["users"].([]any); len(users) != 1 || users[0].(map[string]any)["name"] != "BOB" {
		t.Errorf("bob's user list = %v, want only BOB", m)
	}
}

func TestSystemSecretsAndValidation(t *testing.T) {
	st := openStore(t)
	srv := server(t, st)
	code, _, body := call(t, srv, admin, "PUT", "/api/v1/settings/system",
		`{"emailMethod":"exchange-online","clientId":"`+clientID+`","tenantId":"contoso.onmicrosoft.com","authFlow":"client-secret","clientSecret":"`+secret+`"}`)
	if code != 200 || strings.Contains(body, secret) || !strings.Contains(body, `"clientSecret": "set"`) {
		t.Fatalf("PUT system = %d %s", code, body)
	}
	// Absent keeps, "set" keeps: the secret survives a round trip of what GET shows.
	_, m, _ := call(t, srv, admin, "GET", "/api/v1/settings/system", "")
	round, _ := json.Marshal(m["settings"])
	if code, _, body := call(t, srv, admin, "PUT", "/api/v1/settings/system", string(round)); code != 200 {
		t.Fatalf("round trip PUT = %d %s", code, body)
	}
	sys, _ := st.System(context.Background())
	if sys.ClientSecret.Reveal() != secret {
		t.Errorf("after the round trip the secret is %s", sys.ClientSecret.State())
	}
	tests := []struct {
		name, body, path string
		status           int
	}{
		{"secret ID", `{"clientSecret":"0d2e1c6b-7a8f-4e3d-9b1a-2c3d4e5f6a7b"}`, "system.clientSecret", 422},
		{"common tenant", `{"tenantId":"common"}`, "system.tenantId", 422},
		{"server for exchange online", `{"serverAddress":"mail.example.com"}`, "system.serverAddress", 422},
		{"unknown field", `{"colour":"red"}`, "", 400},
		{"not an object", `[1]`, "", 400},
		{"bad port", `{"port":"x"}`, "", 400},
	}
	for _, tt := range tests {
		code, m, body := call(t, srv, admin, "PUT", "/api/v1/settings/system", tt.body)
		if code != tt.status {
			t.Errorf("%s: %d, want %d: %s", tt.name, code, tt.status, body)
			continue
		}
		if tt.path != "" {
			ps, _ := m["error"].(map[string]any)["problems"].([]any)
			if len(ps) == 0 || ps[0].(map[string]any)["path"] != tt.path || ps[0].(map[string]any)["message"] == "" {
				t.Errorf("%s: problems %v, want path %s", tt.name, ps, tt.path)
			}
		}
	}
	if sys2, _ := st.System(context.Background()); sys2.TenantID != "contoso.onmicrosoft.com" || sys2.ClientSecret.Reveal() != secret {
		t.Errorf("a refused change was saved: %+v", sys2)
	}
}

func TestUsersAccountsWebshop(t *testing.T) {
	st := openStore(t)
	srv := server(t, st)
	call(t, srv, admin, "PUT", "/api/v1/settings/system",
		`{"emailMethod":"exchange-online","clientId":"`+clientID+`","tenantId":"contoso.onmicrosoft.com","authFlow":"client-secret","clientSecret":"`+secret+`"}`)

	code, m, body := call(t, srv, admin, "PUT", "/api/v1/users/ANNA/email-settings", `{"emailAddress":"anna@contoso.example","copyToSelf":"bcc"}`)
	if code != 200 {
		t.Fatalf("PUT user = %d %s", code, body)
	}
	eff := m["effective"].(map[string]any)
	if f := eff["emailAddress"].(map[string]any); f["value"] != "anna@contoso.example" || f["source"] != "user" {
		t.Errorf("effective emailAddress = %v", f)
	}
	if f := eff["clientId"].(map[string]any); f["value"] != clientID || f["source"] != "system" {
		t.Errorf("effective clientId = %v", f)
	}
	if f := eff["exchangePassword"].(map[string]any); f["notApplicable"] != true {
		t.Errorf("exchangePassword under client-secret = %v, want notApplicable", f)
	}
	if code, m, _ := call(t, srv, admin, "PUT", "/api/v1/users/ANNA/email-settings", `{"exchangePassword":"pw"}`); code != 422 ||
		m["error"].(map[string]any)["problems"].([]any)[0].(map[string]any)["path"] != "users[ANNA].exchangePassword" {
		t.Errorf("exchangePassword under client-secret = %d %v, want 422", code, m)
	}
	// null inherits again.
	if _, m, _ := call(t, srv, admin, "PUT", "/api/v1/users/ANNA/email-settings", `{"copyToSelf":null}`); m["settings"].(map[string]any)["copyToSelf"] != nil {
		t.Errorf("copyToSelf after null = %v", m["settings"])
	}

	code, m, body = call(t, srv, admin, "POST", "/api/v1/incoming-accounts", `{"address":"m2m@contoso.example","type":"monitor-to-monitor"}`)
	if code != 201 {
		t.Fatalf("POST account = %d %s", code, body)
	}
	id := int(m["id"].(float64))
	path := "/api/v1/incoming-accounts/" + itoa(id)
	if code, _, _ := call(t, srv, admin, "POST", "/api/v1/incoming-accounts", `{"address":"M2M@contoso.example","type":"general"}`); code != 409 {
		t.Errorf("a second m2m = %d, want 409", code)
	}
	if code, _, body := call(t, srv, admin, "POST", "/api/v1/incoming-accounts", `{"address":"x@contoso.example"}`); code != 422 || !strings.Contains(body, "incoming[x@contoso.example].type") {
		t.Errorf("an account without type = %d %s", code, body)
	}
	code, m, body = call(t, srv, admin, "PUT", path, `{"clientSecret":"Own~AccountSecretValue.0123456789abcdef"}`)
	if code != 200 || strings.Contains(body, "Own~") {
		t.Fatalf("PUT account = %d %s", code, body)
	}
	if f := m["effective"].(map[string]any)["clientSecret"].(map[string]any); f["value"] != "set" || f["source"] != "account" {
		t.Errorf("account's own secret = %v", f)
	}
	code, m, _ = call(t, srv, admin, "POST", path+"/validate", "")
	if code != 200 || m["ok"] != true || m["target"] != "incoming account m2m@contoso.example" {
		t.Errorf("validate = %d %v", code, m)
	}
	if code, m, _ := call(t, srv, admin, "GET", "/api/v1/incoming-accounts", ""); code != 200 || len(m["accounts"].([]any)) != 1 {
		t.Errorf("list = %d %v", code, m)
	}
	if code, _, _ := call(t, srv, admin, "DELETE", path, ""); code != 204 {
		t.Errorf("DELETE = %d", code)
	}
	if code, _, _ := call(t, srv, admin, "GET", path, ""); code != 404 {
		t.Errorf("GET after DELETE = %d", code)
	}

	if code, _, body := call(t, srv, admin, "PUT", "/api/v1/settings/webshop", `{"emailMethod":"by-magic"}`); code != 422 || !strings.Contains(body, "webshop.emailMethod") {
		t.Errorf("bad webshop method = %d %s", code, body)
	}
	code, m, body = call(t, srv, admin, "PUT", "/api/v1/settings/webshop", `{"emailMethod":"according-to-user-settings"}`)
	if code != 200 || m["effective"].(map[string]any)["user"] == nil {
		t.Errorf("webshop = %d %s", code, body)
	}
	audit, _ := st.Audit(context.Background(), 100)
	if len(audit) == 0 || audit[0].Actor != "web:root" {
		t.Errorf("audit = %v", audit)
	}
}

// TestListsMatchSingleViews: the lists (read from one snapshot of the configuration) show each record
// as its own GET does, with only that record's problems.
func TestListsMatchSingleViews(t *testing.T) {
	srv := server(t, openStore(t))
	// The flow User name/Password, and no user or account has its credentials: each has problems of its own.
	if code, _, body := call(t, srv, admin, "PUT", "/api/v1/settings/system", `{"emailMethod":"exchange-online","clientId":"`+clientID+`","tenantId":"contoso.onmicrosoft.com","authFlow":"username-password"}`); code != 200 {
		t.Fatalf("PUT system = %d %s", code, body)
	}
	for _, u := range []string{"ANNA", "BOB"} {
		if code, _, body := call(t, srv, admin, "PUT", "/api/v1/users/"+u+"/email-settings", `{"emailAddress":"`+strings.ToLower(u)+`@contoso.example"}`); code != 200 {
			t.Fatalf("PUT %s = %d %s", u, code, body)
		}
	}
	for _, a := range []string{`{"address":"m2m@contoso.example","type":"monitor-to-monitor"}`, `{"address":"general@contoso.example","type":"general"}`} {
		if code, _, body := call(t, srv, admin, "POST", "/api/v1/incoming-accounts", a); code != 201 {
			t.Fatalf("POST %s = %d %s", a, code, body)
		}
	}
	check := func(list []any, path func(v map[string]any) string, prefix func(v map[string]any) string) {
		t.Helper()
		if len(list) != 2 {
			t.Fatalf("list of %d, want 2: %v", len(list), list)
		}
		for _, x := range list {
			v := x.(map[string]any)
			_, one, _ := call(t, srv, admin, "GET", path(v), "")
			if !reflect.DeepEqual(v, one) {
				t.Errorf("in the list %v\nGET %s %v", v, path(v), one)
			}
			ps := v["problems"].([]any)
			if len(ps) == 0 {
				t.Errorf("%s: no problems, want its own", path(v))
			}
			for _, p := range ps {
				if !strings.HasPrefix(p.(map[string]any)["path"].(string), prefix(v)) {
					t.Errorf("%s: problem %v is not its own", path(v), p)
				}
			}
		}
	}
	_, m, _ := call(t, srv, admin, "GET", "/api/v1/users", "")
	check(m["users"].([]any), func(v map[string]any) string { return "/api/v1/users/" + v["name"].(string) + "/email-settings" },
		func(v map[string]any) string { return settings.UserPath(v["name"].(string)) })
	_, m, _ = call(t, srv, admin, "GET", "/api/v1/incoming-accounts", "")
	check(m["accounts"].([]any), func(v map[string]any) string { return "/api/v1/incoming-accounts/" + itoa(int(v["id"].(float64))) },
		func(v map[string]any) string {
			return settings.AccountPath(v["settings"].(map[string]any)["address"].(string))
		})
}

func itoa(n int) string { return jsonNumber(n) }

func jsonNumber(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestApplySecretRules(t *testing.T) {
	old := settings.System{ClientSecret: settings.NewSecret("old")}
	tests := []struct {
		in      Value
		want    string
		changed bool
	}{
		{Value{Text: "set"}, "old", false},
		{Value{Text: "new"}, "new", true},
		{Value{Text: "old"}, "old", false},
		{Value{Text: ""}, "", true},
		{Value{Text: "not set"}, "", true},
		{Value{Null: true}, "", true},
	}
	for _, tt := range tests {
		s, changed, err := ApplySystem(old, Input{"clientSecret": tt.in})
		if err != nil || s.ClientSecret.Reveal() != tt.want || (len(changed) == 1) != tt.changed {
			t.Errorf("%+v: %q %v %v", tt.in, s.ClientSecret.Reveal(), changed, err)
		}
	}
	_ = time.Second
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":null}`, `{"port":25,"useSsl":true}`, `{"availableTo":["a","b"]}`, `[`, `{"x":{}}`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := ParseJSON([]byte(s))
		if err != nil {
			return
		}
		ApplySystem(settings.System{}, in)
		ApplyUser(settings.User{Name: "X"}, in)
		ApplyAccount(settings.IncomingAccount{}, in)
		ApplyWebshop(settings.Webshop{}, in)
	})
}
