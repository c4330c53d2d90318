//go:build !race

package httpguard

import (
	"net/http"
	"runtime"
	"testing"

	"github.com/agentwire/agentwire"
)

// mallocs returns the exact number of heap allocations of n runs of f
// (after one warm-up run): the lowest of three measurements, because the
// count is the whole process's and goroutines other tests left behind
// (closing connections) may allocate meanwhile.
func mallocs(n int, f func()) uint64 {
	f()
	best := uint64(1<<64 - 1)
	for range 3 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			f()
		}
		runtime.ReadMemStats(&after)
		best = min(best, after.Mallocs-before.Mallocs)
	}
	return best
}

// TestRequestHeadersAllocs proves the allocation claims of
// Builder.RequestHeaders with exact counts: nothing at all into a reused
// RequestHeaders when the correlation id comes from a header or a
// generator that does not allocate, and exactly one allocation per
// request (the id string) with the default generator.
func TestRequestHeadersAllocs(t *testing.T) {
	const n = 1000
	r := benchRequest()
	r.Header.Set("X-Request-Id", "req-77")
	var dst RequestHeaders

	fromHeader, err := NewBuilder(WithCorrelationHeader("X-Request-Id"))
	if err != nil {
		t.Fatal(err)
	}
	if got := mallocs(n, func() { fromHeader.RequestHeaders(r, &dst) }); got != 0 {
		t.Errorf("id from a header: %d allocations in %d requests, want 0", got, n)
	}

	generated, err := NewBuilder()
	if err != nil {
		t.Fatal(err)
	}
	if got := mallocs(n, func() { generated.RequestHeaders(r, &dst) }); got != n {
		t.Errorf("generated id: %d allocations in %d requests, want %d", got, n, n)
	}
}

// TestResponseHeadersAllocs: the response-headers event of common headers
// into a reused event allocates nothing.
func TestResponseHeadersAllocs(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Type", "text/html")
	h.Set("Cache-Control", "no-cache")
	h.Add("Set-Cookie", "a=1")
	h.Add("Set-Cookie", "b=2")
	h.Set("Etag", `"x"`)
	h.Set("Date", "Mon, 01 Jan 2026 00:00:00 GMT")
	var ev agentwire.ResponseHeadersEvent
	if got := mallocs(1000, func() { ResponseHeaders(&ev, "c", 200, h) }); got != 0 {
		t.Errorf("%d allocations, want 0", got)
	}
}

// TestApplyHeaderOpsAllocs: add and remove of common names allocate
// nothing; a set allocates only its one-value slice.
func TestApplyHeaderOpsAllocs(t *testing.T) {
	h := http.Header{}
	addRemove := []agentwire.HeaderOp{
		{Kind: agentwire.HeaderAdd, Name: "x-request-id", Value: "1"},
		{Kind: agentwire.HeaderRemove, Name: "x-request-id"},
	}
	if got := mallocs(1000, func() {
		if err := ApplyHeaderOps(h, addRemove); err != nil {
			t.Fatal(err)
		}
	}); got != 1000 {
		// The add allocates the slice of a name that is not there yet.
		t.Errorf("add+remove: %d allocations in 1000, want 1000", got)
	}
	set := []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"}}
	if got := mallocs(1000, func() { _ = ApplyHeaderOps(h, set) }); got != 1000 {
		t.Errorf("set: %d allocations in 1000, want 1000", got)
	}
}
