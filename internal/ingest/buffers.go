package ingest

import (
	"context"
	"sync"
	"unsafe"

	"inkorg/internal/store"
)

// bufferAlign is where a batch buffer's block starts: at a multiple of 64 KiB, which is a multiple of
// any file system's alignment for direct I/O.
const bufferAlign = 64 << 10

// batchBuffer is the memory a batch's bodies are read into (imapsource.Buffers): one block, the bodies
// one after the other from its aligned start. The store gets the block with the batch
// (store.Batch.Bodies) and writes it to its segment files in one piece, with direct I/O and without
// copying it first; and no body has an allocation of its own to be zeroed and collected. A body that
// does not fit gets one (the store then copies the batch, as it would anyway).
type batchBuffer struct {
	block []byte
	used  int // the bytes of the block handed out
	asked int // the bytes asked for, those that did not fit included
}

func newBatchBuffer(size int) *batchBuffer {
	b := make([]byte, size+bufferAlign)
	skip := (bufferAlign - int(uintptr(unsafe.Pointer(&b[0]))%bufferAlign)) % bufferAlign
	return &batchBuffer{block: b[skip : skip+size : skip+size]}
}

// Get implements imapsource.Buffers.
func (b *batchBuffer) Get(n int) []byte {
	b.asked += n
	if n > len(b.block)-b.used {
		return make([]byte, n)
	}
	r := b.block[b.used : b.used+n : b.used+n]
	b.used += n
	return r
}

// bodies is the part of the block handed out.
func (b *batchBuffer) bodies() []byte { return b.block[:b.used] }

// batchSlots bounds the batches in flight — fetched and not yet committed — across all of a Manager's
// workers (Config.MaxBatches): a worker takes a slot before it fetches a batch and gives it back once
// the batch is committed (or its fetch came to nothing). So at most MaxBatches batches' bytes are held
// however many mailboxes catch up at once: a thousand that start with a backlog take turns, a batch
// each (waiting workers are served in turn).
//
// The buffers of slots given back are kept for the next batches, the last one given back first (it is
// the one still in the processor's caches), and all let go when no batch is in flight: a worker
// waiting for mail holds none.
type batchSlots struct {
	out  chan struct{} // a token per slot taken
	mu   sync.Mutex
	free []*batchBuffer
}

func newBatchSlots(n int) *batchSlots {
	return &batchSlots{out: make(chan struct{}, n)}
}

// take waits for a slot (or for ctx) and returns a buffer for the batch, empty, of size bytes at least.
// waiting, when not nil, is called first when no slot is free.
func (s *batchSlots) take(ctx context.Context, size int, waiting func()) (*batchBuffer, error) {
	select {
	case s.out <- struct{}{}:
	default:
		if waiting != nil {
			waiting()
		}
		select {
		case s.out <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.free) > 0 {
		b := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		if len(b.block) >= size {
			b.used, b.asked = 0, 0
			return b, nil
		}
	}
	return newBatchBuffer(size), nil
}

// give gives a slot back; keep says its buffer may be reused (see imapsource.Buffers), otherwise it
// is let go.
func (s *batchSlots) give(b *batchBuffer, keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if keep {
		s.free = append(s.free, b)
	}
	<-s.out
	if len(s.out) == 0 {
		s.free = nil
	}
}

// sizePlan is what a catch-up learnt of its messages' sizes from its last batch.
type sizePlan struct {
	batchBytes int   // Config.BatchBytes
	avg        int64 // bytes a message; 0 before the first batch
	// want is the size of the next buffer: a quarter more than the last batch's bodies read into
	// one, at least minBuffer, at most the batch limit plus one body read ahead.
	want, max int
}

// minBuffer is the smallest buffer of a large batch, and perMessage what a small one gets a message
// (a batch of the one or two messages IDLE brings does not need a megabyte).
const (
	minBuffer  = 1 << 20
	perMessage = 64 << 10
)

func newSizePlan(batchBytes int, readAhead int64) sizePlan {
	m := batchBytes + int(max(readAhead, 0))
	return sizePlan{batchBytes: batchBytes, want: min(4*minBuffer, m), max: m}
}

// unsure says whether n messages might not fit in a batch: the first batch of a catch-up, and any
// after a batch of large messages, is planned with the sizes the server gives.
func (z *sizePlan) unsure(n int) bool {
	return z.avg == 0 || z.avg*int64(n) > int64(z.batchBytes)/2
}

// buffer is the size of the buffer for a batch of n messages.
func (z *sizePlan) buffer(n int) int { return min(z.want, n*perMessage) }

// fetched learns from a batch just fetched into b.
func (z *sizePlan) fetched(ms []store.NewMessage, b *batchBuffer) {
	z.want = min(max(b.asked+b.asked/4, minBuffer), z.max)
	if len(ms) > 0 {
		var sum int64
		for _, m := range ms {
			sum += int64(len(m.Raw))
		}
		z.avg = max(sum/int64(len(ms)), 1)
	}
}
