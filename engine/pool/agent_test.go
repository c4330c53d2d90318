package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

var (
	errEngineTimeout = &engine.Error{Kind: engine.ErrTimeout, Err: context.DeadlineExceeded}
	errEngineLost    = &engine.Error{Kind: engine.ErrConnectionLost}
	errEngineProto   = &engine.Error{Kind: engine.ErrProtocol}
	errNotConnected  = &engine.Error{Kind: engine.ErrNotConnected}
	errFlowPaused    = &engine.Error{Kind: engine.ErrFlowPaused}
)

func checkVerdict(t *testing.T, v engine.Verdict, allowed, synthetic bool, reason engine.Reason, status uint16) {
	t.Helper()
	if v.Allowed() != allowed || v.Synthetic != synthetic || v.Reason != reason || (!allowed && v.Decision.Status != status) {
		t.Fatalf("verdict %+v: want allowed %v synthetic %v reason %v status %d", v, allowed, synthetic, reason, status)
	}
}

// The failure policy per agent, overridden per pipeline step and per call:
// fail-closed blocks 504 on a timeout and 503 on an error, fail-open skips;
// synthetic verdicts name the agent and the reason and are counted.
func TestAgentFailurePolicy(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	var fail atomic.Pointer[error]
	f.handle = func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
		if e := fail.Load(); e != nil {
			return nil, *e
		}
		return blockReply(403), nil
	}
	a := addFakes(t, p, "waf", []*fakeLink{f}, WithBreaker(BreakerConfig{Disabled: true}))
	ctx := testCtx(t)
	dst := new(agentwire.AgentResponse)
	v := a.RequestHeaders(ctx, rhEvent("r1"), dst)
	checkVerdict(t, v, false, false, engine.ReasonNone, 403)
	if v.Reply != dst || v.Agent != "waf" {
		t.Fatalf("reply %p (dst %p), agent %q", v.Reply, dst, v.Agent)
	}
	set := func(e error) { fail.Store(&e) }
	set(errEngineTimeout)
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("r2"), dst), false, true, engine.ReasonTimeout, 504)
	set(errEngineProto)
	v = a.RequestHeaders(ctx, rhEvent("r3"), dst)
	checkVerdict(t, v, false, true, engine.ReasonError, 503)
	if v.Agent != "waf" || !errors.Is(v.Err, engine.ErrProtocol) {
		t.Fatalf("synthetic verdict agent %q err %v", v.Agent, v.Err)
	}
	open := engine.FailurePolicy{Mode: engine.FailOpen}
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("r4"), dst, WithCallPolicy(open)), true, true, engine.ReasonError, 0)
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("r5"), dst, WithAgentCallPolicy(a, open)), true, true, engine.ReasonError, 0)
	other := &Agent{}
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("r6"), dst, WithAgentCallPolicy(other, open)), false, true, engine.ReasonError, 503)
	custom := engine.FailurePolicy{ErrorStatus: 502, TimeoutStatus: 598}
	set(errEngineTimeout)
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("r7"), dst, WithCallPolicy(custom)), false, true, engine.ReasonTimeout, 598)
	st := a.Stats()
	if st.Requests != 7 || st.Decisions.Block != 1 || st.Errors.Timeout != 2 || st.Errors.Error != 4 ||
		st.Verdicts.FailOpen != 2 || st.Verdicts.FailClosed != 4 {
		t.Fatalf("stats %+v", st)
	}
	if cs := a.ConnStats(); len(cs) != 1 || cs[0].Requests != 7 || cs[0].Errors.Timeout != 2 {
		t.Fatalf("conn stats %+v", cs)
	}
}

