// Package config is the configuration of "inkorg serve": one typed struct, Serve, whose fields carry
// their own documentation (key, environment variable, flag, default, description). A configuration is
// built in layers, each overriding the one before: the defaults, an optional config file (--config FILE
// or $INKORG_CONFIG, "key = value" lines), the environment (INKORG_*), then the command line's flags.
// The reference docs/configuration.md is generated from the struct (Markdown), so it cannot drift.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Serve is everything "inkorg serve" is configured with. Each field's tags:
//
//	key      the name in a config file
//	env      the environment variable
//	flag     the command-line flag (without the dashes)
//	default  the default, as it would be written in a config file ("" for none)
//	doc      one sentence for --help and docs/configuration.md
type Serve struct {
	DB              string        `key:"db" env:"INKORG_DB" flag:"db" default:"inkorg.db" doc:"The database: sqlite:PATH, a file PATH (SQLite) or postgres://user@host/db. A relative path is relative to the working directory (with systemd: StateDirectory, /var/lib/inkorg)."`
	Addr            string        `key:"addr" env:"INKORG_ADDR" flag:"addr" default:"127.0.0.1:8025" doc:"Where the ERP's REST API listens, host:port. Port 0 lets the kernel choose."`
	Cloud           string        `key:"cloud" env:"INKORG_CLOUD" flag:"cloud" default:"" doc:"A cloud file (emulator.json format) with the Entra ID, IMAP, SMTP and Graph addresses and their CA; empty: Microsoft's global cloud."`
	KeyFile         string        `key:"key-file" env:"INKORG_KEY_FILE" flag:"key-file" default:"" doc:"The key file that seals the stored secrets; empty: the SQLite database's path with the extension .key. Required with PostgreSQL. Back it up with the database."`
	LogLevel        string        `key:"log-level" env:"INKORG_LOG_LEVEL" flag:"log-level" default:"info" doc:"The lowest level logged: debug, info, warn or error. Secrets are never logged, at any level."`
	LogFormat       string        `key:"log-format" env:"INKORG_LOG_FORMAT" flag:"log-format" default:"text" doc:"The log format on standard error: text (key=value) or json (one object per line, for journald or a log collector)."`
	ShutdownTimeout time.Duration `key:"shutdown-timeout" env:"INKORG_SHUTDOWN_TIMEOUT" flag:"shutdown-timeout" default:"10s" doc:"On SIGTERM, how long API requests in flight may take to finish before their connections are closed (1s to 10m). Ingestion batches in flight always finish or roll back whole."`
	Reload          time.Duration `key:"reload" env:"INKORG_RELOAD" flag:"reload" default:"5s" doc:"How often the settings are read again, so changes made with \"inkorg settings …\" take effect without a restart (1s to 1h)."`
	MaxBatches      int           `key:"max-batches" env:"INKORG_MAX_BATCHES" flag:"max-batches" default:"8" doc:"How many batches of incoming mail (up to 500 messages or 16 MiB each) may be in memory at once, across all mailboxes (1 to 256): it bounds ingestion's memory however many mailboxes catch up together; a mailbox with a backlog uses two when it can."`

	// sources records where each key's value came from: "default", "FILE:LINE", "$ENV" or "--flag".
	sources map[string]string
}

// Error is a problem with one setting: its key, where its value came from and what is wrong.
type Error struct {
	Key    string // the config-file key
	Source string // "default", "FILE:LINE", "$INKORG_…" or "--flag"
	Msg    string
}

func (e *Error) Error() string {
	if e.Source == "" {
		return fmt.Sprintf("%s: %s", e.Key, e.Msg)
	}
	return fmt.Sprintf("%s (from %s): %s", e.Key, e.Source, e.Msg)
}

// FromFlag reports whether the setting came from the command line (a usage error, then).
func (e *Error) FromFlag() bool { return strings.HasPrefix(e.Source, "--") }

// Field is one setting's documentation, read from the struct's tags.
type Field struct {
	Key, Env, Flag, Default, Doc string
	Type                         string // "string", "duration" or "integer"
	index                        int
}

// Fields lists the settings in the struct's order.
func Fields() []Field {
	t := reflect.TypeFor[Serve]()
	var fs []Field
	for i := range t.NumField() {
		sf := t.Field(i)
		key, ok := sf.Tag.Lookup("key")
		if !ok {
			continue
		}
		typ := "string"
		switch {
		case sf.Type == reflect.TypeFor[time.Duration]():
			typ = "duration"
		case sf.Type.Kind() == reflect.Int:
			typ = "integer"
		}
		fs = append(fs, Field{Key: key, Env: sf.Tag.Get("env"), Flag: sf.Tag.Get("flag"), Default: sf.Tag.Get("default"),
			Doc: sf.Tag.Get("doc"), Type: typ, index: i})
	}
	return fs
}

