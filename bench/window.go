package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Window is what one window of a run's measured time saw (Config.Window):
// the round trips that completed in it and their latencies.
type Window struct {
	// StartS is the window's start in seconds since the measured window
	// began; DurationS its length (the last one may be shorter).
	StartS    float64 `json:"start_s"`
	DurationS float64 `json:"duration_s"`
	Requests  int64   `json:"requests"`
	// RequestsPerSec is Requests over the window's duration.
	RequestsPerSec float64 `json:"requests_per_sec"`
	P50us          float64 `json:"p50_us"`
	P99us          float64 `json:"p99_us"`
	MaxUs          float64 `json:"max_us"`
}

// winHist is a latency histogram that every worker records into at once,
// lock-free (one atomic add per round trip): log-linear buckets, 32 per
// power of two, so a quantile is within about 3% of the true value. It
// backs the per-window figures, where one shared histogram per window is
// enough (the per-worker histograms of the whole run are hdrhistograms of
// about 30 KiB each; one of those per worker and window would cost
// hundreds of megabytes with thousands of workers).
type winHist struct {
	counts [winBuckets]atomic.Int64
	max    atomic.Int64
}

const (
	winSubBits = 5 // 32 sub-buckets per power of two
	winSub     = 1 << winSubBits
	// winBuckets covers every int64: values below winSub have a bucket
	// each, then winSub buckets for each bit length above winSubBits.
	winBuckets = winSub + (64-winSubBits)*winSub
)

// winBucket returns the bucket of v (nanoseconds, >= 0).
func winBucket(v int64) int {
	if v < winSub {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) // > winSubBits
	sub := int(uint64(v)>>(e-winSubBits-1)) & (winSub - 1)
	return winSub + (e-winSubBits-1)*winSub + sub
}

// winBucketHigh returns the largest value that falls into bucket i.
func winBucketHigh(i int) int64 {
	if i < winSub {
		return int64(i)
	}
	e := (i-winSub)/winSub + winSubBits + 1
	sub := int64((i - winSub) % winSub)
	lo := (int64(winSub) | sub) << (e - winSubBits - 1)
	return lo + int64(1)<<(e-winSubBits-1) - 1
}

func (h *winHist) record(v int64) {
	h.counts[winBucket(v)].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// quantile returns the upper bound of the bucket holding the q-th
// quantile (0 < q <= 1) of n recorded values, capped at the maximum.
func (h *winHist) quantile(q float64, n int64) int64 {
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.5)
	rank = min(max(rank, 1), n)
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(winBucketHigh(i), h.max.Load())
		}
	}
	return h.max.Load()
}

// result summarizes the window that started start after the measured
// window's beginning and lasted d.
func (h *winHist) result(start, d time.Duration) Window {
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	w := Window{StartS: start.Seconds(), DurationS: d.Seconds(), Requests: n}
	if d > 0 {
		w.RequestsPerSec = float64(n) / d.Seconds()
	}
	w.P50us = nsToUs(h.quantile(0.50, n))
	w.P99us = nsToUs(h.quantile(0.99, n))
	w.MaxUs = nsToUs(h.max.Load())
	return w
}
