package promstats

import (
	"cmp"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// ReportSink defaults.
const (
	// DefaultMaxSeries bounds the series a ReportSink holds (the
	// reference collector's max_series).
	DefaultMaxSeries = 10000
	// DefaultMaxAge is how long a series that is not reported again is
	// kept (the reference collector's max_age).
	DefaultMaxAge = 5 * time.Minute
	// DefaultNamePrefix is put before the name of every reported metric,
	// so that agents' metrics cannot collide with agentwire's own.
	DefaultNamePrefix = "agentwire_reported_"
)

// Names of the ReportSink's own families.
const (
	famReports       = "agentwire_metrics_reports_total"
	famReportSeries  = "agentwire_metrics_report_series"
	famReportDropped = "agentwire_metrics_report_series_dropped_total"
)

// Reasons a reported series is refused (label reason of
// agentwire_metrics_report_series_dropped_total).
const (
	dropCap       = iota // the series cap was reached
	dropCollision        // the name or a label collides (type, suffix, sanitised duplicates, agentwire's namespace)
	dropInvalid          // no usable name
	numDrops
)

var dropNames = [numDrops]string{"cap", "collision", "invalid"}

// ReportOption configures a ReportSink (NewReportSink).
type ReportOption interface{ applyReport(*reportOptions) }

type reportOptions struct {
	maxSeries int
	maxAge    time.Duration
	prefix    string
	log       *slog.Logger
}

type reportOptionFunc func(*reportOptions)

func (f reportOptionFunc) applyReport(o *reportOptions) { f(o) }

// WithMaxSeries bounds the number of series the sink holds, over all
// agents (default DefaultMaxSeries; at least 1). A new series reported
// while the sink is full is dropped and counted
// (agentwire_metrics_report_series_dropped_total{reason="cap"}), with one
// warning logged each time the sink becomes full; series already held keep
// being updated.
func WithMaxSeries(n int) ReportOption {
	return reportOptionFunc(func(o *reportOptions) { o.maxSeries = n })
}

// WithMaxAge sets how long a series that is not reported again is kept
// (default DefaultMaxAge; positive). Expired series are removed when the
// sink is scraped or sees a report.
func WithMaxAge(d time.Duration) ReportOption {
	return reportOptionFunc(func(o *reportOptions) { o.maxAge = d })
}

// WithNamePrefix sets the prefix of every reported metric's name (default
// DefaultNamePrefix). It must be empty or made of the characters of a
// metric name ([a-zA-Z0-9_:], not starting with a digit), and may start
// with "agentwire_" only as DefaultNamePrefix does. Whatever the prefix,
// a name that starts with "agentwire_" but not with DefaultNamePrefix is
// refused (it could collide with agentwire's own families).
func WithNamePrefix(p string) ReportOption {
	return reportOptionFunc(func(o *reportOptions) { o.prefix = p })
}

// WithReportLogger sets the logger of the sink's warnings (default:
// discard).
func WithReportLogger(l *slog.Logger) ReportOption {
	return reportOptionFunc(func(o *reportOptions) { o.log = l })
}

// ReportSink holds the metrics agents report (agentwire.MetricsReport:
// Unix-socket frame 0x31, gRPC AgentToProxy.metrics) and exports them as a
// prometheus.Collector, the way the reference proxy's metrics collector
// does: each counter, gauge and histogram of a report becomes a series
// keyed by its name and labels plus the label agent (the agent's id), and
// a later report of the same series replaces its value (counters are not
// summed, histogram buckets are taken as reported: cumulative, as the
// Prometheus format has them).
//
// Names and labels are made valid for Prometheus: a metric name gets the
// prefix (WithNamePrefix) and every character outside [a-zA-Z0-9_:]
// replaced by '_' (a leading digit gets a '_' before it); a label name
// every character outside [a-zA-Z0-9_] replaced by '_'; label values
// invalid UTF-8 replaced by U+FFFD. A label the agent sets under a name
// the sink reserves (agent; le for histograms; names starting with "__")
// is renamed exported_<name>, as Prometheus does for target labels. A
// series is refused and counted (agentwire_metrics_report_series_dropped_total{reason})
// when its name is empty after sanitising (invalid), when its name is
// already a family of another type or collides with a histogram's
// _bucket, _sum or _count series, or two of its labels end up with one
// name, or its name is in agentwire's namespace (collision), or when the
// sink is full (cap). Help texts are per family: the first series of a
// family sets it.
//
// Series not reported for WithMaxAge are removed. The sink's own families
// are agentwire_metrics_reports_total (reports observed),
// agentwire_metrics_report_series (series held) and
// agentwire_metrics_report_series_dropped_total{reason}.
//
// Observe takes the sink's lock; it runs on the engine.Conn's callback
// goroutine, never on a request's path. A ReportSink is safe for
// concurrent use. Its Describe yields nothing: it is an unchecked
// collector, since its series are known only at scrape time.
type ReportSink struct {
	o reportOptions

	mu        sync.Mutex
	families  map[string]*reportFamily
	series    map[string]*reportSeries
	reports   uint64
	dropped   [numDrops]uint64
	full      bool // the cap was hit and nothing was freed since (one warning per episode)
	lastPrune time.Time
	now       func() time.Time // time.Now; tests replace it

	metaReports, metaSeries, metaDropped *prometheus.Desc
}

type reportType uint8

const (
	typeCounter reportType = iota
	typeGauge
	typeHistogram
)

type reportFamily struct {
	typ    reportType
	help   string
	series int
}

type reportSeries struct {
	family  string
	desc    *prometheus.Desc
	typ     reportType
	value   float64 // counter, gauge
	count   uint64  // histogram
	sum     float64
	buckets map[float64]uint64
	seen    time.Time
}

// NewReportSink returns an empty sink. It fails with ErrInvalidConfig for
// a refused option.
func NewReportSink(opts ...ReportOption) (*ReportSink, error) {
	o := reportOptions{maxSeries: DefaultMaxSeries, maxAge: DefaultMaxAge, prefix: DefaultNamePrefix}
	for _, opt := range opts {
		if opt != nil {
			opt.applyReport(&o)
		}
	}
	switch {
	case o.maxSeries < 1:
		return nil, invalidf("WithMaxSeries(%d): want at least 1", o.maxSeries)
	case o.maxAge <= 0:
		return nil, invalidf("WithMaxAge(%v): want a positive duration", o.maxAge)
	case o.prefix != "" && (sanitizeName(o.prefix) != o.prefix || o.prefix[0] >= '0' && o.prefix[0] <= '9'):
		return nil, invalidf("WithNamePrefix(%q): not the start of a metric name", o.prefix)
	case strings.HasPrefix(o.prefix, "agentwire_") && !strings.HasPrefix(o.prefix, DefaultNamePrefix):
		return nil, invalidf("WithNamePrefix(%q): in agentwire's own namespace", o.prefix)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return &ReportSink{
		o:           o,
		families:    map[string]*reportFamily{},
		series:      map[string]*reportSeries{},
		now:         time.Now,
		metaReports: prometheus.NewDesc(famReports, "Metrics reports received from agents.", nil, nil),
		metaSeries:  prometheus.NewDesc(famReportSeries, "Series of agent-reported metrics held.", nil, nil),
		metaDropped: prometheus.NewDesc(famReportDropped,
			"Agent-reported series refused, by reason: cap (the series cap was reached), collision (name or labels collide), invalid (no usable name).",
			[]string{"reason"}, nil),
	}, nil
}

// Option returns an engine option that feeds the metrics reports of a
// connection to the sink under agentID (engine.WithOnMetrics), for
// engine.Dial and for a pool's connections:
//
//	p.AddAgent("waf", pool.WithEndpoint(addr, 4, sink.Option("waf")))
//
// With an empty agentID each report's own agent_id is used.
func (s *ReportSink) Option(agentID string) engine.Option {
	return engine.WithOnMetrics(func(r *agentwire.MetricsReport) { s.Observe(agentID, r) })
}

// Observe records a report of the agent agentID (empty: the report's
// AgentID). It does not keep r.
func (s *ReportSink) Observe(agentID string, r *agentwire.MetricsReport) {
	if r == nil {
		return
	}
	if agentID == "" {
		agentID = r.AgentID
	}
	agentID = strings.ToValidUTF8(agentID, "\uFFFD")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports++
	now := s.now()
	if now.Sub(s.lastPrune) >= s.o.maxAge/8 {
		s.prune(now)
	}
	for i := range r.Counters {
		c := &r.Counters[i]
		if se := s.put(typeCounter, c.Name, c.Help, c.Labels, agentID, now); se != nil {
			se.value = float64(c.Value)
		}
	}
	for i := range r.Gauges {
		g := &r.Gauges[i]
		if se := s.put(typeGauge, g.Name, g.Help, g.Labels, agentID, now); se != nil {
			se.value = g.Value
		}
	}
	for i := range r.Histograms {
		h := &r.Histograms[i]
		se := s.put(typeHistogram, h.Name, h.Help, h.Labels, agentID, now)
		if se == nil {
			continue
		}
		se.count, se.sum = h.Count, h.Sum
		clear(se.buckets)
		if se.buckets == nil {
			se.buckets = make(map[float64]uint64, len(h.Buckets))
		}
		for _, b := range h.Buckets {
			// The +Inf bucket is the count; NaN and -Inf are no bounds.
			if math.IsNaN(b.Le) || math.IsInf(b.Le, 0) {
				continue
			}
			se.buckets[b.Le] = b.Count
		}
	}
}

// put returns the series of a reported metric, created if need be, or nil
// when it is refused (counted). s.mu is held.
func (s *ReportSink) put(typ reportType, rawName, help string, rawLabels map[string]string, agentID string, now time.Time) *reportSeries {
	name := sanitizeName(rawName)
	if name == "" {
		s.dropped[dropInvalid]++
		return nil
	}
	name = s.o.prefix + name
	if name[0] >= '0' && name[0] <= '9' {
		name = "_" + name
	}
	if strings.HasPrefix(name, "__") {
		s.dropped[dropInvalid]++
		return nil
	}
	if strings.HasPrefix(name, "agentwire_") && !strings.HasPrefix(name, DefaultNamePrefix) {
		s.dropped[dropCollision]++
		return nil
	}
	labels, ok := sanitizeLabels(rawLabels, agentID, typ == typeHistogram)
	if !ok {
		s.dropped[dropCollision]++
		return nil
	}
	var key strings.Builder
	key.WriteString(name)
	for _, l := range labels {
		key.WriteByte(0xff)
		key.WriteString(l.name)
		key.WriteByte(0xfe)
		key.WriteString(l.value)
	}
	if se, ok := s.series[key.String()]; ok {
		if se.typ != typ {
			s.dropped[dropCollision]++
			return nil
		}
		se.seen = now
		return se
	}
	fam := s.families[name]
	switch {
	case fam != nil && fam.typ != typ:
		s.dropped[dropCollision]++
		return nil
	case fam == nil && s.collides(name, typ):
		s.dropped[dropCollision]++
		return nil
	}
	if len(s.series) >= s.o.maxSeries {
		s.dropped[dropCap]++
		if !s.full {
			s.full = true
			s.o.log.Warn("agentwire: agent-reported metrics over the series cap; new series are dropped",
				"max_series", s.o.maxSeries, "agent", agentID, "metric", name)
		}
		return nil
	}
	if fam == nil {
		if help == "" {
			help = "Metric reported by agents (agentwire MetricsReport)."
		}
		fam = &reportFamily{typ: typ, help: strings.ToValidUTF8(help, "\uFFFD")}
		s.families[name] = fam
	}
	constLabels := make(prometheus.Labels, len(labels))
	for _, l := range labels {
		constLabels[l.name] = l.value
	}
	fam.series++
	se := &reportSeries{family: name, typ: typ, seen: now, desc: prometheus.NewDesc(name, fam.help, nil, constLabels)}
	s.series[key.String()] = se
	return se
}

// collides reports whether a new family name of type typ would collide
// with a histogram's series (name_bucket, name_sum, name_count) or with
// agentwire's own families. s.mu is held.
func (s *ReportSink) collides(name string, typ reportType) bool {
	switch name {
	case famReports, famReportSeries, famReportDropped:
		return true
	}
	for _, suffix := range [...]string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f := s.families[base]; f != nil && f.typ == typeHistogram {
				return true
			}
		}
		if typ == typeHistogram && s.families[name+suffix] != nil {
			return true
		}
	}
	return false
}

