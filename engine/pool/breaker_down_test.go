package pool

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// Tests of the breaker rules for an agent that is down and comes back:
// a call that finds none of the agent's connections connected is a
// failure, a lost connection is one failure however many calls were
// pending on it, and an open breaker half-opens at once when a
// connection (re)connects.

// wake: open -> half-open at once (before the open period has passed),
// with the probe limit and the success threshold of any half-open; in
// other states it does nothing; reports of calls admitted before it are
// stale.
func TestBreakerWake(t *testing.T) {
	b, clk := fakeClockBreaker(BreakerConfig{FailureThreshold: 2, OpenDuration: time.Hour}, time.Minute)
	var changes []string
	b.onChange = func(from, to BreakerState) { changes = append(changes, from.String()+">"+to.String()) }
	if b.wake() || b.State() != BreakerClosed {
		t.Fatal("wake changed a closed breaker")
	}
	old := mustAllow(t, b, true)
	b.report(mustAllow(t, b, true), outcomeFailure)
	b.report(mustAllow(t, b, true), outcomeFailure)
	mustAllow(t, b, false)
	clk.Store(1000) // far from the end of the open period
	if !b.wake() || b.State() != BreakerHalfOpen {
		t.Fatalf("wake: state %v", b.State())
	}
	if b.wake() {
		t.Fatal("wake changed a half-open breaker")
	}
	b.report(old, outcomeSuccess) // admitted while closed: stale
	p1 := mustAllow(t, b, true)
	mustAllow(t, b, false) // one probe at a time
	b.report(p1, outcomeSuccess)
	if b.State() != BreakerHalfOpen {
		t.Fatalf("state %v after one success (a stale report counted?)", b.State())
	}
	// A failed probe reopens it for a full open period, which another
	// wake cuts short again.
	b.report(mustAllow(t, b, true), outcomeFailure)
	if b.State() != BreakerOpen {
		t.Fatalf("state %v after a failed probe", b.State())
	}
	mustAllow(t, b, false)
	if !b.wake() {
		t.Fatal("second wake")
	}
	b.report(mustAllow(t, b, true), outcomeSuccess)
	b.report(mustAllow(t, b, true), outcomeSuccess)
	if b.State() != BreakerClosed {
		t.Fatalf("state %v after two successful probes", b.State())
	}
	want := "closed>open open>half-open half-open>open open>half-open half-open>closed"
	if got := fmt.Sprint(changes); got != "["+want+"]" {
		t.Fatalf("transitions %s, want [%s]", got, want)
	}
	if b.wakes.Load() != 2 || b.opens.Load() != 2 {
		t.Fatalf("%d wakes, %d opens", b.wakes.Load(), b.opens.Load())
	}
	// The probe lease still holds after a wake: a probe that never
	// reports reopens the breaker once its lease has passed.
	b.report(mustAllow(t, b, true), outcomeFailure)
	b.report(mustAllow(t, b, true), outcomeFailure)
	b.wake()
	mustAllow(t, b, true) // lost
	clk.Add(time.Minute.Milliseconds())
	mustAllow(t, b, false)
	if b.State() != BreakerOpen || b.leaseLost.Load() != 1 {
		t.Fatalf("state %v, lease expiries %d", b.State(), b.leaseLost.Load())
	}
	d, _ := fakeClockBreaker(BreakerConfig{Disabled: true}, time.Minute)
	if d.wake() {
		t.Fatal("wake on a disabled breaker")
	}
}

