// Package fuzzcheck holds checks shared by the project's fuzz targets and
// bound tests: that decoding an input allocates no more than a bound
// linear in its size, and that whatever an input started has ended.
// Only test code imports it.
package fuzzcheck

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// Slack is the fixed part of every allocation bound: a fresh string-arena
// chunk, error values, a small pooled buffer and size-class rounding.
const Slack = 16 << 10

// Bound is the most heap a decode of an n-byte input may allocate with
// perByte bytes allowed per input byte.
func Bound(n int, perByte uint64) uint64 { return perByte*uint64(n) + Slack }

// Allocated returns the bytes of heap fn allocated (exact: it reads the
// memory statistics, which stops the world briefly, before and after).
func Allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Allocs runs decode once and fails t when it allocated more than
// Bound(n, perByte) bytes, n being the size of the decoded input: fuzz
// targets use it to catch length prefixes and counts that make a decoder
// allocate far more than the input holds.
func Allocs(t testing.TB, what string, n int, perByte uint64, decode func()) {
	t.Helper()
	if got, bound := Allocated(decode), Bound(n, perByte); got > bound {
		t.Fatalf("%s: decoding %d bytes allocated %d bytes, bound %d", what, n, got, bound)
	}
}

// WaitGoroutines fails t unless the number of goroutines drops back to at
// most base within d (whatever an input started must have ended).
func WaitGoroutines(t testing.TB, base int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before the input:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// ConnBound is the most a decode on a connection's path may allocate for
// an n-byte input: a generous constant plus a multiple of the input
// (decoding legitimately expands small wire values into strings, slices
// and maps, but never by more than this). A decoder that trusts a
// declared length or count blows through it at once.
func ConnBound(n int) uint64 { return 1<<20 + 256*uint64(n) }

// AllocatedApprox returns about the bytes of heap fn allocated, read from
// runtime/metrics: some 40 times cheaper than Allocated, which matters in
// fuzz loops, but it counts small objects a span at a time, and anything
// else the process allocated meanwhile.
func AllocatedApprox(fn func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	fn()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// ConnAllocs fails t when fn, run on in, allocated more than
// ConnBound(len(in)) (measured with AllocatedApprox; fn must not start
// goroutines).
func ConnAllocs(t testing.TB, in []byte, fn func()) {
	t.Helper()
	if n, bound := AllocatedApprox(fn), ConnBound(len(in)); n > bound {
		t.Fatalf("%d-byte input allocated %d bytes (bound %d): %x", len(in), n, bound, in)
	}
}
