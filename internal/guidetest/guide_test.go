package guidetest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"inkorg/internal/emulator"
	"inkorg/internal/emulator/scenario"
)

// The guide's conventions (see the comment at the top of docs/entra-setup.md):
//   - only ```sh blocks are commands; the words after "sh" are the flows the block is for (none: all);
//   - a trailing backslash continues a line; a line starting with # is a comment;
//   - "# ✓ STEP" after an `inkorg doctor` line names the doctor step that must now show ✓;
//   - <name> is a placeholder the reader (and this test) fills in.

// knownFlows are the authentication flows a block can be limited to.
func knownFlows() []string { return []string{"client-secret", "certificate", "username-password"} }

// doctorSteps are the step names `inkorg doctor` prints.
func doctorSteps() []string {
	return []string{"settings", "token", "claims", "connect/TLS", "authenticate", "select INBOX", "test send"}
}

// programs are the commands a guide's sh block may contain.
func programs() []string { return []string{"inkorg", "openssl"} }

// command is one command line of the guide.
type command struct {
	Flows   []string // the flows the block is for; empty means every flow
	Args    []string // the words, placeholders not yet filled in
	Expect  string   // the doctor step that must pass ("" for none)
	Heading string   // the nearest heading above, for messages
	Line    int      // 1-based line of the command in the guide
}

// Text is the command as one line, quoted where needed: what the two languages must agree on.
func (c command) Text() string {
	words := make([]string, len(c.Args))
	for i, a := range c.Args {
		if a == "" || strings.ContainsAny(a, " \t'\"#\\") {
			a = "'" + a + "'"
		}
		words[i] = a
	}
	return strings.Join(words, " ")
}

func (c command) forFlow(flow string) bool {
	return len(c.Flows) == 0 || slices.Contains(c.Flows, flow)
}

func (c command) String() string {
	s := fmt.Sprintf("line %d (%s): %s", c.Line, c.Heading, c.Text())
	if c.Expect != "" {
		s += "   # ✓ " + c.Expect
	}
	return s
}

// parseGuide returns the commands of a guide's sh blocks, in order.
func parseGuide(md string) ([]command, error) {
	var (
		cmds    []command
		heading string
		inFence bool
		isSh    bool
		fFlows  []string
		pending string // a logical line being continued with a backslash
		start   int
	)
	lines := strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n")
	for i, line := range lines {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if !inFence {
			switch {
			case strings.HasPrefix(trimmed, "```"):
				inFence = true
				info := strings.Fields(strings.TrimPrefix(trimmed, "```"))
				isSh = len(info) > 0 && info[0] == "sh"
				fFlows = nil
				if isSh {
					for _, f := range info[1:] {
						if !slices.Contains(knownFlows(), f) {
							return nil, fmt.Errorf("line %d: unknown flow %q after ```sh; use %s", n, f, strings.Join(knownFlows(), ", "))
						}
						fFlows = append(fFlows, f)
					}
				}
			case strings.HasPrefix(trimmed, "#"):
				heading = strings.TrimSpace(strings.TrimLeft(trimmed, "#"))
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			if pending != "" {
				return nil, fmt.Errorf("line %d: the block ends inside a continued line", n)
			}
			inFence, isSh = false, false
			continue
		}
		if !isSh {
			continue
		}
		if pending == "" {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			pending += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		logical := pending + trimmed
		pending = ""
		if logical == "" || strings.HasPrefix(logical, "#") {
			continue
		}
		args, comment, err := splitWords(logical)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start, err)
		}
		c := command{Flows: fFlows, Args: args, Heading: heading, Line: start}
		if !slices.Contains(programs(), args[0]) {
			return nil, fmt.Errorf("line %d: %q is not a command the guide may use (%s)", start, args[0], strings.Join(programs(), ", "))
		}
		if step, ok := strings.CutPrefix(strings.TrimSpace(comment), "✓"); ok {
			c.Expect = strings.TrimSpace(step)
			if !slices.Contains(doctorSteps(), c.Expect) {
				return nil, fmt.Errorf("line %d: %q is not a doctor step (%s)", start, c.Expect, strings.Join(doctorSteps(), ", "))
			}
			if len(args) < 2 || args[0] != "inkorg" || args[1] != "doctor" {
				return nil, fmt.Errorf("line %d: \"# ✓ %s\" belongs after an inkorg doctor line", start, c.Expect)
			}
		}
		cmds = append(cmds, c)
	}
	if inFence {
		return nil, errors.New("a code block is not closed")
	}
	return cmds, nil
}

