package promstats

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/agentwire/agentwire/internal/lathist"
)

// TestLatencyMetricMatchesClientNative observes the same latencies into a
// lathist.Hist (exported by latencyMetric) and into client_golang's own
// native histogram of schema 0 with the zero threshold 2^-16 s, and checks
// that both give the same native buckets, zero bucket, count and sum: the
// power-of-two layout exports exactly. Latencies span 1 ns .. 16 s,
// including every bucket boundary and one nanosecond past it.
func TestLatencyMetricMatchesClientNative(t *testing.T) {
	var h lathist.Hist
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ref", Help: "ref",
		NativeHistogramBucketFactor:  2, // schema 0
		NativeHistogramZeroThreshold: math.Ldexp(1, -16),
	})
	var ds []time.Duration
	for i := range lathist.Buckets - 1 {
		ub := lathist.UpperBound(i)
		ds = append(ds, ub, ub+1, ub-1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		ds = append(ds, time.Duration(math.Exp(rng.Float64()*math.Log(16e9)))) // log-uniform, 1 ns .. 16 s
	}
	for _, d := range ds {
		h.Observe(d)
		ref.Observe(d.Seconds())
	}
	var counts [lathist.Buckets]uint64
	var sum time.Duration
	h.AddTo(&counts, &sum)
	desc := prometheus.NewDesc("lat", "lat", nil, nil)
	var ours, theirs dto.Metric
	if err := newLatencyMetric(desc, &counts, sum, true).Write(&ours); err != nil {
		t.Fatal(err)
	}
	if err := ref.Write(&theirs); err != nil {
		t.Fatal(err)
	}
	o, r := ours.GetHistogram(), theirs.GetHistogram()
	if o.GetSchema() != r.GetSchema() || o.GetZeroThreshold() != r.GetZeroThreshold() {
		t.Fatalf("schema %d/%d, zero threshold %v/%v", o.GetSchema(), r.GetSchema(), o.GetZeroThreshold(), r.GetZeroThreshold())
	}
	if o.GetZeroCount() != r.GetZeroCount() || o.GetSampleCount() != r.GetSampleCount() {
		t.Errorf("zero count %d/%d, count %d/%d", o.GetZeroCount(), r.GetZeroCount(), o.GetSampleCount(), r.GetSampleCount())
	}
	if math.Abs(o.GetSampleSum()-r.GetSampleSum()) > 1e-6*r.GetSampleSum() {
		t.Errorf("sum %v/%v", o.GetSampleSum(), r.GetSampleSum())
	}
	on, rn := expandNative(o), expandNative(r)
	if len(on) != len(rn) {
		t.Errorf("%d native buckets, client_golang %d", len(on), len(rn))
	}
	for i, c := range rn {
		if on[i] != c {
			t.Errorf("native bucket %d: %d, client_golang %d", i, on[i], c)
		}
	}
	// The classic form: cumulative counts at the powers of two.
	var cum uint64
	for i, b := range o.GetBucket() {
		cum += counts[i]
		if b.GetCumulativeCount() != cum || b.GetUpperBound() != math.Ldexp(1, i-16) {
			t.Errorf("classic bucket %d: le %v count %d, want le 2^%d count %d", i, b.GetUpperBound(), b.GetCumulativeCount(), i-16, cum)
		}
	}
}

// TestLatencyMetricEdges: an empty histogram is still a native one (zero
// threshold set, no spans); latencies over 16 s are in the classic +Inf
// bucket and in the native bucket (16 s, 32 s]; WithNativeHistograms(false)
// leaves the native fields out.
func TestLatencyMetricEdges(t *testing.T) {
	desc := prometheus.NewDesc("lat", "lat", nil, nil)
	var counts [lathist.Buckets]uint64
	var m dto.Metric
	if err := newLatencyMetric(desc, &counts, 0, true).Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.GetZeroThreshold() == 0 || len(h.GetPositiveSpan()) != 0 || h.GetSampleCount() != 0 {
		t.Fatalf("empty: %v", h)
	}
	counts[lathist.Bucket(time.Minute)] = 2
	counts[lathist.Bucket(time.Microsecond)] = 1
	counts[lathist.Bucket(time.Second)] = 1
	m.Reset()
	if err := newLatencyMetric(desc, &counts, 2*time.Minute+time.Second, true).Write(&m); err != nil {
		t.Fatal(err)
	}
	h := m.GetHistogram()
	if got := expandNative(h); len(got) != 2 || got[0] != 1 || got[5] != 2 || h.GetZeroCount() != 1 {
		t.Fatalf("native buckets %v zero %d", got, h.GetZeroCount())
	}
	if b := h.GetBucket(); b[len(b)-1].GetCumulativeCount() != 2 || h.GetSampleCount() != 4 {
		t.Fatalf("classic: last finite bucket %d, count %d", b[len(b)-1].GetCumulativeCount(), h.GetSampleCount())
	}
	m.Reset()
	if err := newLatencyMetric(desc, &counts, 0, false).Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.Schema != nil || h.ZeroThreshold != nil || len(h.GetPositiveSpan()) != 0 {
		t.Fatalf("classic only: %v", h)
	}
}
