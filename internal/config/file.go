package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The config file is UTF-8 text, one setting per line:
//
//	# a comment (a line whose first non-blank character is #)
//	db = /var/lib/inkorg/inkorg.db
//	log-format = json
//	addr = "127.0.0.1:8025"          # a value may be double-quoted (Go syntax); then # is literal
//
// Blank lines and comments are ignored. Keys are those of Serve (see Fields); an unknown key, a key
// given twice, or a line without "=" is refused with FILE:LINE.

// FileError is a problem in a config file, with its place.
type FileError struct {
	File string
	Line int // 1-based; 0 for the file as a whole
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Setting is one "key = value" line of a config file.
type Setting struct {
	Key, Value string
	Line       int
}

// maxFileSize bounds a config file: it holds a handful of lines.
const maxFileSize = 1 << 20

// Parse reads the "key = value" lines of a config file named name (for errors). It checks the syntax
// only; ApplyFile checks the keys and values.
func Parse(name string, data []byte) ([]Setting, error) {
	if len(data) > maxFileSize {
		return nil, &FileError{File: name, Msg: fmt.Sprintf("larger than %d bytes: is this the right file?", maxFileSize)}
	}
	var out []Setting
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxFileSize+1)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if !utf8.ValidString(line) {
			return nil, &FileError{File: name, Line: n, Msg: "not valid UTF-8"}
		}
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			return nil, &FileError{File: name, Line: n, Msg: fmt.Sprintf("%q: want key = value", t)}
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			return nil, &FileError{File: name, Line: n, Msg: "no key before ="}
		}
		if strings.HasPrefix(v, `"`) {
			end := closingQuote(v)
			if end < 0 {
				return nil, &FileError{File: name, Line: n, Msg: fmt.Sprintf("unterminated quoted value %s", v)}
			}
			uq, err := strconv.Unquote(v[:end+1])
			if err != nil {
				return nil, &FileError{File: name, Line: n, Msg: fmt.Sprintf("bad quoted value %s: %v", v[:end+1], err)}
			}
			if rest := strings.TrimSpace(v[end+1:]); rest != "" && !strings.HasPrefix(rest, "#") {
				return nil, &FileError{File: name, Line: n, Msg: fmt.Sprintf("unexpected %q after the quoted value", rest)}
			}
			v = uq
		} else if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		out = append(out, Setting{Key: k, Value: v, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, &FileError{File: name, Msg: err.Error()}
	}
	return out, nil
}

// closingQuote is the index of the quote that ends the Go string literal starting at v[0], or -1.
func closingQuote(v string) int {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// ApplyFile reads a config file and overrides the settings it names.
func (c *Serve) ApplyFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &FileError{File: path, Msg: fmt.Sprintf("cannot read the config file: %v", err)}
	}
	return c.applySettings(path, data)
}

func (c *Serve) applySettings(name string, data []byte) error {
	ss, err := Parse(name, data)
	if err != nil {
		return err
	}
	seen := map[string]int{}
	for _, s := range ss {
		f, ok := fieldByKey(s.Key)
		if !ok {
			return &FileError{File: name, Line: s.Line, Msg: fmt.Sprintf("unknown key %q (known: %s)", s.Key, strings.Join(keys(), ", "))}
		}
		if prev, dup := seen[s.Key]; dup {
			return &FileError{File: name, Line: s.Line, Msg: fmt.Sprintf("%s is already set on line %d", s.Key, prev)}
		}
		seen[s.Key] = s.Line
		if err := c.set(f, s.Value, fmt.Sprintf("%s:%d", name, s.Line)); err != nil {
			return err
		}
	}
	return nil
}

func keys() []string {
	var ks []string
	for _, f := range Fields() {
		ks = append(ks, f.Key)
	}
	return ks
}