// The breaker sees timeouts and errors of the agent, never the caller's
// cancellation; once open, calls get the policy without reaching the
// agent: 503 fail-closed, skipped fail-open.
func TestAgentBreaker(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	f.handle = func(ctx context.Context, _ int32, cid string) (*agentwire.AgentResponse, error) {
		if cid == "cancel" {
			return nil, &engine.Error{Kind: engine.ErrCanceled, Err: context.Canceled}
		}
		return nil, errEngineTimeout
	}
	a := addFakes(t, p, "waf", []*fakeLink{f})
	ctx := testCtx(t)
	dst := new(agentwire.AgentResponse)
	for range 20 {
		checkVerdict(t, a.RequestHeaders(ctx, rhEvent("cancel"), dst), false, true, engine.ReasonCanceled, 503)
	}
	if a.Breaker() != BreakerClosed {
		t.Fatal("cancellations opened the breaker")
	}
	for range 5 {
		checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), dst), false, true, engine.ReasonTimeout, 504)
	}
	if a.Breaker() != BreakerOpen {
		t.Fatalf("breaker %v after 5 timeouts", a.Breaker())
	}
	calls := f.calls.Load()
	v := a.RequestHeaders(ctx, rhEvent("y"), dst)
	checkVerdict(t, v, false, true, engine.ReasonBreakerOpen, 503)
	if !errors.Is(v.Err, ErrBreakerOpen) || v.Agent != "waf" {
		t.Fatalf("breaker verdict err %v agent %q", v.Err, v.Agent)
	}
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("y"), dst, WithCallPolicy(engine.FailurePolicy{Mode: engine.FailOpen})), true, true, engine.ReasonBreakerOpen, 0)
	if f.calls.Load() != calls {
		t.Fatal("an open breaker let a call through")
	}
	if st := a.Stats(); st.BreakerOpens != 1 || st.BreakerRejected != 2 || st.Errors.BreakerOpen != 2 || st.Errors.Canceled != 20 {
		t.Fatalf("stats %+v", st)
	}
}

// A connection that refuses a call before sending it (reconnecting,
// unhealthy, draining, paused) passes it to another and is taken out; the
// health check brings it back when it recovers. A lost connection fails
// its own call with the policy and is taken out; each loss counts one
// breaker failure.
func TestAgentRefusalsAndRecovery(t *testing.T) {
	p := newTestPool(t, WithHealthCheckInterval(5*time.Millisecond))
	fs := fakes(2)
	fs[0].handle = func(context.Context, int32, string) (*agentwire.AgentResponse, error) { return nil, errNotConnected }
	a := addFakes(t, p, "waf", fs, WithBalance(BalanceRoundRobin))
	fs[0].setHealth(engine.HealthSnapshot{Capacity: -1}) // not connected (the check keeps it out)
	ctx := testCtx(t)
	dst := new(agentwire.AgentResponse)
	for i := range 10 {
		checkVerdict(t, a.RequestHeaders(ctx, rhEvent(fmt.Sprint(i)), dst), true, false, engine.ReasonNone, 0)
	}
	if n := fs[0].calls.Load(); n > 1 {
		t.Fatalf("the refusing connection got %d calls, want at most 1 (then it is out)", n)
	}
	if a.Stats().Retries < 1 && fs[0].calls.Load() == 1 {
		t.Fatal("the refused call was not passed on")
	}
	// It recovers: the health check lets it back in.
	fs[0].handle = nil
	fs[0].setHealth(engine.HealthSnapshot{Connected: true, AcceptsRequests: true, Capacity: -1})
	waitFor(t, "the recovered connection to take calls", func() bool { return a.Stats().ConnsUp == 2 })
	before := fs[0].calls.Load()
	for i := range 10 {
		a.RequestHeaders(ctx, rhEvent(fmt.Sprint("b", i)), dst)
	}
	if fs[0].calls.Load() != before+5 {
		t.Fatalf("recovered connection got %d of 10 round-robin calls", fs[0].calls.Load()-before)
	}

	// Connection lost while waiting: the call gets the policy, the
	// connection is out; its one breaker failure is reset by the next
	// success on the other connection.
	// The connection goes down as the call is lost (not before: a health
	// check that saw it down first would keep every call away from it).
	fs[1].handle = func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
		fs[1].setHealth(engine.HealthSnapshot{Capacity: -1})
		return nil, errEngineLost
	}
	var lost int
	for i := range 10 {
		v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint("c", i)), dst)
		if v.Synthetic {
			checkVerdict(t, v, false, true, engine.ReasonError, 503)
			lost++
		}
	}
	if w := a.br.w.Load(); lost != 1 || bState(w) != BreakerClosed || bCount(w) != 0 {
		t.Fatalf("%d calls lost (want 1, then the connection is out), breaker %v with %d failures", lost, bState(w), bCount(w))
	}
	// Ten losses in a row with nothing answered in between (the
	// connection reconnects each time): each loss is one failure, the
	// fifth opens the breaker; from then on each reconnection half-opens
	// it at once, so the next call is a probe, lost again: reopened.
	fs[0].handle = func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
		fs[0].setHealth(engine.HealthSnapshot{Capacity: -1}) // down until it reconnects
		return nil, errEngineLost
	}
	for i := range 10 {
		fs[0].setHealth(engine.HealthSnapshot{Connected: true, Capacity: -1}) // reconnected
		waitFor(t, "the connection to be back", func() bool { return a.Stats().ConnsUp == 1 && a.Breaker() != BreakerOpen })
		checkVerdict(t, a.RequestHeaders(ctx, rhEvent(fmt.Sprint("d", i)), dst), false, true, engine.ReasonError, 503)
		if open := a.Breaker() == BreakerOpen; open != (i >= 4) {
			t.Fatalf("after loss %d: breaker %v", i+1, a.Breaker())
		}
	}
	if st := a.Stats(); st.BreakerOpens != 6 || a.br.wakes.Load() != 5 {
		t.Fatalf("%d opens, %d wakes; want 6 and 5", st.BreakerOpens, a.br.wakes.Load())
	}
}

