package config

import (
	"bytes"
	"fmt"
	"strings"
)

// DocPath is where the generated reference lives, relative to the repository's root.
const DocPath = "docs/configuration.md"

// Markdown is docs/configuration.md, generated from Serve's tags.
func Markdown() []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration of ` + "`inkorg serve`" + `

<!-- Generated from internal/config (the struct Serve) by "go run ./internal/config/gen": do not edit by
hand. A test fails when this file and the struct differ. -->

Every setting has a default and can be given in a config file, in the environment or as a flag. Each
layer overrides the one before:

1. the default;
2. the config file: ` + "`--config FILE`" + `, else ` + "`$" + ConfigEnv + "`" + ` (optional);
3. the environment variable (an empty variable counts as unset);
4. the flag on the command line.

An invalid value is refused at start with the setting's name and where the value came from (the file
and line, the variable, or the flag), and ` + "`inkorg serve`" + ` does not start.

## The config file

UTF-8 text, one ` + "`key = value`" + ` per line. Blank lines and lines starting with ` + "`#`" + ` are ignored; ` + "` #`" + `
after a value starts a comment. A value may be double-quoted (Go string syntax), then ` + "`#`" + ` inside it is
literal. An unknown key, a key given twice or a line without ` + "`=`" + ` is refused with ` + "`FILE:LINE`" + `.
Durations are written like ` + "`10s`, `2m`, `1h30m`" + `.

` + "```ini" + `
# /etc/inkorg/inkorg.conf
db = /var/lib/inkorg/inkorg.db
addr = 127.0.0.1:8025
log-format = json
log-level = info
` + "```" + `

Secrets are never configuration: the client secret, passwords and certificates are settings stored
sealed in the database (` + "`inkorg settings …`" + `), and the key file that seals them is named here
(` + "`key-file`" + `) but never holds a value in this file.

## Settings

| Key | Environment | Flag | Default | |
|---|---|---|---|---|
`)
	for _, f := range Fields() {
		def := "`" + f.Default + "`"
		if f.Default == "" {
			def = "—"
		}
		fmt.Fprintf(&b, "| [`%s`](#%s) | `%s` | `--%s` | %s | %s |\n", f.Key, f.Key, f.Env, f.Flag, def, f.Type)
	}
	for _, f := range Fields() {
		def := "`" + f.Default + "`"
		if f.Default == "" {
			def = "none"
		}
		fmt.Fprintf(&b, "\n### %s\n\n%s\n\n- Type: %s\n- Default: %s\n- Config file: `%s = …`\n- Environment: `%s`\n- Flag: `--%s`\n",
			f.Key, strings.TrimSpace(f.Doc), f.Type, def, f.Key, f.Env, f.Flag)
	}
	return b.Bytes()
}
