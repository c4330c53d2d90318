//go:build !race

package pool

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/agentwire/agentwire/internal/loopagent"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// startLoopAgent runs an allocation-free fake agent on a Unix socket: it
// answers each connection's handshake (JSON), then every request-headers
// event with a minimal allow built in a reused buffer. The allocation
// counts are the whole process's, so the agent must not allocate per
// request for them to be the proxy side's.
func startLoopAgent(t testing.TB) string {
	t.Helper()
	return loopagent.Start(t, loopagent.Config{})
}

// mallocs returns the process's total number of heap allocations.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// TestAllocsOneAgentPipeline proves that a one-agent pipeline over a pool
// adds no allocation to a request over a bare connection: the request-
// headers phase with a reused Request, and End, for N requests with
// distinct correlation ids (each pinned and released), against N bare
// RequestHeadersInto calls on a Conn to the same allocation-free agent.
// It counts the total mallocs of each run (not AllocsPerRun's rounded-
// down average), so 0.05 extra allocations per request fail it.
func TestAllocsOneAgentPipeline(t *testing.T) {
	path := startLoopAgent(t)
	ctx := context.Background()
	bare, err := engine.Dial(ctx, "unix://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	p := newTestPool(t)
	a, err := p.AddAgent("loop", WithEndpoint("unix://"+path, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WaitReady(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	pl, err := NewPipeline([]Step{{Agent: a}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	cids := make([]string, n)
	evs := make([]agentwire.RequestHeadersEvent, n)
	for i := range evs {
		cids[i] = fmt.Sprint("alloc-", i)
		evs[i] = agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: cids[i]}, Method: "GET", URI: "/"}
	}
	dst := new(agentwire.AgentResponse)
	var r Request
	runBare := func() {
		for i := range evs {
			if err := bare.RequestHeadersInto(ctx, &evs[i], dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	runPool := func() {
		for i := range evs {
			if v := pl.RequestHeaders(ctx, &r, &evs[i]); v.Synthetic {
				t.Fatalf("verdict %+v", v)
			}
			pl.End(&r)
		}
	}
	bareN, poolN := lowestMallocs(runBare, runPool) // warms up first: buffers, pools, the affinity table
	extra := int64(poolN) - int64(bareN)
	t.Logf("%d requests: bare connection %d mallocs (%.3f/request), one-agent pipeline %d (%.3f/request), extra %d (%.4f/request)",
		n, bareN, float64(bareN)/n, poolN, float64(poolN)/n, extra, float64(extra)/n)
	if extra*20 >= n {
		t.Fatalf("the pipeline adds %.4f allocations per request (%d over %d requests)", float64(extra)/n, extra, n)
	}
	if st := a.Stats(); st.Pins != 0 || st.Decisions.Allow < 4*n {
		t.Fatalf("stats: pins %d allows %d", st.Pins, st.Decisions.Allow)
	}
}

// TestAllocsThreeAgentParallel proves that the parallel request-headers
// phase of a three-agent pipeline allocates nothing beyond its three
// connections' round trips: N requests through the pipeline (reused
// Request, End) against N rounds of three bare RequestHeadersInto calls on
// Conns to the same allocation-free agents, total mallocs compared (the
// lowest of 3 alternating runs each). A goroutine per agent (the fan-out
// before engine.Conn.StartRequestHeaders) costs about two allocations per
// request here and fails it.
func TestAllocsThreeAgentParallel(t *testing.T) {
	ctx := context.Background()
	p := newTestPool(t)
	var steps []Step
	var bare []*engine.Conn
	for k := range 3 {
		path := startLoopAgent(t)
		c, err := engine.Dial(ctx, "unix://"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		bare = append(bare, c)
		a, err := p.AddAgent(fmt.Sprint("loop-", k), WithEndpoint("unix://"+path, 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.WaitReady(testCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, Step{Agent: a})
	}
	pl, err := NewPipeline(steps)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	evs := make([]agentwire.RequestHeadersEvent, n)
	for i := range evs {
		evs[i] = agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: fmt.Sprint("alloc3-", i)}, Method: "GET", URI: "/"}
	}
	dst := new(agentwire.AgentResponse)
	var r Request
	runBare := func() {
		for i := range evs {
			for _, c := range bare {
				if err := c.RequestHeadersInto(ctx, &evs[i], dst); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	runPool := func() {
		for i := range evs {
			if v := pl.RequestHeaders(ctx, &r, &evs[i]); v.Synthetic || len(r.Verdicts) != 3 || r.Verdicts[2].Reply == nil {
				t.Fatalf("verdict %+v", v)
			}
			pl.End(&r)
		}
	}
	bareN, poolN := lowestMallocs(runBare, runPool)
	extra := int64(poolN) - int64(bareN)
	t.Logf("%d requests: 3 bare calls each %d mallocs (%.3f/request), three-agent parallel pipeline %d (%.3f/request), extra %d (%.4f/request)",
		n, bareN, float64(bareN)/n, poolN, float64(poolN)/n, extra, float64(extra)/n)
	if extra*20 >= n {
		t.Fatalf("the parallel fan-out adds %.4f allocations per request (%d over %d requests)", float64(extra)/n, extra, n)
	}
	for _, st := range steps {
		if s := st.Agent.Stats(); s.Decisions.Allow < 4*n || s.InFlight != 0 {
			t.Fatalf("agent %s: allows %d, in flight %d", s.Name, s.Decisions.Allow, s.InFlight)
		}
	}
}

// lowestMallocs runs bare and pool once each to warm up, then three times
// alternately, and returns the lowest malloc count of each (other
// goroutines' noise only adds).
func lowestMallocs(bare, pool func()) (bareN, poolN uint64) {
	bare()
	pool()
	for range 3 {
		m0 := mallocs()
		bare()
		m1 := mallocs()
		pool()
		m2 := mallocs()
		if b := m1 - m0; bareN == 0 || b < bareN {
			bareN = b
		}
		if q := m2 - m1; poolN == 0 || q < poolN {
			poolN = q
		}
	}
	return bareN, poolN
}
