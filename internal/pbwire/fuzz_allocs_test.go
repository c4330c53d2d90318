package pbwire

import (
	"runtime"
	"testing"
)

// decodeAllocBound is the most heap one decode of an n-byte input may
// allocate: linear in n, plus fixed slack for error values and size-class
// rounding.
func decodeAllocBound(n int) uint64 { return 64*uint64(n) + 16<<10 }

// checkDecodeAllocs runs decode once and fails t when it allocated more
// than decodeAllocBound(n) bytes, n being the size of the decoded input.
// Fuzz targets use it to catch length prefixes and counts that make a
// decoder allocate far more than the input holds.
func checkDecodeAllocs(t testing.TB, what string, n int, decode func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	decode()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > decodeAllocBound(n) {
		t.Fatalf("%s: decoding %d bytes allocated %d bytes, bound %d", what, n, got, decodeAllocBound(n))
	}
}
