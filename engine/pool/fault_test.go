package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
)

// Fault tests: real agents (package agent) over Unix sockets, real
// engine.Conns, the whole layer.

// gateAgent is an agent whose request-headers handler can be made to
// wait (on a gate), hang (until the proxy cancels), or be slow.
type gateAgent struct {
	agent.BaseHandler
	mode    atomic.Int32 // gateOpen, gateHeld, gateHang
	gate    chan struct{}
	delay   time.Duration
	entered atomic.Int64
	calls   atomic.Int64
	decide  func(ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse)
}

const (
	gateOpen int32 = iota
	gateHeld
	gateHang
)

func newGateAgent() *gateAgent { return &gateAgent{gate: make(chan struct{})} }

func (g *gateAgent) OnRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	g.calls.Add(1)
	switch g.mode.Load() {
	case gateHeld:
		g.entered.Add(1)
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	case gateHang:
		g.entered.Add(1)
		<-ctx.Done() // until the proxy cancels (its timeout)
		return ctx.Err()
	}
	if g.delay > 0 {
		time.Sleep(g.delay) // simulated work
	}
	if g.decide != nil {
		g.decide(ev, r)
	}
	return nil
}

// fastReconnect makes the pool's engine.Conns reconnect quickly.
var fastReconnect = engine.WithReconnectBackoff(5*time.Millisecond, 50*time.Millisecond)

// One of 3 connections' agent is killed mid-flight: its pending calls get
// the failure policy within 50 ms, the calls on the other connections are
// answered by their agents, the breaker stays closed, and the connection
// comes back when the agent does.
func TestFaultAgentKilledMidFlight(t *testing.T) {
	var agents [3]*udsAgent
	var handlers [3]*gateAgent
	p := newTestPool(t, WithHealthCheckInterval(5*time.Millisecond))
	var eps []Endpoint
	for i := range agents {
		handlers[i] = newGateAgent()
		handlers[i].mode.Store(gateHeld)
		agents[i] = startUDSAgent(t, handlers[i], agent.WithAgentID(fmt.Sprint("waf-", i)))
		eps = append(eps, Endpoint{Address: agents[i].Endpoint(), Options: []engine.Option{fastReconnect}})
	}
	a, err := p.AddAgent("waf", WithEndpoints(eps...), WithBalance(BalanceRoundRobin), WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := a.WaitReady(ctx, 3); err != nil {
		t.Fatal(err)
	}
	const perConn = 10
	type result struct {
		v  engine.Verdict
		at time.Time
	}
	results := make(chan result, 3*perConn)
	for i := range 3 * perConn {
		go func() {
			v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint("kill-", i)), new(agentwire.AgentResponse))
			results <- result{v, time.Now()}
		}()
	}
	waitFor(t, "every connection to hold its calls", func() bool {
		return handlers[0].entered.Load()+handlers[1].entered.Load()+handlers[2].entered.Load() == 3*perConn
	})
	held := handlers[1].entered.Load()
	if held == 0 || held == 3*perConn {
		t.Fatalf("round robin put %d of %d calls on the victim", held, 3*perConn)
	}
	agents[1].Stop()
	killed := time.Now()
	for range held {
		r := <-results
		if !r.v.Synthetic || r.v.Reason != engine.ReasonError || r.v.Decision.Status != 503 || !errors.Is(r.v.Err, engine.ErrConnectionLost) {
			t.Fatalf("a call of the killed agent: %+v", r.v)
		}
		if d := r.at.Sub(killed); d > 50*time.Millisecond {
			t.Errorf("the failure policy came %v after the kill (bound 50ms)", d)
		}
	}
	select {
	case r := <-results:
		t.Fatalf("a call on a healthy connection ended before its agent answered: %+v", r.v)
	default:
	}
	close(handlers[0].gate)
	close(handlers[2].gate)
	for range 3*perConn - held {
		if r := <-results; r.v.Synthetic || !r.v.Allowed() {
			t.Fatalf("a call on a healthy connection: %+v", r.v)
		}
	}
	if a.Breaker() != BreakerClosed {
		t.Fatal("the kill opened the breaker")
	}
	// While the agent is down, new calls avoid its connection.
	handlers[1].mode.Store(gateOpen)
	for i := range 20 {
		if v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint("down-", i)), new(agentwire.AgentResponse)); v.Synthetic {
			t.Fatalf("call while one agent is down: %+v", v)
		}
	}
	// The agent comes back; so does its connection.
	before := handlers[1].calls.Load()
	agents[1].Start()
	if err := a.WaitReady(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint("back-", i)), new(agentwire.AgentResponse)); v.Synthetic {
			t.Fatalf("after the restart: %+v", v)
		}
	}
	if n := handlers[1].calls.Load() - before; n != 10 {
		t.Fatalf("the restarted agent got %d of 30 round-robin calls, want 10", n)
	}
}

