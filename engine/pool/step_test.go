package pool

import (
	"context"
	"slices"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// TestPipelineStepBodyChunk: RequestBodyChunkTo and ResponseBodyChunkTo
// reach the one step asked for, on the connection of the request's
// headers, under its body limit and failure policy; the other steps get
// the zero verdict with their name; the step's reply decides.
func TestPipelineStepBodyChunk(t *testing.T) {
	p := newTestPool(t)
	fa, fb := fakes(2), fakes(2)
	a := addFakes(t, p, "a", fa, WithBalance(BalanceRoundRobin))
	b := addFakes(t, p, "b", fb, WithBalance(BalanceRoundRobin), WithBodyLimits(10, 20))
	for _, f := range fb {
		f.handle = func(_ context.Context, kind int32, _ string) (*agentwire.AgentResponse, error) {
			if kind == agentwire.EventResponseBodyChunk {
				return blockReply(451), nil
			}
			return nil, nil
		}
	}
	pl, err := NewPipeline([]Step{{Agent: a}, {Agent: b}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var r Request
	for i := range 4 {
		cid := string(rune('p' + i))
		pl.RequestHeaders(ctx, &r, rhEvent(cid))
		v := pl.RequestBodyChunkTo(ctx, &r, 1, &agentwire.BodyChunk{CorrelationID: cid, Data: []byte("abc"), BytesTransferred: 3})
		if !v.Allowed() || v.Synthetic {
			t.Fatalf("request chunk: %+v", v)
		}
		if v0 := r.Verdicts[0]; v0.Agent != "a" || v0.Reply != nil || v0.Synthetic || r.Verdicts[1].Agent != "b" || r.Verdicts[1].Reply == nil {
			t.Fatalf("verdicts %+v", r.Verdicts)
		}
		v = pl.ResponseBodyChunkTo(ctx, &r, 1, &agentwire.BodyChunk{CorrelationID: cid, Data: []byte("x"), BytesTransferred: 1, IsLast: true})
		if v.Allowed() || v.Synthetic || v.Decision.Status != 451 {
			t.Fatalf("response chunk: %+v", v)
		}
		// Over b's request limit (10): the policy answers, nothing is sent.
		v = pl.RequestBodyChunkTo(ctx, &r, 1, &agentwire.BodyChunk{CorrelationID: cid, BytesTransferred: 11})
		if v.Allowed() || !v.Synthetic || v.Reason != engine.ReasonBodyTooLarge || v.Decision.Status != 413 {
			t.Fatalf("over the limit: %+v", v)
		}
		pl.End(&r)
		for _, f := range fa {
			if k := f.kinds(cid); len(k) > 1 {
				t.Fatalf("agent a got %v for %s, want request headers only", k, cid)
			}
		}
		n := 0
		for _, f := range fb {
			k := f.kinds(cid)
			if len(k) == 0 {
				continue
			}
			n++
			want := []int32{agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk, agentwire.EventResponseBodyChunk}
			if !slices.Equal(k, want) {
				t.Fatalf("agent b connection %s got %v for %s, want %v", f.name, k, cid, want)
			}
		}
		if n != 1 {
			t.Fatalf("request %s spread over %d connections of b", cid, n)
		}
	}
	if req, resp := b.BodyLimits(); req != 10 || resp != 20 {
		t.Fatalf("b.BodyLimits() = %d, %d", req, resp)
	}
	if req, resp := a.BodyLimits(); req != DefaultBodyLimit || resp != DefaultBodyLimit {
		t.Fatalf("a.BodyLimits() = %d, %d", req, resp)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("step 2 of a 2-step pipeline did not panic")
			}
		}()
		pl.RequestBodyChunkTo(ctx, &r, 2, &agentwire.BodyChunk{})
	}()
}

// TestAgentBodyLimitsAnnounced: BodyLimits reports the limit an agent
// announced when it is smaller than the configured one.
func TestAgentBodyLimitsAnnounced(t *testing.T) {
	p := newTestPool(t)
	f := newFake("a")
	f.caps.Limits.MaxBodySize = 80
	a := addFakes(t, p, "waf", []*fakeLink{f}, WithBodyLimits(100, -1))
	if req, resp := a.BodyLimits(); req != 80 || resp != 80 {
		t.Fatalf("BodyLimits() = %d, %d, want 80, 80", req, resp)
	}
}
