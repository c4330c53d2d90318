package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// scriptedUDSAgent answers request-headers and body-chunk events by
// correlation id: "slow-*" never, "bad-*" with an undecodable reply,
// anything else with allow. Every event's id is sent on seen.
func scriptedUDSAgent(t *testing.T) (*rawAgent, chan string) {
	seen := make(chan string, 64)
	a := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		for {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ < frame.TypeRequestHeaders || typ > frame.TypeGuardrailInspect {
				continue
			}
			cid := eventID(p)
			select {
			case seen <- cid:
			default:
			}
			switch {
			case strings.HasPrefix(cid, "slow-"):
			case strings.HasPrefix(cid, "bad-"):
				_ = rc.writeFrame(frame.TypeAgentResponse, []byte(`{"version":2,"decision":"explode","audit":{"custom":{"correlation_id":"`+cid+`"}}}`))
			default:
				_ = rc.reply(cid)
			}
		}
	})
	return a, seen
}

// awaitSeen waits until the agent received every one of cids (in any
// order).
func awaitSeen(t *testing.T, seen <-chan string, cids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, cid := range cids {
		want[cid] = true
	}
	timeout := time.After(testTimeout)
	for len(want) > 0 {
		select {
		case got := <-seen:
			delete(want, got)
		case <-timeout:
			t.Fatalf("the agent never received %q", cids)
		}
	}
}

// mustCIDErr checks that err is an *Error of kind carrying cid (also in
// its message) and returns it.
func mustCIDErr(t *testing.T, what string, err, kind error, cid string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %T %v, want an *Error", what, err, err)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("%s: error %v, want kind %v", what, err, kind)
	}
	if e.CorrelationID != cid {
		t.Fatalf("%s: CorrelationID %q, want %q (error %v)", what, e.CorrelationID, cid, err)
	}
	if !strings.Contains(e.Error(), "(correlation id "+cid+")") {
		t.Fatalf("%s: message %q does not name the correlation id", what, e.Error())
	}
	return e
}

// asyncCall runs a request-headers call for cid on its own goroutine.
func asyncCall(c *Conn, ctx context.Context, cid string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(ctx, headersEvent(cid))
		ch <- err
	}()
	return ch
}

func recvErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(testTimeout):
		t.Fatalf("%s: the call did not end", what)
		return nil
	}
}

