package openapi_test

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"inkorg/internal/api"
	"inkorg/internal/doctor"
	"inkorg/internal/openapi"
	"inkorg/internal/settings"
	"inkorg/internal/settingsapi"
	"inkorg/internal/store"
)

// doc is the part of an OpenAPI 3 document the tests look at.
type doc struct {
	OpenAPI  string                          `json:"openapi"`
	Info     map[string]any                  `json:"info"`
	Paths    map[string]map[string]operation `json:"paths"`
	Security []map[string][]string           `json:"security"`
	Comps    struct {
		SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
		Schemas         map[string]schema         `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	Security  *[]map[string][]string `json:"security"`
	Responses map[string]any         `json:"responses"`
	Tags      []string               `json:"tags"`
}

type schema struct {
	Properties map[string]any `json:"properties"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func load(t *testing.T) doc {
	t.Helper()
	var d doc
	if err := json.Unmarshal(openapi.JSON(), &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return d
}

// described is every "METHOD /path" of the description, with its operation.
func described(t *testing.T, d doc) map[string]operation {
	t.Helper()
	out := map[string]operation{}
	for path, item := range d.Paths {
		for m, op := range item {
			if m == "parameters" || m == "summary" || m == "description" || m == "servers" {
				continue
			}
			if !slices.Contains(httpMethods, m) {
				t.Errorf("paths[%s]: %q is not an HTTP method", path, m)
				continue
			}
			out[strings.ToUpper(m)+" "+path] = op
		}
	}
	return out
}

// settingsPatterns are the "METHOD /path" string literals settingsapi registers, read from its source:
// settingsapi.Routes only lists the prefixes the web UI forwards.
func settingsPatterns(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../settingsapi/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("settingsapi sources: %v (%d files)", err, len(files))
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: a route registered with a non-literal pattern; this test cannot see it", fset.Position(call.Pos()))
				return true
			}
			p, _ := strconv.Unquote(lit.Value)
			out = append(out, p)
			return true
		})
	}
	if len(out) == 0 {
		t.Fatal("found no settingsapi routes")
	}
	return out
}

func TestStructure(t *testing.T) {
	d := load(t)
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want 3.x", d.OpenAPI)
	}
	for _, k := range []string{"title", "version"} {
		if s, _ := d.Info[k].(string); s == "" {
			t.Errorf("info.%s is missing", k)
		}
	}
	if len(d.Paths) == 0 {
		t.Fatal("no paths")
	}
	if s := d.Comps.SecuritySchemes["bearer"]; s["type"] != "http" || s["scheme"] != "bearer" {
		t.Errorf("securitySchemes.bearer = %v, want http bearer", s)
	}
	if s := d.Comps.SecuritySchemes["session"]; s["type"] != "apiKey" || s["in"] != "cookie" || s["name"] != "inkorg_session" {
		t.Errorf("securitySchemes.session = %v, want an apiKey cookie inkorg_session", s)
	}
	if len(d.Security) != 1 || d.Security[0]["bearer"] == nil {
		t.Errorf("top-level security = %v, want bearer", d.Security)
	}
	for p := range d.Paths {
		if !strings.HasPrefix(p, "/") {
			t.Errorf("path %q does not start with /", p)
		}
	}
	for key, op := range described(t, d) {
		if len(op.Responses) == 0 {
			t.Errorf("%s: no responses", key)
		}
		for code := range op.Responses {
			if n, err := strconv.Atoi(code); (err != nil || n < 100 || n > 599) && code != "default" {
				t.Errorf("%s: response %q is not a status code", key, code)
			}
		}
	}
	// Every $ref resolves.
	var all any
	if err := json.Unmarshal(openapi.JSON(), &all); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if !resolves(all, ref) {
					t.Errorf("$ref %q does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
}

func resolves(root any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	cur := root
	for _, part := range strings.Split(p, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// TestRoutesDescribed: every route the server registers is described, with the right security, and
// every described route is registered.
func TestRoutesDescribed(t *testing.T) {
	d := load(t)
	desc := described(t, d)
	public := api.PublicRoutes()
	settingsRoutes := settingsPatterns(t)
	registered := map[string]string{} // pattern -> "erp" or "settings"
	for _, r := range api.Routes() {
		registered[r] = "erp"
	}
	for _, r := range settingsRoutes {
		if _, dup := registered[r]; dup {
			t.Errorf("%s is registered by both api and settingsapi", r)
		}
		registered[r] = "settings"
	}
	for r, owner := range registered {
		op, ok := desc[r]
		if !ok {
			t.Errorf("%s (%s) is registered but not described", r, owner)
			continue
		}
		switch {
		case slices.Contains(public, r):
			if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s is public: want security [], got %v", r, op.Security)
			}
		case owner == "erp":
			if op.Security != nil && !(len(*op.Security) == 1 && (*op.Security)[0]["bearer"] != nil) {
				t.Errorf("%s: want the bearer security, got %v", r, *op.Security)
			}
			if op.Responses["401"] == nil {
				t.Errorf("%s: no 401 response", r)
			}
		case owner == "settings":
			if op.Security == nil || len(*op.Security) != 1 || (*op.Security)[0]["session"] == nil {
				t.Errorf("%s: want the session security, got %v", r, op.Security)
			}
		}
	}
	for r := range desc {
		if _, ok := registered[r]; !ok {
			t.Errorf("%s is described but not registered", r)
		}
	}
	// The web UI forwards a settings route to settingsapi only under settingsapi.Routes; the other
	// /api/v1/ routes go to package api.
	for _, r := range settingsRoutes {
		_, path, _ := strings.Cut(r, " ")
		if !underAny(path, settingsapi.Routes()) {
			t.Errorf("%s is not under settingsapi.Routes() %v: the web UI would not forward it", r, settingsapi.Routes())
		}
	}
	for _, r := range api.Routes() {
		_, path, _ := strings.Cut(r, " ")
		if underAny(path, settingsapi.Routes()) {
			t.Errorf("%s is under settingsapi.Routes(): the web UI would send it to the settings API", r)
		}
	}
}

func underAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(path, p)) {
			return true
		}
	}
	return false
}

