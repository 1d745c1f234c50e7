package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValidate(t *testing.T) {
	c := Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	if c.DB != "inkorg.db" || c.Addr != "127.0.0.1:8025" || c.LogLevel != "info" || c.LogFormat != "text" ||
		c.ShutdownTimeout != 10*time.Second || c.Reload != 5*time.Second || c.Cloud != "" || c.KeyFile != "" {
		t.Fatalf("defaults: %+v", c)
	}
	if c.Source("db") != "default" {
		t.Fatalf("source of db: %q", c.Source("db"))
	}
}

func TestFieldsAreDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Fields() {
		if f.Key == "" || f.Doc == "" || !strings.HasPrefix(f.Env, "INKORG_") || f.Flag == "" {
			t.Errorf("field %+v lacks a key, doc, INKORG_ variable or flag", f)
		}
		for _, n := range []string{"key:" + f.Key, "env:" + f.Env, "flag:" + f.Flag} {
			if seen[n] {
				t.Errorf("%s used twice", n)
			}
			seen[n] = true
		}
	}
}

// TestLayers checks the order default → file → environment → flags, and the sources.
func TestLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "inkorg.conf")
	os.WriteFile(file, []byte("# inkorg\n\ndb = /var/lib/inkorg/file.db\naddr = \"127.0.0.1:9000\" # quoted\nlog-level = debug\nreload = 2s\n"), 0o600)
	env := map[string]string{"INKORG_ADDR": "127.0.0.1:9100", "INKORG_LOG_FORMAT": "json", "INKORG_LOG_LEVEL": "", "INKORG_CONFIG": file}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c Serve)
	}{
		{"defaults only", nil, map[string]string{}, func(t *testing.T, c Serve) {
			if c.DB != "inkorg.db" || c.Source("addr") != "default" {
				t.Errorf("%+v", c)
			}
		}},
		{"file from the environment, env over file, flags over env", []string{"--addr", "127.0.0.1:0", "--shutdown-timeout", "30s", "--max-batches", "3"}, env, func(t *testing.T, c Serve) {
			want := map[string][2]string{
				"db":         {c.DB, "/var/lib/inkorg/file.db"},
				"addr":       {c.Addr, "127.0.0.1:0"},
				"log-level":  {c.LogLevel, "debug"},
				"log-format": {c.LogFormat, "json"},
			}
			for k, v := range want {
				if v[0] != v[1] {
					t.Errorf("%s = %q, want %q", k, v[0], v[1])
				}
			}
			if c.ShutdownTimeout != 30*time.Second || c.Reload != 2*time.Second {
				t.Errorf("durations: %v %v", c.ShutdownTimeout, c.Reload)
			}
			if c.MaxBatches != 3 || Defaults().MaxBatches != 8 {
				t.Errorf("max-batches = %d (default %d), want 3 (8)", c.MaxBatches, Defaults().MaxBatches)
			}
			for k, src := range map[string]string{"db": file + ":3", "addr": "--addr", "log-format": "$INKORG_LOG_FORMAT", "log-level": file + ":5", "cloud": "default"} {
				if c.Source(k) != src {
					t.Errorf("source of %s = %q, want %q", k, c.Source(k), src)
				}
			}
		}},
		{"--config over $INKORG_CONFIG", []string{"--config", filepath.Join(dir, "missing.conf")}, env, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c, err := f.Load(func(k string) string { return tt.env[k] })
			if tt.check == nil {
				var fe *FileError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), "missing.conf") {
					t.Fatalf("want a FileError naming missing.conf, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"db = x\ncolour = blue\n", `test.conf:2: unknown key "colour"`},
		{"db = x\n\ndb = y\n", "test.conf:3: db is already set on line 1"},
		{"# c\njust words\n", `test.conf:2: "just words": want key = value`},
		{" = x\n", "test.conf:1: no key before ="},
		{"addr = \"127.0.0.1:1\n", "test.conf:1: unterminated quoted value"},
		{"addr = \"a\" b\n", `test.conf:1: unexpected "b" after the quoted value`},
		{"shutdown-timeout = soon\n", `shutdown-timeout (from test.conf:1): "soon" is not a duration`},
		{"max-batches = eight\n", `max-batches (from test.conf:1): "eight" is not a whole number`},
		{"log-level = \xff\n", "test.conf:1: not valid UTF-8"},
	}
	for _, tt := range tests {
		c := Defaults()
		err := c.applySettings("test.conf", []byte(tt.file))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want %q", tt.file, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(c *Serve)
		want string
	}{
		{"empty db", func(c *Serve) { c.DB = " " }, "db: must not be empty"},
		{"addr without port", func(c *Serve) { c.Addr = "localhost" }, `addr: "localhost" is not host:port`},
		{"port too big", func(c *Serve) { c.Addr = "127.0.0.1:70000" }, "port must be a number from 0 to 65535"},
		{"level", func(c *Serve) { c.LogLevel = "loud" }, `log-level: "loud": use debug, info, warn or error`},
		{"format", func(c *Serve) { c.LogFormat = "xml" }, `log-format: "xml": use text or json`},
		{"shutdown", func(c *Serve) { c.ShutdownTimeout = 0 }, "shutdown-timeout: 0s: use 1s to 10m"},
		{"reload", func(c *Serve) { c.Reload = 2 * time.Hour }, "reload: 2h0m0s: use 1s to 1h"},
		{"max-batches", func(c *Serve) { c.MaxBatches = 0 }, "max-batches: 0: use 1 to 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.FromFlag() {
				t.Fatalf("want an *Error not from a flag, got %#v", err)
			}
		})
	}
	// The source is named, and all problems come at once.
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	f := AddFlags(fs)
	fs.Parse([]string{"--log-format", "xml"})
	_, err := f.Load(func(k string) string { return map[string]string{"INKORG_LOG_LEVEL": "loud"}[k] })
	if err == nil || !strings.Contains(err.Error(), "log-format (from --log-format)") || !strings.Contains(err.Error(), "log-level (from $INKORG_LOG_LEVEL)") {
		t.Fatalf("got %v", err)
	}
}

// TestDocUpToDate fails when docs/configuration.md is not what the struct generates: CI catches drift.
func TestDocUpToDate(t *testing.T) {
	path := filepath.Join("..", "..", DocPath)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go run ./internal/config/gen", err)
	}
	if want := Markdown(); !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the struct config.Serve: run go run ./internal/config/gen and commit the result", DocPath)
	}
	for _, f := range Fields() {
		if !bytes.Contains(got, []byte("`"+f.Env+"`")) {
			t.Errorf("%s lacks %s", DocPath, f.Env)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "db = x\n", "# c\n\naddr = \"a#b\" # c\n", "a=\"\\\"\n", "x\n", "\ufeffdb=1\r\nreload = 2s", "=\n", "k = \"unterminated"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ss, err := Parse("f", data)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FileError: %v", err)
			}
			return
		}
		for _, s := range ss {
			if s.Key == "" || s.Line < 1 || strings.ContainsAny(s.Key, "\n") {
				t.Fatalf("bad setting %+v", s)
			}
		}
		c := Defaults()
		_ = c.applySettings("f", data)
	})
}
