package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

func TestFailurePolicyDecide(t *testing.T) {
	reply := &agentwire.AgentResponse{Decision: agentwire.Block(403)}
	timeout := &Error{Kind: ErrTimeout, Err: context.DeadlineExceeded}
	cases := []struct {
		name   string
		p      FailurePolicy
		reply  *agentwire.AgentResponse
		err    error
		kind   agentwire.DecisionKind
		status uint16
		synth  bool
		reason Reason
	}{
		{"agent decision", FailurePolicy{}, reply, nil, agentwire.DecisionBlock, 403, false, ReasonNone},
		{"agent decision, open", FailurePolicy{Mode: FailOpen}, reply, nil, agentwire.DecisionBlock, 403, false, ReasonNone},
		{"lost, closed", FailurePolicy{}, nil, &Error{Kind: ErrConnectionLost}, agentwire.DecisionBlock, 503, true, ReasonError},
		{"lost, open", FailurePolicy{Mode: FailOpen}, nil, &Error{Kind: ErrConnectionLost}, agentwire.DecisionAllow, 0, true, ReasonError},
		{"timeout, closed", FailurePolicy{}, nil, timeout, agentwire.DecisionBlock, 504, true, ReasonTimeout},
		{"ctx deadline, closed", FailurePolicy{}, nil, context.DeadlineExceeded, agentwire.DecisionBlock, 504, true, ReasonTimeout},
		{"timeout, custom", FailurePolicy{TimeoutStatus: 599, ErrorStatus: 500}, nil, timeout, agentwire.DecisionBlock, 599, true, ReasonTimeout},
		{"error, custom", FailurePolicy{TimeoutStatus: 599, ErrorStatus: 500}, nil, ErrClosed, agentwire.DecisionBlock, 500, true, ReasonError},
		{"canceled, closed", FailurePolicy{}, nil, &Error{Kind: ErrCanceled, Err: context.Canceled}, agentwire.DecisionBlock, 503, true, ReasonCanceled},
		{"unhealthy, closed", FailurePolicy{}, nil, &Error{Kind: ErrAgentUnhealthy}, agentwire.DecisionBlock, 503, true, ReasonUnavailable},
		{"paused, open", FailurePolicy{Mode: FailOpen}, nil, &Error{Kind: ErrFlowPaused}, agentwire.DecisionAllow, 0, true, ReasonUnavailable},
		{"saturated, closed", FailurePolicy{}, nil, &Error{Kind: ErrSaturated}, agentwire.DecisionBlock, 503, true, ReasonUnavailable},
		{"not subscribed, closed", FailurePolicy{}, nil, &Error{Kind: ErrNotSubscribed}, agentwire.DecisionAllow, 0, true, ReasonNotSubscribed},
		{"wrapped", FailurePolicy{}, nil, fmt.Errorf("phase 2: %w", &Error{Kind: ErrProtocol}), agentwire.DecisionBlock, 503, true, ReasonError},
		{"no reply, no error", FailurePolicy{}, nil, nil, agentwire.DecisionBlock, 503, true, ReasonError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.p.Decide("waf", tc.reply, tc.err)
			if v.Decision.Kind != tc.kind || v.Decision.Status != tc.status || v.Synthetic != tc.synth || v.Reason != tc.reason || v.Agent != "waf" {
				t.Fatalf("got %+v", v)
			}
			if tc.synth && (v.Reply != nil || v.Err == nil) {
				t.Fatalf("synthetic verdict must carry the error and no reply: %+v", v)
			}
			if !tc.synth && v.Reply != tc.reply {
				t.Fatalf("agent verdict must carry the reply")
			}
			if v.Allowed() != (tc.kind == agentwire.DecisionAllow) {
				t.Fatalf("Allowed() = %v", v.Allowed())
			}
		})
	}
	if v := (FailurePolicy{}).Synthetic("waf", ReasonBodyTooLarge, nil); v.Decision.Status != 413 {
		t.Fatalf("body too large: %+v", v)
	}
	if v := (FailurePolicy{}).Synthetic("waf", ReasonBreakerOpen, nil); v.Decision.Status != 503 {
		t.Fatalf("breaker open: %+v", v)
	}
}

// TestConnDecide runs the README's idiom against real agents: the agent's
// block, a dead agent (fail-closed blocks 503, fail-open allows), a slow
// agent (504), each verdict naming its agent and counted.
func TestConnDecide(t *testing.T) {
	slow := make(chan struct{})
	a := newTestAgent()
	a.reqHeaders = func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		switch {
		case strings.HasPrefix(ev.URI, "/admin"):
			r.Decision = agentwire.Block(403)
		case strings.HasPrefix(ev.URI, "/slow"):
			select {
			case <-slow:
			case <-ctx.Done():
			}
		}
		return nil
	}
	defer close(slow)
	ag := startUDSAgent(t, a)
	closed := dialUDS(t, ag.path, WithAgentName("waf"))
	open := dialUDS(t, ag.path, WithFailurePolicy(FailurePolicy{Mode: FailOpen}))
	ctx := testCtx(t)

	ev := headersEvent("c1")
	ev.URI = "/admin"
	v := closed.Decide(closed.RequestHeaders(ctx, ev))
	if v.Allowed() || v.Synthetic || v.Decision.Status != 403 || v.Agent != "waf" || v.Reply == nil {
		t.Fatalf("agent block: %+v", v)
	}
	v = closed.Decide(closed.RequestHeaders(ctx, headersEvent("c2")))
	if !v.Allowed() || v.Synthetic {
		t.Fatalf("agent allow: %+v", v)
	}

	ev = headersEvent("c3")
	ev.URI = "/slow"
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	v = closed.Decide(closed.RequestHeaders(tctx, ev))
	cancel()
	if v.Allowed() || !v.Synthetic || v.Reason != ReasonTimeout || v.Decision.Status != 504 || !errors.Is(v.Err, ErrTimeout) {
		t.Fatalf("timeout: %+v", v)
	}

	ag.stop()
	waitUntil(t, "closed conn lost", nil, func() bool { return !closed.Health().Connected })
	waitUntil(t, "open conn lost", nil, func() bool { return !open.Health().Connected })
	v = closed.Decide(closed.RequestHeaders(ctx, headersEvent("c4")))
	if v.Allowed() || !v.Synthetic || v.Reason != ReasonError || v.Decision.Status != 503 || v.Agent != "waf" {
		t.Fatalf("dead agent, fail-closed: %+v", v)
	}
	v = open.Decide(open.RequestHeaders(ctx, headersEvent("c5")))
	if !v.Allowed() || !v.Synthetic || v.Reason != ReasonError || v.Agent == "" {
		t.Fatalf("dead agent, fail-open: %+v", v)
	}
	if s := closed.Stats().Verdicts; s.FailClosed != 2 || s.FailOpen != 0 {
		t.Fatalf("closed conn counted %+v", s)
	}
	if s := open.Stats().Verdicts; s.FailOpen != 1 || s.FailClosed != 0 {
		t.Fatalf("open conn counted %+v", s)
	}
}
