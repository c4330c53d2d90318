package lathist

import "time"

// ObserveN records n latencies that all fall in bucket b (Bucket of each)
// and total sum, as n calls of Observe would, with two atomic additions:
// for a recorder that collects a run of observations of one bucket and
// publishes them at once. b out of range counts in the last bucket.
func (h *Hist) ObserveN(b int, n uint64, sum time.Duration) {
	if uint(b) >= Buckets {
		b = Buckets - 1
	}
	h.counts[b].Add(n)
	h.sum.Add(int64(sum))
}