// TestEveryCallErrorCarriesCorrelationID: whatever the failure, the error
// of a request call is an *Error carrying the call's correlation id (the
// timeouts, cancellations and lost connections had none before).
func TestEveryCallErrorCarriesCorrelationID(t *testing.T) {
	fa, seen := scriptedUDSAgent(t)
	c := dialUDS(t, fa.path, WithMaxSendSize(4096), WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))

	t.Run("timeout/context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Millisecond)
		defer cancel()
		_, err := c.RequestHeaders(ctx, headersEvent("slow-ctx"))
		mustCIDErr(t, "context deadline", err, ErrTimeout, "slow-ctx")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cause lost: %v", err)
		}
	})
	t.Run("timeout/default", func(t *testing.T) {
		c2 := dialUDS(t, fa.path, WithRequestTimeout(30*time.Millisecond))
		_, err := c2.RequestHeaders(context.Background(), headersEvent("slow-default"))
		mustCIDErr(t, "request timeout", err, ErrTimeout, "slow-default")
	})
	t.Run("canceled/context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		ch := asyncCall(c, ctx, "slow-cancel")
		awaitSeen(t, seen, "slow-cancel")
		cancel()
		e := mustCIDErr(t, "context canceled", recvErr(t, ch, "cancel"), ErrCanceled, "slow-cancel")
		if !errors.Is(e, context.Canceled) {
			t.Fatalf("cause lost: %v", e)
		}
	})
	t.Run("canceled/Cancel", func(t *testing.T) {
		ch := asyncCall(c, testCtx(t), "slow-manual")
		awaitSeen(t, seen, "slow-manual")
		if err := c.Cancel("slow-manual", agentwire.CancelManual); err != nil {
			t.Fatal(err)
		}
		mustCIDErr(t, "Conn.Cancel", recvErr(t, ch, "Cancel"), ErrCanceled, "slow-manual")
	})
	t.Run("duplicate", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		defer cancel()
		ch := asyncCall(c, ctx, "slow-dup")
		awaitSeen(t, seen, "slow-dup")
		_, err := c.RequestHeaders(testCtx(t), headersEvent("slow-dup"))
		mustCIDErr(t, "duplicate", err, ErrDuplicateCorrelationID, "slow-dup")
		cancel()
		<-ch
	})
	t.Run("too-large", func(t *testing.T) {
		_, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: "big", Data: make([]byte, 8192)})
		mustCIDErr(t, "too large", err, ErrMessageTooLarge, "big")
	})
	t.Run("protocol", func(t *testing.T) {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("bad-reply"))
		mustCIDErr(t, "undecodable reply", err, ErrProtocol, "bad-reply")
	})
	t.Run("invalid-id", func(t *testing.T) {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("bad\xff"))
		mustCIDErr(t, "invalid UTF-8", err, ErrInvalidEvent, "bad\xff")
	})
	t.Run("nil-destination", func(t *testing.T) {
		err := c.RequestHeadersInto(testCtx(t), headersEvent("no-dst"), nil)
		mustCIDErr(t, "nil destination", err, ErrInvalidEvent, "no-dst")
	})
	t.Run("connection-lost", func(t *testing.T) {
		// Two callers waiting on the session that dies: each gets its own
		// error with its own id.
		ch1 := asyncCall(c, testCtx(t), "slow-lost-1")
		ch2 := asyncCall(c, testCtx(t), "slow-lost-2")
		awaitSeen(t, seen, "slow-lost-1", "slow-lost-2")
		c.sess.Load().fail(ErrConnectionLost, errors.New("test: stream cut"))
		e1 := mustCIDErr(t, "lost 1", recvErr(t, ch1, "lost 1"), ErrConnectionLost, "slow-lost-1")
		e2 := mustCIDErr(t, "lost 2", recvErr(t, ch2, "lost 2"), ErrConnectionLost, "slow-lost-2")
		if e1 == e2 {
			t.Fatal("two callers share one *Error")
		}
	})
	t.Run("closed", func(t *testing.T) {
		c2 := dialUDS(t, fa.path)
		ch := asyncCall(c2, testCtx(t), "slow-closing")
		awaitSeen(t, seen, "slow-closing")
		c2.Close()
		mustCIDErr(t, "closed while waiting", recvErr(t, ch, "close"), ErrClosed, "slow-closing")
		_, err := c2.RequestHeaders(testCtx(t), headersEvent("after-close"))
		mustCIDErr(t, "closed", err, ErrClosed, "after-close")
	})
}