// TestSettingsRoutesAnswer checks the source-read settings routes against the running handler: each
// one routes (an unauthorised principal gets 403, not the 404 of an unknown route).
func TestSettingsRoutesAnswer(t *testing.T) {
	h := settingsapi.New(settingsapi.Config{Store: usersOnly{}})
	probe := func(method, path string) int {
		req := httptest.NewRequest(method, path, strings.NewReader("{}"))
		req = req.WithContext(settingsapi.WithPrincipal(req.Context(), settingsapi.Principal{Name: "probe", Role: store.RoleUser}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	// The probe tells a route from no route.
	if c := probe(http.MethodPatch, "/api/v1/settings/system"); c != http.StatusNotFound {
		t.Fatalf("PATCH /api/v1/settings/system: %d, want 404", c)
	}
	for _, r := range settingsPatterns(t) {
		method, path, _ := strings.Cut(r, " ")
		path = strings.NewReplacer("{name}", "nobody", "{id}", "1").Replace(path)
		if c := probe(method, path); c == http.StatusNotFound {
			t.Errorf("%s: %d, want the route to exist", r, c)
		}
	}
}

// usersOnly is a store for TestSettingsRoutesAnswer: only GET /api/v1/users reaches it.
type usersOnly struct{ store.Store }

func (usersOnly) Users(context.Context) ([]settings.User, error) { return nil, nil }

// TestSchemasMatchTypes: the properties of the main schemas are exactly the JSON fields of the Go
// types they describe.
func TestSchemasMatchTypes(t *testing.T) {
	d := load(t)
	tests := []struct {
		schema string
		typ    any
		drop   []string // fields the handler hides
	}{
		{"Message", api.Message{}, nil},
		{"Attachment", api.Attachment{}, nil},
		{"M2M", api.M2M{}, nil},
		{"MessagePage", api.MessagePage{}, nil},
		{"AckResponse", api.AckResponse{}, nil},
		{"AccountState", api.AccountView{}, nil},
		{"ErrorDetail", api.ErrorDetail{}, nil},
		{"ErrorRecord", store.ErrorRecord{}, nil},
		{"Outgoing", store.Outgoing{}, []string{"bcc"}},
		{"SystemView", settingsapi.SystemView{}, nil},
		{"SystemSettings", settings.System{}, nil},
		{"UserView", settingsapi.UserView{}, nil},
		{"UserSettings", settings.User{}, nil},
		{"EffectiveUser", settings.EffectiveUser{}, nil},
		{"IncomingAccountView", settingsapi.AccountView{}, nil},
		{"IncomingAccountSettings", settings.IncomingAccount{}, nil},
		{"EffectiveAccount", settings.EffectiveAccount{}, nil},
		{"WebshopView", settingsapi.WebshopView{}, nil},
		{"WebshopSettings", settings.Webshop{}, nil},
		{"EffectiveWebshop", settings.EffectiveWebshop{}, nil},
		{"EffectiveField", settings.Field[string]{}, nil},
		{"Problem", settings.Problem{}, nil},
		{"DoctorReport", doctor.Report{}, nil},
		{"DoctorStep", doctor.Step{}, nil},
		{"DoctorFailure", doctor.Failure{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			s, ok := d.Comps.Schemas[tt.schema]
			if !ok {
				t.Fatalf("no schema %s", tt.schema)
			}
			var want []string
			for _, f := range jsonFields(reflect.TypeOf(tt.typ)) {
				if !slices.Contains(tt.drop, f) {
					want = append(want, f)
				}
			}
			var got []string
			for k := range s.Properties {
				got = append(got, k)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("properties %v, want the Go type's JSON fields %v", got, want)
			}
		})
	}
}

// jsonFields are the JSON object keys encoding/json writes for struct type t (embedded structs
// flattened, "-" skipped).
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// TestServed: the API serves the description without a token, as JSON, with an ETag.
func TestServed(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Config{}))
	defer srv.Close()
	tests := []struct {
		method string
		status int
	}{
		{http.MethodGet, http.StatusOK},
		{http.MethodHead, http.StatusOK},
		{http.MethodPost, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+"/api/v1/openapi.json", nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		dec := json.NewDecoder(resp.Body)
		decErr := dec.Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.method, resp.StatusCode, tt.status)
			continue
		}
		if tt.method != http.MethodGet {
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type %q", ct)
		}
		if decErr != nil || body["openapi"] == nil {
			t.Errorf("body is not the description: %v", decErr)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		req, _ = http.NewRequest(http.MethodGet, srv.URL+"/api/v1/openapi.json", nil)
		req.Header.Set("If-None-Match", etag)
		resp, err = srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match: status %d, want 304", resp.StatusCode)
		}
	}
}
