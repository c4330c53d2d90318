package grpccodec

import (
	"sync"

	"google.golang.org/grpc/mem"
)

// smallCap is the capacity of the buffers Pool keeps itself: above
// grpc-go's pooling threshold (1 KiB: mem.NewBuffer keeps a smaller buffer
// out of its pool, and wrapping it costs two allocations), and room for
// the usual small message (an agent's reply is tens of bytes).
const smallCap = 2 << 10

// Pool returns the mem.BufferPool that Marshal encodes into, for encoders
// of their own that hand gRPC pooled buffers the same way: Get, write the
// message, mem.NewBuffer(bp, Pool()) (the agent's hand-written replies
// do). Get(n) returns a buffer of length n; up to 2 KiB it comes from a
// pool of 2 KiB buffers of its own and is not cleared (grpc-go's default
// pool clears its whole 4 KiB tier buffer on every Get), so the caller
// must write all n bytes, as MarshalToSizedBufferVT and append-style
// encoders do; larger buffers come from mem.DefaultBufferPool(). Put takes
// back a buffer from either. It is safe for concurrent use.
func Pool() mem.BufferPool { return &thePool }

var thePool bufPool

// bufPool is Pool's mem.BufferPool.
type bufPool struct{ small sync.Pool }

// Get returns a buffer of length n (see Pool).
func (p *bufPool) Get(n int) *[]byte {
	if n <= smallCap {
		if bp, ok := p.small.Get().(*[]byte); ok {
			*bp = (*bp)[:n]
			return bp
		}
		b := make([]byte, n, smallCap)
		return &b
	}
	return mem.DefaultBufferPool().Get(n)
}

// Put takes back a buffer from Get.
func (p *bufPool) Put(bp *[]byte) {
	if cap(*bp) == smallCap {
		p.small.Put(bp)
		return
	}
	mem.DefaultBufferPool().Put(bp)
}
