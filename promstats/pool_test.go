package promstats

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
)

// poolFamilies are the families the pool collector must export.
var poolFamilies = []string{
	"agentwire_agent_requests_total", "agentwire_agent_errors_total", "agentwire_agent_synthetic_decisions_total",
	"agentwire_agent_request_duration_seconds", "agentwire_agent_in_flight", "agentwire_agent_breaker_state",
	"agentwire_agent_breaker_opens_total", "agentwire_agent_connections", "agentwire_agent_up", "agentwire_agent_health",
	"agentwire_agent_queue_waits_total", "agentwire_agent_retries_total", "agentwire_agent_flow_waits_total",
	"agentwire_agent_dial_failures_total", "agentwire_agent_affinity_fallbacks_total",
}

// TestPoolMetricsUnderLoad scrapes /metrics (ListenHTTP, parsed with the
// Prometheus text parser) of a pool of three real agents on Unix sockets
// behind one pipeline, and checks every family against what the test
// sent:
//
//   - under load (8 goroutines, 2400 requests, one in ten blocked by the
//     WAF), the requests counted per agent, event kind and decision equal
//     the requests sent; the latency histograms count every call; nothing
//     is in flight afterwards; every connection is up; the health the WAF
//     reports is seen on both its connections; the metrics the WAF reports
//     are re-exported with its id;
//   - when an agent hangs (two request-complete events stuck in its
//     handler: in flight 2), its calls time out (after the 1 s phase
//     timeout of that event kind), the fail-open policy skips it (synthetic
//     decisions by reason timeout), the breaker opens (state 2) and
//     refuses further calls (errors of kind breaker_open), then closes
//     again (state 0) once the agent answers;
//   - when an agent is killed, its connections go down (up 0), and its
//     calls fail closed (requests with decision fail_closed, errors of
//     kind no_connection or connection_lost).
//
// The protobuf scrape carries the latency histograms' native form, with
// the same counts.
func TestPoolMetricsUnderLoad(t *testing.T) {
	ctx := testCtx(t)
	waf := startUDSAgent(t, agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			if strings.HasPrefix(ev.URI, "/admin") {
				r.Decision = agentwire.Block(403)
			}
			return nil
		},
		ResponseHeaders: func(context.Context, *agentwire.ResponseHeadersEvent, *agentwire.AgentResponse) error { return nil },
	}, agent.WithAgentID("waf-1"))
	var hung atomic.Bool
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	auth := startUDSAgent(t, agent.Funcs{
		RequestHeaders: func(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error { return nil },
		RequestComplete: func(ctx context.Context, _ *agentwire.RequestCompleteEvent, _ *agentwire.AgentResponse) error {
			if hung.Load() {
				entered <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return nil
		},
		ResponseHeaders: func(context.Context, *agentwire.ResponseHeadersEvent, *agentwire.AgentResponse) error { return nil },
	})
	rate := startUDSAgent(t, agent.Funcs{
		RequestHeaders:  func(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error { return nil },
		ResponseHeaders: func(context.Context, *agentwire.ResponseHeadersEvent, *agentwire.AgentResponse) error { return nil },
	})

	sink, err := NewReportSink()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pool.New(pool.WithHealthCheckInterval(5 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Timeouts are long (a loaded machine must not time calls out), but
	// for auth's request-complete events, which the test hangs.
	const timeout, hangTimeout = 20 * time.Second, time.Second
	wafA, err := p.AddAgent("waf", pool.WithEndpoint(waf.Endpoint(), 2, sink.Option("waf")), pool.WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	authA, err := p.AddAgent("auth", pool.WithEndpoint(auth.Endpoint(), 2, sink.Option("auth")),
		pool.WithTimeout(timeout), pool.WithPhaseTimeout(agentwire.EventRequestComplete, hangTimeout),
		pool.WithFailurePolicy(engine.FailurePolicy{Mode: engine.FailOpen}),
		pool.WithBreaker(pool.BreakerConfig{FailureThreshold: 2, OpenDuration: 2 * time.Second, SuccessThreshold: 1}))
	if err != nil {
		t.Fatal(err)
	}
	rateA, err := p.AddAgent("rate", pool.WithEndpoint(rate.Endpoint(), 2), pool.WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*pool.Agent{wafA, authA, rateA} {
		if err := a.WaitReady(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	pl, err := pool.NewPipeline([]pool.Step{{Agent: wafA}, {Agent: authA}, {Agent: rateA}})
	if err != nil {
		t.Fatal(err)
	}
	col, err := NewPoolCollector(p)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Handler(col, sink)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := ListenHTTP("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	url := hs.URL()

	// What the test sent, per agent and event kind.
	sent := map[string]map[string]int{"waf": {}, "auth": {}, "rate": {}}
	var sentMu sync.Mutex
	count := func(agents []string, event string) {
		sentMu.Lock()
		for _, a := range agents {
			sent[a][event]++
		}
		sentMu.Unlock()
	}
	all := []string{"waf", "auth", "rate"}
	var seq atomic.Int64
	request := func(r *pool.Request, uri string, withResponse bool) engine.Verdict {
		cid := fmt.Sprint("req-", seq.Add(1))
		v := pl.RequestHeaders(ctx, r, &agentwire.RequestHeadersEvent{
			Metadata: agentwire.RequestMetadata{CorrelationID: cid}, Method: "GET", URI: uri})
		count(all, "request_headers")
		if withResponse && v.Allowed() {
			rv := pl.ResponseHeaders(ctx, r, &agentwire.ResponseHeadersEvent{CorrelationID: cid, Status: 200})
			if !rv.Allowed() {
				t.Errorf("response headers verdict %+v", rv)
			}
			count(all, "response_headers")
		}
		pl.End(r)
		return v
	}
	complete := func(r *pool.Request) engine.Verdict {
		v := pl.RequestComplete(ctx, r, &agentwire.RequestCompleteEvent{CorrelationID: fmt.Sprint("req-", seq.Add(1)), Status: 200})
		count(all, "request_complete")
		pl.End(r)
		return v
	}

	// Phase 1: load.
	const workers, perWorker = 8, 300
	var blocked atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r pool.Request
			for i := range perWorker {
				uri := "/app"
				if (w*perWorker+i)%10 == 0 {
					uri = "/admin/x"
				}
				v := request(&r, uri, true)
				if v.Allowed() == (uri != "/app") || v.Synthetic {
					t.Errorf("%s: verdict %+v", uri, v)
					return
				}
				if !v.Allowed() {
					blocked.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	const n = workers * perWorker
	waf.Server().ReportHealth(agentwire.HealthStatus{AgentID: "waf-1", State: agentwire.HealthHealthy})
	waf.Server().ReportMetrics(&agentwire.MetricsReport{
		AgentID: "waf-1",
		Counters: []agentwire.CounterMetric{{Name: "rules.matched", Help: "Rules matched.",
			Labels: map[string]string{"rule": "sqli", "agent": "spoofed"}, Value: 7}},
		Gauges: []agentwire.GaugeMetric{{Name: "rules_loaded", Value: 1200}},
		Histograms: []agentwire.HistogramMetric{{Name: "scan_seconds", Sum: 0.5, Count: 3,
			Buckets: []agentwire.HistogramBucket{{Le: 0.1, Count: 2}, {Le: math.Inf(1), Count: 3}}}},
	})
	var f families
	eventually(t, "the WAF's health and metrics reports", func() bool {
		f = scrapeText(t, url)
		// One report per WAF connection: both must have arrived (the
		// first alone was seen at the check below).
		return f.sum("agentwire_agent_health", L("agent", "waf", "state", "healthy")) == 2 &&
			f.metric(t, "agentwire_reported_rules_matched", nil) != nil &&
			f.sum("agentwire_metrics_reports_total", nil) >= 2
	})
	for _, fam := range poolFamilies {
		if f[fam] == nil {
			t.Errorf("family %s missing", fam)
		}
	}
	checkSent := func(f families) {
		t.Helper()
		sentMu.Lock()
		defer sentMu.Unlock()
		for a, byEvent := range sent {
			for ev, want := range byEvent {
				if got := f.sum("agentwire_agent_requests_total", L("agent", a, "event", ev)); got != float64(want) {
					t.Errorf("requests_total{agent=%s,event=%s} = %v, sent %d", a, ev, got, want)
				}
			}
			total := 0
			for _, want := range byEvent {
				total += want
			}
			if got := f.sum("agentwire_agent_requests_total", L("agent", a)); got != float64(total) {
				t.Errorf("requests_total{agent=%s} = %v, sent %d", a, got, total)
			}
		}
	}
	checkSent(f)
	admin := float64(blocked.Load())
	if admin != n/10 {
		t.Fatalf("%v requests blocked, want %d", admin, n/10)
	}
	expect := func(f families, name string, labels map[string]string, want float64) {
		t.Helper()
		m := f.metric(t, name, labels)
		if m == nil {
			t.Errorf("%s%v missing", name, labels)
			return
		}
		if got := value(m); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	expect(f, "agentwire_agent_requests_total", L("agent", "waf", "event", "request_headers", "decision", "block"), admin)
	expect(f, "agentwire_agent_requests_total", L("agent", "waf", "event", "request_headers", "decision", "allow"), n-admin)
	expect(f, "agentwire_agent_requests_total", L("agent", "auth", "event", "request_headers", "decision", "allow"), n)
	expect(f, "agentwire_agent_requests_total", L("agent", "rate", "event", "response_headers", "decision", "allow"), n-admin)
	expect(f, "agentwire_agent_requests_total", L("agent", "rate", "event", "request_headers", "decision", "fail_closed"), 0)
	for _, a := range all {
		expect(f, "agentwire_agent_request_duration_seconds", L("agent", a, "event", "request_headers"), n)
		expect(f, "agentwire_agent_request_duration_seconds", L("agent", a, "event", "response_headers"), n-admin)
		expect(f, "agentwire_agent_in_flight", L("agent", a), 0)
		expect(f, "agentwire_agent_breaker_state", L("agent", a), 0)
		expect(f, "agentwire_agent_connections", L("agent", a, "state", "up"), 2)
		expect(f, "agentwire_agent_connections", L("agent", a, "state", "down"), 0)
		expect(f, "agentwire_agent_up", L("agent", a), 1)
		if got := f.sum("agentwire_agent_errors_total", L("agent", a)); got != 0 {
			t.Errorf("errors_total{agent=%s} = %v under load", a, got)
		}
		if got := len(f.labelValues("agentwire_agent_errors_total", "kind")); got != pool.FailureKinds {
			t.Errorf("%d error kinds exported, want %d", got, pool.FailureKinds)
		}
		if got := f.sum("agentwire_agent_synthetic_decisions_total", L("agent", a)); got != 0 {
			t.Errorf("synthetic_decisions_total{agent=%s} = %v under load", a, got)
		}
	}
	checkHistogram(t, f.metric(t, "agentwire_agent_request_duration_seconds", L("agent", "waf", "event", "request_headers")))
	// The WAF's report, under its pool name, sanitised, its own agent
	// label kept as exported_agent.
	expect(f, "agentwire_reported_rules_matched", L("agent", "waf", "rule", "sqli", "exported_agent", "spoofed"), 7)
	expect(f, "agentwire_reported_rules_loaded", L("agent", "waf"), 1200)
	expect(f, "agentwire_reported_scan_seconds", L("agent", "waf"), 3)
	if got := f["agentwire_reported_rules_matched"].GetHelp(); got != "Rules matched." {
		t.Errorf("reported help %q", got)
	}
	if f.sum("agentwire_metrics_reports_total", nil) < 2 { // one per WAF connection
		t.Errorf("metrics reports %v", f.sum("agentwire_metrics_reports_total", nil))
	}
	// The native form, over protobuf.
	pf := scrapeProto(t, url)
	checkNative(t, pf.metric(t, "agentwire_agent_request_duration_seconds", L("agent", "waf", "event", "request_headers")))

	// Phase 2: auth hangs. Two calls stick in its handler, time out, and
	// open the breaker; the agent is skipped (fail-open).
	hung.Store(true)
	var hwg sync.WaitGroup
	for range 2 {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			var r pool.Request
			if v := complete(&r); !v.Allowed() {
				t.Errorf("hung auth: verdict %+v", v)
			}
		}()
	}
	<-entered
	<-entered
	f = scrapeText(t, url)
	expect(f, "agentwire_agent_in_flight", L("agent", "auth"), 2)
	hwg.Wait()
	hung.Store(false)
	close(release)
	f = scrapeText(t, url)
	expect(f, "agentwire_agent_breaker_state", L("agent", "auth"), 2)
	expect(f, "agentwire_agent_breaker_opens_total", L("agent", "auth"), 1)
	expect(f, "agentwire_agent_errors_total", L("agent", "auth", "kind", "timeout"), 2)
	expect(f, "agentwire_agent_synthetic_decisions_total", L("agent", "auth", "reason", "timeout", "decision", "fail_open"), 2)
	expect(f, "agentwire_agent_requests_total", L("agent", "auth", "event", "request_complete", "decision", "fail_open"), 2)
	expect(f, "agentwire_agent_in_flight", L("agent", "auth"), 0)
	slow := f.metric(t, "agentwire_agent_request_duration_seconds", L("agent", "auth", "event", "request_complete"))
	if total, over := value(slow), value(slow)-cumulativeAt(slow, 0.5); total != 2 || over != 2 {
		t.Errorf("auth request-complete latency: %v calls, %v over 0.5 s; want the 2 that timed out after %v", total, over, hangTimeout)
	}
	var r pool.Request
	for range 3 { // refused by the open breaker (its open period is 2 s)
		if v := request(&r, "/app", false); !v.Allowed() {
			t.Errorf("open breaker, fail-open: verdict %+v", v)
		}
	}
	f = scrapeText(t, url)
	rejected := f.sum("agentwire_agent_errors_total", L("agent", "auth", "kind", "breaker_open"))
	if rejected < 1 {
		t.Errorf("no call refused by the open breaker")
	}
	expect(f, "agentwire_agent_synthetic_decisions_total", L("agent", "auth", "reason", "breaker_open", "decision", "fail_open"), rejected)
	// Once the open period is over, a probe goes through and closes it.
	eventually(t, "the auth breaker to close", func() bool {
		request(&r, "/app", false)
		return scrapeText(t, url).sum("agentwire_agent_breaker_state", L("agent", "auth")) == 0
	})
	checkSent(scrapeText(t, url))

	// Phase 3: rate is killed. Its connections go down; its calls fail
	// closed: the first 5 find no connection (each a breaker failure: the
	// agent as a whole is down), which opens its breaker (default
	// threshold), and the others are refused by the open breaker.
	rate.Stop()
	eventually(t, "rate's connections to go down", func() bool {
		f := scrapeText(t, url)
		return f.sum("agentwire_agent_up", L("agent", "rate")) == 0 &&
			f.sum("agentwire_agent_connections", L("agent", "rate", "state", "up")) == 0
	})
	const m = 20
	for range m {
		v := request(&r, "/app", false)
		if v.Allowed() || !v.Synthetic || v.Agent != "rate" {
			t.Errorf("dead rate agent: verdict %+v", v)
		}
	}
	f = scrapeText(t, url)
	checkSent(f)
	expect(f, "agentwire_agent_requests_total", L("agent", "rate", "event", "request_headers", "decision", "fail_closed"), m)
	lostOrNone := f.sum("agentwire_agent_errors_total", L("agent", "rate", "kind", "no_connection")) +
		f.sum("agentwire_agent_errors_total", L("agent", "rate", "kind", "connection_lost"))
	const threshold = pool.DefaultFailureThreshold
	if lostOrNone != threshold || f.sum("agentwire_agent_errors_total", L("agent", "rate")) != m {
		t.Errorf("rate: %v errors of kind no_connection or connection_lost, %v in all, want %d and %d", lostOrNone, f.sum("agentwire_agent_errors_total", L("agent", "rate")), threshold, m)
	}
	expect(f, "agentwire_agent_errors_total", L("agent", "rate", "kind", "breaker_open"), m-threshold)
	expect(f, "agentwire_agent_synthetic_decisions_total", L("agent", "rate", "reason", "breaker_open", "decision", "fail_closed"), m-threshold)
	expect(f, "agentwire_agent_breaker_state", L("agent", "rate"), 2)
	if got := f.sum("agentwire_agent_synthetic_decisions_total", L("agent", "rate", "decision", "fail_closed")); got != m {
		t.Errorf("rate: %v fail-closed synthetic decisions, want %d", got, m)
	}
	if got := f.sum("agentwire_agent_connections", L("agent", "rate")); got != 2 {
		t.Errorf("rate: %v connections in all states, want 2", got)
	}
	expect(f, "agentwire_agent_up", L("agent", "waf"), 1)
}

// cumulativeAt returns the cumulative count of a classic histogram's
// bucket of upper bound le.
func cumulativeAt(m *dto.Metric, le float64) float64 {
	for _, b := range m.GetHistogram().GetBucket() {
		if b.GetUpperBound() == le {
			return float64(b.GetCumulativeCount())
		}
	}
	return -1
}

// checkHistogram checks a classic latency histogram: the powers of two
// seconds as bounds, cumulative counts, the count in the +Inf bucket.
func checkHistogram(t testing.TB, m *dto.Metric) {
	t.Helper()
	h := m.GetHistogram()
	bs := h.GetBucket()
	if len(bs) != 21 && len(bs) != 22 { // the text parser keeps or drops +Inf
		t.Fatalf("%d buckets", len(bs))
	}
	var prev uint64
	for i, b := range bs {
		want := math.Ldexp(1, i-16)
		if i == 21 {
			want = math.Inf(1)
		}
		if b.GetUpperBound() != want {
			t.Errorf("bucket %d: le %v, want %v", i, b.GetUpperBound(), want)
		}
		if b.GetCumulativeCount() < prev {
			t.Errorf("bucket %d: count %d below the previous %d", i, b.GetCumulativeCount(), prev)
		}
		prev = b.GetCumulativeCount()
	}
	if prev > h.GetSampleCount() || h.GetSampleSum() <= 0 {
		t.Errorf("count %d, last bucket %d, sum %v", h.GetSampleCount(), prev, h.GetSampleSum())
	}
}

// checkNative checks a histogram's native form against its classic one.
func checkNative(t testing.TB, m *dto.Metric) {
	t.Helper()
	h := m.GetHistogram()
	if h.Schema == nil || h.GetSchema() != 0 || h.GetZeroThreshold() != math.Ldexp(1, -16) {
		t.Fatalf("no native histogram of schema 0: schema %v zero threshold %v", h.Schema, h.GetZeroThreshold())
	}
	native := expandNative(h)
	total := h.GetZeroCount()
	for _, c := range native {
		total += uint64(c)
	}
	if total != h.GetSampleCount() {
		t.Errorf("native counts %d, count %d", total, h.GetSampleCount())
	}
	// Bucket i of the classic form (upper bound 2^(i-16)) is native index
	// i-16.
	var prev uint64
	for i, b := range h.GetBucket() {
		c := b.GetCumulativeCount() - prev
		prev = b.GetCumulativeCount()
		want := uint64(native[i-16])
		if i == 0 {
			want = h.GetZeroCount()
		}
		if c != want {
			t.Errorf("classic bucket %d holds %d, native %d", i, c, want)
		}
	}
}

// expandNative returns a native histogram's positive buckets by index.
func expandNative(h *dto.Histogram) map[int]int64 {
	out := map[int]int64{}
	idx := 0
	var cur int64
	d := 0
	for _, s := range h.GetPositiveSpan() {
		idx += int(s.GetOffset())
		for range s.GetLength() {
			cur += h.GetPositiveDelta()[d]
			d++
			if cur != 0 {
				out[idx] = cur
			}
			idx++
		}
	}
	return out
}
