package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"inkorg/internal/api"
	"inkorg/internal/secrets"
	"inkorg/internal/store/sqlite"
)

// inproc runs one command function in-process against a database in a temporary directory, and maps
// its error to the exit code as run does.
type inproc struct {
	t   *testing.T
	dir string
	db  string
}

func newInproc(t *testing.T) *inproc {
	dir := t.TempDir()
	return &inproc{t: t, dir: dir, db: filepath.Join(dir, "inkorg.db")}
}

func (p *inproc) run(cmd func(*env, []string) error, stdin string, args ...string) result {
	p.t.Helper()
	var out, errb bytes.Buffer
	e := &env{ctx: context.Background(), stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return map[string]string{"INKORG_DB": p.db}[k] }, now: time.Now, actor: "cli:tester"}
	code := exitStatus(e, cmd(e, args))
	return result{code, out.String(), errb.String()}
}

func (p *inproc) want(code int, cmd func(*env, []string) error, stdin, args string, fragments ...string) result {
	p.t.Helper()
	r := p.run(cmd, stdin, strings.Fields(args)...)
	if r.code != code {
		p.t.Fatalf("%s: want exit %d, got %s", args, code, r)
	}
	for _, f := range fragments {
		if !strings.Contains(r.stdout+r.stderr, f) {
			p.t.Fatalf("%s: output lacks %q:\n%s", args, f, r)
		}
	}
	return r
}

// fileBytes is every database file's content, to look for what must not be in them.
func (p *inproc) fileBytes() []byte {
	files, _ := filepath.Glob(p.db + "*")
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			p.t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// api serves the REST API over the test's database.
func (p *inproc) api() *httptest.Server {
	p.t.Helper()
	key := func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(strings.TrimSuffix(p.db, ".db")+".key", true)
		return s, err
	}
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: p.db, Key: key})
	if err != nil {
		p.t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: st}))
	p.t.Cleanup(func() { srv.Close(); st.Close() })
	return srv
}