// Every connection unusable: the policy answers ReasonUnavailable.
func TestAgentNoConnection(t *testing.T) {
	p := newTestPool(t)
	a, err := p.AddAgent("waf")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	v := a.RequestHeaders(ctx, rhEvent("x"), new(agentwire.AgentResponse))
	checkVerdict(t, v, false, true, engine.ReasonUnavailable, 503)
	if !errors.Is(v.Err, ErrNoConnection) {
		t.Fatalf("err %v", v.Err)
	}
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), new(agentwire.AgentResponse), WithCallPolicy(engine.FailurePolicy{Mode: engine.FailOpen})),
		true, true, engine.ReasonUnavailable, 0)
}

// Every event of a request goes to the connection that saw its headers;
// End releases the pin. A pinned connection that becomes unusable is
// replaced explicitly (counted), and the request sticks to the new one.
func TestAgentAffinity(t *testing.T) {
	p := newTestPool(t)
	fs := fakes(3)
	a := addFakes(t, p, "waf", fs, WithBalance(BalanceRoundRobin))
	ctx := testCtx(t)
	for i := range 30 {
		cid := fmt.Sprint("req-", i)
		a.RequestHeaders(ctx, rhEvent(cid), new(agentwire.AgentResponse))
		a.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: cid, Data: []byte("x")})
		a.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: cid, Status: 200})
		a.ResponseBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: cid, IsLast: true})
		a.RequestComplete(ctx, &agentwire.RequestCompleteEvent{CorrelationID: cid})
	}
	for _, f := range fs {
		f.seen.Range(func(k, v any) bool {
			if n := len(v.([]int32)); n != 5 {
				t.Errorf("request %v: %d of its 5 events on connection %s", k, n, f.name)
			}
			return true
		})
	}
	if st := a.Stats(); st.Pins != 30 || st.AffinityFallbacks != 0 {
		t.Fatalf("pins %d fallbacks %d", st.Pins, st.AffinityFallbacks)
	}
	for i := range 30 {
		a.End(fmt.Sprint("req-", i))
	}
	if st := a.Stats(); st.Pins != 0 {
		t.Fatalf("pins %d after End", st.Pins)
	}

	// The pinned connection goes down mid-request.
	a.RequestHeaders(ctx, rhEvent("moving"), new(agentwire.AgentResponse))
	var pinned *fakeLink
	for _, f := range fs {
		if len(f.kinds("moving")) > 0 {
			pinned = f
		}
	}
	for _, m := range a.set.Load().list {
		if m.c == pinned {
			m.setState(ConnDown)
		}
	}
	for range 3 {
		if v := a.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "moving"}); v.Synthetic {
			t.Fatalf("verdict %+v", v)
		}
	}
	var after []*fakeLink
	for _, f := range fs {
		if f != pinned && len(f.kinds("moving")) > 0 {
			after = append(after, f)
		}
	}
	if len(after) != 1 || len(after[0].kinds("moving")) != 3 || a.Stats().AffinityFallbacks != 1 {
		t.Fatalf("after the fallback the request went to %d connections, fallbacks %d", len(after), a.Stats().AffinityFallbacks)
	}
}