// splitWords splits a shell line into words (single and double quotes, backslash escapes) and
// returns the comment that follows an unquoted # at the start of a word.
func splitWords(s string) (words []string, comment string, err error) {
	var (
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' && i+1 < len(rs) && strings.ContainsRune(`"\$`+"`", rs[i+1]) {
				escaped = true
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '<' && placeholderRE.MatchString(string(rs[i:])) && placeholderRE.FindStringIndex(string(rs[i:]))[0] == 0:
			p := placeholderRE.FindString(string(rs[i:])) // a placeholder, not a redirection
			cur.WriteString(p)
			i += len([]rune(p)) - 1
			inWord = true
		case r == '#' && !inWord:
			return finishWords(words, cur.String(), inWord), string(rs[i+1:]), nil
		case strings.ContainsRune("|&;<>()$`", r):
			return nil, "", fmt.Errorf("the guide's commands are plain command lines; %q (shell syntax) cannot be checked", r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, "", errors.New("unclosed quote")
	}
	if escaped {
		return nil, "", errors.New("a backslash ends the line")
	}
	words = finishWords(words, cur.String(), inWord)
	if len(words) == 0 {
		return nil, "", errors.New("an empty command")
	}
	return words, "", nil
}

func finishWords(words []string, cur string, inWord bool) []string {
	if inWord {
		words = append(words, cur)
	}
	return words
}

var placeholderRE = regexp.MustCompile(`<([a-z0-9-]+)>`)

// fill replaces the placeholders of args; an unknown placeholder is an error.
func fill(args []string, values map[string]string) ([]string, error) {
	out := make([]string, len(args))
	var missing []string
	for i, a := range args {
		out[i] = placeholderRE.ReplaceAllStringFunc(a, func(p string) string {
			v, ok := values[p[1:len(p)-1]]
			if !ok {
				missing = append(missing, p)
			}
			return v
		})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no value for %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

func readGuide(t *testing.T, name string) (string, []command) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := parseGuide(string(b))
	if err != nil {
		t.Fatalf("docs/%s: %v", name, err)
	}
	return string(b), cmds
}

// buildInkorg builds the inkorg binary into a temporary directory.
func buildInkorg(t *testing.T, ctx context.Context) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "inkorg")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/inkorg")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/inkorg: %v\n%s", err, out)
	}
	return bin
}

// readInfo reads emulator.json, as a reader of the guide would.
func readInfo(t *testing.T, path string) emulator.Info {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var info emulator.Info
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return info
}

func mailbox(t *testing.T, info emulator.Info, local string) string {
	t.Helper()
	for _, m := range info.Mailboxes {
		if strings.HasPrefix(m, local+"@") {
			return m
		}
	}
	t.Fatalf("emulator.json has no mailbox %s@…", local)
	return ""
}

func password(t *testing.T, info emulator.Info, upn string) string {
	t.Helper()
	for _, u := range info.Users {
		if strings.EqualFold(u.UPN, upn) {
			return u.Password
		}
	}
	t.Fatalf("emulator.json has no user %s", upn)
	return ""
}

func app(t *testing.T, info emulator.Info, public bool) emulator.InfoApp {
	t.Helper()
	for _, a := range info.Apps {
		if a.PublicClient == public && (public || a.ClientSecret != "") {
			return a
		}
	}
	t.Fatalf("emulator.json has no app with publicClient=%v", public)
	return emulator.InfoApp{}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// reader is someone following the guide for one flow: a working directory, the inkorg binary, the
// emulator, the placeholder values and the secrets that must not show in any output.
type reader struct {
	t       *testing.T
	ctx     context.Context
	bin     string
	dir     string
	env     []string
	values  map[string]string
	secrets []string
}

// run runs one command of the guide and checks it as the guide says.
func (r *reader) run(c command) {
	t := r.t
	t.Helper()
	args, err := fill(c.Args, r.values)
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	prog := r.bin
	if args[0] != "inkorg" {
		if prog, err = exec.LookPath(args[0]); err != nil {
			t.Fatalf("%s: %s is not installed (Debian package %q): %v", c, args[0], args[0], err)
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args[1:]...)
	cmd.Dir, cmd.Env = r.dir, r.env
	out, err := cmd.CombinedOutput()
	text := string(out)
	for _, s := range r.secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s: a secret or password shows in the output", c)
		}
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", c, err, text)
	}
	if c.Expect == "" {
		return
	}
	if !passed(text, c.Expect) {
		t.Fatalf("%s: the step %q is not ✓\n%s", c, c.Expect, text)
	}
	if !strings.Contains(text, "All checks passed.") {
		t.Fatalf("%s: the report does not end with \"All checks passed.\"\n%s", c, text)
	}
	t.Logf("%s\n%s", c, text)
}

