// Package lathist is the latency histogram layout shared by the pool's
// call statistics (engine/pool), the agent server's handler statistics
// (agent) and their Prometheus export (promstats): Buckets buckets whose
// upper bounds are the powers of two seconds from 2^-16 s (about
// 15.26 µs) to 2^4 s = 16 s, and a last bucket for everything longer.
//
// Powers of two seconds are the bucket boundaries of a Prometheus native
// histogram of schema 0, so the same counts export exactly as a classic
// histogram (le = UpperBoundSeconds(i)) and as a native one (bucket i is
// native bucket index i-16; bucket 0 is the zero bucket of threshold
// 2^-16 s).
//
// Hist is recorded with two atomic additions and no lock; a snapshot reads
// it without stopping writers (a snapshot taken during an observation may
// count it in a bucket before adding it to the sum).
package lathist

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Buckets is the number of buckets.
const Buckets = 22

// MinExp is the power of two (in seconds) of bucket 0's upper bound:
// bucket i's upper bound is 2^(i+MinExp) s.
const MinExp = -16

// maxFinite bounds the latency fed to the bucket arithmetic (d<<16 must
// not overflow); anything longer is in the last bucket anyway.
const maxFinite = time.Duration(1) << 40

// Bucket returns the bucket of latency d: the smallest i with
// d <= 2^(i-16) s, or Buckets-1 (negative latencies count as 0).
func Bucket(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	if d > maxFinite {
		return Buckets - 1
	}
	// q = ceil(d / 2^-16 s): the latency in units of bucket 0's bound,
	// rounded up; bucket i holds q in (2^(i-1), 2^i].
	q := (uint64(d)<<16 + 1e9 - 1) / 1e9
	return min(bits.Len64(q-1), Buckets-1)
}

// UpperBound returns bucket i's upper bound rounded down to the
// nanosecond (the last bucket: the largest Duration).
func UpperBound(i int) time.Duration {
	if i >= Buckets-1 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ldexp(1e9, i+MinExp))
}

// UpperBoundSeconds returns bucket i's exact upper bound in seconds
// (+Inf for the last bucket).
func UpperBoundSeconds(i int) float64 {
	if i >= Buckets-1 {
		return math.Inf(1)
	}
	return math.Ldexp(1, i+MinExp)
}

// Hist is a latency histogram recorded with atomic operations. The zero
// value is empty and ready; it must not be copied after first use.
type Hist struct {
	counts [Buckets]atomic.Uint64
	sum    atomic.Int64
}

// Observe records latency d (two atomic additions).
func (h *Hist) Observe(d time.Duration) {
	h.counts[Bucket(d)].Add(1)
	h.sum.Add(int64(d))
}

// AddTo adds h's counts and sum to counts and sum (a snapshot, or the
// sum of several histograms).
func (h *Hist) AddTo(counts *[Buckets]uint64, sum *time.Duration) {
	for i := range h.counts {
		counts[i] += h.counts[i].Load()
	}
	*sum += time.Duration(h.sum.Load())
}