// WebSocket frames of one stream stick to one connection, with or without
// a request-headers event first.
func TestAgentWebSocketSticky(t *testing.T) {
	p := newTestPool(t)
	fs := fakes(4)
	a := addFakes(t, p, "waf", fs, WithBalance(BalanceRandom))
	ctx := testCtx(t)
	for s := range 8 {
		cid := fmt.Sprint("ws-", s)
		for i := range 20 {
			a.WebSocketFrame(ctx, &agentwire.WebSocketFrameEvent{CorrelationID: cid, FrameIndex: uint64(i)})
		}
		n := 0
		for _, f := range fs {
			if k := f.kinds(cid); len(k) > 0 {
				n++
				if len(k) != 20 {
					t.Fatalf("stream %s: %d frames on one connection", cid, len(k))
				}
			}
		}
		if n != 1 {
			t.Fatalf("stream %s spread over %d connections", cid, n)
		}
		a.End(cid)
	}
}

// The per-agent concurrency limit: callers beyond it wait for a slot; a
// bounded wait ends with ErrSaturated (ReasonUnavailable), a wait that
// outlives the call's timeout with ReasonTimeout. The bounded wait is long
// enough (500 ms) for the last waiter to see the slots freed on a loaded
// machine (30 ms was not, under a parallel go test ./...).
func TestAgentConcurrencyLimit(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	release := make(chan struct{})
	var entered atomic.Int64
	f.handle = func(ctx context.Context, _ int32, cid string) (*agentwire.AgentResponse, error) {
		if cid == "hold" {
			entered.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return nil, nil
	}
	a := addFakes(t, p, "waf", []*fakeLink{f}, WithConcurrency(2, 500*time.Millisecond), WithTimeout(5*time.Second))
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.RequestHeaders(ctx, rhEvent("hold"), new(agentwire.AgentResponse))
		}()
	}
	waitFor(t, "two calls holding the slots", func() bool { return entered.Load() == 2 })
	v := a.RequestHeaders(ctx, rhEvent("third"), new(agentwire.AgentResponse))
	checkVerdict(t, v, false, true, engine.ReasonUnavailable, 503)
	if !errors.Is(v.Err, ErrSaturated) {
		t.Fatalf("err %v", v.Err)
	}
	v = a.RequestHeaders(ctx, rhEvent("third"), new(agentwire.AgentResponse), WithCallTimeout(10*time.Millisecond))
	checkVerdict(t, v, false, true, engine.ReasonTimeout, 504)
	// A caller that gives up while waiting: canceled, never the breaker's.
	cctx, ccancel := context.WithCancel(ctx)
	go func() {
		waitFor(t, "the caller to queue", func() bool { return a.Stats().QueueWaits == 3 })
		ccancel()
	}()
	v = a.RequestHeaders(cctx, rhEvent("gives-up"), nil)
	checkVerdict(t, v, false, true, engine.ReasonCanceled, 503)
	if !errors.Is(v.Err, context.Canceled) || !errors.Is(v.Err, ErrSaturated) {
		t.Fatalf("err %v", v.Err)
	}
	// A waiter gets the slot as soon as one frees.
	done := make(chan engine.Verdict)
	go func() {
		done <- a.RequestHeaders(ctx, rhEvent("waiter"), new(agentwire.AgentResponse), WithCallPolicy(engine.FailurePolicy{}))
	}()
	waitFor(t, "the waiter to queue", func() bool { return a.Stats().QueueWaits == 4 })
	close(release)
	if v := <-done; v.Synthetic {
		t.Fatalf("waiter: %+v", v)
	}
	wg.Wait()
	if st := a.Stats(); st.Saturated != 3 || a.lim.inUse() != 0 || a.Breaker() != BreakerClosed {
		t.Fatalf("saturated %d, slots in use %d", st.Saturated, a.lim.inUse())
	}
}

