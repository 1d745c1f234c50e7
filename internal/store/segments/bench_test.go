package segments

import (
	"testing"
	"time"

	"inkorg/internal/testutil/cpuuse"
)

// BenchmarkAppendBatch: a batch of 500 messages of 10 KB, synced, as ingestion writes one, with direct
// I/O (where the file system has it) and through the page cache uncached (RWF_DONTCACHE), the way
// every Append went before; it reports this process's CPU per message, the steadier figure on a
// shared machine (the wall time includes the disk's).
//
//	go test -run '^$' -bench AppendBatch -count 5 ./internal/store/segments/
func BenchmarkAppendBatch(b *testing.B) {
	msgs := batch(0, 500, 10<<10)
	for _, mode := range []string{"direct", "pagecache"} {
		b.Run(mode, func(b *testing.B) {
			d, err := Open(Options{Dir: directDir(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			d.buffered.Store(mode == "pagecache")
			b.SetBytes(int64(500 * 10 << 10))
			before, err := cpuuse.Now()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := d.Append(msgs); err != nil {
					b.Fatal(err)
				}
			}
			after, _ := cpuuse.Now()
			b.ReportMetric(float64((after.Process-before.Process)/time.Nanosecond)/1e3/float64(b.N*len(msgs)), "cpu-µs/msg")
		})
	}
}
