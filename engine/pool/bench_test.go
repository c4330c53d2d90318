package pool

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// Benchmarks of the layer over real Unix-socket agents (agent.Server,
// allow everything) in a child process, so that allocs/op and cpu-µs/op
// are the proxy process's only. bench/pool.sh runs them with -count and
// compares the pairs with benchstat.
//
//	BenchmarkOverhead  a bare engine.Conn (RequestHeadersInto) against a
//	                   one-agent pipeline over a pool of one connection
//	                   (RequestHeaders with a reused Request, then End),
//	                   at 1 and 64 requests in flight
//	BenchmarkConns     a one-agent pipeline over 1 and over 4 connections
//	                   to the same agent, 256 in flight: req/s
//	BenchmarkFanOut    one call against a parallel fan-out to 3 agents, 1
//	                   in flight: p50 and p99 latency (the agents in one
//	                   child process; BenchmarkFanOutProcs: in three)

func benchEvent() agentwire.RequestHeadersEvent {
	one := func(n, v string) agentwire.Header { return agentwire.Header{Name: n, Values: []string{v}} }
	return agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			ClientIP: "203.0.113.7", ClientPort: 54321, ServerName: agentwire.Some("api.example.com"), Protocol: "HTTP/1.1",
			RouteID: agentwire.Some("api-v1"), UpstreamID: agentwire.Some("backend-pool-1"),
			Timestamp: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		Method: "POST", URI: "/api/v1/orders?customer=12345&expand=items",
		Headers: agentwire.Headers{
			one("host", "api.example.com"),
			one("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"),
			one("accept", "application/json, text/plain, */*"),
			one("accept-encoding", "gzip, deflate, br"),
			one("cookie", "session=3f1a9c2b7e8d4f6a9b0c1d2e3f4a5b6c; theme=dark"),
			one("x-forwarded-for", "203.0.113.7, 10.0.0.12"),
			one("x-request-id", "a1b2c3d4-e5f6-7890-abcd-ef1234567890"),
			one("content-type", "application/json"),
			one("content-length", "512"),
			one("authorization", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc"),
		},
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runInFlight runs b.N calls of do with inflight callers (each with its
// own state from mk) and reports req/s and CPU per call.
func runInFlight[S any](b *testing.B, inflight int, mk func() S, do func(s S, ev *agentwire.RequestHeadersEvent) error) {
	var seq atomic.Uint64
	b.ReportAllocs()
	cpu0 := processCPU()
	start := time.Now()
	b.ResetTimer()
	body := func(next func() bool) {
		s := mk()
		ev := benchEvent()
		id := make([]byte, 0, 24)
		for next() {
			id = strconv.AppendUint(append(id[:0], "bench-"...), seq.Add(1), 36)
			ev.Metadata.CorrelationID = string(id)
			if err := do(s, &ev); err != nil {
				b.Error(err)
				return
			}
		}
	}
	if inflight == 1 {
		i := 0
		body(func() bool { i++; return i <= b.N })
	} else {
		b.SetParallelism((inflight + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(p *testing.PB) { body(p.Next) })
	}
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

// reportLatency reports the p50 and p99 of lat (sorted in place).
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// dialConns dials a bare engine.Conn to each Unix socket path, closed at
// cleanup.
func dialConns(b *testing.B, paths []string, opts ...engine.Option) []*engine.Conn {
	b.Helper()
	conns := make([]*engine.Conn, len(paths))
	for i, path := range paths {
		c, err := engine.Dial(context.Background(), "unix://"+path, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// reportAgentCPU, deferred as defer reportAgentCPU(b, paths)(), reports
// the CPU time per operation of the child processes serving paths
// ("agent-cpu-µs/op", where /proc can be read): with cpu-µs/op, the
// proxy's, it tells what a request costs the machine.
func reportAgentCPU(b *testing.B, paths []string) func() {
	c0, ok := childCPU(paths)
	return func() {
		c1, ok1 := childCPU(paths)
		if ok && ok1 && b.N > 0 {
			b.ReportMetric(float64((c1-c0).Nanoseconds())/1e3/float64(b.N), "agent-cpu-µs/op")
		}
	}
}

// benchPool returns a pool agent over conns connections to each of the
// endpoints, ready, and a one-step pipeline of it.
func benchPool(b *testing.B, name string, conns int, path string, opts ...AgentOption) (*Agent, *Pipeline) {
	b.Helper()
	p, err := New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	opts = append([]AgentOption{WithEndpoint("unix://"+path, conns), WithConcurrency(4096, 0), WithTimeout(30 * time.Second)}, opts...)
	a, err := p.AddAgent(name, opts...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx, 0); err != nil {
		b.Fatal(err)
	}
	pl, err := NewPipeline([]Step{{Agent: a}})
	if err != nil {
		b.Fatal(err)
	}
	return a, pl
}

func pipelineCall(pl *Pipeline) func(r *Request, ev *agentwire.RequestHeadersEvent) error {
	ctx := context.Background()
	return func(r *Request, ev *agentwire.RequestHeadersEvent) error {
		v := pl.RequestHeaders(ctx, r, ev)
		pl.End(r)
		if v.Synthetic {
			return fmt.Errorf("verdict %+v", v)
		}
		return nil
	}
}

func BenchmarkOverhead(b *testing.B) {
	path := startChildAgents(b, 1)[0]
	ctx := context.Background()
	bare, err := engine.Dial(ctx, "unix://"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	_, pl := benchPool(b, "bench", 1, path)
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("bare/inflight=%d", n), func(b *testing.B) {
			runInFlight(b, n, func() *agentwire.AgentResponse { return new(agentwire.AgentResponse) },
				func(dst *agentwire.AgentResponse, ev *agentwire.RequestHeadersEvent) error {
					return bare.RequestHeadersInto(ctx, ev, dst)
				})
		})
		b.Run(fmt.Sprintf("pipeline/inflight=%d", n), func(b *testing.B) {
			runInFlight(b, n, func() *Request { return new(Request) }, pipelineCall(pl))
		})
	}
}

func BenchmarkConns(b *testing.B) {
	path := startChildAgents(b, 1)[0]
	ctx := context.Background()
	// The transport's own cost of spreading calls over 4 connections: bare
	// Conns taken in turn by a counter (no pool).
	var bare []*engine.Conn
	for range 4 {
		c, err := engine.Dial(ctx, "unix://"+path)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		bare = append(bare, c)
	}
	var next atomic.Uint64
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("bare/conns=%d/inflight=256", n), func(b *testing.B) {
			runInFlight(b, 256, func() *agentwire.AgentResponse { return new(agentwire.AgentResponse) },
				func(dst *agentwire.AgentResponse, ev *agentwire.RequestHeadersEvent) error {
					return bare[next.Add(1)%uint64(n)].RequestHeadersInto(ctx, ev, dst)
				})
		})
	}
	for _, conns := range []int{1, 4} {
		_, pl := benchPool(b, fmt.Sprint("bench-", conns), conns, path)
		b.Run(fmt.Sprintf("pool/conns=%d/inflight=256", conns), func(b *testing.B) {
			runInFlight(b, 256, func() *Request { return new(Request) }, pipelineCall(pl))
		})
	}
	_, rr := benchPool(b, "bench-rr", 4, path, WithBalance(BalanceRoundRobin))
	b.Run("pool-rr/conns=4/inflight=256", func(b *testing.B) {
		runInFlight(b, 256, func() *Request { return new(Request) }, pipelineCall(rr))
	})
}

// BenchmarkFanOut: the three agents are three agent.Servers in one child
// process.
func BenchmarkFanOut(b *testing.B) { benchFanOut(b, startChildAgents(b, 3)) }

// BenchmarkFanOutProcs is BenchmarkFanOut with each agent in a child
// process of its own (three agent processes and the proxy on the
// machine's cores).
func BenchmarkFanOutProcs(b *testing.B) {
	var paths []string
	for range 3 {
		paths = append(paths, startChildAgents(b, 1)...)
	}
	benchFanOut(b, paths)
}

func benchFanOut(b *testing.B, paths []string) {
	p, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	var steps []Step
	for i, path := range paths {
		a, err := p.AddAgent(fmt.Sprint("agent-", i), WithEndpoint("unix://"+path, 1))
		if err != nil {
			b.Fatal(err)
		}
		if err := a.WaitReady(context.Background(), 1); err != nil {
			b.Fatal(err)
		}
		steps = append(steps, Step{Agent: a})
	}
	one, _ := NewPipeline(steps[:1])
	three, _ := NewPipeline(steps)
	for _, c := range []struct {
		name string
		pl   *Pipeline
	}{{"agents=1", one}, {"agents=3", three}} {
		b.Run(c.name+"/inflight=1", func(b *testing.B) {
			defer reportAgentCPU(b, paths)()
			lat := make([]time.Duration, 0, b.N)
			call := pipelineCall(c.pl)
			runInFlight(b, 1, func() *Request { return new(Request) }, func(r *Request, ev *agentwire.RequestHeadersEvent) error {
				t0 := time.Now()
				err := call(r, ev)
				lat = append(lat, time.Since(t0))
				return err
			})
			reportLatency(b, lat)
		})
	}
}

// BenchmarkFanOutBare is the floor of BenchmarkFanOut and
// BenchmarkFanOutProcs without the layer: one bare engine.Conn call
// (RequestHeadersInto) against three calls on three Conns started with
// StartRequestHeaders and then waited for, 1 in flight; the agents in one
// child process (procs=1) or in three (procs=3).
func BenchmarkFanOutBare(b *testing.B) { benchFanOutBare(b, true) }

// BenchmarkFanOutBareNoSpin is BenchmarkFanOutBare with the read spin off
// on both sides (engine.WithReadSpin(0), agent.WithReadSpin(0)): every
// read that finds nothing parks.
func BenchmarkFanOutBareNoSpin(b *testing.B) { benchFanOutBare(b, false) }

func benchFanOutBare(b *testing.B, spin bool) {
	var env []string
	var opts []engine.Option
	if !spin {
		env = append(env, noSpinEnv+"=1")
		opts = append(opts, engine.WithReadSpin(0))
	}
	for _, procs := range []int{1, 3} {
		var paths []string
		if procs == 1 {
			paths, _ = startChildAgentsEnv(b, 3, env...)
		} else {
			for range 3 {
				p, _ := startChildAgentsEnv(b, 1, env...)
				paths = append(paths, p...)
			}
		}
		ctx := context.Background()
		conns := dialConns(b, paths, opts...)
		type state struct {
			dsts  [3]agentwire.AgentResponse
			calls [3]engine.Call
		}
		for _, n := range []int{1, 3} {
			b.Run(fmt.Sprintf("procs=%d/agents=%d/inflight=1", procs, n), func(b *testing.B) {
				defer reportAgentCPU(b, paths)()
				lat := make([]time.Duration, 0, b.N)
				runInFlight(b, 1, func() *state { return new(state) }, func(s *state, ev *agentwire.RequestHeadersEvent) error {
					t0 := time.Now()
					if n == 1 {
						err := conns[0].RequestHeadersInto(ctx, ev, &s.dsts[0])
						lat = append(lat, time.Since(t0))
						return err
					}
					for i := range n {
						if ok, err := conns[i].StartRequestHeaders(ctx, ev, &s.dsts[i], &s.calls[i]); !ok {
							return fmt.Errorf("not started: %v", err)
						}
					}
					var err error
					for i := range n {
						if e := s.calls[i].Wait(); e != nil {
							err = e
						}
					}
					lat = append(lat, time.Since(t0))
					return err
				})
				reportLatency(b, lat)
			})
		}
	}
}

// nopLink answers every request-headers event at once with allow, without
// allocating: it isolates the layer's own cost.
type nopLink struct{ fakeLink }

func (*nopLink) RequestHeadersInto(_ context.Context, ev *agentwire.RequestHeadersEvent, dst *agentwire.AgentResponse) error {
	dst.Reset()
	dst.CorrelationID = ev.Metadata.CorrelationID
	return nil
}
func (*nopLink) Health() engine.HealthSnapshot {
	return engine.HealthSnapshot{Connected: true, AcceptsRequests: true, Capacity: -1}
}
func (*nopLink) Capabilities() agentwire.Capabilities { return agentwire.Capabilities{} }

// BenchmarkLayer measures the layer's own CPU per request, without any
// I/O: a connection that answers at once, called directly ("direct") and
// through a one-agent pipeline over a pool ("pipeline"), on 1 and 64
// goroutines. The difference of the two is what the layer adds to every
// request, free of the noise of sockets and of the agent process;
// "pipeline-conns=4" balances over 4 such connections.
func BenchmarkLayer(b *testing.B) {
	p, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	nop := &nopLink{}
	a, err := p.AddAgent("nop", WithConcurrency(4096, 0))
	if err != nil {
		b.Fatal(err)
	}
	m, err := a.addMember(nop, SourceAdded, "nop", 1, DefaultTimeout, 0)
	if err != nil {
		b.Fatal(err)
	}
	m.setState(ConnUp)
	pl, _ := NewPipeline([]Step{{Agent: a}})
	// The same over 4 such connections: the balancer's own cost (power
	// of two choices on in-flight and latency).
	a4, err := p.AddAgent("nop4", WithConcurrency(4096, 0))
	if err != nil {
		b.Fatal(err)
	}
	for range 4 {
		m, err := a4.addMember(&nopLink{}, SourceAdded, "nop", 1, DefaultTimeout, 0)
		if err != nil {
			b.Fatal(err)
		}
		m.setState(ConnUp)
	}
	pl4, _ := NewPipeline([]Step{{Agent: a4}})
	ctx := context.Background()
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("direct/inflight=%d", n), func(b *testing.B) {
			runInFlight(b, n, func() *agentwire.AgentResponse { return new(agentwire.AgentResponse) },
				func(dst *agentwire.AgentResponse, ev *agentwire.RequestHeadersEvent) error {
					return nop.RequestHeadersInto(ctx, ev, dst)
				})
		})
		b.Run(fmt.Sprintf("pipeline/inflight=%d", n), func(b *testing.B) {
			runInFlight(b, n, func() *Request { return new(Request) }, pipelineCall(pl))
		})
		b.Run(fmt.Sprintf("pipeline-conns=4/inflight=%d", n), func(b *testing.B) {
			runInFlight(b, n, func() *Request { return new(Request) }, pipelineCall(pl4))
		})
	}
}