// Timeouts per agent and per phase; a caller's earlier deadline wins.
func TestAgentTimeouts(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	f.handle = func(ctx context.Context, _ int32, _ string) (*agentwire.AgentResponse, error) {
		<-ctx.Done() // hangs until its deadline
		return nil, &engine.Error{Kind: engine.ErrTimeout, Err: ctx.Err()}
	}
	a := addFakes(t, p, "waf", []*fakeLink{f}, WithTimeout(40*time.Millisecond), WithPhaseTimeout(agentwire.EventResponseHeaders, 5*time.Millisecond),
		WithBreaker(BreakerConfig{Disabled: true}))
	ctx := testCtx(t)
	measure := func(call func() engine.Verdict) time.Duration {
		t0 := time.Now()
		checkVerdict(t, call(), false, true, engine.ReasonTimeout, 504)
		return time.Since(t0)
	}
	if d := measure(func() engine.Verdict {
		return a.RequestHeaders(ctx, rhEvent("x"), new(agentwire.AgentResponse))
	}); d < 40*time.Millisecond {
		t.Fatalf("agent timeout fired after %v, want >= 40ms", d)
	}
	if d := measure(func() engine.Verdict {
		return a.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: "x"})
	}); d < 5*time.Millisecond || d >= 40*time.Millisecond {
		t.Fatalf("phase timeout fired after %v, want 5ms..40ms", d)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Millisecond)
	defer cancel()
	if d := measure(func() engine.Verdict {
		return a.RequestHeaders(short, rhEvent("y"), new(agentwire.AgentResponse))
	}); d >= 40*time.Millisecond {
		t.Fatalf("the caller's deadline did not win: %v", d)
	}
}

// Only subscribed agents receive an event: their configuration
// (WithEvents) and their connections' capabilities. Not subscribed is an
// allow in every mode, and nothing is sent.
func TestAgentSubscription(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	f.caps.SupportedEvents = []int32{agentwire.EventRequestHeaders, agentwire.EventResponseHeaders}
	a := addFakes(t, p, "waf", []*fakeLink{f}, WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk))
	ctx := testCtx(t)
	checkVerdict(t, a.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "x"}), true, true, engine.ReasonNotSubscribed, 0)           // not announced
	checkVerdict(t, a.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: "x"}), true, true, engine.ReasonNotSubscribed, 0) // not configured
	if !a.Subscribed(agentwire.EventRequestHeaders) || a.Subscribed(agentwire.EventRequestBodyChunk) {
		t.Fatal("Subscribed disagrees")
	}
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), new(agentwire.AgentResponse)), true, false, engine.ReasonNone, 0)
	if f.calls.Load() != 1 {
		t.Fatalf("%d calls reached the agent, want 1", f.calls.Load())
	}
	// It takes only request headers: no pin is kept.
	if a.Stats().Pins != 0 {
		t.Fatal("a request was pinned for an agent that takes no later event")
	}
	if st := a.Stats(); st.Verdicts.NotSubscribed != 2 || st.Verdicts.FailOpen != 0 {
		t.Fatalf("stats %+v", st.Verdicts)
	}
}

// Body limits: over the limit, fail-closed blocks 413 and fail-open skips,
// nothing is sent; the agent's announced max_body_size caps the limit;
// a declared total size is judged at the first chunk.
func TestAgentBodyLimits(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	f.caps.Limits.MaxBodySize = 80
	a := addFakes(t, p, "waf", []*fakeLink{f}, WithBodyLimits(100, 50))
	ctx := testCtx(t)
	chunk := func(transferred uint64, total uint64) *agentwire.BodyChunk {
		c := &agentwire.BodyChunk{CorrelationID: "x", Data: []byte("abc"), BytesTransferred: transferred}
		if total > 0 {
			c.TotalSize = agentwire.Some(total)
		}
		return c
	}
	checkVerdict(t, a.RequestBodyChunk(ctx, chunk(80, 0)), true, false, engine.ReasonNone, 0)
	v := a.RequestBodyChunk(ctx, chunk(81, 0)) // over the announced 80
	checkVerdict(t, v, false, true, engine.ReasonBodyTooLarge, 413)
	if !errors.Is(v.Err, ErrBodyTooLarge) {
		t.Fatalf("err %v", v.Err)
	}
	checkVerdict(t, a.RequestBodyChunk(ctx, chunk(3, 1000)), false, true, engine.ReasonBodyTooLarge, 413)
	checkVerdict(t, a.ResponseBodyChunk(ctx, chunk(51, 0)), false, true, engine.ReasonBodyTooLarge, 413)
	checkVerdict(t, a.ResponseBodyChunk(ctx, chunk(51, 0), WithCallPolicy(engine.FailurePolicy{Mode: engine.FailOpen})), true, true, engine.ReasonBodyTooLarge, 0)
	if f.calls.Load() != 1 {
		t.Fatalf("%d chunks reached the agent, want 1", f.calls.Load())
	}
}

