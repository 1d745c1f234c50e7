package mailparse

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse10KB parses the ingestion benchmark's 10 KB text message, with its body kept (as the
// API's callers would) and without (as ingestion does), from a reader (Parse) and in memory
// (ParseBytes, as ingestion does).
//
//	go test -run '^$' -bench Parse -benchmem ./internal/mailparse/
func BenchmarkParse10KB(b *testing.B) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "From: Customer 1 <customer1@example.com>\r\nTo: bench@contoso.example\r\nSubject: Enquiry 1\r\nMessage-ID: <bench-1@example.com>\r\n"+
		"Date: Sun, 22 Nov 2026 11:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	line := "The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstuvwxyz.\r\n"
	for sb.Len()+len(line) <= 10<<10 {
		sb.WriteString(line)
	}
	raw := []byte(sb.String())
	for _, c := range []struct {
		name string
		lim  Limits
	}{{"body", Limits{}}, {"metadata", Limits{SkipBodies: true}}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bytes.NewReader(raw), c.lim); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/bytes", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseBytes(raw, c.lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
