package ingest

import (
	"slices"
	"unsafe"
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

// batchBuffers keeps the buffers of one catch-up: a buffer goes back once its batch is committed and
// its fetch ended well (see imapsource.Buffers), and the next one is sized from the last batch — a
// quarter more than its bodies, at least minBuffer, at most the batch limit plus one body read ahead.
// A catch-up's buffers are let go when it ends, so a worker waiting for mail holds none.
type batchBuffers struct {
	free []*batchBuffer
	want int
	max  int
}

const minBuffer = 1 << 20

func newBatchBuffers(batchBytes int, readAhead int64) *batchBuffers {
	m := batchBytes + int(max(readAhead, 0))
	return &batchBuffers{want: min(4*minBuffer, m), max: m}
}

// take returns an empty buffer of the size wanted now.
func (p *batchBuffers) take() *batchBuffer {
	for i, b := range p.free {
		if len(b.block) >= p.want {
			p.free = slices.Delete(p.free, i, i+1)
			b.used, b.asked = 0, 0
			return b
		}
	}
	return newBatchBuffer(p.want)
}

// fetched sizes the next buffers from a batch just fetched.
func (p *batchBuffers) fetched(b *batchBuffer) {
	p.want = min(max(b.asked+b.asked/4, minBuffer), p.max)
}

// put gives back the buffer of a committed batch whose fetch returned nil. One is kept.
func (p *batchBuffers) put(b *batchBuffer) {
	if len(b.block) >= p.want && len(p.free) == 0 {
		p.free = append(p.free, b)
	}
}
