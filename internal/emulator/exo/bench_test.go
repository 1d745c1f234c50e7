package exo

import (
	"io"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// BenchmarkIMAPFetch10k: 10,000 messages of 10 KB in one mailbox; one client fetches them all with
// UID FETCH <batch> (UID BODY.PEEK[]) in batches of 500, as inkorg's ingest does.
func BenchmarkIMAPFetch10k(b *testing.B) {
	const n, size, batch = 10000, 10 << 10, 500
	e := newEnv(b)
	raw := testMessage(bob, alice, "bench", size)[:size]
	for range n {
		if _, err := e.store.Deliver(alice, "INBOX", raw); err != nil {
			b.Fatal(err)
		}
	}
	c := e.imapClient(b, alice, "good-token", nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(n * size))
	b.ResetTimer()
	for range b.N {
		got, bytes := 0, int64(0)
		for start := imap.UID(1); start <= n; start += batch {
			var set imap.UIDSet
			set.AddRange(start, start+batch-1)
			cmd := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
			for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
				for item := msg.Next(); item != nil; item = msg.Next() {
					if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
						k, _ := io.Copy(io.Discard, bs.Literal)
						bytes += k
						got++
					}
				}
			}
			if err := cmd.Close(); err != nil {
				b.Fatal(err)
			}
		}
		if got != n || bytes != n*size {
			b.Fatalf("got %d messages, %d bytes", got, bytes)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
