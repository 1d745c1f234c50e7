package imapsource

import (
	"context"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"inkorg/internal/testutil/dovecot"
)

// BenchmarkFetch10k fetches 10,000 messages of 10 KB from the emulator through Fetch, hashing each
// body as the ingest worker does, and reports messages per second. The mailbox is filled once;
// BODY.PEEK[] leaves it unchanged, so every iteration fetches the same 10,000.
func BenchmarkFetch10k(b *testing.B) {
	const n = 10000
	w := startEmulator(b)
	deliver(b, w, "INBOX", n, 10<<10)
	c := w.connect(b, nil)
	fetchAll(b, c, n)
}

// fetchAll times SearchNewer(0) + Fetch of all n messages per iteration.
func fetchAll(b *testing.B, c *Conn, n int) {
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(n) * 10 << 10)
	b.ResetTimer()
	for b.Loop() {
		uids, err := c.SearchNewer(0)
		if err != nil || len(uids) != n {
			b.Fatalf("SearchNewer: %d UIDs, %v", len(uids), err)
		}
		got := 0
		if err := c.Fetch(uids, func(m Fetched) error {
			h := sha256.New()
			if _, err := io.CopyBuffer(h, m.Body, buf); err != nil {
				return err
			}
			h.Sum(nil)
			got++
			return nil
		}); err != nil || got != n {
			b.Fatalf("Fetch: %d messages, %v", got, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkFetch10kDovecot is BenchmarkFetch10k against a real Dovecot (mail in memory, XOAUTH2).
func BenchmarkFetch10kDovecot(b *testing.B) {
	const n, user = 10000, "bench@example.test"
	d := dovecot.Start(b, dovecot.Options{MailInMemory: true})
	d.DeliverN(user, "INBOX", n, func(i int) []byte { return message(i, 10<<10) })
	c, err := Dial(context.Background(), Config{Addr: d.IMAPAddr(), TLSConfig: d.TLSConfig(), SpoolDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.AuthenticateXOAUTH2(user, d.Token(user, time.Hour)); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX"); err != nil {
		b.Fatal(err)
	}
	fetchAll(b, c, n)
}
