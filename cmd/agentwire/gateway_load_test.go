package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agentwire/agentwire/engine/pool"
)

// gwFamilies is one parsed scrape of /metrics.
type gwFamilies map[string]*dto.MetricFamily

// scrapeGateway GETs url and parses it with the Prometheus text parser.
func scrapeGateway(t *testing.T, c *http.Client, url string) gwFamilies {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("scrape: status %d", res.StatusCode)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// sum adds the values of name's series whose labels include labels
// (counters, gauges; a histogram's sample count), and how many series
// matched.
func (f gwFamilies) sum(name string, labels ...string) (float64, int) {
	var total float64
	n := 0
	fam := f[name]
	if fam == nil {
		return 0, 0
	}
next:
	for _, m := range fam.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		n++
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total, n
}

// v is sum's value; the series must exist.
func (f gwFamilies) v(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	x, n := f.sum(name, labels...)
	if n == 0 {
		t.Fatalf("no series %s%v", name, labels)
	}
	return x
}

// The families the metrics issue lists, and the gateway's own.
var gatewayLoadFamilies = []string{
	"agentwire_agent_requests_total", "agentwire_agent_errors_total", "agentwire_agent_request_duration_seconds",
	"agentwire_agent_in_flight", "agentwire_agent_breaker_state", "agentwire_agent_connections", "agentwire_agent_health",
	"agentwire_agent_synthetic_decisions_total", "agentwire_agent_breaker_opens_total", "agentwire_agent_up",
	"agentwire_gateway_requests_total",
}

// loadTally counts the answers the load's clients got.
type loadTally struct {
	sent, ok, unavailable atomic.Int64
	bad                   atomic.Int64 // any other answer, or a transport error
	firstBad              atomic.Pointer[string]
}

func (l *loadTally) get(c *http.Client, url string) {
	res, err := c.Get(url)
	if err != nil {
		l.fail(err.Error())
		return
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	switch {
	case err != nil:
		l.fail(err.Error())
	case res.StatusCode == 200 && string(body) == "upstream" && res.Header.Get("X-Upstream-Saw-Agent") == "true":
		l.ok.Add(1)
	case res.StatusCode == 503:
		l.unavailable.Add(1)
	default:
		l.fail(fmt.Sprintf("status %d body %q", res.StatusCode, body))
	}
}

func (l *loadTally) fail(s string) {
	l.bad.Add(1)
	l.firstBad.CompareAndSwap(nil, &s)
}

func (l *loadTally) check(t *testing.T) {
	t.Helper()
	if n := l.bad.Load(); n != 0 {
		t.Fatalf("%d requests got an unexpected answer, the first: %s", n, *l.firstBad.Load())
	}
	if l.sent.Load() != l.ok.Load()+l.unavailable.Load() {
		t.Fatalf("%d sent, %d answered 200, %d answered 503", l.sent.Load(), l.ok.Load(), l.unavailable.Load())
	}
}

// drive runs clients concurrent clients sending GET url while more()
// holds, at most max requests in all, and returns when they are done.
func drive(c *http.Client, url string, clients int, max int64, more func() bool, l *loadTally) {
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				if l.sent.Add(1) > max {
					l.sent.Add(-1)
					return
				}
				l.get(c, url)
			}
		}()
	}
	wg.Wait()
}

