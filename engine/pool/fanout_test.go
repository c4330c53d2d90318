package pool

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
)

// cidAgent runs a request-headers handler on a real agent.
type cidAgent struct {
	agent.BaseHandler
	on func(ctx context.Context, cid string) error
}

func (h *cidAgent) OnRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
	return h.on(ctx, ev.Metadata.CorrelationID)
}

// TestFanOutWaitsOffTheCaller: in a parallel request-headers phase, a call
// that must wait before its event can go out waits on a goroutine of its
// own and does not hold up the other agents' calls. Agent A's one slot is
// taken by a call Z that its agent answers only once agent B has seen the
// pipeline's request X: X's call to A must wait for Z, and Z for X's call
// to B. The slot is the connection's (the agent announces max_concurrency
// 1: engine admission would wait) or the pool's (WithConcurrency(1, 0)).
// A fan-out whose starts waited in line (StartRequestHeaders without its
// nowait admission, seen) never sends B its event: X ends in a synthetic
// verdict at its deadline.
func TestFanOutWaitsOffTheCaller(t *testing.T) {
	for _, limit := range []string{"connection", "pool"} {
		t.Run(limit, func(t *testing.T) {
			bSaw := make(chan struct{})
			var once sync.Once
			entered := make(chan struct{}, 1)
			var aOpts []agent.Option
			var poolOpts []AgentOption
			if limit == "connection" {
				aOpts = append(aOpts, agent.WithMaxConcurrency(1))
			} else {
				poolOpts = append(poolOpts, WithConcurrency(1, 0))
			}
			srvA := startUDSAgent(t, &cidAgent{on: func(ctx context.Context, cid string) error {
				if cid != "z" {
					return nil
				}
				entered <- struct{}{}
				select {
				case <-bSaw:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}}, aOpts...)
			srvB := startUDSAgent(t, &cidAgent{on: func(_ context.Context, cid string) error {
				if cid == "x" {
					once.Do(func() { close(bSaw) })
				}
				return nil
			}})
			p := newTestPool(t)
			pa, err := p.AddAgent("a", append([]AgentOption{WithEndpoint(srvA.Endpoint(), 1)}, poolOpts...)...)
			if err != nil {
				t.Fatal(err)
			}
			pb, err := p.AddAgent("b", WithEndpoint(srvB.Endpoint(), 1))
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []*Agent{pa, pb} {
				if err := a.WaitReady(testCtx(t), 1); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			zDone := make(chan engine.Verdict, 1)
			go func() {
				ev := &agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: "z"}, Method: "GET", URI: "/z"}
				zDone <- pa.RequestHeaders(ctx, ev, nil)
			}()
			<-entered // Z holds A's slot at the agent
			pl, err := NewPipeline([]Step{{Agent: pa}, {Agent: pb}})
			if err != nil {
				t.Fatal(err)
			}
			var r Request
			v := pl.RequestHeaders(ctx, &r, &agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: "x"}, Method: "GET", URI: "/x"})
			if v.Synthetic || !v.Allowed() || r.Verdicts[0].Synthetic || r.Verdicts[1].Synthetic {
				t.Fatalf("verdict %+v, per agent %+v", v, r.Verdicts)
			}
			if z := <-zDone; z.Synthetic || !z.Allowed() {
				t.Fatalf("z: %+v", z)
			}
			pl.End(&r)
			sa := pa.Stats()
			waited := sa.QueueWaits
			if limit == "connection" {
				waited = pa.Conns()[0].Stats().SaturationWaits
			}
			// X's call to A waited for Z's slot once, or not at all when
			// its goroutine reached the slot only after B had seen X and
			// Z had ended (seen under -race at load ~10): the point above
			// is that X was not held up, not where its call waited.
			if waited > 1 || sa.InFlight != 0 || sa.Decisions.Allow != 2 {
				t.Fatalf("agent a: waits %d, stats %+v", waited, sa)
			}
		})
	}
}

// TestFanOutHungAgent: the failure policy and the breaker of an agent in
// a parallel request-headers phase over real connections are those of a
// call on its own (TestFaultHungAgent): with the middle one of three
// agents hanging, each request's merged verdict is its synthetic 504
// (fail-closed) or an allow that skips it (fail-open), the other two
// agents' replies are merged, five timeouts open its breaker, and the
// next request gets its 503 (breaker open) without a call to it.
func TestFanOutHungAgent(t *testing.T) {
	for _, mode := range []engine.FailureMode{engine.FailClosed, engine.FailOpen} {
		t.Run(mode.String(), func(t *testing.T) {
			p := newTestPool(t)
			hung := newGateAgent()
			hung.mode.Store(gateHang)
			var steps []Step
			for k := range 3 {
				h := newGateAgent()
				if k == 1 {
					h = hung
				} else {
					h.decide = func(_ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) {
						r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-agent", Value: string(rune('0' + k))})
					}
				}
				timeout := testTimeout // the agents that answer: never their timeout, even under -race
				if k == 1 {
					timeout = 30 * time.Millisecond
				}
				a, err := p.AddAgent(string(rune('a'+k)), WithEndpoint(startUDSAgent(t, h).Endpoint(), 1), WithTimeout(timeout),
					WithFailurePolicy(engine.FailurePolicy{Mode: mode}), WithBreaker(BreakerConfig{OpenDuration: time.Minute}))
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
			ctx := testCtx(t)
			closed := mode == engine.FailClosed
			var r Request
			check := func(cid string, reason engine.Reason, status uint16) {
				t.Helper()
				v := pl.RequestHeaders(ctx, &r, rhEvent(cid))
				mid := r.Verdicts[1]
				if !mid.Synthetic || mid.Reason != reason || mid.Agent != "b" || mid.Allowed() == closed || closed && mid.Decision.Status != status {
					t.Fatalf("%s: agent b's verdict %+v, want reason %v status %d", cid, mid, reason, status)
				}
				if closed && v.Decision.Status != status || !closed && !v.Allowed() {
					t.Fatalf("%s: merged verdict %+v", cid, v)
				}
				if len(r.RequestHeaderOps) != 2 || r.RequestHeaderOps[0].Value != "0" || r.RequestHeaderOps[1].Value != "2" {
					t.Fatalf("%s: merged ops %v, verdicts %+v", cid, r.RequestHeaderOps, r.Verdicts)
				}
				pl.End(&r)
			}
			for i := range 5 {
				check(string(rune('p'+i)), engine.ReasonTimeout, 504)
			}
			if steps[1].Agent.Breaker() != BreakerOpen {
				t.Fatalf("breaker %v after 5 timeouts", steps[1].Agent.Breaker())
			}
			calls := hung.calls.Load()
			check("open", engine.ReasonBreakerOpen, 503)
			if hung.calls.Load() != calls || calls != 5 {
				t.Fatalf("calls to the hung agent: %d, then %d", calls, hung.calls.Load())
			}
			for k, st := range steps {
				s := st.Agent.Stats()
				want := ReasonCounts{}
				if k == 1 {
					want = ReasonCounts{Timeout: 5, BreakerOpen: 1}
				}
				if s.Errors != want || s.InFlight != 0 || s.Requests != 6 {
					t.Fatalf("agent %s: errors %+v in flight %d requests %d", s.Name, s.Errors, s.InFlight, s.Requests)
				}
			}
		})
	}
}