func apiStatus(t *testing.T, srv *httptest.Server, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/messages", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTokenCommands(t *testing.T) {
	p := newInproc(t)
	p.want(2, cmdToken, "", "", "missing action")
	p.want(2, cmdToken, "", "frobnicate", `unknown token command "frobnicate"`)
	p.want(0, cmdToken, "", "create --help", "usage: inkorg token create NAME", "Example:")
	p.want(2, cmdToken, "", "create", "missing token NAME")
	p.want(2, cmdToken, "", "create erp extra", `unexpected argument "extra"`)
	p.want(2, cmdToken, "", "create bad/name", "use only letters, digits")
	p.want(1, cmdToken, "", "list", "no database at")

	r := p.want(0, cmdToken, "", "create erp-production", "Created the API token erp-production", `"Authorization: Bearer ink_`, "not shown again")
	if !regexp.MustCompile(`^ink_[A-Za-z0-9_-]{43}\n$`).MatchString(r.stdout) {
		t.Fatalf("stdout is not just the token: %q", r.stdout)
	}
	token := strings.TrimSpace(r.stdout)
	if strings.Count(r.stdout+r.stderr, token) != 2 {
		t.Errorf("the token should show on stdout and in the hint, once each:\n%s", r)
	}
	if bytes.Contains(p.fileBytes(), []byte(token)) {
		t.Fatal("the token itself is in the database")
	}
	other := strings.TrimSpace(p.want(0, cmdToken, "", "create erp-test").stdout)
	if other == token {
		t.Fatal("two tokens alike")
	}
	p.want(1, cmdToken, "", "create ERP-production", "Not created: a token named ERP-production already exists", "inkorg token revoke")

	r = p.want(0, cmdToken, "", "list", "API tokens", "erp-production", "erp-test", "never")
	if strings.Contains(r.stdout, token) {
		t.Fatal("list shows a token")
	}

	srv := p.api()
	if s := apiStatus(t, srv, token); s != 200 {
		t.Fatalf("the new token gets %d", s)
	}
	var list []tokenView
	if err := json.Unmarshal([]byte(p.want(0, cmdToken, "", "list --json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "erp-production" || list[0].LastUsed == nil || list[1].LastUsed != nil || list[0].CreatedAt.IsZero() {
		t.Errorf("list --json %+v", list)
	}

	p.want(0, cmdToken, "", "revoke erp-production", "Revoked the API token erp-production")
	p.want(1, cmdToken, "", "revoke erp-production", "API token erp-production", "not found")
	if s := apiStatus(t, srv, token); s != 401 {
		t.Errorf("a revoked token gets %d", s)
	}
	if s := apiStatus(t, srv, other); s != 200 {
		t.Errorf("the other token gets %d", s)
	}
}

func TestWebhookCommands(t *testing.T) {
	p := newInproc(t)
	const secret = "0123456789abcdef-Webhook-Secret-Value"
	file := filepath.Join(p.dir, "secret.txt")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var all []result
	keep := func(r result) result { all = append(all, r); return r }

	keep(p.want(2, cmdWebhook, "", "", "missing action"))
	keep(p.want(1, cmdWebhook, "", "list", "no database at"))
	keep(p.want(0, cmdWebhook, "", "set --help", "usage: inkorg webhook set", "Inkorg-Signature", "Example:"))
	keep(p.want(2, cmdWebhook, "", "set --url https://erp.example/hook", "--type is required", "monitor-to-monitor"))
	keep(p.want(2, cmdWebhook, "", "set --type invoices --url https://erp.example/hook", `unknown type "invoices"`))
	keep(p.want(2, cmdWebhook, "", "set --type general", "nothing to set"))
	keep(p.want(2, cmdWebhook, "", "set --type general --secret "+secret, "flag provided but not defined: -secret"))
	keep(p.want(1, cmdWebhook, "", "set --type general --url http://erp.example/hook --secret-file "+file, "Not saved", "use https"))
	keep(p.want(1, cmdWebhook, "", "set --type general --url https://erp.example/hook", "Not saved", "a new webhook needs --secret-file"))
	keep(p.want(1, cmdWebhook, "", "set --type general --secret-file "+file, "give --url as well"))
	keep(p.want(1, cmdWebhook, "short\n", "set --type general --url https://erp.example/hook --secret-file -", "it is 5 characters", "at least 16"))
	keep(p.want(1, cmdWebhook, "", "set --type general --url https://erp.example/hook --secret-file /nonexistent/secret", "--secret-file"))

	keep(p.want(0, cmdWebhook, secret+"\n", "set --type monitor-to-monitor --url https://erp.example.com/inkorg/m2m --secret-file -",
		"Saved the webhook for monitor-to-monitor", "https://erp.example.com/inkorg/m2m", "GET /api/v1/messages?type=monitor-to-monitor",
		"no incoming e-mail account has the type monitor-to-monitor"))
	keep(p.want(0, cmdWebhook, "", "set --type general --url http://127.0.0.1:9000/hook --secret-file "+file, "Saved the webhook for general"))
	keep(p.want(0, cmdWebhook, "", "list", "Webhooks", "monitor-to-monitor", "https://erp.example.com/inkorg/m2m", "http://127.0.0.1:9000/hook", "set"))
	r := keep(p.want(0, cmdWebhook, "", "list --json"))
	var list []struct{ Type, URL, Secret string }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Type != "general" || list[0].Secret != "set" || list[1].URL != "https://erp.example.com/inkorg/m2m" {
		t.Errorf("list --json %+v", list)
	}

	// Changing the URL keeps the secret.
	keep(p.want(0, cmdWebhook, "", "set --type monitor-to-monitor --url https://erp2.example.com/m2m", "https://erp2.example.com/m2m"))
	key := func(string) (*secrets.Sealer, error) {
		s, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(p.dir, "inkorg.key"), false)
		return s, err
	}
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: p.db, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := st.Webhooks(context.Background())
	st.Close()
	if err != nil || len(hooks) != 2 || hooks[1].URL != "https://erp2.example.com/m2m" || hooks[1].Secret.Reveal() != secret {
		t.Errorf("webhooks after a URL change: %+v %v", hooks, err)
	}

	keep(p.want(0, cmdWebhook, "", "remove --type general", "Removed the webhook for general"))
	keep(p.want(1, cmdWebhook, "", "remove --type general", "not found"))
	keep(p.want(2, cmdWebhook, "", "remove", "--type is required"))
	keep(p.want(0, cmdWebhook, "", "list", "monitor-to-monitor"))

	for _, r := range all {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("a command printed the secret:\n%s", r)
		}
	}
	if bytes.Contains(p.fileBytes(), []byte(secret)) {
		t.Error("the webhook secret is in the database files in plain text")
	}
}