// An agent that hangs: calls time out (504), the breaker opens after 5
// and refuses without calling (503), stays open, half-opens after the
// cool-down and closes after 2 successes once the agent answers again.
// Fail-open skips instead.
func TestFaultHungAgent(t *testing.T) {
	for _, mode := range []engine.FailureMode{engine.FailClosed, engine.FailOpen} {
		t.Run(mode.String(), func(t *testing.T) {
			h := newGateAgent()
			h.mode.Store(gateHang)
			ua := startUDSAgent(t, h)
			p := newTestPool(t)
			const cool = 200 * time.Millisecond
			a, err := p.AddAgent("waf", WithEndpoint(ua.Endpoint(), 1), WithTimeout(30*time.Millisecond),
				WithFailurePolicy(engine.FailurePolicy{Mode: mode}), WithBreaker(BreakerConfig{OpenDuration: cool}))
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			if err := a.WaitReady(ctx, 1); err != nil {
				t.Fatal(err)
			}
			closed := mode == engine.FailClosed
			check := func(v engine.Verdict, reason engine.Reason, status uint16) {
				t.Helper()
				if !v.Synthetic || v.Reason != reason || v.Allowed() == closed || closed && v.Decision.Status != status {
					t.Fatalf("verdict %+v, want reason %v status %d", v, reason, status)
				}
			}
			for i := range 5 {
				check(a.RequestHeaders(ctx, rhEvent(fmt.Sprint("hang-", i)), new(agentwire.AgentResponse)), engine.ReasonTimeout, 504)
			}
			if a.Breaker() != BreakerOpen {
				t.Fatalf("breaker %v after 5 timeouts", a.Breaker())
			}
			calls := h.calls.Load()
			opened := time.Now()
			check(a.RequestHeaders(ctx, rhEvent("open-1"), new(agentwire.AgentResponse)), engine.ReasonBreakerOpen, 503)
			h.mode.Store(gateOpen) // the agent answers again
			check(a.RequestHeaders(ctx, rhEvent("open-2"), new(agentwire.AgentResponse)), engine.ReasonBreakerOpen, 503)
			if h.calls.Load() != calls {
				t.Fatal("an open breaker let a call through")
			}
			// After the cool-down: one probe, then another, then closed.
			// The probes get a generous timeout of their own: the agent
			// answers now, and a loaded machine under -race can take
			// longer than the 30 ms that made the hung calls fail.
			probeTimeout := WithCallTimeout(10 * time.Second)
			var v engine.Verdict
			waitFor(t, "the breaker to let a probe through", func() bool {
				v = a.RequestHeaders(ctx, rhEvent("probe"), new(agentwire.AgentResponse), probeTimeout)
				return v.Reason != engine.ReasonBreakerOpen
			})
			if since := time.Since(opened); since < cool-time.Millisecond { // the breaker's clock ticks in ms
				t.Fatalf("probe after %v, before the cool-down %v", since, cool)
			}
			if v.Synthetic || a.Breaker() != BreakerHalfOpen {
				t.Fatalf("probe %+v, breaker %v", v, a.Breaker())
			}
			if v := a.RequestHeaders(ctx, rhEvent("probe-2"), new(agentwire.AgentResponse), probeTimeout); v.Synthetic || a.Breaker() != BreakerClosed {
				t.Fatalf("second probe %+v, breaker %v", v, a.Breaker())
			}
			if st := a.Stats(); st.Errors.Timeout != 5 || st.BreakerOpens != 1 {
				t.Fatalf("stats: %d timeouts, %d opens", st.Errors.Timeout, st.BreakerOpens)
			}
		})
	}
}

