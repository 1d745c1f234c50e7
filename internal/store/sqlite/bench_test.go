package sqlite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
	"inkorg/internal/testutil/cpuuse"
)

// BenchmarkCommitBatch10k measures the store alone on the ingestion path: 10,000 messages of about
// 10 KB committed in batches of 500 to a database file on disk (WAL, synchronous=FULL), each batch
// followed by its MovedThrough, as the worker does. It reports msgs/s, MB/s and the CPU time (user and
// system, of the whole process) per message.
//
//	go test -run '^$' -bench CommitBatch -benchtime 1x -count 5 ./internal/store/sqlite/
func BenchmarkCommitBatch10k(b *testing.B) {
	const n, size, batch = 10000, 10 << 10, 500
	line := "The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz.\r\n"
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		raw := []byte(fmt.Sprintf("Message-ID: <b-%d@example.com>\r\nSubject: Enquiry %d\r\n\r\n", i, i) + strings.Repeat(line, size/len(line)))
		sum := sha256.Sum256(raw)
		msgs[i] = store.NewMessage{UID: uint32(i + 1), Raw: raw, Dest: "Processed",
			Meta: store.Message{MessageID: fmt.Sprintf("<b-%d@example.com>", i), SHA256: hex.EncodeToString(sum[:]), Subject: fmt.Sprintf("Enquiry %d", i),
				From: "customer@example.com", To: []string{"bench@contoso.example"}, Date: time.Now()}}
	}
	var total, cpu time.Duration
	for range b.N {
		s := openAt(b, b.TempDir())
		ctx := context.Background()
		start, startCPU := time.Now(), cpuTime(b)
		for i := 0; i < n; i += batch {
			ms := msgs[i : i+batch]
			if _, err := s.CommitBatch(ctx, store.Batch{AccountID: 1, Account: "bench@contoso.example", Type: settings.TypeGeneral, Folder: "INBOX",
				UIDValidity: 7, LastUID: ms[len(ms)-1].UID, Messages: ms}); err != nil {
				b.Fatal(err)
			}
			if err := s.MovedThrough(ctx, 1, "INBOX", 7, ms[len(ms)-1].UID); err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(start)
		cpu += cpuTime(b) - startCPU
		s.Close()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
	b.ReportMetric(float64(n*size*b.N)/total.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/msg")
}

// cpuTime is the CPU time the process has used so far (user and system).
func cpuTime(b *testing.B) time.Duration {
	c, err := cpuuse.Now()
	if err != nil {
		b.Fatal(err)
	}
	return c.Process
}
