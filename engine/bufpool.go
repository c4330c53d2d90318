package engine

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// outPool is the mem.BufferPool behind every encoded outbound message.
//
// Unlike grpc's default pool it does not zero buffers (every byte handed
// to the transport was just written by an encoder), and its smallest tier
// (2 KiB) is above grpc's pooling threshold (1 KiB), so mem.NewBuffer
// always returns a reference-counted buffer that comes back here when the
// transport is done with it, even for a 100-byte message. Buffers larger
// than the biggest tier are allocated and left to the garbage collector.
var outPool = newTieredPool()

const (
	minTierShift = 11 // 2 KiB
	maxTierShift = 20 // 1 MiB
)

type tieredPool struct {
	tiers [maxTierShift - minTierShift + 1]sync.Pool
}

func newTieredPool() *tieredPool { return new(tieredPool) }

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

// Get returns a buffer of length n (contents undefined).
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

// Put returns a buffer obtained from Get.
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

var _ mem.BufferPool = (*tieredPool)(nil)

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
	if cap(*bp) > 1<<maxTierShift {
		return mem.SliceBuffer(*bp)
	}
	return mem.NewBuffer(bp, outPool)
}
