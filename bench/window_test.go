package bench

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestWinBucketBounds: every value falls into a bucket whose upper bound is
// at least the value and within 1/32 of it, and buckets are in order.
func TestWinBucketBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := []int64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 1 << 40, 1<<62 + 12345}
	for range 10000 {
		vals = append(vals, r.Int64N(100_000_000_000))
	}
	for _, v := range vals {
		i := winBucket(v)
		if i < 0 || i >= winBuckets {
			t.Fatalf("value %d: bucket %d out of range", v, i)
		}
		hi := winBucketHigh(i)
		if hi < v || float64(hi-v) > float64(v)/32+1 {
			t.Fatalf("value %d: bucket %d upper bound %d", v, i, hi)
		}
		if i > 0 && winBucketHigh(i-1) >= v {
			t.Fatalf("value %d: the bucket before %d ends at %d", v, i, winBucketHigh(i-1))
		}
	}
}

// TestWinHistQuantiles: the quantiles of a shared window histogram are
// within 1/32 above the exact ones.
func TestWinHistQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var h winHist
	vals := make([]int64, 20000)
	for i := range vals {
		vals[i] = 5_000 + r.Int64N(2_000_000)
		h.record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.99} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q, int64(len(vals)))
		if got < exact || float64(got-exact) > float64(exact)/32+1 {
			t.Errorf("q%.2f: got %d, exact %d", q, got, exact)
		}
	}
	w := h.result(time.Second, 2*time.Second)
	if w.Requests != int64(len(vals)) || w.MaxUs != nsToUs(vals[len(vals)-1]) || w.RequestsPerSec != float64(len(vals))/2 || w.StartS != 1 {
		t.Errorf("result %+v", w)
	}
}

// TestRunWindows: with Config.Window the measured window is reported as
// consecutive windows covering it, whose requests add up to the run's.
func TestRunWindows(t *testing.T) {
	res, err := Run(context.Background(), Config{Concurrency: 3, Duration: 450 * time.Millisecond, Warmup: -1, Window: 100 * time.Millisecond},
		func(ctx context.Context, w int, seq uint64) error { time.Sleep(200 * time.Microsecond); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Windows) < 4 || len(res.Windows) > 6 {
		t.Fatalf("%d windows for 450 ms in windows of 100 ms: %+v", len(res.Windows), res.Windows)
	}
	var sum int64
	end := 0.0
	for i, w := range res.Windows {
		if w.StartS < end-1e-9 || w.DurationS <= 0 || w.Requests == 0 || w.P50us < 200 || w.P99us < w.P50us || w.MaxUs < w.P99us {
			t.Errorf("window %d implausible: %+v", i, w)
		}
		end = w.StartS + w.DurationS
		sum += w.Requests
	}
	// Round trips completing while the window moves or the run stops may
	// be counted in a window but not the run (or the other way round).
	if d := sum - res.Requests; d < -3 || d > 3 {
		t.Errorf("windows hold %d requests, the run %d", sum, res.Requests)
	}
	if r2, err := Run(context.Background(), Config{Concurrency: 1, Duration: 50 * time.Millisecond, Warmup: -1},
		func(ctx context.Context, w int, seq uint64) error { return nil }); err != nil || r2.Windows != nil {
		t.Fatalf("windows without Config.Window: %v %v", r2.Windows, err)
	}
}