// Flow control: every connection paused. Fail-closed answers the policy,
// fail-open skips whatever the policy, wait-and-retry waits for a resume.
func TestAgentFlowModes(t *testing.T) {
	paused := engine.HealthSnapshot{Connected: true, Paused: true, Capacity: -1}
	resumed := engine.HealthSnapshot{Connected: true, AcceptsRequests: true, Capacity: -1}
	for _, tc := range []struct {
		mode    FlowMode
		allowed bool
	}{{FlowFailClosed, false}, {FlowFailOpen, true}, {FlowWaitAndRetry, true}} {
		t.Run(fmt.Sprint(tc.mode), func(t *testing.T) {
			p := newTestPool(t)
			f := newFake("a")
			var resumeOnce sync.Once
			f.handle = func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
				if f.Health().Paused {
					return nil, errFlowPaused
				}
				return nil, nil
			}
			f.setHealth(paused)
			a := addFakes(t, p, "waf", []*fakeLink{f}, WithFlowControl(tc.mode, 5*time.Second))
			if tc.mode == FlowWaitAndRetry {
				go func() {
					waitFor(t, "the call to wait", func() bool { return a.Stats().FlowWaits == 1 })
					resumeOnce.Do(func() { f.setHealth(resumed) })
				}()
			}
			v := a.RequestHeaders(testCtx(t), rhEvent("x"), new(agentwire.AgentResponse))
			if v.Allowed() != tc.allowed {
				t.Fatalf("verdict %+v", v)
			}
			if tc.mode == FlowWaitAndRetry && v.Synthetic {
				t.Fatalf("wait-and-retry gave up: %+v", v)
			}
			if tc.mode != FlowWaitAndRetry && v.Reason != engine.ReasonUnavailable {
				t.Fatalf("reason %v", v.Reason)
			}
		})
	}
	// A per-request pause (the connection is not paused as a whole) is
	// flow control too, not a dead connection.
	p := newTestPool(t)
	fs := fakes(2)
	for _, f := range fs {
		f.handle = func(context.Context, int32, string) (*agentwire.AgentResponse, error) { return nil, errFlowPaused }
	}
	a := addFakes(t, p, "waf", fs, WithFlowControl(FlowFailOpen, 0))
	v := a.RequestHeaders(testCtx(t), rhEvent("x"), new(agentwire.AgentResponse))
	checkVerdict(t, v, true, true, engine.ReasonUnavailable, 0)
	if st := a.Stats(); st.ConnsUp != 2 {
		t.Fatalf("a per-request pause took connections out: %d up", st.ConnsUp)
	}
}

// Drain: new calls are refused at once, calls in flight finish, then the
// connections are drained and closed.
func TestAgentDrain(t *testing.T) {
	p := newTestPool(t)
	fs := fakes(2)
	release := make(chan struct{})
	for _, f := range fs {
		f.handle = func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
			<-release
			return nil, nil
		}
	}
	a := addFakes(t, p, "waf", fs)
	ctx := testCtx(t)
	results := make(chan engine.Verdict, 4)
	for i := range 4 {
		go func() { results <- a.RequestHeaders(ctx, rhEvent(fmt.Sprint(i)), new(agentwire.AgentResponse)) }()
	}
	waitFor(t, "4 calls in flight", func() bool { return fs[0].calls.Load()+fs[1].calls.Load() == 4 })
	drained := make(chan error)
	go func() { drained <- a.Drain(ctx) }()
	waitFor(t, "draining", func() bool { return a.state.Load() == agentDraining })
	v := a.RequestHeaders(ctx, rhEvent("late"), new(agentwire.AgentResponse))
	checkVerdict(t, v, false, true, engine.ReasonUnavailable, 503)
	if !errors.Is(v.Err, ErrDraining) {
		t.Fatalf("err %v", v.Err)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v with calls in flight", err)
	default:
	}
	close(release)
	for range 4 {
		if v := <-results; v.Synthetic {
			t.Fatalf("in-flight call: %+v", v)
		}
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if !f.drained {
			t.Fatal("a connection was not drained")
		}
	}
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("after"), new(agentwire.AgentResponse)), false, true, engine.ReasonUnavailable, 503)
}

