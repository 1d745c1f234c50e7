package mailparse

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// fixtures returns the paths of testdata/*.eml.
func fixtures(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	return paths
}

type golden struct {
	Message *Message `json:"message"`
	M2M     M2M      `json:"m2m"`
}

// parseFixture parses and classifies one fixture file.
func parseFixture(t *testing.T, path string) golden {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := Parse(f, Limits{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	open := func() (io.ReadCloser, error) { return os.Open(path) }
	return golden{Message: m, M2M: ClassifyM2M(m, AttachmentOpener(open))}
}

// TestChunkingDoesNotMatter parses every fixture one byte at a time and in memory (ParseBytes) and
// compares with a whole read.
func TestChunkingDoesNotMatter(t *testing.T) {
	for _, path := range fixtures(t) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := Parse(bytes.NewReader(raw), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(whole)
		bytewise, err := Parse(iotest.OneByteReader(bytes.NewReader(raw)), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		inMemory, err := ParseBytes(raw, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for how, m := range map[string]*Message{"one byte at a time": bytewise, "in memory": inMemory} {
			if b, _ := json.Marshal(m); !bytes.Equal(a, b) {
				t.Errorf("%s: %s:\n%s\nwhole:\n%s", path, how, b, a)
			}
		}
	}
}

// TestGolden compares Parse + ClassifyM2M of every fixture with its golden file
// (go test ./internal/mailparse -update rewrites them).
func TestGolden(t *testing.T) {
	for _, path := range fixtures(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".eml")
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(parseFixture(t, path)); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			gpath := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(gpath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(gpath)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/mailparse -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (run with -update to accept):\n%s", name, gpath, got)
			}
		})
	}
}
