package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// pipe builds a pipeline over one fake-connection agent per handler.
func pipe(t *testing.T, opts []PipelineOption, handlers ...func(context.Context, int32, string) (*agentwire.AgentResponse, error)) (*Pipeline, []*Agent, []*fakeLink) {
	t.Helper()
	p := newTestPool(t)
	var steps []Step
	var agents []*Agent
	var fs []*fakeLink
	for i, h := range handlers {
		f := newFake(fmt.Sprint(i))
		f.handle = h
		a := addFakes(t, p, fmt.Sprint("agent", i), []*fakeLink{f}, WithBreaker(BreakerConfig{Disabled: true}))
		steps = append(steps, Step{Agent: a})
		agents = append(agents, a)
		fs = append(fs, f)
	}
	pl, err := NewPipeline(steps, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return pl, agents, fs
}

func answer(r *agentwire.AgentResponse) func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
	return func(context.Context, int32, string) (*agentwire.AgentResponse, error) { return r, nil }
}

func failWith(err error) func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
	return func(context.Context, int32, string) (*agentwire.AgentResponse, error) { return nil, err }
}

var allow = answer(&agentwire.AgentResponse{})

// The first verdict that is not allow, in agent order, wins.
func TestPipelineFirstNonAllowWins(t *testing.T) {
	for _, seq := range []bool{false, true} {
		t.Run(fmt.Sprint("sequential=", seq), func(t *testing.T) {
			var opts []PipelineOption
			if seq {
				opts = append(opts, WithSequentialHeaders())
			}
			pl, _, fs := pipe(t, opts, allow, answer(blockReply(403)), answer(blockReply(401)))
			var r Request
			v := pl.RequestHeaders(testCtx(t), &r, rhEvent("x"))
			if v.Decision.Status != 403 || v.Agent != "agent1" || v.Synthetic {
				t.Fatalf("verdict %+v", v)
			}
			if seq && fs[2].calls.Load() != 0 {
				t.Fatal("sequential headers went on after a block")
			}
			if !seq && fs[2].calls.Load() != 1 {
				t.Fatal("parallel headers skipped an agent")
			}
			if seq && (r.Verdicts[2].Agent != "agent2" || r.Verdicts[2].Reply != nil || r.Verdicts[2].Synthetic) {
				t.Fatalf("unreached step's verdict %+v", r.Verdicts[2])
			}
		})
	}
}

// An agent's own decision beats a synthetic one (the Rust proxy's rule):
// a timeout of the first agent (fail-closed 504) does not hide a block of
// the second; with no explicit decision the first synthetic block wins.
func TestPipelineExplicitBeatsSynthetic(t *testing.T) {
	pl, _, _ := pipe(t, nil, failWith(errEngineTimeout), answer(blockReply(403)), failWith(errEngineProto))
	var r Request
	v := pl.RequestHeaders(testCtx(t), &r, rhEvent("x"))
	if v.Decision.Status != 403 || v.Synthetic {
		t.Fatalf("verdict %+v", v)
	}
	pl, _, _ = pipe(t, nil, allow, failWith(errEngineTimeout), failWith(errEngineProto))
	v = pl.RequestHeaders(testCtx(t), &r, rhEvent("x"))
	if v.Decision.Status != 504 || !v.Synthetic || v.Agent != "agent1" || v.Reason != engine.ReasonTimeout {
		t.Fatalf("verdict %+v", v)
	}
	if r.Verdicts[2].Decision.Status != 503 {
		t.Fatalf("third agent's verdict %+v", r.Verdicts[2])
	}
	// Fail-open agents are skipped: all allow.
	open := engine.FailurePolicy{Mode: engine.FailOpen}
	v = pl.RequestHeaders(testCtx(t), &r, rhEvent("x"), WithCallPolicy(open))
	if !v.Allowed() || v.Synthetic {
		t.Fatalf("verdict %+v", v)
	}
}