// A probe that finds none of the agent's connections connected is a
// failure (the agent is down): it reopens the breaker, and never closes
// it. A probe that a connected agent's health kept from every connection
// is neither a failure nor a success: it gives its probe slot back.
func TestAgentUnavailableProbe(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	f.handle = failWith(errEngineTimeout)
	a := addFakes(t, p, "waf", []*fakeLink{f}, WithBreaker(BreakerConfig{FailureThreshold: 1, OpenDuration: time.Second}))
	clk := new(atomic.Int64)
	a.br.now = clk.Load
	ctx := testCtx(t)
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonTimeout, 504)
	f.setHealth(engine.HealthSnapshot{Capacity: -1})
	a.set.Load().list[0].setState(ConnDown)
	clk.Store(1000)
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonUnavailable, 503)
	if a.Breaker() != BreakerOpen || a.Stats().BreakerOpens != 2 {
		t.Fatalf("breaker %v after a probe with the agent down, want reopened", a.Breaker())
	}
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonBreakerOpen, 503)

	// Connected but UNHEALTHY: the probe is refused before sending, it
	// does not count.
	f.setHealth(engine.HealthSnapshot{Connected: true, State: agentwire.HealthUnhealthy, Capacity: -1})
	f.handle = failWith(&engine.Error{Kind: engine.ErrAgentUnhealthy})
	a.set.Load().list[0].setState(ConnUnhealthy)
	a.br.wake() // (the reconnection would; tested on its own)
	for range 3 {
		checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonUnavailable, 503)
	}
	if a.Breaker() != BreakerHalfOpen {
		t.Fatalf("breaker %v: calls the agent's health refused counted", a.Breaker())
	}
}

// A nil event is the caller's mistake: an error verdict, no call.
func TestAgentNilEvent(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	a := addFakes(t, p, "waf", []*fakeLink{f})
	ctx := testCtx(t)
	seen := map[error]bool{}
	for _, v := range []engine.Verdict{
		a.RequestHeaders(ctx, nil, nil), a.RequestBodyChunk(ctx, nil), a.ResponseHeaders(ctx, nil),
		a.ResponseBodyChunk(ctx, nil), a.RequestComplete(ctx, nil), a.WebSocketFrame(ctx, nil), a.GuardrailInspect(ctx, nil),
	} {
		checkVerdict(t, v, false, true, engine.ReasonError, 503)
		if !errors.Is(v.Err, engine.ErrInvalidEvent) {
			t.Fatalf("err %v", v.Err)
		}
		// Errors handed to callers are never shared values.
		if seen[v.Err] {
			t.Fatal("two verdicts share one error value")
		}
		seen[v.Err] = true
	}
	if f.calls.Load() != 0 || a.Breaker() != BreakerClosed {
		t.Fatal("a nil event reached the agent or the breaker")
	}
}