// A call that finds none of the agent's connections connected counts as
// a failure, one per call: 5 of them open the breaker, whether every
// connection is lost and reconnecting or the agent has none yet. Calls
// that a connected agent's health or flow control kept from every
// connection never do.
func TestAgentDownOpensBreaker(t *testing.T) {
	p := newTestPool(t)
	ctx := testCtx(t)
	down := engine.HealthSnapshot{Capacity: -1}

	fs := fakes(2)
	a := addFakes(t, p, "down", fs)
	for _, f := range fs {
		f.setHealth(down)
	}
	for _, m := range a.set.Load().list {
		m.setState(ConnDown)
	}
	for i := range 5 {
		if a.Breaker() != BreakerClosed {
			t.Fatalf("breaker %v after %d calls", a.Breaker(), i)
		}
		checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonUnavailable, 503)
	}
	if a.Breaker() != BreakerOpen {
		t.Fatalf("breaker %v after 5 calls with every connection down", a.Breaker())
	}
	checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonBreakerOpen, 503)
	if n := fs[0].calls.Load() + fs[1].calls.Load(); n != 0 {
		t.Fatalf("%d calls reached connections that are down", n)
	}

	none, err := p.AddAgent("none") // no connection at all
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		checkVerdict(t, none.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonUnavailable, 503)
	}
	if none.Breaker() != BreakerOpen {
		t.Fatalf("breaker %v after 5 calls without a connection", none.Breaker())
	}

	// Connected, but refusing before sending: unhealthy, paused (every
	// flow mode but wait), saturated. None of it counts.
	for _, tc := range []struct {
		name  string
		h     engine.HealthSnapshot
		err   error
		state ConnState
	}{
		{"unhealthy", engine.HealthSnapshot{Connected: true, State: agentwire.HealthUnhealthy, Capacity: -1}, &engine.Error{Kind: engine.ErrAgentUnhealthy}, ConnUnhealthy},
		{"paused", engine.HealthSnapshot{Connected: true, Paused: true, Capacity: -1}, errFlowPaused, ConnPaused},
		{"saturated", engine.HealthSnapshot{Connected: true, AcceptsRequests: true, Capacity: -1}, &engine.Error{Kind: engine.ErrSaturated}, ConnUp},
	} {
		fs := fakes(2)
		for _, f := range fs {
			f.setHealth(tc.h)
			f.handle = failWith(tc.err)
		}
		a := addFakes(t, p, tc.name, fs)
		for range 20 {
			v := a.RequestHeaders(ctx, rhEvent("x"), nil)
			checkVerdict(t, v, false, true, engine.ReasonUnavailable, 503)
		}
		if w := a.br.w.Load(); bState(w) != BreakerClosed || bCount(w) != 0 {
			t.Fatalf("%s: breaker %v with %d failures", tc.name, bState(w), bCount(w))
		}
	}
}

// A lost connection counts one breaker failure however many calls were
// pending on it: ten calls lost at once on one of three connections
// (the others' calls still held) leave a count of exactly 1 and the
// breaker closed; the healthy connections' successes then reset it. Once
// the connection is connected again, its next loss counts again.
func TestAgentLossCountsOnce(t *testing.T) {
	p := newTestPool(t, WithHealthCheckInterval(2*time.Millisecond))
	fs := fakes(3)
	gates := []chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{})}
	var entered sync.WaitGroup
	const victim = 1
	for i, f := range fs {
		f.handle = func(ctx context.Context, _ int32, _ string) (*agentwire.AgentResponse, error) {
			entered.Done()
			select {
			case <-gates[i]:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if i == victim {
				return nil, errEngineLost
			}
			return nil, nil
		}
	}
	a := addFakes(t, p, "waf", fs, WithBalance(BalanceRoundRobin), WithTimeout(time.Minute))
	ctx := testCtx(t)
	const calls = 30 // 10 per connection
	entered.Add(calls)
	results := make(chan engine.Verdict, calls)
	for i := range calls {
		go func() { results <- a.RequestHeaders(ctx, rhEvent(fmt.Sprint(i)), nil) }()
	}
	entered.Wait()
	fs[victim].setHealth(engine.HealthSnapshot{Capacity: -1}) // lost, reconnecting
	close(gates[victim])
	for range calls / 3 {
		checkVerdict(t, <-results, false, true, engine.ReasonError, 503)
	}
	if w := a.br.w.Load(); bState(w) != BreakerClosed || bCount(w) != 1 {
		t.Fatalf("10 calls lost on one connection: breaker %v with %d failures, want closed with 1", bState(w), bCount(w))
	}
	close(gates[0])
	close(gates[2])
	for range calls - calls/3 {
		checkVerdict(t, <-results, true, false, engine.ReasonNone, 0)
	}
	if w := a.br.w.Load(); bState(w) != BreakerClosed || bCount(w) != 0 {
		t.Fatalf("after the healthy connections' answers: breaker %v with %d failures", bState(w), bCount(w))
	}
	if st := a.Stats(); st.Failures[FailureConnectionLost] != 10 {
		t.Fatalf("%d connection-lost failures in the stats, want 10 (every call is counted there)", st.Failures[FailureConnectionLost])
	}

	// Back, then lost again: one more failure.
	fs[victim].setHealth(engine.HealthSnapshot{Connected: true, AcceptsRequests: true, Capacity: -1})
	waitFor(t, "the connection to be back", func() bool { return a.Stats().ConnsUp == 3 })
	for i, f := range fs {
		f.handle = nil
		if i == victim {
			f.handle = failWith(errEngineLost)
		}
	}
	for i := 0; fs[victim].calls.Load() == calls/3; i++ {
		if i == 3 {
			t.Fatal("round robin skipped the connection that came back")
		}
		a.RequestHeaders(ctx, rhEvent(fmt.Sprint("again-", i)), nil)
	}
	if w := a.br.w.Load(); bCount(w) != 1 {
		t.Fatalf("after its second loss: %d failures, want 1", bCount(w))
	}
}