// Header operations are concatenated in agent order, audit data merged.
func TestPipelineMergesOpsAndAudit(t *testing.T) {
	a0 := &agentwire.AgentResponse{
		RequestHeaders:  []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-a", Value: "0"}, {Kind: agentwire.HeaderSet, Name: "x-both", Value: "0"}},
		ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderAdd, Name: "x-r", Value: "0"}},
		Audit: agentwire.AuditMetadata{Tags: []string{"t0"}, RuleIDs: []string{"r0"}, Confidence: agentwire.Some[float32](0.4),
			Custom: map[string]json.RawMessage{"k": json.RawMessage(`0`), "only0": json.RawMessage(`1`)}},
	}
	a1 := &agentwire.AgentResponse{
		RequestHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-both", Value: "1"}, {Kind: agentwire.HeaderRemove, Name: "cookie"}},
		Audit: agentwire.AuditMetadata{Tags: []string{"t1"}, ReasonCodes: []string{"c1"}, Confidence: agentwire.Some[float32](0.9),
			Custom: map[string]json.RawMessage{"k": json.RawMessage(`1`)}},
	}
	pl, _, _ := pipe(t, nil, answer(a0), answer(&agentwire.AgentResponse{}), answer(a1))
	var r Request
	for range 3 { // storage reused
		pl.RequestHeaders(testCtx(t), &r, rhEvent("x"))
		got := fmt.Sprint(r.RequestHeaderOps, r.ResponseHeaderOps)
		if want := "[{set x-a 0} {set x-both 0} {set x-both 1} {remove cookie }] [{add x-r 0}]"; got != want {
			t.Fatalf("ops %s, want %s", got, want)
		}
		au := r.Audit
		if fmt.Sprint(au.Tags, au.RuleIDs, au.ReasonCodes) != "[t0 t1] [r0] [c1]" {
			t.Fatalf("audit %+v", au)
		}
		if c, _ := au.Confidence.Get(); c != 0.9 {
			t.Fatalf("confidence %v", c)
		}
		if string(au.Custom["k"]) != "0" || string(au.Custom["only0"]) != "1" || len(au.Custom) != 2 {
			t.Fatalf("custom %v", au.Custom)
		}
	}
	if len(a0.Audit.Custom) != 2 {
		t.Fatal("merging changed an agent's reply")
	}
}