// prune removes the series not reported for maxAge. s.mu is held.
func (s *ReportSink) prune(now time.Time) {
	s.lastPrune = now
	for k, se := range s.series {
		if now.Sub(se.seen) <= s.o.maxAge {
			continue
		}
		delete(s.series, k)
		if f := s.families[se.family]; f != nil {
			if f.series--; f.series <= 0 {
				delete(s.families, se.family)
			}
		}
	}
	if len(s.series) < s.o.maxSeries {
		s.full = false
	}
}

// Describe implements prometheus.Collector. It yields nothing: the sink
// is an unchecked collector.
func (s *ReportSink) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (s *ReportSink) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	s.prune(s.now())
	ms := make([]prometheus.Metric, 0, len(s.series)+2+numDrops)
	for _, se := range s.series {
		switch se.typ {
		case typeCounter:
			ms = append(ms, prometheus.MustNewConstMetric(se.desc, prometheus.CounterValue, se.value))
		case typeGauge:
			ms = append(ms, prometheus.MustNewConstMetric(se.desc, prometheus.GaugeValue, se.value))
		case typeHistogram:
			ms = append(ms, prometheus.MustNewConstHistogram(se.desc, se.count, se.sum, copyBuckets(se.buckets)))
		}
	}
	ms = append(ms,
		prometheus.MustNewConstMetric(s.metaReports, prometheus.CounterValue, float64(s.reports)),
		prometheus.MustNewConstMetric(s.metaSeries, prometheus.GaugeValue, float64(len(s.series))))
	for i, n := range s.dropped {
		ms = append(ms, prometheus.MustNewConstMetric(s.metaDropped, prometheus.CounterValue, float64(n), dropNames[i]))
	}
	s.mu.Unlock()
	for _, m := range ms {
		ch <- m
	}
}

