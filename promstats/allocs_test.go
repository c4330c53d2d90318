//go:build !race

package promstats

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentwire/agentwire/internal/loopagent"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
	"github.com/agentwire/agentwire/internal/allocs"
)

// startLoopAgent runs a fake agent on a Unix socket that allocates nothing
// per request (the allocation counts are the whole process's): a JSON
// handshake, then an allow for every request-headers event, built in a
// reused buffer.
func startLoopAgent(t testing.TB) string {
	t.Helper()
	return loopagent.Start(t, loopagent.Config{})
}

// TestAllocsCollectorRegistered proves that a registered pool collector
// (and a ReportSink attached to the connections) adds no allocation to
// the request path: N one-agent pipeline round trips (request headers
// and End, a reused Request, distinct correlation ids) through a pool
// with no collector, and through a pool whose collector and sink are
// registered on a registry that has been scraped, to the same
// allocation-free agent; and N bare engine.Conn round trips to it. Each
// count is the total mallocs of the N requests (allocs.Count: GOMAXPROCS
// 1, no GC), the lowest of a few; the pool with the collector must
// allocate no more than the pool without it and the bare connection,
// within 1 in 1000 requests. Finally the collector has counted every
// request.
func TestAllocsCollectorRegistered(t *testing.T) {
	path := startLoopAgent(t)
	ctx := context.Background()
	newPipeline := func(opts ...pool.AgentOption) (*pool.Pool, *pool.Pipeline) {
		p, err := pool.New()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		a, err := p.AddAgent("loop", opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.WaitReady(testCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		pl, err := pool.NewPipeline([]pool.Step{{Agent: a}})
		if err != nil {
			t.Fatal(err)
		}
		return p, pl
	}
	_, plain := newPipeline(pool.WithEndpoint("unix://"+path, 1))
	sink, err := NewReportSink()
	if err != nil {
		t.Fatal(err)
	}
	p, observed := newPipeline(pool.WithEndpoint("unix://"+path, 1, sink.Option("loop")))
	col, err := NewPoolCollector(p)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col, sink)

	const n = 10000
	evs := make([]agentwire.RequestHeadersEvent, n)
	for i := range evs {
		evs[i] = agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: fmt.Sprint("alloc-", i)}, Method: "GET", URI: "/"}
	}
	run := func(pl *pool.Pipeline) func() {
		var r pool.Request
		i := 0
		return func() {
			ev := &evs[i%n]
			i++
			if v := pl.RequestHeaders(ctx, &r, ev); v.Synthetic {
				t.Fatalf("verdict %+v", v)
			}
			pl.End(&r)
		}
	}
	bare, err := engine.Dial(ctx, "unix://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	dst := new(agentwire.AgentResponse)
	bi := 0
	runBare := func() {
		if err := bare.RequestHeadersInto(ctx, &evs[bi%n], dst); err != nil {
			t.Fatal(err)
		}
		bi++
	}
	runPlain, runObserved := run(plain), run(observed)
	if _, err := reg.Gather(); err != nil { // a scrape before: whatever it sets up is set up
		t.Fatal(err)
	}
	var bareN, plainN, observedN uint64
	for i := range allocs.Attempts {
		a, b, c := allocs.Count(n, runBare), allocs.Count(n, runPlain), allocs.Count(n, runObserved)
		if i == 0 {
			bareN, plainN, observedN = a, b, c
		}
		bareN, plainN, observedN = min(bareN, a), min(plainN, b), min(observedN, c)
	}
	t.Logf("%d requests: bare connection %d mallocs (%.4f/request), pool without a collector %d (%.4f/request), with one registered %d (%.4f/request)",
		n, bareN, float64(bareN)/n, plainN, float64(plainN)/n, observedN, float64(observedN)/n)
	for _, base := range []struct {
		what string
		n    uint64
	}{{"the pool without a collector", plainN}, {"the bare connection", bareN}} {
		if extra := int64(observedN) - int64(base.n); extra*1000 > n {
			t.Errorf("the pool with a registered collector allocates %.4f more per request than %s (%d over %d requests)",
				float64(extra)/n, base.what, extra, n)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var counted float64
	for _, mf := range mfs {
		if mf.GetName() == famAgentRequests {
			for _, m := range mf.Metric {
				counted += m.GetCounter().GetValue()
			}
		}
	}
	if want := float64(allocs.Attempts * (n + min(n, allocs.Warm))); counted != want {
		t.Fatalf("the collector counted %v requests, want %v", counted, want)
	}
}
