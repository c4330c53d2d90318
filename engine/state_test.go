package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestConnStateTransitions: connect, agent killed → reconnecting, agent
// back → connected, Close → closed; State follows, and the callback sees
// every transition in order, the last one before Close returns.
func TestConnStateTransitions(t *testing.T) {
	path := sockPath(t)
	a := startUDSAgentAt(t, path, newTestAgent())
	rec := newStateRecorder()
	c, err := NewConn("unix://"+path, fastBackoff, rec.option())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec.next(t, StateConnecting, StateConnected)
	if s := c.State(); s != StateConnected {
		t.Fatalf("state %v", s)
	}

	a.stop() // the agent dies
	rec.next(t, StateConnected, StateReconnecting)
	if s := c.State(); s != StateReconnecting {
		t.Fatalf("state %v after the agent died", s)
	}
	_, err = c.RequestHeaders(testCtx(t), headersEvent("while-down"))
	mustKind(t, err, ErrNotConnected)

	startUDSAgentAt(t, path, newTestAgent()) // and comes back
	rec.next(t, StateReconnecting, StateConnected)
	if err := c.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("back")); err != nil {
		t.Fatal(err)
	}

	c.Close()
	if s := c.State(); s != StateClosed {
		t.Fatalf("state %v after Close", s)
	}
	rec.next(t, StateConnected, StateClosed)
	rec.none(t)
}

// TestConnStateDial: a Conn from Dial reports its first connection too,
// and a lost session over gRPC goes through StateReconnecting.
func TestConnStateDial(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	rec := newStateRecorder()
	c := dial(t, srv.addr, fastBackoff, rec.option())
	if s := c.State(); s != StateConnected {
		t.Fatalf("state %v after Dial", s)
	}
	rec.next(t, StateConnecting, StateConnected)
	c.sess.Load().fail(ErrConnectionLost, errors.New("test: stream cut"))
	rec.next(t, StateConnected, StateReconnecting)
	rec.next(t, StateReconnecting, StateConnected)
	waitUntil(t, "the callback to return", nil, func() bool { return !c.cbRunning.Load() })
	c.Close() // no callback running: Close waits for the StateClosed call
	rec.now(t, StateConnected, StateClosed)
	rec.none(t)
}

// TestStateCallbackOffReaderAndWriter: the callback runs on the
// dispatcher: while it blocks, requests go on (on the reader or the writer
// they could not), and a callback may call Close.
func TestStateCallbackOffReaderAndWriter(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	release := make(chan struct{})
	entered := make(chan struct{})
	closed := make(chan struct{})
	var c *Conn
	c = dial(t, srv.addr, WithOnStateChange(func(from, to ConnState) {
		switch to {
		case StateConnected:
			close(entered)
			<-release
			c.Close() // from the callback: must not deadlock
		case StateClosed:
			close(closed)
		}
	}))
	<-entered
	for i := range 10 {
		if _, err := c.RequestHeaders(testCtx(t), headersEvent("cb-"+string(rune('a'+i)))); err != nil {
			t.Fatalf("request while the state callback blocks: %v", err)
		}
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close from a state callback did not deliver StateClosed")
	}
	within(t, 5*time.Second, "Close after Close from a callback", func() { c.Close() })
}

// TestStateCallbackPanic: a panicking callback is recovered and counted,
// and the next transition is still delivered.
func TestStateCallbackPanic(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	closed := make(chan struct{})
	c := dial(t, srv.addr, WithOnStateChange(func(from, to ConnState) {
		if to == StateClosed {
			close(closed)
			return
		}
		panic("test: state callback")
	}))
	waitUntil(t, "the panic", nil, func() bool { return c.Stats().CallbackPanics == 1 && !c.cbRunning.Load() })
	c.Close()
	select {
	case <-closed:
	default:
		t.Fatal("StateClosed not delivered after a panicking callback")
	}
}

// TestStateQueueBounded: while the callback does not return, at most
// maxStateQueue transitions wait; the newest are merged so that the
// delivered chain stays consistent (each from is the previous to) and ends
// in StateClosed.
func TestStateQueueBounded(t *testing.T) {
	var got []stateChange
	entered, unblock := make(chan struct{}), make(chan struct{})
	o := defaultOptions()
	WithOnStateChange(func(from, to ConnState) {
		if len(got) == 0 {
			close(entered)
			<-unblock // the first callback does not return while the rest queue up
		}
		got = append(got, stateChange{from, to})
	}).apply(&o)
	c := newConnObj(memDialer{}, o)
	c.setState(StateConnected) // starts the dispatcher, which blocks in the callback
	<-entered
	for i := range 5 * maxStateQueue {
		if i%2 == 0 {
			c.setState(StateReconnecting)
		} else {
			c.setState(StateConnected)
		}
		c.stateMu.Lock()
		n := len(c.stateQ)
		c.stateMu.Unlock()
		if n > maxStateQueue {
			t.Fatalf("%d transitions waiting", n)
		}
	}
	// Close while the callback still blocks (Close does not wait for a
	// running callback), then let it return: the transitions waiting
	// (StateClosed included) must still be delivered before the
	// dispatcher exits.
	c.Close()
	close(unblock)
	within(t, testTimeout, "the dispatcher to exit", c.dispWG.Wait)
	if len(got) == 0 || len(got) > maxStateQueue+1 {
		t.Fatalf("%d transitions delivered", len(got))
	}
	prev := StateConnecting
	for i, ch := range got {
		if ch.from != prev || ch.from == ch.to {
			t.Fatalf("transition %d: %v → %v after %v", i, ch.from, ch.to, prev)
		}
		prev = ch.to
	}
	if prev != StateClosed {
		t.Fatalf("last transition ends in %v", prev)
	}
}

// TestReverseConnState: a reverse Conn is connected from its creation and
// goes straight to StateClosed when its socket dies (it never reconnects).
func TestReverseConnState(t *testing.T) {
	rec := newStateRecorder()
	l, path := listenReverse(t, WithConnOptions(rec.option()))
	r, nc := register(t, "unix", path, regRequest("st", nil))
	if r == nil || !r.Success {
		t.Fatalf("registration: %+v", r)
	}
	c, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	rec.next(t, StateConnecting, StateConnected)
	nc.Close()
	rec.next(t, StateConnected, StateClosed)
	if s := c.State(); s != StateClosed {
		t.Fatalf("state %v", s)
	}
	mustKind(t, c.WaitConnected(context.Background()), ErrClosed)
}

func TestConnStateString(t *testing.T) {
	for s, want := range map[ConnState]string{
		StateConnecting: "connecting", StateConnected: "connected",
		StateReconnecting: "reconnecting", StateClosed: "closed", 9: "ConnState(9)",
	} {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", s, got, want)
		}
	}
}
