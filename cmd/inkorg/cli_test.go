package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"inkorg/internal/testutil/pgtest"
)

// binary is the inkorg binary built once for the CLI tests.
var binary string

// pg is a throwaway PostgreSQL cluster for the tests that use --db postgres://.
var pg = pgtest.New()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "inkorg-cli-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "inkorg")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version=test-1.0 -X main.commit=abc123", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building inkorg: %v\n%s", err, out)
		os.Exit(1)
	}
	code := pg.Run(m) // starts a PostgreSQL cluster only if a test asks for a database
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the built binary in dir with a clean environment.
type cli struct {
	t   *testing.T
	dir string
	env []string
}

func newCLI(t *testing.T) *cli {
	dir := t.TempDir()
	return &cli{t: t, dir: dir, env: []string{"HOME=" + dir, "USER=tester", "PATH=" + os.Getenv("PATH")}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func (c *cli) runIn(stdin string, args ...string) result {
	c.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

func (c *cli) run(args ...string) result { c.t.Helper(); return c.runIn("", args...) }

// want runs a command and checks its exit code and that stdout+stderr contain each fragment.
func (c *cli) want(code int, args []string, fragments ...string) result {
	c.t.Helper()
	return c.check(c.run(args...), code, fragments...)
}

// check checks a result already run: its exit code and that stdout+stderr contain each fragment.
func (c *cli) check(r result, code int, fragments ...string) result {
	c.t.Helper()
	if r.code != code {
		c.t.Fatalf("%v: want exit %d, got %s", r, code, r)
	}
	for _, f := range fragments {
		if !strings.Contains(r.stdout+r.stderr, f) {
			c.t.Fatalf("output lacks %q:\n%s", f, r)
		}
	}
	return r
}

func (c *cli) file(name, content string) string {
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

const (
	appID     = "6f1d3c2a-9b7e-4e2f-8a11-3c5d7e9f0a21"
	secretVal = "Qx48Q~CliTestSecretValue.abcdefghij0123"
	secretID  = "3f2b8c1d-0a9e-4b7c-8d6f-5e4a3b2c1d0e"
	password  = "Webshop-Exchange-Pa55word!"
)

func split(s string) []string { return strings.Fields(s) }

func TestUsageAndVersion(t *testing.T) {
	c := newCLI(t)
	c.want(0, split("version"), "inkorg test-1.0 (commit abc123")
	c.want(2, nil, "no command given", "usage: inkorg COMMAND")
	c.want(2, split("frobnicate"), `unknown command "frobnicate"`)
	c.want(2, split("settings"), "missing procedure")
	c.want(2, split("settings system"), `missing action for "system"`)
	c.want(2, split("settings system set"), "nothing to set", "Example:")
	c.want(2, split("settings system set --port abc"), `invalid value "abc" for flag -port`)
	c.want(0, split("settings system set --help"), "usage: inkorg settings system set", "-client-secret-file")
	c.want(2, split("settings user set"), "missing user NAME")
	c.want(2, split("settings user show A B"), `unexpected argument "B"`)
	c.want(2, split("settings incoming add --address x@contoso.example"), "--address and --type are required")
	// Secrets are never accepted on the command line, where ps would show them.
	c.want(2, split("settings system set --client-secret "+secretVal), "flag provided but not defined: -client-secret")
	c.want(2, split("settings user set ANNA --exchange-password x"), "flag provided but not defined")
	// Reading commands do not create a database by accident.
	c.want(1, split("settings system show"), "no database at inkorg.db")
	if _, err := os.Stat(filepath.Join(c.dir, "inkorg.db")); err == nil {
		t.Fatal("show created a database")
	}
}

func TestSettingsEndToEnd(t *testing.T) {
	c := newCLI(t)
	secretFile := c.file("secret.txt", secretVal+"\n")
	secretIDFile := c.file("secret-id.txt", secretID+"\n")
	var all []result
	keep := func(r result) result { all = append(all, r); return r }

	// Refused: nothing is written.
	keep(c.want(1, split("settings system set --email-method exchange-online --tenant-id common --client-id "+appID),
		"Not saved", "system.tenantId", "multi-tenant"))
	keep(c.want(0, split("settings system show --json")))
	if r := c.run("settings", "system", "show", "--json"); !strings.Contains(r.stdout, `"emailMethod": ""`) {
		t.Fatalf("a refused set wrote something:\n%s", r)
	}
	keep(c.want(1, split("settings system set --email-method exchange-online --auth-flow client-secret --client-secret-file "+secretIDFile),
		"this looks like the Secret ID — paste the secret's Value"))
	keep(c.want(1, split("settings system set --email-method smtp --client-id "+appID), "Application (client) ID does not apply"))
	keep(c.want(1, split("settings system set --email-method smtp --port 70000"), "between 0 and 65535"))
	keep(c.want(1, split("settings system set --client-secret-expires 31-12-2026"), "write it as YYYY-MM-DD"))

	// Accepted, with what is still incomplete as warnings.
	r := keep(c.want(0, split("settings system set --email-method exchange-online --client-id "+appID+
		" --tenant-id contoso.onmicrosoft.com --auth-flow client-secret --client-secret-file "+secretFile+" --client-secret-expires 2099-12-31"),
		"Saved the system settings."))
	if strings.Contains(r.stderr, "to do") {
		t.Errorf("a complete system setting reported work to do:\n%s", r)
	}
	r = keep(c.want(0, split("settings system show")))
	for _, re := range []string{`Client secret\s+set\n`, `Server address\s+—\s+\(not used`, `Client certificate\s+—`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("system show does not match %s:\n%s", re, r.stdout)
		}
	}

	keep(c.want(0, split("settings webshop set --email-method according-to-user-settings"), "Saved", "to do: users[WEBSHOP].emailAddress"))
	keep(c.want(1, split("settings validate"), "error: users[WEBSHOP].emailAddress", "2 errors, 0 warnings."))
	r = keep(c.want(1, split("settings validate --json")))
	var v struct {
		OK       bool `json:"ok"`
		Problems []struct{ Path, Message, Severity string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.OK || len(v.Problems) != 2 {
		t.Fatalf("validate --json: %v %+v", err, v)
	}

	// The password of WEBSHOP does not apply under the client-secret flow...
	keep(c.check(c.runIn(password+"\n", split("settings user set WEBSHOP --email-method exchange-online --email-address webshop@contoso.example --exchange-password-file -")...),
		1, "Password (Exchange) is not used with the authentication flow Client secret"))
	keep(c.want(0, split("settings user set webshop --email-method exchange-online --email-address webshop@contoso.example"), "Saved the e-mail settings of WEBSHOP."))
	keep(c.want(0, split("settings validate"), "The settings are complete and valid."))

	// ...and is required under User name/Password, for the webshop.
	keep(c.want(0, split("settings system set --auth-flow username-password"),
		"to do: users[WEBSHOP].exchangeUsername", "to do: users[WEBSHOP].exchangePassword"))
	keep(c.want(1, split("settings validate"), "needs this user's Password (Exchange) (the webshop sends according to the user settings of WEBSHOP)"))
	keep(c.check(c.runIn(password+"\n", split("settings user set WEBSHOP --exchange-username webshop@contoso.example --exchange-password-file -")...), 0, "Saved"))
	keep(c.want(0, split("settings validate"), "The settings are complete and valid."))

	// Effective settings with sources.
	r = keep(c.want(0, split("settings user show WEBSHOP --effective --json")))
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatal(err)
	}
	type field struct {
		Value  any    `json:"value"`
		Source string `json:"source"`
	}
	eff := map[string]field{}
	for k, v := range raw {
		var f field
		if json.Unmarshal(v, &f) == nil {
			eff[k] = f
		}
	}
	for field, want := range map[string][2]any{
		"emailMethod": {"exchange-online", "user"}, "emailAddress": {"webshop@contoso.example", "user"},
		"exchangePassword": {"set", "user"}, "clientId": {appID, "system"}, "authFlow": {"username-password", "system"},
		"copyToSelf": {"none", "default"},
	} {
		if eff[field].Value != want[0] || eff[field].Source != want[1] {
			t.Errorf("effective %s = %+v, want %v", field, eff[field], want)
		}
	}
	keep(c.want(0, split("settings user show ANNA --effective"), "no settings of its own", "(system)"))
	keep(c.want(1, split("settings user show ANNA"), "has no e-mail settings of its own"))
	keep(c.want(0, split("settings user set ANNA --copy-to-self bcc --email-method inherit"), "Saved", "to do: users[ANNA].exchangeUsername"))
	keep(c.want(0, split("settings user set ANNA --inherit copy-to-self"), "Saved"))
	keep(c.want(2, split("settings user set ANNA --inherit colour"), `unknown field "colour"`))
	keep(c.want(0, split("settings user remove ANNA"), "Saved"))
	keep(c.want(0, split("settings user list"), "WEBSHOP"))

	// Incoming accounts.
	keep(c.want(1, split("settings incoming add --address m2m@contoso.example --type fax"), `unknown type "fax"`))
	keep(c.want(1, split("settings incoming add --address not-an-address --type general"), "not an e-mail address"))
	keep(c.want(0, split("settings incoming add --address m2m@contoso.example --type monitor-to-monitor --available-to SALES,PURCHASE"),
		"Saved", "to do: incoming[m2m@contoso.example].exchangePassword"))
	keep(c.want(1, split("settings incoming add --address M2M@contoso.example --type general"), "already registered"))
	keep(c.check(c.runIn(password, split("settings incoming set m2m@contoso.example --exchange-username m2m@contoso.example --exchange-password-file -")...), 0, "Saved"))
	keep(c.want(0, split("settings validate"), "complete and valid"))
	keep(c.want(0, split("settings system set --auth-flow client-secret")))
	keep(c.want(2, split("settings system set --clear colour"), `unknown value "colour"`))
	keep(c.want(1, split("settings incoming add --address invoices@contoso.example --type supplier-invoice --exchange-username inv"),
		"User name (Exchange) is not used with the authentication flow Client secret"))
	keep(c.want(0, split("settings incoming add --address invoices@contoso.example --type supplier-invoice --client-secret-file "+secretFile+" --client-secret-expires 2099-01-01")))
	keep(c.want(0, split("settings incoming list"), "m2m@contoso.example", "SALES, PURCHASE", "client secret"))
	r = keep(c.want(0, split("settings incoming show invoices@contoso.example --json")))
	if !strings.Contains(r.stdout, `"clientSecret": {
    "value": "set",
    "source": "account"`) || !strings.Contains(r.stdout, `"source": "system"`) {
		t.Errorf("incoming show --json:\n%s", r.stdout)
	}
	keep(c.want(0, split("settings incoming set invoices@contoso.example --inherit client-secret"), "Saved"))
	keep(c.want(1, split("settings incoming set invoices@contoso.example --processed-folder INBOX"), "must differ from the folder read"))
	keep(c.want(0, split("settings incoming set invoices@contoso.example --processed-folder ERP/Done --poll-interval 2m"), "Saved"))
	r = keep(c.want(0, split("settings incoming show invoices@contoso.example")))
	if !regexp.MustCompile(`Folder for processed mail\s+ERP/Done\s+\(account\)`).MatchString(r.stdout) || !regexp.MustCompile(`Poll interval\s+2m0s`).MatchString(r.stdout) {
		t.Errorf("incoming show:\n%s", r.stdout)
	}
	keep(c.want(0, split("settings incoming remove INVOICES@contoso.example"), "Saved"))
	keep(c.want(1, split("settings incoming remove invoices@contoso.example"), "not found"))
	keep(c.want(0, split("settings webshop show"), "according to user settings", "webshop@contoso.example"))
	keep(c.want(1, split("settings webshop set --email-method smtp"), "According to user settings"))

	r = keep(c.want(0, split("settings audit --limit 500"), "cli:tester", "system.clientSecret ", `"not set" → "set"`, `incoming[invoices@contoso.example].clientSecret`))
	keep(c.want(0, split("settings audit --json --limit 1"), `"actor": "cli:tester"`))

	// A secret can be removed (a dormant one, say, after a change of flow).
	keep(c.want(0, split("settings system set --clear client-secret"), "to do: system.clientSecret"))
	keep(c.want(0, split("settings system show --json"), `"clientSecret": "not set"`))

	// No secret anywhere in what the commands printed, nor in the database files.
	for _, r := range all {
		for _, s := range []string{secretVal, password} {
			if strings.Contains(r.stdout+r.stderr, s) {
				t.Errorf("a secret was printed:\n%s", r)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(c.dir, "inkorg.db*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(secretVal)) || bytes.Contains(b, []byte(password)) {
			t.Errorf("%s holds a secret in plain text", f)
		}
	}
}

func TestDatabaseAndKeyFile(t *testing.T) {
	c := newCLI(t)
	db := filepath.Join(c.dir, "data", "mail.db")
	os.MkdirAll(filepath.Dir(db), 0o700)
	c.want(0, split("settings system set --email-method smtp --server-address mail.example.com --db sqlite:"+db),
		"Created the key file "+filepath.Join(c.dir, "data", "mail.key"))
	c.env = append(c.env, "INKORG_DB="+db)
	c.want(0, split("settings system show"), "mail.example.com")
	fi, err := os.Stat(filepath.Join(c.dir, "data", "mail.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	// A lost key file is named, with what to do; no new key is made over the old secrets.
	os.Rename(filepath.Join(c.dir, "data", "mail.key"), filepath.Join(c.dir, "saved.key"))
	c.want(1, split("settings system show"), "does not exist: restore it from your backup, or set INKORG_KEY_FILE")
	if _, err := os.Stat(filepath.Join(c.dir, "data", "mail.key")); err == nil {
		t.Fatal("a new key file was created over a database that has one")
	}
	c.env = append(c.env, "INKORG_KEY_FILE="+filepath.Join(c.dir, "saved.key"))
	c.want(0, split("settings system show"), "mail.example.com")
	c.want(1, split("settings system show --db mysql://localhost/x"), "unknown database")
}

// TestPostgres runs the settings commands against PostgreSQL: the same behaviour as SQLite.
func TestPostgres(t *testing.T) {
	c := newCLI(t)
	dsn := pg.NewDatabase(t)
	c.want(1, []string{"settings", "system", "set", "--email-method", "smtp", "--db", dsn}, "set INKORG_KEY_FILE")
	c.env = append(c.env, "INKORG_KEY_FILE="+filepath.Join(c.dir, "pg.key"))
	c.want(0, []string{"settings", "system", "set", "--email-method", "smtp", "--server-address", "mail.example.com", "--db", dsn}, "Created the key file", "Saved")
	c.check(c.runIn(password, "settings", "incoming", "add", "--address", "in@example.com", "--type", "general", "--exchange-username", "in", "--exchange-password-file", "-", "--db", dsn), 0, "Saved")
	c.want(0, []string{"settings", "validate", "--db", dsn}, "complete and valid")
	r := c.want(0, []string{"settings", "audit", "--db", dsn}, "incoming[in@example.com].exchangePassword")
	if strings.Contains(r.stdout, password) {
		t.Error("the password is in the audit output")
	}
	// The wrong key file is named.
	c.env[len(c.env)-1] = "INKORG_KEY_FILE=" + filepath.Join(c.dir, "other.key")
	os.WriteFile(filepath.Join(c.dir, "other.key"), nil, 0o600)
	c.want(1, []string{"settings", "system", "show", "--db", dsn}, "key file")
}