// An open breaker half-opens as soon as the pool sees a connection of the
// agent (re)connect, instead of waiting out its open period (an hour
// here): a connection that comes back at a health check, and a
// connection that joins connected.
func TestAgentReconnectHalfOpens(t *testing.T) {
	p := newTestPool(t, WithHealthCheckInterval(2*time.Millisecond))
	ctx := testCtx(t)
	cfg := WithBreaker(BreakerConfig{OpenDuration: time.Hour})

	f := newFake("a")
	f.setHealth(engine.HealthSnapshot{Capacity: -1})
	a := addFakes(t, p, "back", []*fakeLink{f}, cfg)
	waitFor(t, "the health check to see the connection down", func() bool { return a.Stats().ConnsUp == 0 })
	for range 5 {
		checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonUnavailable, 503)
	}
	if a.Breaker() != BreakerOpen {
		t.Fatalf("breaker %v", a.Breaker())
	}
	f.setHealth(engine.HealthSnapshot{Connected: true, AcceptsRequests: true, Capacity: -1})
	waitFor(t, "the breaker to half-open when the connection is back", func() bool { return a.Breaker() == BreakerHalfOpen })
	for range 2 {
		checkVerdict(t, a.RequestHeaders(ctx, rhEvent("x"), nil), true, false, engine.ReasonNone, 0)
	}
	if a.Breaker() != BreakerClosed || f.calls.Load() != 2 {
		t.Fatalf("breaker %v after two probes, %d calls", a.Breaker(), f.calls.Load())
	}

	// No connection, then one joins connected: half-open at once.
	b, err := p.AddAgent("late", cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		checkVerdict(t, b.RequestHeaders(ctx, rhEvent("x"), nil), false, true, engine.ReasonUnavailable, 503)
	}
	if b.Breaker() != BreakerOpen {
		t.Fatalf("breaker %v", b.Breaker())
	}
	g := newFake("b")
	if _, err := b.addMember(g, SourceAdded, "b", 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	if b.Breaker() != BreakerHalfOpen {
		t.Fatalf("breaker %v after a connection joined", b.Breaker())
	}
	for range 3 {
		checkVerdict(t, b.RequestHeaders(ctx, rhEvent("x"), nil), true, false, engine.ReasonNone, 0)
	}
	if b.Breaker() != BreakerClosed {
		t.Fatalf("breaker %v", b.Breaker())
	}
	// A connection that joins not connected wakes nothing.
	for range 5 {
		b.br.report(mustAllow(t, b.br, true), outcomeFailure)
	}
	h := newFake("c")
	h.setHealth(engine.HealthSnapshot{Capacity: -1})
	if _, err := b.addMember(h, SourceAdded, "c", 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	if b.Breaker() != BreakerOpen {
		t.Fatalf("breaker %v after a connection joined down", b.Breaker())
	}
}