func fieldByKey(key string) (Field, bool) {
	for _, f := range Fields() {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// set parses a value into the field and records its source.
func (c *Serve) set(f Field, value, source string) error {
	v := reflect.ValueOf(c).Elem().Field(f.index)
	switch f.Type {
	case "duration":
		d, err := time.ParseDuration(strings.TrimSpace(value))
		if err != nil {
			return &Error{Key: f.Key, Source: source, Msg: fmt.Sprintf("%q is not a duration: write it like 10s, 2m or 1h30m", value)}
		}
		v.SetInt(int64(d))
	case "integer":
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return &Error{Key: f.Key, Source: source, Msg: fmt.Sprintf("%q is not a whole number", value)}
		}
		v.SetInt(int64(n))
	default:
		v.SetString(value)
	}
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	c.sources[f.Key] = source
	return nil
}

// Source says where a key's value came from: "default", "FILE:LINE", "$INKORG_…" or "--flag".
func (c *Serve) Source(key string) string {
	if s, ok := c.sources[key]; ok {
		return s
	}
	return "default"
}

// Defaults is the configuration before any file, environment variable or flag.
func Defaults() Serve {
	var c Serve
	for _, f := range Fields() {
		if f.Default != "" {
			if err := c.set(f, f.Default, "default"); err != nil {
				panic(fmt.Sprintf("config: the default of %s: %v", f.Key, err)) // a bug in a struct tag
			}
		}
	}
	c.sources = nil
	return c
}

// ApplyEnv overrides the settings whose environment variable is set (non-empty).
func (c *Serve) ApplyEnv(getenv func(string) string) error {
	var errs []error
	for _, f := range Fields() {
		if v := getenv(f.Env); v != "" {
			errs = append(errs, c.set(f, v, "$"+f.Env))
		}
	}
	return errors.Join(errs...)
}

// Validate checks every setting and returns all problems at once (each an *Error), or nil.
func (c *Serve) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Source: c.sources[key], Msg: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(c.DB) == "" {
		bad("db", "must not be empty: give a file path, sqlite:PATH or postgres://…")
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr", "%q is not host:port (e.g. 127.0.0.1:8025)", c.Addr)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("addr", "%q: the port must be a number from 0 to 65535", c.Addr)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q: use debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "%q: use text or json", c.LogFormat)
	}
	if c.ShutdownTimeout < time.Second || c.ShutdownTimeout > 10*time.Minute {
		bad("shutdown-timeout", "%s: use 1s to 10m", c.ShutdownTimeout)
	}
	if c.Reload < time.Second || c.Reload > time.Hour {
		bad("reload", "%s: use 1s to 1h", c.Reload)
	}
	if c.MaxBatches < 1 || c.MaxBatches > 256 {
		bad("max-batches", "%d: use 1 to 256", c.MaxBatches)
	}
	return errors.Join(errs...)
}

// Flags are the serve flags registered on a flag set: one per setting, and --config.
type Flags struct {
	fs     *flag.FlagSet
	config *string
	values map[string]*string // by key
}

// ConfigEnv is the environment variable that names a config file when --config is not given.
const ConfigEnv = "INKORG_CONFIG"

// AddFlags registers --config and a flag per setting on fs. After fs.Parse, Load builds the configuration.
func AddFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{fs: fs, values: map[string]*string{}}
	f.config = fs.String("config", "", "a config file of \"key = value\" lines (default $"+ConfigEnv+"; see docs/configuration.md)")
	for _, fl := range Fields() {
		def := fl.Default
		if def == "" {
			def = "none"
		}
		f.values[fl.Key] = fs.String(fl.Flag, "", fmt.Sprintf("%s (env %s, default %s)", fl.Doc, fl.Env, def))
	}
	return f
}

// Load builds the configuration: defaults, then the config file (--config, else $INKORG_CONFIG), then
// the environment, then the flags given on the command line; then Validate. Errors are *Error values
// (joined), or a *FileError for the config file.
func (f *Flags) Load(getenv func(string) string) (Serve, error) {
	c := Defaults()
	path := *f.config
	if path == "" {
		path = getenv(ConfigEnv)
	}
	if path != "" {
		if err := c.ApplyFile(path); err != nil {
			return c, err
		}
	}
	if err := c.ApplyEnv(getenv); err != nil {
		return c, err
	}
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var errs []error
	for _, fl := range Fields() {
		if given[fl.Flag] {
			errs = append(errs, c.set(fl, *f.values[fl.Key], "--"+fl.Flag))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}
