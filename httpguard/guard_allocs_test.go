//go:build !race

package httpguard

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// totalMallocs returns the process's total number of heap allocations.
func totalMallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// TestGuardAllocs proves that the guard adds no allocation to a request
// over doing its steps by hand (event, pipeline, header operations,
// handler, End): N GET requests through a one-agent guard (request
// headers only, the agent setting x-agent-processed) against N by hand,
// to an allocation-free agent. It counts the total mallocs of each run
// (not AllocsPerRun's rounded-down average), keeping the lowest of three
// alternating rounds; 0.05 extra allocations per request fail it.
func TestGuardAllocs(t *testing.T) {
	s := newLoopSetup(t)
	const n = 20000
	w := &nopWriter{h: http.Header{}}
	r := httptest.NewRequest("GET", "/x", nil)
	h := &byHand{s: s}
	runHand := func() {
		for range n {
			h.serve(w, r)
		}
	}
	runGuard := func() {
		for range n {
			s.g.ServeHTTP(w, r)
		}
	}
	runHand() // warm up: buffers, pools, learned header names
	runGuard()
	var handN, guardN uint64
	for range 3 {
		m0 := totalMallocs()
		runHand()
		m1 := totalMallocs()
		runGuard()
		m2 := totalMallocs()
		if d := m1 - m0; handN == 0 || d < handN {
			handN = d
		}
		if d := m2 - m1; guardN == 0 || d < guardN {
			guardN = d
		}
	}
	extra := int64(guardN) - int64(handN)
	t.Logf("%d requests: by hand %d mallocs (%.3f/request), guard %d (%.3f/request), extra %d (%.4f/request)",
		n, handN, float64(handN)/n, guardN, float64(guardN)/n, extra, float64(extra)/n)
	if extra*20 >= n {
		t.Fatalf("the guard adds %.4f allocations per request (%d over %d requests)", float64(extra)/n, extra, n)
	}
	if r.Header.Get("X-Agent-Processed") != "true" {
		t.Fatal("the agent's header operation was not applied")
	}
}
