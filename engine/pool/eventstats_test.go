package pool

import (
	"context"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// TestEventStats drives one call of each outcome through an agent and
// checks that it is counted once, under its event kind and outcome
// (Agent.EventStats), its failure kind (AgentStats.Failures) and its
// reason split by what the synthetic verdict decided (FailOpen,
// FailClosed); that the agent-wide totals are the sums of the per-event
// counters; and that the latency histograms count the calls that reached a
// connection, by event kind.
func TestEventStats(t *testing.T) {
	ctx := testCtx(t)
	failWith := func(err error) func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
		return func(context.Context, int32, string) (*agentwire.AgentResponse, error) { return nil, err }
	}
	openPolicy := engine.FailurePolicy{Mode: engine.FailOpen}
	type outcome int
	const (
		allow outcome = iota
		block
		redirect
		failOpen
		failClosed
		notSubscribed
	)
	cases := []struct {
		name    string
		kind    int32
		handle  func(context.Context, int32, string) (*agentwire.AgentResponse, error)
		noConn  bool
		opts    []AgentOption
		calls   int // calls made (default 1); the last one is checked
		want    outcome
		failure FailureKind
		reason  engine.Reason
		reached bool // the checked call reached a connection (latency observed)
	}{
		{name: "allow", kind: agentwire.EventRequestHeaders, want: allow, reached: true},
		{name: "block", kind: agentwire.EventResponseHeaders, want: block, reached: true,
			handle: func(context.Context, int32, string) (*agentwire.AgentResponse, error) { return blockReply(403), nil }},
		{name: "redirect", kind: agentwire.EventGuardrailInspect, want: redirect, reached: true,
			handle: func(context.Context, int32, string) (*agentwire.AgentResponse, error) {
				return &agentwire.AgentResponse{Decision: agentwire.Decision{Kind: agentwire.DecisionRedirect}}, nil
			}},
		{name: "timeout", kind: agentwire.EventRequestHeaders, want: failClosed, failure: FailureTimeout, reason: engine.ReasonTimeout, reached: true,
			handle: failWith(&engine.Error{Kind: engine.ErrTimeout})},
		{name: "canceled", kind: agentwire.EventRequestComplete, want: failClosed, failure: FailureCanceled, reason: engine.ReasonCanceled, reached: true,
			handle: failWith(context.Canceled)},
		{name: "connection lost fail-open", kind: agentwire.EventRequestBodyChunk, want: failOpen, failure: FailureConnectionLost, reason: engine.ReasonError, reached: true,
			handle: failWith(&engine.Error{Kind: engine.ErrConnectionLost}), opts: []AgentOption{WithFailurePolicy(openPolicy)}},
		{name: "protocol", kind: agentwire.EventWebSocketFrame, want: failClosed, failure: FailureProtocol, reason: engine.ReasonError, reached: true,
			handle: failWith(&engine.Error{Kind: engine.ErrProtocol})},
		{name: "no connection", kind: agentwire.EventRequestHeaders, noConn: true, want: failClosed, failure: FailureNoConnection, reason: engine.ReasonUnavailable},
		{name: "refused unhealthy", kind: agentwire.EventRequestHeaders, want: failClosed, failure: FailureRefused, reason: engine.ReasonUnavailable,
			handle: failWith(&engine.Error{Kind: engine.ErrAgentUnhealthy})},
		{name: "saturated fail-open", kind: agentwire.EventResponseBodyChunk, want: failOpen, failure: FailureSaturated, reason: engine.ReasonUnavailable,
			handle: failWith(&engine.Error{Kind: engine.ErrSaturated}), opts: []AgentOption{WithFailurePolicy(openPolicy)}},
		{name: "breaker open", kind: agentwire.EventRequestHeaders, calls: 2, want: failClosed, failure: FailureBreakerOpen, reason: engine.ReasonBreakerOpen,
			handle: failWith(&engine.Error{Kind: engine.ErrProtocol}),
			opts:   []AgentOption{WithBreaker(BreakerConfig{FailureThreshold: 1, OpenDuration: time.Hour})}},
		{name: "body too large", kind: agentwire.EventRequestBodyChunk, want: failClosed, failure: FailureBodyTooLarge, reason: engine.ReasonBodyTooLarge,
			opts: []AgentOption{WithBodyLimits(4, 4)}},
		{name: "not subscribed", kind: agentwire.EventResponseHeaders, want: notSubscribed,
			opts: []AgentOption{WithEvents(agentwire.EventRequestHeaders)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newTestPool(t)
			f := newFake("a")
			f.handle = c.handle
			var links []*fakeLink
			if !c.noConn {
				links = append(links, f)
			}
			a := addFakes(t, p, "agent", links, c.opts...)
			calls := max(c.calls, 1)
			var last engine.Verdict
			for i := range calls {
				last = callKind(ctx, a, c.kind, "cid-"+string(rune('0'+i)))
			}
			if wantSynthetic := c.want >= failOpen; last.Synthetic != wantSynthetic {
				t.Fatalf("verdict %+v", last)
			}
			es := a.EventStats(c.kind)
			var got [6]uint64
			got[allow], got[block], got[redirect] = es.Decisions.Allow, es.Decisions.Block, es.Decisions.Redirect
			got[failOpen], got[failClosed], got[notSubscribed] = es.FailOpen, es.FailClosed, es.NotSubscribed
			if got[c.want] == 0 {
				t.Errorf("outcome %d not counted: %+v", c.want, es)
			}
			if es.Completed() != uint64(calls) {
				t.Errorf("event kind %d: %d calls counted, want %d: %+v", c.kind, es.Completed(), calls, es)
			}
			st := a.Stats()
			var sum uint64
			var lat LatencyHistogram
			for k := agentwire.EventRequestHeaders; k <= agentwire.EventGuardrailInspect; k++ {
				e := a.EventStats(k)
				sum += e.Completed()
				if k != c.kind && e.Completed() != 0 {
					t.Errorf("event kind %d counted a call of kind %d: %+v", k, c.kind, e)
				}
				for i := range lat.Counts {
					lat.Counts[i] += e.Latency.Counts[i]
				}
				lat.Sum += e.Latency.Sum
			}
			if sum != st.Requests {
				t.Errorf("per-event counts sum to %d, Requests %d", sum, st.Requests)
			}
			if lat != st.Latency {
				t.Errorf("per-event latency sums to %+v, agent latency %+v", lat, st.Latency)
			}
			if c.reached && es.Latency.Count() == 0 {
				t.Errorf("latency of a call that reached the connection not observed")
			}
			if !c.reached && c.calls == 0 && es.Latency.Count() != 0 {
				t.Errorf("latency observed for a call that reached no connection: %+v", es.Latency)
			}
			d := st.Decisions
			if d.Allow != got[allow] || d.Block != got[block] || d.Redirect != got[redirect] {
				t.Errorf("agent decisions %+v, per event %v", d, got)
			}
			if st.Verdicts.FailOpen != got[failOpen] || st.Verdicts.FailClosed != got[failClosed] || st.Verdicts.NotSubscribed != got[notSubscribed] {
				t.Errorf("agent verdicts %+v, per event %v", st.Verdicts, got)
			}
			var failures uint64
			for _, n := range st.Failures {
				failures += n
			}
			if failures != got[failOpen]+got[failClosed] {
				t.Errorf("failures %v, synthetic verdicts %d", st.Failures, got[failOpen]+got[failClosed])
			}
			if c.want == failOpen || c.want == failClosed {
				if st.Failures[c.failure] == 0 {
					t.Errorf("failure %v not counted: %v", c.failure, st.Failures)
				}
				split := reasonArray(st.FailClosed)
				if c.want == failOpen {
					split = reasonArray(st.FailOpen)
				}
				if split[c.reason] == 0 {
					t.Errorf("reason %v not counted as %d: open %+v closed %+v", c.reason, c.want, st.FailOpen, st.FailClosed)
				}
			}
			errs, open, closed := reasonArray(st.Errors), reasonArray(st.FailOpen), reasonArray(st.FailClosed)
			for r := engine.ReasonError; r < engine.ReasonNotSubscribed; r++ {
				if errs[r] != open[r]+closed[r] {
					t.Errorf("reason %v: Errors %d, FailOpen %d + FailClosed %d", r, errs[r], open[r], closed[r])
				}
			}
			if errs[engine.ReasonNotSubscribed] != got[notSubscribed] {
				t.Errorf("Errors.NotSubscribed %d, per event %d", errs[engine.ReasonNotSubscribed], got[notSubscribed])
			}
		})
	}
	// Kinds out of range read as zero.
	p := newTestPool(t)
	a := addFakes(t, p, "agent", fakes(1))
	callKind(ctx, a, agentwire.EventRequestHeaders, "x")
	if a.EventStats(0) != (EventStats{}) || a.EventStats(8) != (EventStats{}) || a.EventStats(-1) != (EventStats{}) {
		t.Fatal("an event kind out of range has counts")
	}
}

