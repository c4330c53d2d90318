package engine

import (
	"github.com/agentwire/agentwire/codec/grpccodec"
	"google.golang.org/grpc/mem"
)

// outPool is the mem.BufferPool behind every encoded outbound message:
// grpccodec.Pool, shared with the gRPC codec and the agent's replies.
//
// Unlike grpc's default pool it does not zero buffers (every byte handed
// to the transport was just written by an encoder), and its smallest tier
// (2 KiB) is above grpc's pooling threshold (1 KiB), so mem.NewBuffer
// always returns a reference-counted buffer that comes back here when the
// transport is done with it, even for a 100-byte message. Buffers larger
// than the biggest tier are allocated for their size, and the pool's Put
// drops them (left to the garbage collector).
var outPool = grpccodec.Pool()

// newOutBuffer returns an empty slice with capacity for n bytes from
// outPool; finish it with wrapOut.
func newOutBuffer(n int) *[]byte {
	bp := outPool.Get(n)
	*bp = (*bp)[:0]
	return bp
}

// wrapOut turns an encoded buffer from newOutBuffer into a mem.Buffer that
// returns to outPool when freed.
func wrapOut(bp *[]byte) mem.Buffer {
	return mem.NewBuffer(bp, outPool)
}
