package lathist

import (
	"math"
	"testing"
	"time"
)

// TestBucketBounds checks every boundary: a latency equal to a bucket's
// upper bound (rounded down to the nanosecond) is in that bucket, one
// nanosecond more is in the next, for the whole range; and the bounds
// are the powers of two seconds that a native histogram of schema 0 uses.
func TestBucketBounds(t *testing.T) {
	for i := range Buckets - 1 {
		ub := UpperBound(i)
		if got := Bucket(ub); got != i {
			t.Errorf("Bucket(%v) = %d, want %d", ub, got, i)
		}
		if got := Bucket(ub + 1); got != i+1 {
			t.Errorf("Bucket(%v+1ns) = %d, want %d", ub, got, i+1)
		}
		s := UpperBoundSeconds(i)
		if frac, exp := math.Frexp(s); frac != 0.5 || exp-1 != i+MinExp {
			t.Errorf("UpperBoundSeconds(%d) = %g, not 2^%d", i, s, i+MinExp)
		}
		if float64(ub) > s*1e9 || float64(ub+1) <= s*1e9 {
			t.Errorf("UpperBound(%d) = %v is not %g s rounded down", i, ub, s)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {1, 0}, {15 * time.Microsecond, 0},
		{16 * time.Microsecond, 1}, {time.Millisecond, 7}, {time.Second, 16},
		{16 * time.Second, 20}, {16*time.Second + 1, 21}, {time.Hour, 21},
		{time.Duration(math.MaxInt64), 21},
	} {
		if got := Bucket(c.d); got != c.want {
			t.Errorf("Bucket(%v) = %d, want %d", c.d, got, c.want)
		}
	}
	if !math.IsInf(UpperBoundSeconds(Buckets-1), 1) || UpperBound(Buckets-1) != time.Duration(math.MaxInt64) {
		t.Error("the last bucket is not unbounded")
	}
}

// TestHist checks that observations land in their buckets and the sum,
// and that AddTo accumulates.
func TestHist(t *testing.T) {
	var h Hist
	h.Observe(10 * time.Microsecond)
	h.Observe(time.Second)
	h.Observe(time.Minute)
	var counts [Buckets]uint64
	var sum time.Duration
	h.AddTo(&counts, &sum)
	h.AddTo(&counts, &sum)
	if counts[0] != 2 || counts[16] != 2 || counts[21] != 2 || sum != 2*(10*time.Microsecond+time.Second+time.Minute) {
		t.Fatalf("counts %v sum %v", counts, sum)
	}
}

// BenchmarkObserve is the cost of one observation (the bucket arithmetic
// and two uncontended atomic additions).
func BenchmarkObserve(b *testing.B) {
	var h Hist
	d := 123 * time.Microsecond
	for b.Loop() {
		h.Observe(d)
		d += 7
	}
}
