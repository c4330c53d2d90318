package bench

import (
	"context"
	"testing"
	"time"
)

// TestRunGap: with Config.Gap each caller pauses that long between round
// trips (at most Duration/Gap+1 of them complete in the window), and the
// pause is not part of the latencies (a round trip that returns at once
// measures far below the gap).
func TestRunGap(t *testing.T) {
	const gap = 2 * time.Millisecond
	const dur = 200 * time.Millisecond
	res, err := Run(context.Background(), Config{Concurrency: 1, Duration: dur, Warmup: -1, Gap: gap},
		func(context.Context, int, uint64) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	// The window can exceed dur a little (the stop is read after the
	// timer); with a pause of at least gap per round trip the count stays
	// far below what back-to-back calls would complete.
	if limit := int64(2*dur/gap) + 1; res.Requests == 0 || res.Requests > limit {
		t.Fatalf("%d requests in %v with a %v gap, want 1..%d", res.Requests, dur, gap, limit)
	}
	if res.P50us >= float64(gap/time.Microsecond)/2 {
		t.Fatalf("p50 %.1f µs: the pause is counted in the latency", res.P50us)
	}
}