// An agent that starts after the proxy: its calls get the failure policy
// until it is up (the first 5, finding no connection, open the breaker;
// the next get the open breaker's), then go through, with no restart of
// anything: the first connection that joins half-opens the breaker,
// whose open period (30 s) is not waited out.
func TestFaultAgentStartsLate(t *testing.T) {
	h := newGateAgent()
	ua := newUDSAgent(t, h) // not started
	p := newTestPool(t, WithDialBackoff(2*time.Millisecond, 20*time.Millisecond))
	a, err := p.AddAgent("waf", WithEndpoint(ua.Endpoint(), 2))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for i := range 5 {
		v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint("early-", i)), new(agentwire.AgentResponse))
		if !v.Synthetic || v.Reason != engine.ReasonUnavailable || v.Decision.Status != 503 || !errors.Is(v.Err, ErrNoConnection) {
			t.Fatalf("before the agent is up: %+v", v)
		}
	}
	v := a.RequestHeaders(ctx, rhEvent("early-open"), new(agentwire.AgentResponse))
	if !v.Synthetic || v.Reason != engine.ReasonBreakerOpen || v.Decision.Status != 503 || a.Breaker() != BreakerOpen {
		t.Fatalf("after 5 calls with the agent not up: %+v, breaker %v", v, a.Breaker())
	}
	if st := a.Stats(); st.Conns != 2 || st.ConnsUp != 0 {
		t.Fatalf("conns %d up %d", st.Conns, st.ConnsUp)
	}
	if cs := a.ConnStats(); len(cs) != 2 || cs[0].State != ConnConnecting {
		t.Fatalf("conn stats %+v", cs)
	}
	// The reference gives up after 3 failed attempts: let more than that
	// fail on each connection first.
	waitFor(t, "10 failed dial attempts", func() bool { return a.Stats().DialFailures >= 10 })
	ua.Start()
	if err := a.WaitReady(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint("late-", i)), new(agentwire.AgentResponse)); v.Synthetic {
			t.Fatalf("after the agent came up: %+v", v)
		}
	}
	if h.calls.Load() != 5 || a.Breaker() != BreakerClosed {
		t.Fatalf("agent saw %d calls, breaker %v", h.calls.Load(), a.Breaker())
	}
}

// A refused endpoint (an option the engine rejects) is reported, not
// retried forever.
func TestDialRefusedEndpoint(t *testing.T) {
	p := newTestPool(t)
	a, err := p.AddAgent("waf", WithEndpoint("unix:///nonexistent/a.sock", 1, engine.WithRingSize(1)))
	if err != nil {
		t.Fatal(err)
	}
	err = a.WaitReady(testCtx(t), 1)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("WaitReady: %v", err)
	}
}

// A saturated agent (slow, small announced concurrency): callers wait for
// a slot, every call is answered, and no session is dropped.
func TestFaultSaturatedAgent(t *testing.T) {
	h := newGateAgent()
	h.delay = 5 * time.Millisecond
	ua := startUDSAgent(t, h, agent.WithMaxConcurrency(2))
	p := newTestPool(t)
	a, err := p.AddAgent("waf", WithEndpoint(ua.Endpoint(), 1), WithConcurrency(2, 0), WithTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := a.WaitReady(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const callers = 60
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint("sat-", i)), new(agentwire.AgentResponse)); v.Synthetic {
				bad.Add(1)
				t.Errorf("call %d: %+v", i, v)
			}
		}()
	}
	wg.Wait()
	st := a.Stats()
	if bad.Load() != 0 || st.QueueWaits == 0 || st.Decisions.Allow != callers {
		t.Fatalf("bad %d, queue waits %d, allows %d", bad.Load(), st.QueueWaits, st.Decisions.Allow)
	}
	cs := a.Conns()[0].Stats()
	if cs.ConnectionLost != 0 || cs.Reconnects != 0 {
		t.Fatalf("sessions dropped: lost %d reconnects %d", cs.ConnectionLost, cs.Reconnects)
	}
}