// Refused options and names are configuration errors; an agent name is
// unique; a removed agent answers its pipelines with ErrClosed.
func TestPoolConfiguration(t *testing.T) {
	if _, err := New(WithHealthCheckInterval(0)); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New: %v", err)
	}
	p := newTestPool(t)
	for _, opt := range []AgentOption{
		WithEndpoint("", 1), WithEndpoint("unix:///a", -1), WithEndpoints(Endpoint{Address: "x", Weight: 5000}),
		WithBalance(Balance(99)), WithTimeout(0), WithPhaseTimeout(9, time.Second), WithPhaseTimeout(1, -1),
		WithFailurePolicy(engine.FailurePolicy{Mode: 7}), WithBreaker(BreakerConfig{FailureThreshold: 300}),
		WithBreaker(BreakerConfig{OpenDuration: time.Microsecond}), WithConcurrency(0, 0), WithFlowControl(9, 0),
		WithEvents(0), WithBodyLimits(0, 1), WithAffinity(0, time.Second), WithAffinity(1, 0),
	} {
		if _, err := p.AddAgent("bad", opt); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("AddAgent accepted a bad option: %v", err)
		}
	}
	if _, err := p.AddAgent(""); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty name: %v", err)
	}
	a, err := p.AddAgent("waf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AddAgent("waf"); !errors.Is(err, ErrDuplicateAgent) {
		t.Fatalf("duplicate: %v", err)
	}
	if p.Agent("waf") != a || len(p.Agents()) != 1 {
		t.Fatal("lookup")
	}
	pl, _ := NewPipeline([]Step{{Agent: a}})
	if err := p.RemoveAgent(testCtx(t), "waf"); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveAgent(testCtx(t), "waf"); !errors.Is(err, ErrUnknownAgent) {
		t.Fatalf("second removal: %v", err)
	}
	var r Request
	v := pl.RequestHeaders(testCtx(t), &r, rhEvent("x"))
	if v.Reason != engine.ReasonUnavailable || !errors.Is(v.Err, ErrClosed) {
		t.Fatalf("removed agent: %+v", v)
	}
}

// Removing a connection waits for the calls on it before draining it; a
// call that chose it from a set read before it left goes elsewhere.
func TestAgentRemoveConnWaitsForCalls(t *testing.T) {
	p := newTestPool(t)
	fs := fakes(2)
	release := make(chan struct{})
	var entered atomic.Int64
	fs[0].handle = func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
		entered.Add(1)
		<-release
		return nil, nil
	}
	a := addFakes(t, p, "waf", fs, WithBalance(BalanceRoundRobin))
	ctx := testCtx(t)
	m0 := a.set.Load().list[0]
	done := make(chan engine.Verdict)
	go func() {
		for {
			// Round robin: the call that lands on fs[0] blocks there.
			v := a.RequestHeaders(ctx, rhEvent("held"), nil)
			if entered.Load() > 0 {
				done <- v
				return
			}
		}
	}()
	waitFor(t, "a call held on the first connection", func() bool { return entered.Load() == 1 })
	removed := make(chan error)
	go func() { removed <- a.removeConn(ctx, m0) }()
	waitFor(t, "the connection to leave the set", func() bool { return len(a.set.Load().list) == 1 })
	fs[0].mu.Lock()
	drained := fs[0].drained
	fs[0].mu.Unlock()
	if drained {
		t.Fatal("the connection was drained with a call in flight on it")
	}
	close(release)
	if v := <-done; v.Synthetic {
		t.Fatalf("held call: %+v", v)
	}
	if err := <-removed; err != nil || !fs[0].drained {
		t.Fatalf("removeConn: %v, drained %v", err, fs[0].drained)
	}

	// A stale set that still lists a member that left: calls move on.
	p2 := newTestPool(t)
	gs := fakes(2)
	b := addFakes(t, p2, "b", gs, WithBalance(BalanceRoundRobin))
	b.set.Load().list[0].gone.Store(true)
	for i := range 10 {
		if v := b.RequestHeaders(ctx, rhEvent(fmt.Sprint(i)), nil); v.Synthetic {
			t.Fatalf("verdict %+v", v)
		}
	}
	if gs[0].calls.Load() != 0 || gs[1].calls.Load() != 10 {
		t.Fatalf("calls %d / %d: a member that left was called", gs[0].calls.Load(), gs[1].calls.Load())
	}
}

// TestSyntheticErrorsNotShared: the pool's own errors in verdicts (no
// connection, here) are copies, never one value shared by every call.
func TestSyntheticErrorsNotShared(t *testing.T) {
	p := newTestPool(t)
	a, err := p.AddAgent("waf")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	v1 := a.RequestHeaders(ctx, rhEvent("s1"), nil)
	v2 := a.RequestHeaders(ctx, rhEvent("s2"), nil)
	if !v1.Synthetic || !errors.Is(v1.Err, ErrNoConnection) || !errors.Is(v2.Err, ErrNoConnection) {
		t.Fatalf("verdicts %+v %+v", v1, v2)
	}
	if v1.Err == v2.Err {
		t.Fatal("two verdicts share one error value")
	}
}