// TestAdmissionErrorsCarryCorrelationID covers the refusals before
// anything is sent (in-memory agent, agent reports applied directly).
func TestAdmissionErrorsCarryCorrelationID(t *testing.T) {
	ctx := context.Background()
	t.Run("not-connected", func(t *testing.T) {
		c, err := NewConn("unix://" + sockPath(t))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Every request call, with its own event type.
		calls := map[string]func(cid string) error{
			"RequestHeaders": func(cid string) error { _, err := c.RequestHeaders(ctx, headersEvent(cid)); return err },
			"RequestHeadersInto": func(cid string) error {
				return c.RequestHeadersInto(ctx, headersEvent(cid), new(agentwire.AgentResponse))
			},
			"RequestBodyChunk": func(cid string) error {
				_, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: cid})
				return err
			},
			"ResponseHeaders": func(cid string) error {
				_, err := c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: cid, Status: 200})
				return err
			},
			"ResponseBodyChunk": func(cid string) error {
				_, err := c.ResponseBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: cid})
				return err
			},
			"RequestComplete": func(cid string) error {
				_, err := c.RequestComplete(ctx, &agentwire.RequestCompleteEvent{CorrelationID: cid})
				return err
			},
			"WebSocketFrame": func(cid string) error {
				_, err := c.WebSocketFrame(ctx, &agentwire.WebSocketFrameEvent{CorrelationID: cid, Opcode: "text"})
				return err
			},
			"GuardrailInspect": func(cid string) error {
				_, err := c.GuardrailInspect(ctx, &agentwire.GuardrailInspectEvent{CorrelationID: cid})
				return err
			},
		}
		for name, call := range calls {
			mustCIDErr(t, name, call("nc-"+name), ErrNotConnected, "nc-"+name)
		}
		mustCIDErr(t, "Cancel", c.Cancel("nc-cancel", agentwire.CancelManual), ErrNotConnected, "nc-cancel")
	})
	t.Run("draining", func(t *testing.T) {
		c := memConn(t)
		c.state.Store(stateDraining)
		defer c.state.Store(stateOpen)
		_, err := c.RequestHeaders(ctx, headersEvent("drain-1"))
		mustCIDErr(t, "Drain", err, ErrDraining, "drain-1")
	})
	t.Run("health", func(t *testing.T) {
		c := memConn(t)
		s := c.sess.Load()
		s.onHealth(agentwire.HealthStatus{State: agentwire.HealthUnhealthy})
		_, err := c.RequestHeaders(ctx, headersEvent("sick"))
		mustCIDErr(t, "unhealthy", err, ErrAgentUnhealthy, "sick")
		s.onHealth(agentwire.HealthStatus{State: agentwire.HealthDraining})
		_, err = c.RequestHeaders(ctx, headersEvent("agent-draining"))
		mustCIDErr(t, "agent draining", err, ErrDraining, "agent-draining")
	})
	t.Run("not-subscribed", func(t *testing.T) {
		c := memConn(t)
		c.sess.Load().events = 1 << uint(agentwire.EventRequestHeaders)
		_, err := c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: "unsub", Status: 200})
		mustCIDErr(t, "not subscribed", err, ErrNotSubscribed, "unsub")
	})
	t.Run("flow", func(t *testing.T) {
		c := memConn(t)
		s := c.sess.Load()
		s.onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowPause, CorrelationID: agentwire.Some("paused-id")})
		_, err := c.RequestHeaders(ctx, headersEvent("paused-id"))
		mustCIDErr(t, "paused id", err, ErrFlowPaused, "paused-id")
		s.onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](0)})
		_, err = c.RequestHeaders(ctx, headersEvent("no-room"))
		mustCIDErr(t, "capacity", err, ErrFlowPaused, "no-room")
		s.onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowPause})
		_, err = c.RequestHeaders(ctx, headersEvent("paused-conn"))
		mustCIDErr(t, "paused connection", err, ErrFlowPaused, "paused-conn")
	})
	t.Run("flow-wait-timeout", func(t *testing.T) {
		c := memConn(t, WithFlowControl(FlowWait))
		c.sess.Load().onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowPause})
		tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		_, err := c.RequestHeaders(tctx, headersEvent("waited"))
		mustCIDErr(t, "flow wait", err, ErrFlowPaused, "waited")
	})
}

// TestFailuresDoNotShareErrors: two failures never return the same *Error,
// and changing a returned error changes nothing for anyone else (several
// of them were shared package variables).
func TestFailuresDoNotShareErrors(t *testing.T) {
	ctx := context.Background()
	c, err := NewConn("unix://" + sockPath(t))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, fail func(i int) error) {
		t.Helper()
		var e1, e2 *Error
		if !errors.As(fail(1), &e1) || !errors.As(fail(2), &e2) {
			t.Fatalf("%s: not *Error", what)
		}
		if e1 == e2 {
			t.Fatalf("%s: two failures share one *Error", what)
		}
		before := e2.Error()
		e1.Detail, e1.CorrelationID, e1.Err = "scribbled", "scribbled", errors.New("scribbled")
		if e2.Error() != before {
			t.Fatalf("%s: changing one error changed the other: %q", what, e2.Error())
		}
		var e3 *Error
		if !errors.As(fail(3), &e3) || strings.Contains(e3.Error(), "scribbled") {
			t.Fatalf("%s: changing an error changed a later one: %v", what, e3)
		}
	}
	check("not connected", func(i int) error {
		_, err := c.RequestHeaders(ctx, headersEvent("x"))
		return err
	})
	check("nil event", func(int) error { _, err := c.RequestHeaders(ctx, nil); return err })
	check("Cancel", func(int) error { return c.Cancel("", agentwire.CancelManual) })
	check("WaitConnected", func(int) error {
		wctx, cancel := context.WithCancel(ctx)
		cancel()
		return c.WaitConnected(wctx)
	})
	c.Close()
	check("closed", func(int) error { _, err := c.RequestHeaders(ctx, headersEvent("x")); return err })
	check("closed Ping", func(int) error { _, err := c.Ping(ctx); return err })
	check("closed Configure", func(int) error { return c.Configure(ctx, &agentwire.ConfigureEvent{}) })
	check("closed Drain", func(int) error { return c.Drain(ctx) })

	// Timeouts of the request path (preallocated before).
	m := memConnWith(t, memDialer{gate: make(chan struct{})}, WithRequestTimeout(20*time.Millisecond))
	check("timeout", func(i int) error {
		_, err := m.RequestHeaders(ctx, headersEvent("t"+string(rune('0'+i))))
		return err
	})
}