// copyBuckets copies a bucket map (the const histogram keeps it; the sink's is
// overwritten by the next report).
func copyBuckets(m map[float64]uint64) map[float64]uint64 {
	out := make(map[float64]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// label is one sanitised label pair.
type label struct{ name, value string }

// sanitizeLabels returns the labels of a reported series, sorted by name,
// with agent set to agentID: names made valid, the reserved ones
// renamed exported_<name>, values made valid UTF-8. It fails when two
// labels end up with one name.
func sanitizeLabels(raw map[string]string, agentID string, histogram bool) ([]label, bool) {
	out := make([]label, 0, len(raw)+1)
	out = append(out, label{"agent", agentID})
	for k, v := range raw {
		n := sanitizeLabelName(k)
		if n == "agent" || (histogram && n == "le") || strings.HasPrefix(n, "__") {
			n = "exported_" + n
		}
		out = append(out, label{n, strings.ToValidUTF8(v, "\uFFFD")})
	}
	slices.SortFunc(out, func(a, b label) int { return cmp.Compare(a.name, b.name) })
	for i := 1; i < len(out); i++ {
		if out[i].name == out[i-1].name {
			return nil, false
		}
	}
	return out, true
}

// sanitizeName replaces every character of s that a metric name cannot
// hold by '_' ("" stays "").
func sanitizeName(s string) string {
	return sanitize(s, true)
}

// sanitizeLabelName is sanitizeName without ':' and with a leading '_' for
// a name that is empty or starts with a digit.
func sanitizeLabelName(s string) string {
	n := sanitize(s, false)
	if n == "" || (n[0] >= '0' && n[0] <= '9') {
		n = "_" + n
	}
	return n
}

func sanitize(s string, colon bool) string {
	ok := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || colon && r == ':'
	}
	clean := true
	for _, r := range s {
		if !ok(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if ok(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
