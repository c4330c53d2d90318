package frame

import "github.com/valyala/bytebufferpool"

// Large payloads (above the Reader's 64 KiB internal buffer) are read into
// buffers from a dedicated bytebufferpool.Pool.
//
// Why not grpc's mem.DefaultBufferPool, which the gRPC codec uses: every
// public mem pool clears the whole buffer on Get (clear(b[:cap(b)])), and
// its tiers jump from 32 KiB to 1 MiB, so a 96 KiB frame costs a 1 MiB
// memclr and pins 1 MiB. Measured through the whole Reader
// (BenchmarkLargePool, 2 cores, medians of 3): 96 KiB 3.0 µs vs 17.1 µs,
// 256 KiB 6.6 µs vs 21.9 µs, 1 MiB 31 µs vs 42 µs, 4 MiB 163 µs vs 275 µs
// (bytebufferpool vs grpc mem). bytebufferpool hands back dirty buffers (the
// payload is overwritten by the read anyway), allocates exactly the frame's
// size when it must grow, and its calibration drops buffers above the 95th
// percentile of recent sizes so one 16 MiB frame is not pinned forever.

// largeBuf is a pooled buffer holding one large payload; h is the pool's
// handle for it (a pointer, so storing it in an interface does not allocate).
type largeBuf struct {
	b []byte
	h any
}

// largePool supplies buffers for payloads larger than the Reader's
// internal buffer. It is an interface only so that benchmarks can compare
// candidates through the real Reader.
type largePool interface {
	get(n int) largeBuf // len(b) == n
	put(largeBuf)
}

// bbPool backs large payloads with a dedicated bytebufferpool.Pool.
type bbPool struct{ p bytebufferpool.Pool }

func (p *bbPool) get(n int) largeBuf {
	bb := p.p.Get()
	if cap(bb.B) < n {
		// Exactly n: the old, smaller buffer is left to the GC.
		bb.B = make([]byte, n)
	}
	bb.B = bb.B[:n]
	return largeBuf{b: bb.B, h: bb}
}

func (p *bbPool) put(l largeBuf) { p.p.Put(l.h.(*bytebufferpool.ByteBuffer)) }

var defaultLargePool largePool = &bbPool{}
