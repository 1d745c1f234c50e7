package graph

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// BenchmarkIngest10k measures what an ingest worker does over Graph against a folder of 10,000
// messages of about 10 KB: a full delta sync (pages of 100), then $value and move for each message.
// Run: go test -run '^$' -bench Ingest10k -benchtime 1x ./internal/emulator/graph/
func BenchmarkIngest10k(b *testing.B) {
	const n = 10000
	t := &testing.T{}
	for range b.N {
		b.StopTimer()
		e := newEnv(t, func(c *Config) { c.MailboxConcurrency = -1 })
		body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n"), 130)
		for i := range n {
			raw := fmt.Appendf(nil, "From: s@vendor.example\r\nTo: %s\r\nSubject: %d\r\nMessage-ID: <%d@x>\r\n\r\n%s", alice, i, i, body)
			if _, err := e.store.Deliver(alice, "INBOX", raw); err != nil {
				b.Fatal(err)
			}
		}
		tok := e.appToken("Mail.ReadWrite")
		b.StartTimer()
		t0 := time.Now()
		items, _, pages := e.syncAll("/users/"+alice+"/mailFolders/inbox/messages/delta", tok, "Prefer", "odata.maxpagesize=100")
		if len(items) != n || pages != n/100 {
			b.Fatalf("items %d pages %d", len(items), pages)
		}
		b.ReportMetric(time.Since(t0).Seconds(), "delta-s")
		t0 = time.Now()
		for _, it := range items {
			if r := e.get("/users/"+alice+"/messages/"+it["id"].(string)+"/$value", tok); r.status != http.StatusOK {
				b.Fatal(r.status)
			}
		}
		b.ReportMetric(time.Since(t0).Seconds(), "value-s")
		t0 = time.Now()
		for _, it := range items {
			id := it["id"].(string)
			if r := e.postJSON("/users/"+alice+"/messages/"+id+"/move", tok, map[string]string{"destinationId": "archive"}); r.status != http.StatusCreated {
				b.Fatal(r.status)
			}
		}
		b.ReportMetric(time.Since(t0).Seconds(), "move-s")
	}
}
