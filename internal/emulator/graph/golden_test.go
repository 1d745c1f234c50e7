package graph

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestDeltaGolden pins the exact JSON of a delta conversation: a first page, the last page with the
// deltaLink, and an incremental round with a created, an updated and a removed message.
func TestDeltaGolden(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BaseURL = "https://graph.microsoft.com/v1.0" })
	e.deliver(alice, "INBOX", 1)
	e.deliver(alice, "INBOX", 2)
	e.deliver(alice, "INBOX", 3)
	tok := e.appToken("Mail.ReadWrite")
	const prefix = "https://graph.microsoft.com/v1.0"

	var out bytes.Buffer
	record := func(title string, r resp) {
		var ind bytes.Buffer
		if err := json.Indent(&ind, r.body, "", "  "); err != nil {
			t.Fatalf("%s: %v: %s", title, err, r.body)
		}
		out.WriteString("# " + title + "\n")
		out.Write(ind.Bytes())
		out.WriteString("\n")
	}
	first := e.get("/users/"+alice+"/mailFolders/inbox/messages/delta", tok, "Prefer", "odata.maxpagesize=2")
	record("first page (Prefer: odata.maxpagesize=2)", first)
	var p deltaPage
	if err := json.Unmarshal(first.body, &p); err != nil {
		t.Fatal(err)
	}
	last := e.get(strings.Replace(p.NextLink, prefix, e.base, 1), tok, "Prefer", "odata.maxpagesize=2")
	record("second and last page", last)
	if err := json.Unmarshal(last.body, &p); err != nil {
		t.Fatal(err)
	}

	e.deliver(alice, "INBOX", 4)
	if err := e.store.SetSeen(alice, "INBOX", 1, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Move(alice, "INBOX", 2, "Archive"); err != nil {
		t.Fatal(err)
	}
	inc := e.get(strings.Replace(p.DeltaLink, prefix, e.base, 1), tok)
	if inc.status != http.StatusOK {
		t.Fatalf("%d %s", inc.status, inc.body)
	}
	record("incremental round: removed, updated, created", inc)

	golden := filepath.Join("testdata", "delta.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestDeltaGolden -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("delta JSON differs from %s (rerun with -update if intended):\n%s", golden, out.Bytes())
	}
}
