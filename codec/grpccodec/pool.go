package grpccodec

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Pool returns the mem.BufferPool that Marshal encodes into, for encoders
// of their own that hand gRPC pooled buffers the same way: Get, write the
// message, mem.NewBuffer(bp, Pool()) (the agent's hand-written replies and
// the engine's encoders do). Get(n) returns a buffer of length n from one
// of ten power-of-two tiers of its own, 2 KiB to 1 MiB, and does not clear
// it (grpc-go's default pool clears every buffer it hands out), so the
// caller must write all n bytes, as MarshalToSizedBufferVT and
// append-style encoders do. The smallest tier is above grpc-go's pooling
// threshold (1 KiB: mem.NewBuffer keeps a smaller buffer out of its pool,
// and wrapping it costs two allocations), so even a 100-byte message
// comes back here once gRPC is done with it. A buffer of more than 1 MiB
// is allocated, and Put leaves it (and any buffer whose capacity is not
// one of the tiers') to the garbage collector. It is safe for concurrent
// use.
func Pool() mem.BufferPool { return &thePool }

var thePool tieredPool

const (
	minTierShift = 11 // 2 KiB
	maxTierShift = 20 // 1 MiB
)

// tieredPool is Pool's mem.BufferPool: a sync.Pool per power-of-two
// capacity.
type tieredPool struct {
	tiers [maxTierShift - minTierShift + 1]sync.Pool
}

// tier returns the index of the smallest tier holding n bytes, or -1.
func tier(n int) int {
	if n <= 1<<minTierShift {
		return 0
	}
	t := bits.Len(uint(n-1)) - minTierShift
	if t >= maxTierShift-minTierShift+1 {
		return -1
	}
	return t
}

// Get returns a buffer of length n (contents undefined, see Pool).
func (p *tieredPool) Get(n int) *[]byte {
	t := tier(n)
	if t < 0 {
		b := make([]byte, n)
		return &b
	}
	if v := p.tiers[t].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<(minTierShift+t))
	return &b
}

// Put takes back a buffer obtained from Get.
func (p *tieredPool) Put(bp *[]byte) {
	c := cap(*bp)
	if c < 1<<minTierShift || c&(c-1) != 0 {
		return
	}
	t := bits.Len(uint(c)) - 1 - minTierShift
	if t >= len(p.tiers) {
		return
	}
	p.tiers[t].Put(bp)
}
