package dist

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"inkorg/internal/config"
)

// unit is a parsed systemd unit file: section → key → values (a key may repeat).
type unit map[string]map[string][]string

// parseUnit reads the unit file syntax this repository uses: [Section] headers, Key=Value lines,
// comments (# or ;) and blank lines. Continuation lines (a trailing backslash) are refused: the unit
// does not use them.
func parseUnit(data string) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if section == "" {
				return nil, fmt.Errorf("line %d: empty section name", n)
			}
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		case strings.HasSuffix(line, `\`):
			return nil, fmt.Errorf("line %d: continuation lines are not used here", n)
		default:
			k, v, ok := strings.Cut(line, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				return nil, fmt.Errorf("line %d: want Key=Value, got %q", n, line)
			}
			if section == "" {
				return nil, fmt.Errorf("line %d: %s outside a section", n, k)
			}
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

func readUnit(t *testing.T) (string, unit) {
	t.Helper()
	b, err := os.ReadFile("inkorg.service")
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(b))
	if err != nil {
		t.Fatalf("inkorg.service: %v", err)
	}
	return string(b), u
}

// TestUnitSandboxing checks the unit's keys: how it runs serve, and that its sandboxing stays.
func TestUnitSandboxing(t *testing.T) {
	_, u := readUnit(t)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("no [%s] section", s)
		}
	}
	svc := u["Service"]
	want := map[string]string{
		"DynamicUser":     "yes",
		"StateDirectory":  "inkorg",
		"ProtectSystem":   "strict",
		"ProtectHome":     "yes",
		"NoNewPrivileges": "yes",
		"PrivateTmp":      "yes",
		"PrivateDevices":  "yes",
		"KillSignal":      "SIGTERM",
		"Restart":         "on-failure",
		"UMask":           "0077",
	}
	for k, v := range want {
		if got := svc[k]; len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	if got := svc["CapabilityBoundingSet"]; len(got) != 1 || got[0] != "" {
		t.Errorf("[Service] CapabilityBoundingSet = %q, want empty (no capabilities)", got)
	}
	if got := strings.Join(svc["RestrictAddressFamilies"], " "); !regexp.MustCompile(`^AF_INET AF_INET6 AF_UNIX$`).MatchString(got) {
		t.Errorf("[Service] RestrictAddressFamilies = %q", got)
	}
	if got := svc["ExecStart"]; len(got) != 1 || !regexp.MustCompile(`^/\S+/inkorg serve( |$)`).MatchString(got[0]) {
		t.Errorf("[Service] ExecStart = %q, want an absolute path to inkorg serve", got)
	}
	if got := svc["EnvironmentFile"]; len(got) != 1 || got[0] != "-/etc/inkorg/inkorg.env" {
		t.Errorf("[Service] EnvironmentFile = %q", got)
	}
	for _, e := range svc["Environment"] {
		k, _, _ := strings.Cut(e, "=")
		if !knownEnv(k) {
			t.Errorf("[Service] Environment=%s: inkorg does not read %s", e, k)
		}
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy = %q", got)
	}
}

func knownEnv(name string) bool {
	if name == config.ConfigEnv {
		return true
	}
	for _, f := range config.Fields() {
		if f.Env == name {
			return true
		}
	}
	return false
}

// TestEnvFile checks that inkorg.env names only variables inkorg reads, set or commented out.
func TestEnvFile(t *testing.T) {
	b, err := os.ReadFile("inkorg.env")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^#?(INKORG_[A-Z_]+)=`)
	n := 0
	for i, line := range strings.Split(string(b), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			n++
			if !knownEnv(m[1]) {
				t.Errorf("inkorg.env:%d: inkorg does not read %s", i+1, m[1])
			}
		}
	}
	if n < 3 {
		t.Errorf("inkorg.env names %d variables", n)
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit (with ExecStart pointing at an executable
// that exists here, as verify requires). Needs the Debian package systemd.
func TestUnitVerifies(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: install the Debian package systemd")
	}
	text, _ := readUnit(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "inkorg")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	text = strings.Replace(text, "ExecStart=/usr/local/bin/inkorg", "ExecStart="+bin, 1)
	path := filepath.Join(dir, "inkorg.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", "--man=no", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify reports unknown keys and bad values as warnings with exit 0: none is allowed.
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, "inkorg.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
}

func FuzzParseUnit(f *testing.F) {
	for _, s := range []string{"", "[Service]\nA=b\n", "A=b\n", "[]\n", "[S]\nno equals\n", "[S]\nK=v \\\n", "# c\n; c\n[S]\nK=\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseUnit(s)
		if err != nil {
			return
		}
		for sec, kv := range u {
			for k := range kv {
				if sec == "" || k == "" {
					t.Fatalf("empty section or key in %q", s)
				}
			}
		}
	})
}
