// Package allocs counts heap allocations exactly, for the tests that claim
// a number of allocations per operation. It is imported by tests only.
//
// testing.AllocsPerRun divides the total by the number of runs in integer
// arithmetic, so that 0.9 extra allocations per operation still read as 0.
// Count returns the total instead, and AtMost fails a test when the total
// over n runs exceeds want×n (in each of Attempts counts): with n ≥ 100,
// one extra allocation every ten operations fails a claim of 0.
//
// The count is the process's runtime.MemStats.Mallocs delta (every heap
// object, tiny ones included), so it includes whatever other goroutines
// allocate meanwhile: the engine's reader and writer, a fake agent. That is
// intended where they serve the measured operation; a test that measures a
// round trip must not leave unrelated goroutines allocating. Exact counts
// mean nothing under the race detector (its instrumentation allocates and
// sync.Pool drops items at random): tests that use this package carry
// //go:build !race.
package allocs

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
)

// Count sets GOMAXPROCS to 1 and turns the garbage collector off, calls fn
// min(n, Warm) times to warm up, then n more times, and returns the number
// of heap allocations made by the whole process during those n calls. Both
// settings are restored before it returns. It must not run in parallel
// with other tests.
//
// With the collector on, each collection empties the sync.Pools, and the
// next calls allocate their objects again: a cost per collection, not per
// call (the agent's dispatch path made 4 such allocations in 6400 events
// with 2 collections during the count), which would make the count depend
// on the heap's size. What a call allocates is counted all the same.
func Count(n int, fn func()) uint64 {
	if n <= 0 {
		panic("allocs: Count needs n > 0")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // waits out a collection under way
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for range min(n, Warm) {
		fn()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		fn()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// Warm is the most calls Count makes before it counts: one-time costs
// (a pool's first objects, per-P caches after the GOMAXPROCS change) are
// paid before counting; a cost that recurs (an arena or slab refill)
// recurs within the counted calls too.
const Warm = 1000

// Limit is the largest total allowed for n operations of want allocations
// each: want×n rounded down (a tiny tolerance absorbs the float error of
// fractions such as 1/64).
func Limit(n int, want float64) uint64 {
	return uint64(math.Floor(want*float64(n) + 1e-6))
}

// Attempts is how many times AtMost counts before it reports a failure.
// The runtime builds the cache of an interface-to-interface type assertion
// (a vtprotobuf oneof, grpc-go's v.(vtMessage)) lazily and at random, about
// once in a thousand cache misses: a one-time allocation per call site at
// an unpredictable call, seen about once in ten counts of 1000 encodes of
// a reply, and several in the same count at times. Such strays only add
// to a count, so the lowest of a few counts is the exact figure; a cost
// that recurs with the operation is in every count (one allocation in ten
// calls shows as 10 per 100 calls each time).
const Attempts = 5

// AtMost counts the allocations of n calls of fn (Count), up to Attempts
// times until one count is within want×n (Limit), and otherwise reports
// an error on tb naming what is measured and the lowest count. It returns
// the lowest count. want may be fractional for amortized costs (one slab
// every 64 operations: 1.0/64).
func AtMost(tb testing.TB, what string, n int, want float64, fn func()) uint64 {
	tb.Helper()
	limit := Limit(n, want)
	var low uint64 = math.MaxUint64
	for range Attempts {
		got := Count(n, fn)
		low = min(low, got)
		if got <= limit {
			return got
		}
	}
	tb.Errorf("%s: %d allocations in %d runs (%.4f per run; the lowest of %d counts), want at most %v per run (%d in total)",
		what, low, n, float64(low)/float64(n), Attempts, want, limit)
	return low
}

// Zero is AtMost with want 0: no allocation at all in n calls.
func Zero(tb testing.TB, what string, n int, fn func()) {
	tb.Helper()
	AtMost(tb, what, n, 0, fn)
}