// passed reports whether the doctor's text report shows step with ✓.
func passed(report, step string) bool {
	for _, l := range strings.Split(report, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), "✓ "+step)
		if ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return true
		}
	}
	return false
}

// startEmulator starts the emulator in-process with sc (nil: the default scenario).
func startEmulator(t *testing.T, ctx context.Context, sc *scenario.Scenario) *emulator.Emulator {
	t.Helper()
	emu, err := emulator.New(emulator.Config{Dir: t.TempDir(), Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu
}

// TestGuideAgainstEmulator follows docs/entra-setup.md for each authentication flow against a fresh
// emulator (whose tenant is set up as the guide's portal and PowerShell steps leave it): every
// settings line must succeed and every doctor line must pass, with the step it names ✓.
func TestGuideAgainstEmulator(t *testing.T) {
	ctx := t.Context()
	_, cmds := readGuide(t, "entra-setup.md")
	bin := buildInkorg(t, ctx)

	tests := []struct {
		flow string
		// setup starts the emulator and returns the placeholder values, the secrets, and the
		// addresses that must have received the doctor's test message.
		setup func(t *testing.T, dir string, cmds []command) (*emulator.Emulator, map[string]string, []string)
	}{
		{"client-secret", func(t *testing.T, dir string, _ []command) (*emulator.Emulator, map[string]string, []string) {
			emu := startEmulator(t, ctx, nil)
			info := readInfo(t, emu.InfoFile())
			a := app(t, info, false)
			var expires time.Time
			for _, sa := range emu.Scenario().Apps {
				if sa.ClientID == a.ClientID && len(sa.Secrets) > 0 {
					expires = sa.Secrets[0].Expires
				}
			}
			if expires.IsZero() {
				t.Fatal("the emulator's secret has no expiry date")
			}
			return emu, map[string]string{
				"client-id":       a.ClientID,
				"tenant-id":       info.TenantID,
				"secret-file":     writeFile(t, dir, "secret.txt", a.ClientSecret),
				"secret-expiry":   expires.UTC().Format("2006-01-02"),
				"mailbox":         mailbox(t, info, "m2m"),
				"webshop-address": mailbox(t, info, "webshop"),
				"test-recipient":  mailbox(t, info, "anna"),
			}, []string{a.ClientSecret}
		}},
		{"username-password", func(t *testing.T, dir string, _ []command) (*emulator.Emulator, map[string]string, []string) {
			emu := startEmulator(t, ctx, nil)
			info := readInfo(t, emu.InfoFile())
			// A shared mailbox read by a user with FullAccess on it, and the webshop's own account.
			anna, webshop := mailbox(t, info, "anna"), mailbox(t, info, "webshop")
			return emu, map[string]string{
				"client-id":             app(t, info, true).ClientID,
				"tenant-id":             info.TenantID,
				"mailbox":               mailbox(t, info, "info"),
				"mailbox-user":          anna,
				"mailbox-password-file": writeFile(t, dir, "anna.txt", password(t, info, anna)),
				"webshop-address":       webshop,
				"webshop-user":          webshop,
				"webshop-password-file": writeFile(t, dir, "webshop.txt", password(t, info, webshop)),
				"test-recipient":        mailbox(t, info, "erik"),
			}, []string{password(t, info, anna), password(t, info, webshop)}
		}},
		{"certificate", func(t *testing.T, dir string, cmds []command) (*emulator.Emulator, map[string]string, []string) {
			// Entra ID learns the certificate when it is uploaded (step 2B); the emulator must know it
			// when it starts. So the guide's openssl lines run first, then the emulator starts with the
			// certificate they made on the app.
			pre := &reader{t: t, ctx: ctx, dir: dir, env: os.Environ(), values: map[string]string{}}
			var made bool
			for _, c := range cmds {
				if c.Args[0] == "openssl" {
					pre.run(c)
					made = true
				}
			}
			if !made {
				t.Fatal("the guide has no openssl line for the certificate flow")
			}
			pemBytes, err := os.ReadFile(filepath.Join(dir, "inkorg-cert.pem"))
			if err != nil {
				t.Fatalf("the guide's openssl line should write inkorg-cert.pem: %v", err)
			}
			sc := scenario.Default(time.Now())
			if err := sc.RandomizeCredentials(rand.Reader); err != nil {
				t.Fatal(err)
			}
			sc.Apps[0].Certificates = append(sc.Apps[0].Certificates, scenario.Certificate{PEM: string(pemBytes)})
			emu := startEmulator(t, ctx, sc)
			info := readInfo(t, emu.InfoFile())
			key, err := os.ReadFile(filepath.Join(dir, "inkorg-key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			return emu, map[string]string{
				"client-id":       sc.Apps[0].ClientID,
				"tenant-id":       info.TenantID,
				"mailbox":         mailbox(t, info, "m2m"),
				"webshop-address": mailbox(t, info, "webshop"),
				"test-recipient":  mailbox(t, info, "anna"),
			}, []string{strings.Split(string(key), "\n")[1]} // a line of the key's base64
		}},
	}
	for _, tt := range tests {
		t.Run(tt.flow, func(t *testing.T) {
			t.Parallel()
			var mine []command
			for _, c := range cmds {
				if c.forFlow(tt.flow) {
					mine = append(mine, c)
				}
			}
			dir := t.TempDir()
			emu, values, secrets := tt.setup(t, dir, mine)
			r := &reader{t: t, ctx: ctx, bin: bin, dir: dir, values: values, secrets: secrets,
				env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "INKORG_DB=sqlite:" + filepath.Join(dir, "inkorg.db"),
					"INKORG_CLOUD=" + emu.InfoFile()}}
			var doctors, sends int
			for _, c := range mine {
				if c.Args[0] == "openssl" {
					continue // ran before the emulator started
				}
				r.run(c)
				if c.Expect != "" {
					doctors++
				}
				if slices.Contains(c.Args, "--send-to") {
					sends++
				}
			}
			if doctors < 5 {
				t.Errorf("the guide checks the %s flow with %d doctor lines; every step should name its check", tt.flow, doctors)
			}
			// The doctor's test messages arrived.
			ms, err := emu.Store().Messages(values["test-recipient"], "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for _, m := range ms {
				if strings.Contains(m.Subject, "inkorg doctor") {
					got++
				}
			}
			if got != sends {
				t.Errorf("%s received %d test messages, want %d (one per doctor line with --send-to)", values["test-recipient"], got, sends)
			}
		})
	}
}

// TestSwedishGuideHasTheSameSteps checks that docs/entra-setup.sv.md gives the same commands, for
// the same flows and with the same doctor checks, in the same order as the English guide.
func TestSwedishGuideHasTheSameSteps(t *testing.T) {
	_, en := readGuide(t, "entra-setup.md")
	_, sv := readGuide(t, "entra-setup.sv.md")
	key := func(c command) string {
		return fmt.Sprintf("[%s] %s # ✓ %s", strings.Join(c.Flows, " "), c.Text(), c.Expect)
	}
	for i := 0; i < max(len(en), len(sv)); i++ {
		switch {
		case i >= len(sv):
			t.Errorf("the Swedish guide lacks the English guide's %s", en[i])
		case i >= len(en):
			t.Errorf("the Swedish guide has a command the English guide lacks: %s", sv[i])
		case key(en[i]) != key(sv[i]):
			t.Errorf("command %d differs:\n  en %s\n  sv %s", i+1, en[i], sv[i])
		}
	}
	if len(en) < 10 {
		t.Errorf("the English guide has only %d commands", len(en))
	}
}

// TestGuidesSpeakTheSeedsLanguage checks that each guide names the settings with the labels of the
// help page in its language, and explains every placeholder its commands use.
func TestGuidesSpeakTheSeedsLanguage(t *testing.T) {
	tests := []struct {
		file   string
		labels []string
	}{
		{"entra-setup.md", []string{"E-mail method", "Server based, via Microsoft Exchange Online", "Application (client) ID",
			"Directory (tenant) ID", "Authentication flow", "Client secret", "User name/Password", "User name (Exchange)",
			"Password (Exchange)", "WEBSHOP", "According to user settings", "Settings for incoming e-mail", "Value", "Secret ID"}},
		{"entra-setup.sv.md", []string{"Metod för e-post", "Serverbaserat, via Microsoft Exchange Online", "Program-ID (klient)",
			"Katalog-ID (klientorganisation)", "Autentiseringsflöde", "Klienthemlighet", "Användarnamn/Lösenord",
			"Användarnamn (Exchange)", "Lösenord (Exchange)", "WEBSHOP", "Enligt användarinställningar",
			"Inställningar för inkommande e-post", "Värde"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			md, cmds := readGuide(t, tt.file)
			for _, l := range tt.labels {
				if !strings.Contains(md, l) {
					t.Errorf("%s never says %q", tt.file, l)
				}
			}
			// Every placeholder of a command is explained in a table row of the guide.
			var rows strings.Builder
			for _, l := range strings.Split(md, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "|") {
					rows.WriteString(l + "\n")
				}
			}
			seen := map[string]bool{}
			for _, c := range cmds {
				for _, a := range c.Args {
					for _, p := range placeholderRE.FindAllString(a, -1) {
						if !seen[p] && !strings.Contains(rows.String(), "`"+p+"`") {
							t.Errorf("%s: the placeholder %s (line %d) is not explained in a table", tt.file, p, c.Line)
						}
						seen[p] = true
					}
				}
			}
		})
	}
}

func TestParseGuide(t *testing.T) {
	tests := []struct {
		name    string
		md      string
		want    []string // key: flows | text | expect
		wantErr string
	}{
		{"plain", "# H\n```sh\ninkorg settings validate\n```\n", []string{"|inkorg settings validate|"}, ""},
		{"flows, comments, continuation and check", "## Step\n```sh client-secret certificate\n# a comment\ninkorg doctor --account \\\n  <mailbox>   # ✓ select INBOX\n\n```\n",
			[]string{"client-secret certificate|inkorg doctor --account <mailbox>|select INBOX"}, ""},
		{"other languages are prose", "```powershell\nNew-ServicePrincipal -AppId x\n```\n```text\n  ✗ token\n```\n", nil, ""},
		{"quotes", "```sh certificate\nopenssl req -subj \"/CN=inkorg x\" -out 'a b.pem'\n```\n", []string{"certificate|openssl req -subj '/CN=inkorg x' -out 'a b.pem'|"}, ""},
		{"unknown flow", "```sh client-credentials\ninkorg x\n```\n", nil, "unknown flow"},
		{"unknown program", "```sh\ncurl https://example.com\n```\n", nil, "not a command the guide may use"},
		{"shell syntax", "```sh\ninkorg settings system set --client-secret-file - < secret.txt\n```\n", nil, "shell syntax"},
		{"unknown step", "```sh\ninkorg doctor --webshop  # ✓ send\n```\n", nil, "not a doctor step"},
		{"check on a settings line", "```sh\ninkorg settings validate  # ✓ settings\n```\n", nil, "belongs after an inkorg doctor line"},
		{"unclosed block", "```sh\ninkorg settings validate\n", nil, "not closed"},
		{"continued into the fence", "```sh\ninkorg settings \\\n```\n", nil, "continued line"},
		{"unclosed quote", "```sh\ninkorg settings user set \"ANNA\n```\n", nil, "unclosed quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds, err := parseGuide(tt.md)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cmds {
				got = append(got, strings.Join(c.Flows, " ")+"|"+c.Text()+"|"+c.Expect)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestFill(t *testing.T) {
	got, err := fill([]string{"--address", "<mailbox>", "--x=<a>/<a>"}, map[string]string{"mailbox": "m@x.example", "a": "1"})
	if err != nil || !slices.Equal(got, []string{"--address", "m@x.example", "--x=1/1"}) {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := fill([]string{"<nope>"}, nil); err == nil || !strings.Contains(err.Error(), "<nope>") {
		t.Errorf("an unknown placeholder: err = %v", err)
	}
}

func FuzzParseGuide(f *testing.F) {
	for _, s := range []string{
		"# H\n```sh client-secret\ninkorg doctor --account <mailbox>   # ✓ token\n```\n",
		"```sh\ninkorg settings \\\n  validate\n```\n",
		"```sh\nopenssl req -subj \"/CN=a \\\"b\\\"\" -nodes\n```\n",
		"```sh\ninkorg 'unclosed\n```\n",
		"```\n```sh\n",
	} {
		f.Add(s)
	}
	if b, err := os.ReadFile(filepath.Join("..", "..", "docs", "entra-setup.md")); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, md string) {
		cmds, err := parseGuide(md)
		if err != nil {
			return
		}
		for _, c := range cmds {
			if len(c.Args) == 0 || !slices.Contains(programs(), c.Args[0]) {
				t.Fatalf("a command without a known program: %q", c.Args)
			}
			if c.Expect != "" && !slices.Contains(doctorSteps(), c.Expect) {
				t.Fatalf("an unknown step %q", c.Expect)
			}
			for _, fl := range c.Flows {
				if !slices.Contains(knownFlows(), fl) {
					t.Fatalf("an unknown flow %q", fl)
				}
			}
		}
	})
}
