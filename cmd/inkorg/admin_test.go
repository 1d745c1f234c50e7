package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminCommands(t *testing.T) {
	c := newCLI(t)
	db := filepath.Join(c.dir, "inkorg.db")
	tests := []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"a long pass phrase\n", []string{"admin", "create", "alice", "--db", db}, 0, "Created the operator alice (admin)"},
		{"another long phrase\n", []string{"admin", "create", "ALICE", "--db", db}, 1, "already exists"},
		{"anna's long password\n", []string{"admin", "create", "anna", "--role", "user", "--user", "ANNA", "--db", db}, 0, "(user)"},
		{"anna's long password\n", []string{"admin", "create", "bo", "--role", "user", "--db", db}, 2, "needs --user"},
		{"anna's long password\n", []string{"admin", "create", "bo", "--role", "root", "--db", db}, 2, "use admin or user"},
		{"short\n", []string{"admin", "create", "bo", "--db", db}, 2, "too short"},
		{"", []string{"admin", "create", "bo", "--db", db}, 1, "empty"},
		{"", []string{"admin", "list", "--db", db}, 0, "ANNA"},
		{"", []string{"admin", "remove", "anna", "--db", db}, 0, "Removed the operator anna"},
		{"", []string{"admin", "remove", "anna", "--db", db}, 1, "No operator named anna"},
		{"", []string{"admin", "frobnicate"}, 2, "unknown admin command"},
	}
	for _, tt := range tests {
		r := c.runIn(tt.stdin, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.want) {
			t.Errorf("%s: %s; want exit %d and %q", strings.Join(tt.args, " "), r, tt.code, tt.want)
		}
	}
	r := c.runIn("", "admin", "list", "--json", "--db", db)
	if r.code != 0 || strings.Contains(r.stdout, "argon2") || !strings.Contains(r.stdout, `"name": "alice"`) {
		t.Errorf("admin list --json: %s", r)
	}
}