// 10,000 concurrent requests through a 3-agent pipeline (parallel
// headers): every caller gets its own verdict and its own header
// operations.
func TestFault10kConcurrent(t *testing.T) {
	p := newTestPool(t)
	var steps []Step
	for k := range 3 {
		h := newGateAgent()
		h.decide = func(ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) {
			n, _ := strconv.Atoi(ev.Metadata.CorrelationID)
			if n%7 == k {
				r.Decision = agentwire.Block(uint16(400 + k))
			}
			r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: fmt.Sprint("x-", k), Value: ev.Metadata.CorrelationID})
		}
		var eps []Endpoint
		for range 2 {
			eps = append(eps, Endpoint{Address: startUDSAgent(t, h).Endpoint(), Conns: 2})
		}
		a, err := p.AddAgent(fmt.Sprint("agent-", k), WithEndpoints(eps...), WithConcurrency(4096, 0), WithTimeout(60*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.WaitReady(testCtx(t), 0); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, Step{Agent: a})
	}
	pl, err := NewPipeline(steps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const total = 10000
	sem := make(chan struct{}, maxConcurrentGoroutines)
	var wg sync.WaitGroup
	var wrong atomic.Int64
	start := make(chan struct{})
	for n := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			<-start
			cid := strconv.Itoa(n)
			var r Request
			v := pl.RequestHeaders(ctx, &r, rhEvent(cid))
			ok := !v.Synthetic
			switch n % 7 {
			case 0, 1, 2:
				ok = ok && v.Decision.Status == uint16(400+n%7) && v.Agent == fmt.Sprint("agent-", n%7)
			default:
				ok = ok && v.Allowed()
			}
			ok = ok && len(r.RequestHeaderOps) == 3
			for k, op := range r.RequestHeaderOps {
				ok = ok && op.Name == fmt.Sprint("x-", k) && op.Value == cid
			}
			if !ok {
				if wrong.Add(1) < 5 {
					t.Errorf("request %s: verdict %+v ops %v", cid, v, r.RequestHeaderOps)
				}
			}
			pl.End(&r)
		}()
	}
	close(start)
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d of %d requests got a verdict that was not theirs", wrong.Load(), total)
	}
	for _, st := range steps {
		s := st.Agent.Stats()
		if s.Requests != total || s.Pins != 0 {
			t.Fatalf("agent %s: %d requests, %d pins left", s.Name, s.Requests, s.Pins)
		}
	}
}

// Reverse connections join the pool of their agent as they register and
// leave it when they drop; the agent dials again and joins again.
func TestReverseConnectionsJoinAndLeave(t *testing.T) {
	p := newTestPool(t, WithHealthCheckInterval(5*time.Millisecond))
	a, err := p.AddAgent("rev-agent")
	if err != nil {
		t.Fatal(err)
	}
	path := sockPath(t)
	ln, err := engine.ListenReverse(testCtx(t), "unix://"+path, engine.WithOnAgent(p.AddReverse))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := newGateAgent()
	srv := agent.NewServer(h, agent.WithAgentID("rev-agent"))
	defer srv.Close()
	serve := func() (context.CancelFunc, chan error) {
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.ServeReverse(sctx, "unix://"+path) }()
		return cancel, done
	}
	ctx := testCtx(t)
	stop, done := serve()
	if err := a.WaitReady(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if cs := a.ConnStats(); len(cs) != 1 || cs[0].Source != SourceReverse {
		t.Fatalf("conn stats %+v", cs)
	}
	if v := a.RequestHeaders(ctx, rhEvent("r1"), new(agentwire.AgentResponse)); v.Synthetic || h.calls.Load() != 1 {
		t.Fatalf("call over the reverse connection: %+v", v)
	}
	stop()
	<-done
	waitFor(t, "the dropped reverse connection to leave", func() bool { return len(a.ConnStats()) == 0 })
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("r2"), new(agentwire.AgentResponse)), false, true, engine.ReasonUnavailable, 503)
	stop, done = serve()
	defer func() { stop(); <-done }()
	if err := a.WaitReady(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if v := a.RequestHeaders(ctx, rhEvent("r3"), new(agentwire.AgentResponse)); v.Synthetic {
		t.Fatalf("after rejoining: %+v", v)
	}
}

