package promstats

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agentwire/agentwire"
)

// gather registers cs on a fresh registry, gathers (failing the test on
// any gathering error: the exposition must be valid) and returns the
// families, after a round trip through the text format and the strict
// text parser.
func gather(t testing.TB, cs ...prometheus.Collector) families {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	out, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, buf.String())
	}
	return out
}

func newSink(t testing.TB, opts ...ReportOption) (*ReportSink, *time.Time) {
	t.Helper()
	s, err := NewReportSink(opts...)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	return s, &now
}

// TestReportSinkSeries: a report's counters, gauges and histograms are
// exported with the agent's id; a later report replaces values (a counter
// is not summed); an empty agent id falls back to the report's; help is
// the family's first.
func TestReportSinkSeries(t *testing.T) {
	s, _ := newSink(t)
	s.Observe("waf", &agentwire.MetricsReport{
		AgentID:  "ignored",
		Counters: []agentwire.CounterMetric{{Name: "hits_total", Help: "Hits.", Labels: map[string]string{"path": "/a"}, Value: 3}},
		Gauges:   []agentwire.GaugeMetric{{Name: "load", Value: 0.5}},
		Histograms: []agentwire.HistogramMetric{{Name: "scan_seconds", Sum: 1.5, Count: 4,
			Buckets: []agentwire.HistogramBucket{{Le: 0.1, Count: 1}, {Le: 1, Count: 3}, {Le: math.Inf(1), Count: 4}, {Le: math.NaN(), Count: 9}}}},
	})
	s.Observe("waf", &agentwire.MetricsReport{
		Counters: []agentwire.CounterMetric{{Name: "hits_total", Help: "Other help.", Labels: map[string]string{"path": "/a"}, Value: 5},
			{Name: "hits_total", Labels: map[string]string{"path": "/b"}, Value: 1}},
	})
	s.Observe("", &agentwire.MetricsReport{AgentID: "auth-7", Gauges: []agentwire.GaugeMetric{{Name: "load", Value: 2}}})
	s.Observe("x", nil) // ignored
	f := gather(t, s)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agentwire_reported_hits_total", L("agent", "waf", "path", "/a"), 5},
		{"agentwire_reported_hits_total", L("agent", "waf", "path", "/b"), 1},
		{"agentwire_reported_load", L("agent", "waf"), 0.5},
		{"agentwire_reported_load", L("agent", "auth-7"), 2},
		{"agentwire_reported_scan_seconds", L("agent", "waf"), 4},
		{"agentwire_metrics_reports_total", nil, 3},
		{"agentwire_metrics_report_series", nil, 5},
	} {
		m := f.metric(t, c.name, c.labels)
		if m == nil || value(m) != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, m, c.want)
		}
	}
	if f["agentwire_reported_hits_total"].GetHelp() != "Hits." || f["agentwire_reported_hits_total"].GetType().String() != "COUNTER" {
		t.Errorf("family %v", f["agentwire_reported_hits_total"])
	}
	h := f.metric(t, "agentwire_reported_scan_seconds", nil).GetHistogram()
	if h.GetSampleSum() != 1.5 || cumulativeAt(f.metric(t, "agentwire_reported_scan_seconds", nil), 0.1) != 1 ||
		cumulativeAt(f.metric(t, "agentwire_reported_scan_seconds", nil), 1) != 3 {
		t.Errorf("histogram %v", h)
	}
}

// TestReportSinkSanitise: names and label names are made valid, reserved
// labels renamed exported_<name>, invalid UTF-8 values repaired; the
// exposition parses with the strict (legacy) parser.
func TestReportSinkSanitise(t *testing.T) {
	s, _ := newSink(t)
	s.Observe("waf", &agentwire.MetricsReport{
		Counters: []agentwire.CounterMetric{{Name: "rules.matched-total/ü", Value: 1,
			Labels: map[string]string{"rule-id": "a", "agent": "spoof", "__name__": "x", "9lives": "\xff"}}},
		Gauges: []agentwire.GaugeMetric{{Name: "9lives", Value: 2}},
		Histograms: []agentwire.HistogramMetric{{Name: "lat", Count: 1, Sum: 1,
			Labels: map[string]string{"le": "user"}, Buckets: []agentwire.HistogramBucket{{Le: 1, Count: 1}}}},
	})
	f := gather(t, s)
	m := f.metric(t, "agentwire_reported_rules_matched_total__", nil)
	if m == nil {
		t.Fatalf("sanitised name missing: %v", keys(f))
	}
	if !hasLabels(m, L("agent", "waf", "rule_id", "a", "exported_agent", "spoof", "exported___name__", "x", "_9lives", "\uFFFD")) {
		t.Errorf("labels %v", m.Label)
	}
	if f.metric(t, "agentwire_reported_9lives", L("agent", "waf")) == nil {
		t.Errorf("gauge 9lives missing: %v", keys(f))
	}
	if f.metric(t, "agentwire_reported_lat", L("exported_le", "user")) == nil {
		t.Errorf("histogram with an le label: %v", keys(f))
	}
	// With no prefix, a leading digit gets an underscore.
	s2, _ := newSink(t, WithNamePrefix(""))
	s2.Observe("waf", &agentwire.MetricsReport{Gauges: []agentwire.GaugeMetric{{Name: "9lives", Value: 2}}})
	if f := gather(t, s2); f.metric(t, "_9lives", nil) == nil {
		t.Errorf("no prefix: %v", keys(f))
	}
}

