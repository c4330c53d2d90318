// Package allocs counts heap allocations exactly, for the tests that claim
// a number of allocations per operation. It is imported by tests only.
//
// testing.AllocsPerRun divides the total by the number of runs in integer
// arithmetic, so that 0.9 extra allocations per operation still read as 0.
// Count returns the total instead, and AtMost fails a test when the total
// over n runs exceeds want×n: with n ≥ 100, one extra allocation every ten
// operations fails a claim of 0.
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
	"testing"
)

// Count calls fn once to warm up, then n more times with GOMAXPROCS set
// to 1, and returns the number of heap allocations made by the whole
// process during those n calls. GOMAXPROCS is restored before it returns.
// It must not run in parallel with other tests (it changes GOMAXPROCS).
func Count(n int, fn func()) uint64 {
	if n <= 0 {
		panic("allocs: Count needs n > 0")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	fn()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		fn()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}

// Limit is the largest total allowed for n operations of want allocations
// each: want×n rounded down (a tiny tolerance absorbs the float error of
// fractions such as 1/64).
func Limit(n int, want float64) uint64 {
	return uint64(math.Floor(want*float64(n) + 1e-6))
}

// AtMost counts the allocations of n calls of fn (Count) and reports an
// error on tb when the total exceeds want×n (Limit), naming what is
// measured and both numbers. It returns the total. want may be fractional
// for amortized costs (one slab every 64 operations: 1.0/64).
func AtMost(tb testing.TB, what string, n int, want float64, fn func()) uint64 {
	tb.Helper()
	got := Count(n, fn)
	if limit := Limit(n, want); got > limit {
		tb.Errorf("%s: %d allocations in %d runs (%.4f per run), want at most %v per run (%d in total)",
			what, got, n, float64(got)/float64(n), want, limit)
	}
	return got
}

// Zero is AtMost with want 0: no allocation at all in n calls.
func Zero(tb testing.TB, what string, n int, fn func()) {
	tb.Helper()
	AtMost(tb, what, n, 0, fn)
}