// Request headers reach the agents in parallel: each agent waits until
// all three have the event, which only a parallel fan-out satisfies.
func TestPipelineParallelHeaders(t *testing.T) {
	var entered sync.WaitGroup
	entered.Add(3)
	h := func(ctx context.Context, _ int32, _ string) (*agentwire.AgentResponse, error) {
		entered.Done()
		done := make(chan struct{})
		go func() { entered.Wait(); close(done) }()
		select {
		case <-done:
			return &agentwire.AgentResponse{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	pl, _, _ := pipe(t, nil, h, h, h)
	var r Request
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer cancel()
	if v := pl.RequestHeaders(ctx, &r, rhEvent("x")); !v.Allowed() || v.Synthetic {
		t.Fatalf("verdict %+v (not run in parallel?)", v)
	}
}

// Body phases run in sequence in agent order and stop at the first
// verdict that is not allow; unsubscribed agents are not called; body
// limits per agent: 413 (fail-closed) stops, a fail-open agent is skipped.
func TestPipelineBodyPhases(t *testing.T) {
	p := newTestPool(t)
	var order []string
	var mu sync.Mutex
	rec := func(name string, r *agentwire.AgentResponse) func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
		return func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return r, nil
		}
	}
	mk := func(name string, h func(context.Context, int32, string) (*agentwire.AgentResponse, error), opts ...AgentOption) *Agent {
		f := newFake(name)
		f.handle = h
		return addFakes(t, p, name, []*fakeLink{f}, opts...)
	}
	small := mk("small", rec("small", &agentwire.AgentResponse{}), WithBodyLimits(10, 10), WithFailurePolicy(engine.FailurePolicy{Mode: engine.FailOpen}))
	nobody := mk("nobody", rec("nobody", &agentwire.AgentResponse{}), WithEvents(agentwire.EventRequestHeaders))
	waf := mk("waf", rec("waf", blockReply(403)))
	last := mk("last", rec("last", &agentwire.AgentResponse{}))
	pl, err := NewPipeline([]Step{{Agent: small}, {Agent: nobody}, {Agent: waf}, {Agent: last}})
	if err != nil {
		t.Fatal(err)
	}
	var r Request
	ctx := testCtx(t)
	v := pl.RequestBodyChunk(ctx, &r, &agentwire.BodyChunk{CorrelationID: "x", Data: []byte("tiny"), BytesTransferred: 4})
	if fmt.Sprint(order) != "[small waf]" || v.Decision.Status != 403 || v.Agent != "waf" {
		t.Fatalf("order %v verdict %+v", order, v)
	}
	if r.Verdicts[1].Reason != engine.ReasonNotSubscribed || r.Verdicts[3].Reply != nil {
		t.Fatalf("verdicts %+v", r.Verdicts)
	}
	order = nil
	v = pl.RequestBodyChunk(ctx, &r, &agentwire.BodyChunk{CorrelationID: "x", Data: []byte("0123456789abc"), BytesTransferred: 13})
	if fmt.Sprint(order) != "[waf]" || r.Verdicts[0].Reason != engine.ReasonBodyTooLarge || !r.Verdicts[0].Allowed() {
		t.Fatalf("order %v verdicts %+v", order, r.Verdicts)
	}
	// The step's policy overrides the agent's: fail-closed small blocks 413.
	closed := engine.FailurePolicy{}
	pl2, _ := NewPipeline([]Step{{Agent: small, Policy: &closed}, {Agent: waf}})
	order = nil
	v = pl2.RequestBodyChunk(ctx, &r, &agentwire.BodyChunk{CorrelationID: "x", BytesTransferred: 11})
	if v.Decision.Status != 413 || v.Reason != engine.ReasonBodyTooLarge || len(order) != 0 {
		t.Fatalf("verdict %+v order %v", v, order)
	}
	// Response phases give the decision back (the Rust proxy ignores it).
	order = nil
	if v := pl.ResponseHeaders(ctx, &r, &agentwire.ResponseHeadersEvent{CorrelationID: "x"}); v.Decision.Status != 403 {
		t.Fatalf("response headers verdict %+v", v)
	}
}

// Through a pipeline every event of a request goes, for each agent, to
// the connection that saw its headers (the pin lives in the Request, not
// in the agent's table); Cancel goes to that connection only; End
// releases the pins.
func TestPipelineAffinity(t *testing.T) {
	p := newTestPool(t)
	fa, fb := fakes(3), fakes(3)
	a := addFakes(t, p, "a", fa, WithBalance(BalanceRandom))
	b := addFakes(t, p, "b", fb, WithBalance(BalanceRoundRobin))
	pl, err := NewPipeline([]Step{{Agent: a}, {Agent: b}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var r Request
	for i := range 20 {
		cid := fmt.Sprint("r", i)
		pl.RequestHeaders(ctx, &r, rhEvent(cid))
		pl.RequestBodyChunk(ctx, &r, &agentwire.BodyChunk{CorrelationID: cid})
		pl.ResponseHeaders(ctx, &r, &agentwire.ResponseHeadersEvent{CorrelationID: cid})
		pl.ResponseBodyChunk(ctx, &r, &agentwire.BodyChunk{CorrelationID: cid, IsLast: true})
		pl.WebSocketFrame(ctx, &r, &agentwire.WebSocketFrameEvent{CorrelationID: cid})
		pl.RequestComplete(ctx, &r, &agentwire.RequestCompleteEvent{CorrelationID: cid})
		pl.Cancel(&r, cid, agentwire.CancelManual)
		for _, fs := range [][]*fakeLink{fa, fb} {
			n := 0
			for _, f := range fs {
				k := f.kinds(cid)
				if len(k) == 0 {
					continue
				}
				n++
				if len(k) != 6 || len(f.cancels) == 0 || f.cancels[len(f.cancels)-1] != cid {
					t.Fatalf("request %s: %d of 6 events on connection %s, cancels %v", cid, len(k), f.name, f.cancels)
				}
			}
			if n != 1 {
				t.Fatalf("request %s spread over %d connections of one agent", cid, n)
			}
		}
		pl.End(&r)
		for _, id := range r.pins {
			if id != 0 {
				t.Fatal("End left a pin")
			}
		}
	}
	cancels := 0
	for _, f := range append(fa, fb...) {
		cancels += len(f.cancels)
	}
	if cancels != 40 {
		t.Fatalf("%d cancels sent, want 40 (one per agent and request)", cancels)
	}
	if a.Stats().Pins+b.Stats().Pins != 0 {
		t.Fatal("pipeline requests used the agents' tables")
	}
}

func TestNewPipelineRejects(t *testing.T) {
	p := newTestPool(t)
	a, _ := p.AddAgent("a")
	for _, steps := range [][]Step{nil, {{}}, {{Agent: a}, {Agent: a}}} {
		if _, err := NewPipeline(steps); err == nil {
			t.Fatalf("NewPipeline(%v) accepted", steps)
		}
	}
}

// Many requests in parallel through one pipeline, each with its own
// Request: every verdict is its own (the agent blocks odd requests).
func TestPipelineConcurrentRequests(t *testing.T) {
	h := func(_ context.Context, _ int32, cid string) (*agentwire.AgentResponse, error) {
		var n int
		fmt.Sscan(cid, &n)
		if n%2 == 1 {
			return &agentwire.AgentResponse{Decision: agentwire.Block(uint16(400 + n%100))}, nil
		}
		return &agentwire.AgentResponse{}, nil
	}
	pl, _, _ := pipe(t, nil, h, allow, h)
	var bad atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r Request
			for i := range 200 {
				n := g*1000 + i
				cid := fmt.Sprint(n)
				v := pl.RequestHeaders(testCtx(t), &r, rhEvent(cid))
				if n%2 == 1 && v.Decision.Status != uint16(400+n%100) || n%2 == 0 && !v.Allowed() {
					bad.Add(1)
				}
				pl.End(&r)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d wrong verdicts", bad.Load())
	}
}