// callKind makes one call of event kind through a.
func callKind(ctx context.Context, a *Agent, kind int32, cid string) engine.Verdict {
	switch kind {
	case agentwire.EventRequestHeaders:
		return a.RequestHeaders(ctx, rhEvent(cid), nil)
	case agentwire.EventRequestBodyChunk:
		return a.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: cid, Data: []byte("0123456789")})
	case agentwire.EventResponseHeaders:
		return a.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: cid, Status: 200})
	case agentwire.EventResponseBodyChunk:
		return a.ResponseBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: cid, Data: []byte("0")})
	case agentwire.EventRequestComplete:
		return a.RequestComplete(ctx, &agentwire.RequestCompleteEvent{CorrelationID: cid})
	case agentwire.EventWebSocketFrame:
		return a.WebSocketFrame(ctx, &agentwire.WebSocketFrameEvent{CorrelationID: cid})
	case agentwire.EventGuardrailInspect:
		return a.GuardrailInspect(ctx, &agentwire.GuardrailInspectEvent{CorrelationID: cid})
	}
	panic("unknown kind")
}

// reasonArray indexes c by engine.Reason.
func reasonArray(c ReasonCounts) [8]uint64 {
	var r [8]uint64
	r[engine.ReasonError], r[engine.ReasonTimeout], r[engine.ReasonCanceled] = c.Error, c.Timeout, c.Canceled
	r[engine.ReasonUnavailable], r[engine.ReasonBreakerOpen] = c.Unavailable, c.BreakerOpen
	r[engine.ReasonBodyTooLarge], r[engine.ReasonNotSubscribed] = c.BodyTooLarge, c.NotSubscribed
	return r
}

// TestEventStatsInvalidEvent: a call with no event is counted under its
// kind as a failure of kind other.
func TestEventStatsInvalidEvent(t *testing.T) {
	p := newTestPool(t)
	a := addFakes(t, p, "agent", fakes(1))
	v := a.ResponseHeaders(testCtx(t), nil)
	if !v.Synthetic {
		t.Fatalf("verdict %+v", v)
	}
	st := a.Stats()
	if es := a.EventStats(agentwire.EventResponseHeaders); es.FailClosed != 1 || st.Failures[FailureOther] != 1 || st.FailClosed.Error != 1 || st.Requests != 1 {
		t.Fatalf("event %+v failures %v", es, st.Failures)
	}
}

// TestFailureKindNames: every kind has a distinct snake-case name.
func TestFailureKindNames(t *testing.T) {
	seen := map[string]bool{}
	for k := range FailureKinds {
		n := FailureKind(k).String()
		if n == "" || n == "unknown" || seen[n] {
			t.Fatalf("kind %d: name %q", k, n)
		}
		seen[n] = true
	}
	if FailureKind(FailureKinds).String() != "unknown" {
		t.Fatal("an unknown kind has a name")
	}
}