// Connections are added and removed while traffic flows: no call fails.
func TestAddRemoveConnsUnderTraffic(t *testing.T) {
	h := newGateAgent()
	var uas []*udsAgent
	for range 3 {
		uas = append(uas, startUDSAgent(t, h))
	}
	p := newTestPool(t)
	a, err := p.AddAgent("waf", WithEndpoint(uas[0].Endpoint(), 2), WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := a.WaitReady(ctx, 2); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, bad atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint(g, "-", i)), new(agentwire.AgentResponse))
				calls.Add(1)
				if v.Synthetic {
					if bad.Add(1) < 5 {
						t.Errorf("call failed while connections changed: %+v", v)
					}
				}
			}
		}()
	}
	progress := func() {
		n := calls.Load()
		waitFor(t, "traffic", func() bool { return calls.Load() > n+200 })
	}
	progress()
	if err := a.AddEndpoint(Endpoint{Address: uas[1].Endpoint(), Conns: 2}); err != nil {
		t.Fatal(err)
	}
	conn, err := engine.Dial(ctx, uas[2].Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddConn(conn, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitReady(ctx, 5); err != nil {
		t.Fatal(err)
	}
	progress()
	for _, c := range a.Conns()[:3] {
		if err := a.RemoveConn(ctx, c); err != nil {
			t.Fatal(err)
		}
		progress()
	}
	close(stop)
	wg.Wait()
	if n := len(a.Conns()); n != 2 {
		t.Fatalf("%d connections left, want 2", n)
	}
	if bad.Load() != 0 {
		t.Fatalf("%d of %d calls failed", bad.Load(), calls.Load())
	}
}

// Draining the whole layer: calls in flight finish, new calls are refused
// at once, then every connection is closed (goleak checks the goroutines).
func TestPoolDrain(t *testing.T) {
	h := newGateAgent()
	h.mode.Store(gateHeld)
	ua := startUDSAgent(t, h)
	p := newTestPool(t)
	var agents []*Agent
	for _, name := range []string{"a", "b"} {
		a, err := p.AddAgent(name, WithEndpoint(ua.Endpoint(), 2), WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
	}
	ctx := testCtx(t)
	for _, a := range agents {
		if err := a.WaitReady(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	results := make(chan engine.Verdict, 8)
	for i := range 8 {
		go func() {
			results <- agents[i%2].RequestHeaders(ctx, rhEvent(fmt.Sprint("d", i)), new(agentwire.AgentResponse))
		}()
	}
	waitFor(t, "8 calls held by the agent", func() bool { return h.entered.Load() == 8 })
	drained := make(chan error)
	go func() { drained <- p.Drain(ctx) }()
	waitFor(t, "draining", func() bool { return agents[1].state.Load() != agentOpen })
	checkVerdict(t, agents[1].RequestHeaders(ctx, rhEvent("late"), new(agentwire.AgentResponse)), false, true, engine.ReasonUnavailable, 503)
	close(h.gate)
	for range 8 {
		if v := <-results; v.Synthetic {
			t.Fatalf("in-flight call during drain: %+v", v)
		}
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		for _, cs := range a.ConnStats() {
			t.Fatalf("connection left after drain: %+v", cs)
		}
	}
	if _, err := p.AddAgent("c"); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddAgent after Drain: %v", err)
	}
}

// One agent's pool over two transports at once: gRPC over loopback TCP
// and the Unix-socket protocol; calls are spread over both.
func TestMixedTransports(t *testing.T) {
	h := newGateAgent()
	srv := agent.NewServer(h, agent.WithAgentID("mixed"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeGRPC(ln) }()
	defer func() { _ = srv.Close(); <-done }()
	ua := startUDSAgent(t, h)
	p := newTestPool(t)
	a, err := p.AddAgent("mixed", WithBalance(BalanceRoundRobin), WithEndpoints(
		Endpoint{Address: "grpc://" + ln.Addr().String(), Conns: 2, Options: []engine.Option{engine.WithInsecure()}},
		Endpoint{Address: ua.Endpoint(), Conns: 2},
	))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := a.WaitReady(ctx, 4); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		cid := fmt.Sprint("m", i)
		if v := a.RequestHeaders(ctx, rhEvent(cid), nil); v.Synthetic {
			t.Fatalf("verdict %+v", v)
		}
		if v := a.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: cid, Status: 200}); v.Synthetic {
			t.Fatalf("verdict %+v", v)
		}
		a.End(cid)
	}
	encodings := map[string]int{}
	for _, c := range a.Conns() {
		encodings[c.Encoding()]++
	}
	for _, cs := range a.ConnStats() {
		if cs.Requests != 20 {
			t.Fatalf("connection %d (%s): %d calls, want 20 of 80", cs.ID, cs.Endpoint, cs.Requests)
		}
	}
	if encodings[engine.EncodingProtobuf] != 2 || encodings[agentwire.EncodingJSON] != 2 {
		t.Fatalf("encodings %v", encodings)
	}
}
