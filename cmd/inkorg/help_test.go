package main

import (
	"regexp"
	"strings"
	"testing"
)

// commandLines finds the commands a usage text lists: under "Commands:" (the main usage) each
// indented first word, and in a group's usage each indented line "GROUP a|b c|d  description",
// expanded to every combination.
func commandLines(usage, group string) [][]string {
	var out [][]string
	inCommands := false
	for _, line := range strings.Split(usage, "\n") {
		if group == "" {
			switch {
			case line == "Commands:":
				inCommands = true
			case inCommands && strings.HasPrefix(line, "  "):
				out = append(out, []string{strings.Fields(line)[0]})
			case inCommands:
				inCommands = false
			}
			continue
		}
		if line == "Flags:" {
			break // the flags' descriptions follow: not commands
		}
		if !strings.HasPrefix(line, "  "+group+" ") {
			continue
		}
		t := strings.TrimSpace(line)
		t, _, _ = strings.Cut(t, "  ") // the description follows two spaces
		combos := [][]string{{group}}
		for _, w := range strings.Fields(t)[1:] {
			if !regexp.MustCompile(`^[a-z][a-z|-]*$`).MatchString(w) {
				break
			}
			var next [][]string
			for _, c := range combos {
				for _, alt := range strings.Split(w, "|") {
					next = append(next, append(append([]string(nil), c...), alt))
				}
			}
			combos = next
		}
		if len(combos[0]) > 1 {
			out = append(out, combos...)
		}
	}
	return out
}

// TestHelpEveryCommand runs every command and subcommand the usage texts list with --help (exit 0,
// a usage line and an example) and with an unknown flag (exit 2 with the usage).
func TestHelpEveryCommand(t *testing.T) {
	c := newCLI(t)
	top := c.want(0, []string{"--help"}, "usage: inkorg COMMAND", "Example")
	var all [][]string
	for _, cmd := range commandLines(top.stdout, "") {
		all = append(all, cmd)
		r := c.run(cmd[0], "--help")
		all = append(all, commandLines(r.stdout+r.stderr, cmd[0])...)
	}
	if len(all) < 25 {
		t.Fatalf("found only %d commands: %v", len(all), all)
	}
	for _, cmd := range all {
		name := strings.Join(cmd, " ")
		t.Run(name, func(t *testing.T) {
			c := newCLI(t)
			r := c.run(append(cmd, "--help")...)
			if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "usage: inkorg "+cmd[0]) || !strings.Contains(strings.ToLower(r.stdout+r.stderr), "example") {
				t.Errorf("%s --help: want exit 0, a usage line and an example:\n%s", name, r)
			}
			r = c.run(append(cmd, "--no-such-flag")...)
			if r.code != 2 || !strings.Contains(r.stdout+r.stderr, "usage: inkorg") {
				t.Errorf("%s --no-such-flag: want exit 2 with the usage:\n%s", name, r)
			}
		})
	}
	t.Logf("%d commands checked", len(all))
}

// TestMissingArguments: a missing required argument gives the usage and exit 2.
func TestMissingArguments(t *testing.T) {
	c := newCLI(t)
	for _, tt := range []struct{ args, want string }{
		{"backup", "--to FILE is required"},
		{"token create", "usage: inkorg token create"},
		{"token revoke", "usage: inkorg token revoke"},
		{"webhook remove", "usage: inkorg webhook remove"},
		{"settings user show", "missing user NAME"},
		{"settings incoming show", "usage: inkorg settings incoming show"},
		{"emulator", "--dir is required"},
		{"doctor", "usage: inkorg doctor"},
		{"serve --addr", "flag needs an argument"},
	} {
		c.want(2, split(tt.args), tt.want, "usage: inkorg")
	}
}
