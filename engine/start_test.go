package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// TestStartRequestHeadersFanOut: one goroutine starts a call on each of
// three connections (each to an agent that holds its reply until all
// three events arrived, so the test fails unless the three are at the
// agents at once) and then waits for each; every reply reaches its own
// dst, and the connections' statistics are those of RequestHeadersInto.
func TestStartRequestHeadersFanOut(t *testing.T) {
	arrived := make(chan struct{}, 3)
	all := make(chan struct{})
	var conns []*Conn
	for i := range 3 {
		a := newTestAgent()
		a.reqHeaders = func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			arrived <- struct{}{}
			select {
			case <-all:
			case <-ctx.Done():
				return ctx.Err()
			}
			r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-agent", Value: fmt.Sprint(i)})
			return nil
		}
		srv := startUDSAgent(t, a)
		conns = append(conns, dialUDS(t, srv.path))
	}
	go func() {
		for range 3 {
			<-arrived
		}
		close(all)
	}()
	ctx := testCtx(t)
	var calls [3]Call
	var dsts [3]agentwire.AgentResponse
	evs := [3]*agentwire.RequestHeadersEvent{headersEvent("fan-0"), headersEvent("fan-1"), headersEvent("fan-2")}
	for i, c := range conns {
		started, err := c.StartRequestHeaders(ctx, evs[i], &dsts[i], &calls[i])
		if !started || err != nil {
			t.Fatalf("start %d: started %v, err %v", i, started, err)
		}
	}
	for i := range calls {
		if err := calls[i].Wait(); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
		if dsts[i].CorrelationID != evs[i].Metadata.CorrelationID || len(dsts[i].RequestHeaders) != 1 || dsts[i].RequestHeaders[0].Value != fmt.Sprint(i) {
			t.Fatalf("reply %d: %+v", i, dsts[i])
		}
		if calls[i].p != nil || calls[i].c != nil || calls[i].ctx != nil {
			t.Fatalf("call %d not cleared after Wait", i)
		}
	}
	for i, c := range conns {
		st := c.Stats()
		if st.InFlight != 0 || st.Sent != 1 || st.Received != 1 || st.Errors != 0 {
			t.Fatalf("conn %d stats %+v", i, st)
		}
	}
	// A Call is reusable, and Wait on an empty one is an invalid event.
	if err := calls[0].Wait(); !isKind(err, ErrInvalidEvent) {
		t.Fatalf("Wait on an empty Call: %v", err)
	}
	ev := headersEvent("fan-again")
	if started, err := conns[0].StartRequestHeaders(ctx, ev, &dsts[0], &calls[0]); !started || err != nil {
		t.Fatalf("restart: %v %v", started, err)
	}
	if err := calls[0].Wait(); err != nil || dsts[0].CorrelationID != "fan-again" {
		t.Fatalf("reused call: %v %+v", err, dsts[0])
	}
}

func isKind(err, kind error) bool {
	e, ok := err.(*Error)
	return ok && e.Kind == kind
}

// TestStartRequestHeadersWouldBlock: where RequestHeadersInto would wait
// for a slot (the agent's max_concurrency of 1 is in flight, the default
// WithSaturation(FlowWait)), StartRequestHeaders does nothing and says so
// (started false, nil error): no wait counted, nothing left in flight.
// Once the slot is free, the next start goes out. Without the nowait
// admission it would block here (the test's deadline ends it).
func TestStartRequestHeadersWouldBlock(t *testing.T) {
	release := make(chan struct{})
	a := holdingAgent(release)
	srv := startUDSAgent(t, a, agent.WithMaxConcurrency(1))
	c := dialUDS(t, srv.path)
	ctx := testCtx(t)
	var first, second Call
	var d1, d2 agentwire.AgentResponse
	if started, err := c.StartRequestHeaders(ctx, headersEvent("wb-1"), &d1, &first); !started || err != nil {
		t.Fatalf("first: %v %v", started, err)
	}
	started, err := c.StartRequestHeaders(ctx, headersEvent("wb-2"), &d2, &second)
	if started || err != nil {
		t.Fatalf("second while saturated: started %v, err %v; want false, nil", started, err)
	}
	if st := c.Stats(); st.InFlight != 1 || st.SaturationWaits != 0 || st.Errors != 0 {
		t.Fatalf("stats after the refused start: %+v", st)
	}
	close(release)
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	if started, err := c.StartRequestHeaders(ctx, headersEvent("wb-3"), &d2, &second); !started || err != nil {
		t.Fatalf("third: %v %v", started, err)
	}
	if err := second.Wait(); err != nil || d2.CorrelationID != "wb-3" {
		t.Fatalf("third: %v %+v", err, d2)
	}
}

// TestStartRequestHeadersErrors: a start that fails is over at once, with
// RequestHeadersInto's error (an error of the caller's own, with the
// correlation id) and counting: a nil event, a duplicate correlation id
// (the first call is still in flight), and a context that ends between
// start and Wait (ErrCanceled from Wait, and a cancel notice to the
// agent, as for a blocking call).
func TestStartRequestHeadersErrors(t *testing.T) {
	release := make(chan struct{})
	a := holdingAgent(release)
	srv := startUDSAgent(t, a)
	c := dialUDS(t, srv.path)
	defer close(release)
	var call, dup Call
	var dst agentwire.AgentResponse
	if started, err := c.StartRequestHeaders(context.Background(), nil, &dst, &call); started || !isKind(err, ErrInvalidEvent) {
		t.Fatalf("nil event: %v %v", started, err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	if started, err := c.StartRequestHeaders(ctx, headersEvent("err-1"), &dst, &call); !started || err != nil {
		t.Fatalf("start: %v %v", started, err)
	}
	var d2 agentwire.AgentResponse
	started, err := c.StartRequestHeaders(testCtx(t), headersEvent("err-1"), &d2, &dup)
	if started || !isKind(err, ErrDuplicateCorrelationID) || err.(*Error).CorrelationID != "err-1" {
		t.Fatalf("duplicate: %v %v", started, err)
	}
	cancel()
	if err := call.Wait(); !isKind(err, ErrCanceled) || err.(*Error).CorrelationID != "err-1" {
		t.Fatalf("cancelled wait: %v", err)
	}
	a.waitFor(t, "the agent's cancel notice", func() bool {
		return len(a.cancels) == 1 && a.cancels[0].CorrelationID == "err-1"
	})
	st := c.Stats()
	if st.InFlight != 0 || st.Duplicates != 1 || st.Canceled != 1 {
		t.Fatalf("stats %+v", st)
	}
}