// TestGatewayMetricsUnderLoad is the metrics issue's "done when" test: a
// running `agentwire gateway --metrics-listen` (in process, so that the
// race detector covers it) with an echo agent (`agentwire serve`, a
// process of its own, so that it can be SIGKILLed), under 32 concurrent
// HTTP clients, scraped and parsed with the Prometheus text parser while
// the load runs and after it:
//
//  1. healthy: every family present at every scrape, counters never
//     going back and never ahead of the requests sent, in flight within
//     the clients; after the load, requests counted equal requests sent
//     (agent calls and gateway requests), in flight 0, the duration
//     histogram's count equal to the requests, no error, breaker 0;
//  2. the agent SIGKILLed while the load continues: the breaker goes to
//     2 (open), the requests get 503 (fail-closed), and the synthetic
//     decisions and errors count exactly the 503s the clients got;
//  3. the agent restarted: its connection comes back, the breaker returns
//     to 0 (it half-opens when the connection is back, not after its
//     30 s open period) and every request passes again; the totals still
//     equal what the clients saw.
func TestGatewayMetricsUnderLoad(t *testing.T) {
	const clients = 32
	sock := shortSocketPath(t, "echo.sock")
	agentProc := startAgentProc(t, sock, "echo")
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream-Saw-Agent", r.Header.Get("X-Agent-Processed"))
		io.WriteString(w, "upstream")
	}))
	defer upSrv.Close()
	metricsAddr := deadTCPAddr(t)
	base, gwErr := startGateway(t, "--listen", "127.0.0.1:0", "--upstream", upSrv.URL, "--agent", "unix://"+sock, "--metrics-listen", metricsAddr)
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := base + "/x"
	murl := "http://" + metricsAddr + "/metrics"
	scrape := func() gwFamilies { return scrapeGateway(t, c, murl) }
	start := time.Now() // (the binary is built by then)

	// The agent's label: the --agent endpoint as given.
	f := scrape()
	var agentName string
	for _, m := range f["agentwire_agent_breaker_state"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "agent" {
				if agentName != "" {
					t.Fatalf("two agents: %q and %q", agentName, lp.GetValue())
				}
				agentName = lp.GetValue()
			}
		}
	}
	if agentName == "" {
		t.Fatal("no agent in /metrics")
	}
	A := func(labels ...string) []string { return append([]string{"agent", agentName}, labels...) }
	present := func(f gwFamilies) {
		t.Helper()
		for _, name := range gatewayLoadFamilies {
			if f[name] == nil {
				t.Fatalf("family %s missing", name)
			}
		}
	}
	// totals checks what holds at any quiescent moment: every request
	// sent was counted once, by the agent's counters and the gateway's,
	// and every 503 is a synthetic fail-closed decision and an error.
	var all loadTally // every request of the test
	totals := func(f gwFamilies) {
		t.Helper()
		present(f)
		all.check(t)
		sent, ok, s503 := float64(all.sent.Load()), float64(all.ok.Load()), float64(all.unavailable.Load())
		for _, x := range []struct {
			what      string
			got, want float64
		}{
			{"agent requests counted", f.v(t, "agentwire_agent_requests_total", A("event", "request_headers")...), sent},
			{"gateway requests counted", f.v(t, "agentwire_gateway_requests_total"), sent},
			{"allowed by the agent", f.v(t, "agentwire_agent_requests_total", A("event", "request_headers", "decision", "allow")...), ok},
			{"fail-closed requests", f.v(t, "agentwire_agent_requests_total", A("event", "request_headers", "decision", "fail_closed")...), s503},
			{"fail-closed synthetic decisions", f.v(t, "agentwire_agent_synthetic_decisions_total", A("decision", "fail_closed")...), s503},
			{"fail-open synthetic decisions", f.v(t, "agentwire_agent_synthetic_decisions_total", A("decision", "fail_open")...), 0},
			{"errors", f.v(t, "agentwire_agent_errors_total", A()...), s503},
			{"requests blocked by the gateway", f.v(t, "agentwire_gateway_blocked_total", "phase", "request_headers"), s503},
			// Calls that reached the connection: the answered ones and
			// those lost with it (or timed out).
			{"duration histogram count", f.v(t, "agentwire_agent_request_duration_seconds", A("event", "request_headers")...),
				ok + f.v(t, "agentwire_agent_errors_total", A("kind", "connection_lost")...) + f.v(t, "agentwire_agent_errors_total", A("kind", "timeout")...)},
			{"in flight", f.v(t, "agentwire_agent_in_flight", A()...), 0},
			{"connections in all states", f.v(t, "agentwire_agent_connections", A()...), 1},
			{"connections by health state", f.v(t, "agentwire_agent_health", A()...), 1},
		} {
			if x.got != x.want {
				t.Fatalf("%s: %v, want %v (sent %v: %v answered 200, %v 503)", x.what, x.got, x.want, sent, ok, s503)
			}
		}
	}
	for _, b := range f["agentwire_agent_request_duration_seconds"].GetMetric() {
		if h := b.GetHistogram(); len(h.GetBucket()) < 20 {
			t.Fatalf("duration histogram with %d buckets", len(h.GetBucket()))
		}
	}

	// Phase 1: healthy, under load, scraped while it runs.
	const n1 = 1000
	var scrapes atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		drive(c, url, clients, 100_000, func() bool { return all.sent.Load() < n1 || scrapes.Load() < 3 }, &all)
	}()
	var prev float64
	for running := true; running; {
		select {
		case <-done:
			running = false
			continue
		default:
		}
		sentBefore := all.sent.Load()
		f := scrape()
		sentAfter := all.sent.Load()
		present(f)
		reqs := f.v(t, "agentwire_agent_requests_total", A("event", "request_headers")...)
		if reqs < prev || reqs > float64(sentAfter) {
			t.Fatalf("mid-load: %v requests counted, %v at the previous scrape, %v sent", reqs, prev, sentAfter)
		}
		prev = reqs
		if in := f.v(t, "agentwire_agent_in_flight", A()...); in < 0 || in > clients {
			t.Fatalf("mid-load: %v in flight with %d clients", in, clients)
		}
		if st, up, errs := f.v(t, "agentwire_agent_breaker_state", A()...), f.v(t, "agentwire_agent_connections", A("state", "up")...), f.v(t, "agentwire_agent_errors_total", A()...); st != 0 || up != 1 || errs != 0 {
			t.Fatalf("mid-load: breaker %v, %v connections up, %v errors", st, up, errs)
		}
		select {
		case <-done:
		default:
			if sentBefore > 0 {
				scrapes.Add(1) // taken while the load ran (it waits for three)
			}
		}
		time.Sleep(5 * time.Millisecond) // pacing of the scrapes, not a synchronisation
	}
	f = scrape()
	totals(f)
	if all.unavailable.Load() != 0 || all.sent.Load() < n1 {
		t.Fatalf("healthy phase: %d sent, %d answered 503", all.sent.Load(), all.unavailable.Load())
	}
	if st, up, agentUp := f.v(t, "agentwire_agent_breaker_state", A()...), f.v(t, "agentwire_agent_connections", A("state", "up")...), f.v(t, "agentwire_agent_up", A()...); st != 0 || up != 1 || agentUp != 1 {
		t.Fatalf("healthy: breaker %v, %v connections up, up %v", st, up, agentUp)
	}
	if s, _ := f.sum("agentwire_agent_request_duration_seconds", A("event", "request_headers")...); s == 0 {
		t.Fatal("empty duration histogram")
	}
	healthy := all.sent.Load()
	t.Logf("healthy: %d requests in %d mid-load scrapes, %v since start", healthy, scrapes.Load(), time.Since(start).Round(time.Millisecond))

	// Phase 2: the agent is SIGKILLed while the load continues.
	var stop atomic.Bool
	done = make(chan struct{})
	go func() {
		defer close(done)
		drive(c, url, clients, 1_000_000, func() bool { return !stop.Load() }, &all)
	}()
	waitCond(t, "the load to flow", func() bool { return all.ok.Load() >= healthy+200 })
	agentProc.stop(t, syscall.SIGKILL)
	killed := time.Now()
	var states []float64
	waitCond(t, "the breaker to open and refuse 100 calls", func() bool {
		f := scrape()
		present(f)
		st := f.v(t, "agentwire_agent_breaker_state", A()...)
		if len(states) == 0 || states[len(states)-1] != st {
			states = append(states, st)
		}
		return st == 2 && f.v(t, "agentwire_agent_synthetic_decisions_total", A("reason", "breaker_open")...) >= 100
	})
	stop.Store(true)
	<-done
	f = scrape()
	totals(f)
	if st, up, down, agentUp := f.v(t, "agentwire_agent_breaker_state", A()...), f.v(t, "agentwire_agent_connections", A("state", "up")...),
		f.v(t, "agentwire_agent_connections", A("state", "down")...), f.v(t, "agentwire_agent_up", A()...); st != 2 || up != 0 || down != 1 || agentUp != 0 {
		t.Fatalf("agent killed: breaker %v, connections %v up %v down, up %v", st, up, down, agentUp)
	}
	if opens := f.v(t, "agentwire_agent_breaker_opens_total", A()...); opens != 1 {
		t.Fatalf("breaker opened %v times", opens)
	}
	// What opened it: calls that found the agent down (and the one
	// failure of the lost connection), DefaultFailureThreshold of them.
	down := f.v(t, "agentwire_agent_errors_total", A("kind", "no_connection")...) + f.v(t, "agentwire_agent_errors_total", A("kind", "connection_lost")...)
	if down < pool.DefaultFailureThreshold || f.v(t, "agentwire_agent_errors_total", A("kind", "breaker_open")...) < 100 {
		t.Fatalf("errors by kind: %v no_connection or connection_lost, %v breaker_open", down, f.v(t, "agentwire_agent_errors_total", A("kind", "breaker_open")...))
	}
	if slices.Contains(states, 1) {
		t.Fatalf("breaker states seen after the kill: %v", states)
	}
	t.Logf("killed: %d requests answered 503 (%v refused by the open breaker), open %v after the kill",
		all.unavailable.Load(), f.v(t, "agentwire_agent_synthetic_decisions_total", A("reason", "breaker_open")...), time.Since(killed).Round(time.Millisecond))

	// Phase 3: the agent restarted. Its connection comes back (the
	// gateway reconnects within a second), the breaker half-opens at
	// once, two probes close it.
	startAgentProc(t, sock, "echo")
	restarted := time.Now()
	waitCond(t, "the connection to come back", func() bool {
		return scrape().v(t, "agentwire_agent_connections", A("state", "up")...) == 1
	})
	waitCond(t, "the breaker to close", func() bool {
		all.sent.Add(1)
		all.get(c, url)
		return scrape().v(t, "agentwire_agent_breaker_state", A()...) == 0
	})
	back := time.Since(restarted)
	okBefore, s503Before := all.ok.Load(), all.unavailable.Load()
	const n3 = 320
	n3Max := all.sent.Load() + n3
	drive(c, url, clients, n3Max, func() bool { return true }, &all)
	if ok := all.ok.Load() - okBefore; ok != n3 || all.unavailable.Load() != s503Before {
		t.Fatalf("after the restart: %d of %d requests passed, %d more 503s", ok, n3, all.unavailable.Load()-s503Before)
	}
	f = scrape()
	totals(f)
	if st, up, agentUp, opens := f.v(t, "agentwire_agent_breaker_state", A()...), f.v(t, "agentwire_agent_connections", A("state", "up")...),
		f.v(t, "agentwire_agent_up", A()...), f.v(t, "agentwire_agent_breaker_opens_total", A()...); st != 0 || up != 1 || agentUp != 1 || opens != 1 {
		t.Fatalf("restarted: breaker %v, %v connections up, up %v, %v opens", st, up, agentUp, opens)
	}
	if strings.Contains(gwErr.String(), "panic") {
		t.Fatalf("gateway stderr: %s", gwErr.String())
	}
	t.Logf("restarted: breaker closed %v after the restart; %d requests in all (%d 200, %d 503), %v since start",
		back.Round(time.Millisecond), all.sent.Load(), all.ok.Load(), all.unavailable.Load(), time.Since(start).Round(time.Millisecond))
}

// waitCond polls cond (every 5 ms) for at most 10 s; for states read
// through /metrics, which have no event to wait on.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
