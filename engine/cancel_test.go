package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// blockingAgent never answers until the request's context ends (the agent
// server cancels it when the proxy's cancel arrives, and then answers: a
// late reply the Conn must discard).
func blockingAgent() *testAgent {
	a := newTestAgent()
	a.reqHeaders = func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		<-ctx.Done()
		return nil
	}
	return a
}

func (a *testAgent) cancelFor(cid string) (agentwire.Cancel, bool) {
	for _, c := range a.cancels {
		if c.CorrelationID == cid {
			return c, true
		}
	}
	return agentwire.Cancel{}, false
}

func TestContextCancelSendsClientDisconnect(t *testing.T) {
	a := blockingAgent()
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(ctx, headersEvent("gone"))
		errc <- err
	}()
	waitUntil(t, "request sent", nil, func() bool { return c.Stats().Sent >= 1 })
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
		t.Fatalf("error %v, want context.Canceled and ErrCanceled", err)
	}
	a.waitFor(t, "cancel at the agent", func() bool { _, ok := a.cancelFor("gone"); return ok })
	a.mu.Lock()
	cn, _ := a.cancelFor("gone")
	a.mu.Unlock()
	if cn.Reason != agentwire.CancelClientDisconnect {
		t.Fatalf("reason %v", cn.Reason)
	}
	// The agent answers after the cancel; the late reply is discarded.
	waitUntil(t, "late reply discarded", nil, func() bool { return c.Stats().Orphans >= 1 })
	st := c.Stats()
	if st.Canceled != 1 || st.Errors != 0 || st.Timeouts != 0 || st.InFlight != 0 || st.CancelsSent != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDeadlineSendsTimeoutCancel(t *testing.T) {
	a := blockingAgent()
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.RequestHeaders(ctx, headersEvent("slow"))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline honoured late: %v", d)
	}
	a.waitFor(t, "timeout cancel at the agent", func() bool {
		cn, ok := a.cancelFor("slow")
		return ok && cn.Reason == agentwire.CancelTimeout
	})
	if st := c.Stats(); st.Timeouts != 1 || st.Errors != 0 || st.InFlight != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDefaultRequestTimeout(t *testing.T) {
	a := blockingAgent()
	srv := startAgent(t, a)
	c := dial(t, srv.addr, WithRequestTimeout(80*time.Millisecond))
	start := time.Now()
	_, err := c.RequestHeaders(context.Background(), headersEvent("no-deadline"))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d < 80*time.Millisecond || d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	a.waitFor(t, "timeout cancel", func() bool {
		cn, ok := a.cancelFor("no-deadline")
		return ok && cn.Reason == agentwire.CancelTimeout
	})
}

func TestExplicitCancel(t *testing.T) {
	a := blockingAgent()
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	errc := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("stop-me"))
		errc <- err
	}()
	waitUntil(t, "request sent", nil, func() bool { return c.Stats().Sent >= 1 })
	if err := c.Cancel("stop-me", agentwire.CancelBlockedByAgent); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if !errors.Is(err, ErrCanceled) || errors.Is(err, context.Canceled) {
		t.Fatalf("error %v: want ErrCanceled, not a context error", err)
	}
	a.waitFor(t, "cancel at the agent", func() bool {
		cn, ok := a.cancelFor("stop-me")
		return ok && cn.Reason == agentwire.CancelBlockedByAgent
	})
	// Cancelling an id that is not pending still notifies the agent.
	if err := c.Cancel("unknown", agentwire.CancelManual); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "cancel for unknown id", func() bool { _, ok := a.cancelFor("unknown"); return ok })
	if st := c.Stats(); st.Canceled != 1 || st.Errors != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestManyDeadlinesAgainstSilentAgent(t *testing.T) {
	a := blockingAgent()
	// The agent's reader stops reading (cancels included) while all its
	// handler slots are busy, so give it room for every request.
	srv := startAgent(t, a, agent.WithMaxConcurrency(1000))
	c := dial(t, srv.addr)
	const n = 200
	errc := make(chan error, n)
	for i := range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(20+i%50)*time.Millisecond)
			defer cancel()
			_, err := c.RequestHeaders(ctx, headersEvent("silent-"+string(rune('a'+i%26))+time.Duration(i).String()))
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v", err)
		}
	}
	if st := c.Stats(); st.Timeouts != n || st.InFlight != 0 {
		t.Fatalf("stats: %+v", st)
	}
	// The Conn is still usable afterwards.
	if _, err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}
