package cloud

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	g := Global()
	if g.Custom || g.IMAP != "outlook.office365.com:993" || g.SMTP != "smtp.office365.com:587" {
		t.Fatalf("Global: %+v", g)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file loaded")
	}
	tests := []struct {
		name, body, wantErr string
	}{
		{"bad json", `{`, "unexpected end"},
		{"http authority", `{"authority":"http://127.0.0.1:1","imap":"127.0.0.1:2","smtp":"127.0.0.1:3"}`, "must be https"},
		{"no port", `{"authority":"https://127.0.0.1:1","imap":"127.0.0.1","smtp":"127.0.0.1:3"}`, `imap "127.0.0.1" must be host:port`},
		{"ca missing", `{"authority":"https://127.0.0.1:1","imap":"127.0.0.1:2","smtp":"127.0.0.1:3","caFile":"nope.pem"}`, "CA"},
		{"ca not pem", `{"authority":"https://127.0.0.1:1","imap":"127.0.0.1:2","smtp":"127.0.0.1:3","caFile":"junk.pem"}`, "no PEM certificate"},
		{"ok", `{"authority":"https://127.0.0.1:1/","imap":"127.0.0.1:2","smtp":"127.0.0.1:3","graph":"https://127.0.0.1:1/v1.0"}`, ""},
	}
	write("junk.pem", "hello")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Load(write(tt.name+".json", tt.body))
			if tt.wantErr == "" {
				if err != nil || !e.Custom || e.Authority != "https://127.0.0.1:1" || e.Graph != "https://127.0.0.1:1/v1.0" {
					t.Fatalf("Load = %+v, %v", e, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