// TestReportSinkRefusals: collisions (a name of another type, a
// histogram's _count/_sum/_bucket, two labels sanitised to one name,
// agentwire's namespace) and names with nothing usable are refused and
// counted by reason; the exposition stays valid.
func TestReportSinkRefusals(t *testing.T) {
	s, _ := newSink(t, WithNamePrefix(""))
	s.Observe("a", &agentwire.MetricsReport{
		Counters: []agentwire.CounterMetric{
			{Name: "req", Value: 1},
			{Name: "lat_count", Value: 1},                                    // counters come first: the histogram lat below collides
			{Name: "dup", Labels: map[string]string{"a-b": "1", "a.b": "2"}}, // collision: both a_b
			{Name: "agentwire_agent_requests_total", Value: 1},               // agentwire's namespace
			{Name: "agentwire_metrics_reports_total", Value: 1},              // the sink's own
			{Name: "", Value: 1},                                             // invalid
		},
		Gauges: []agentwire.GaugeMetric{{Name: "req", Value: 2}}, // collision: req is a counter
		Histograms: []agentwire.HistogramMetric{
			{Name: "lat", Count: 1, Buckets: []agentwire.HistogramBucket{{Le: 1, Count: 1}}}, // collision: lat_count exists
			{Name: "h", Count: 1, Buckets: []agentwire.HistogramBucket{{Le: 1, Count: 1}}},
		},
	})
	s.Observe("b", &agentwire.MetricsReport{Counters: []agentwire.CounterMetric{{Name: "h_bucket", Value: 1}}}) // collision: histogram h
	f := gather(t, s)
	for reason, want := range map[string]float64{"collision": 6, "invalid": 1, "cap": 0} {
		if got := f.sum("agentwire_metrics_report_series_dropped_total", L("reason", reason)); got != want {
			t.Errorf("dropped{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if got := f.sum("agentwire_metrics_report_series", nil); got != 3 { // req, lat_count, h
		t.Errorf("%v series held, want 3: %v", got, keys(f))
	}
	if f["req"].GetType().String() != "COUNTER" || f.metric(t, "h", nil) == nil || f.metric(t, "lat_count", nil) == nil {
		t.Errorf("kept: %v", keys(f))
	}
	// A refused option.
	for _, opt := range []ReportOption{WithMaxSeries(0), WithMaxAge(0), WithNamePrefix("1x"), WithNamePrefix("a-b"), WithNamePrefix("agentwire_agent_")} {
		if _, err := NewReportSink(opt); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("option %#v: %v", opt, err)
		}
	}
}

// TestReportSinkCapAndExpiry: past the series cap new series are dropped
// and counted (one warning per episode) while held ones keep updating;
// series not reported for the max age expire, which frees room.
func TestReportSinkCapAndExpiry(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, now := newSink(t, WithMaxSeries(3), WithMaxAge(time.Minute), WithReportLogger(log))
	g := func(names ...string) *agentwire.MetricsReport {
		r := &agentwire.MetricsReport{}
		for i, n := range names {
			r.Gauges = append(r.Gauges, agentwire.GaugeMetric{Name: n, Value: float64(i + 1)})
		}
		return r
	}
	s.Observe("a", g("g1", "g2", "g3", "g4", "g5"))
	s.Observe("a", g("g1", "g6"))
	f := gather(t, s)
	if got := f.sum("agentwire_metrics_report_series_dropped_total", L("reason", "cap")); got != 3 {
		t.Errorf("dropped by the cap: %v, want 3", got)
	}
	if f.metric(t, "agentwire_reported_g4", nil) != nil || f.sum("agentwire_reported_g1", nil) != 1 {
		t.Errorf("series: %v", keys(f))
	}
	if n := strings.Count(logs.String(), "series cap"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	// g1 is refreshed; g2 and g3 expire.
	*now = now.Add(40 * time.Second)
	s.Observe("a", g("g1"))
	*now = now.Add(30 * time.Second)
	f = gather(t, s)
	if f.metric(t, "agentwire_reported_g2", nil) != nil || f.metric(t, "agentwire_reported_g1", nil) == nil {
		t.Errorf("after expiry: %v", keys(f))
	}
	if got := f.sum("agentwire_metrics_report_series", nil); got != 1 {
		t.Errorf("%v series after expiry, want 1", got)
	}
	// Room again: new series are taken, and a new episode warns again.
	s.Observe("a", g("g7", "g8", "g9"))
	if f = gather(t, s); f.metric(t, "agentwire_reported_g8", nil) == nil {
		t.Errorf("after expiry, new series refused: %v", keys(f))
	}
	if n := strings.Count(logs.String(), "series cap"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, logs.String())
	}
	// An expired family can come back with another type.
	*now = now.Add(2 * time.Minute)
	s.Observe("a", &agentwire.MetricsReport{Counters: []agentwire.CounterMetric{{Name: "g1", Value: 9}}})
	if f = gather(t, s); f["agentwire_reported_g1"].GetType().String() != "COUNTER" {
		t.Errorf("re-typed family: %v", f["agentwire_reported_g1"])
	}
}

func keys(f families) []string {
	var out []string
	for k := range f {
		out = append(out, k)
	}
	return out
}
