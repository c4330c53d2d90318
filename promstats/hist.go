package promstats

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire/internal/lathist"
)

// latencyMetric is a histogram metric built from a snapshot of
// lathist buckets: classic buckets, and (native) the same counts as a
// native histogram of schema 0.
type latencyMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	counts [lathist.Buckets]uint64
	sum    time.Duration
	native bool
}

// newLatencyMetric returns the histogram metric of counts and sum with
// desc's variable labels set to values.
func newLatencyMetric(desc *prometheus.Desc, counts *[lathist.Buckets]uint64, sum time.Duration, native bool, values ...string) prometheus.Metric {
	return &latencyMetric{desc: desc, labels: prometheus.MakeLabelPairs(desc, values), counts: *counts, sum: sum, native: native}
}

func (m *latencyMetric) Desc() *prometheus.Desc { return m.desc }

// nativeIndex is the native (schema 0) bucket index of bucket i (i >= 1):
// bucket i holds (2^(i-17), 2^(i-16)] s, native bucket j holds
// (2^(j-1), 2^j]. The last bucket (over 16 s) is put in (16 s, 32 s].
func nativeIndex(i int) int32 { return int32(i + lathist.MinExp) }

// zeroThreshold is the width of the native zero bucket: bucket 0's bound.
var zeroThreshold = lathist.UpperBoundSeconds(0)

func (m *latencyMetric) Write(out *dto.Metric) error {
	h := &dto.Histogram{Bucket: make([]*dto.Bucket, 0, lathist.Buckets-1)}
	var cum uint64
	for i := range lathist.Buckets - 1 {
		cum += m.counts[i]
		h.Bucket = append(h.Bucket, &dto.Bucket{
			CumulativeCount: proto.Uint64(cum),
			UpperBound:      proto.Float64(lathist.UpperBoundSeconds(i)),
		})
	}
	cum += m.counts[lathist.Buckets-1]
	h.SampleCount = proto.Uint64(cum)
	h.SampleSum = proto.Float64(m.sum.Seconds())
	if m.native {
		h.Schema = proto.Int32(0)
		h.ZeroThreshold = proto.Float64(zeroThreshold)
		h.ZeroCount = proto.Uint64(m.counts[0])
		// One span from the first to the last non-empty bucket, the
		// empty ones in between carried as zero deltas.
		first, last := 0, 0
		for i := 1; i < lathist.Buckets; i++ {
			if m.counts[i] != 0 {
				if first == 0 {
					first = i
				}
				last = i
			}
		}
		if first != 0 {
			h.PositiveSpan = []*dto.BucketSpan{{Offset: proto.Int32(nativeIndex(first)), Length: proto.Uint32(uint32(last - first + 1))}}
			h.PositiveDelta = make([]int64, 0, last-first+1)
			var prev int64
			for i := first; i <= last; i++ {
				c := int64(m.counts[i])
				h.PositiveDelta = append(h.PositiveDelta, c-prev)
				prev = c
			}
		}
	}
	out.Histogram = h
	out.Label = m.labels
	return nil
}
