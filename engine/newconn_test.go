package engine

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// stateRecorder collects WithOnStateChange calls.
type stateRecorder struct{ ch chan stateChange }

func newStateRecorder() *stateRecorder { return &stateRecorder{ch: make(chan stateChange, 64)} }

func (r *stateRecorder) option() Option {
	return WithOnStateChange(func(from, to ConnState) { r.ch <- stateChange{from, to} })
}

// next waits for the next transition and checks it.
func (r *stateRecorder) next(t *testing.T, from, to ConnState) {
	t.Helper()
	select {
	case got := <-r.ch:
		if got.from != from || got.to != to {
			t.Fatalf("transition %v → %v, want %v → %v", got.from, got.to, from, to)
		}
	case <-time.After(testTimeout):
		t.Fatalf("no transition %v → %v", from, to)
	}
}

// now checks that the transition has already been delivered (Close
// waits for the StateClosed call unless a callback was running).
func (r *stateRecorder) now(t *testing.T, from, to ConnState) {
	t.Helper()
	select {
	case got := <-r.ch:
		if got.from != from || got.to != to {
			t.Fatalf("transition %v → %v, want %v → %v", got.from, got.to, from, to)
		}
	default:
		t.Fatalf("transition %v → %v not delivered yet", from, to)
	}
}

// none checks that no further transition was delivered.
func (r *stateRecorder) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-r.ch:
		t.Fatalf("unexpected transition %v → %v", got.from, got.to)
	default:
	}
}

var fastBackoff = WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond)

// TestNewConnConnectsInBackground: NewConn returns at once for an agent
// that is not up; calls fail fast with ErrNotConnected meanwhile,
// WaitConnected reports the last attempt's error when it gives up, and the
// Conn connects as soon as the agent starts.
func TestNewConnConnectsInBackground(t *testing.T) {
	path := sockPath(t)
	rec := newStateRecorder()
	c, err := NewConn("unix://"+path, fastBackoff, rec.option())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s := c.State(); s != StateConnecting {
		t.Fatalf("state %v, want connecting", s)
	}
	_, err = c.RequestHeaders(testCtx(t), headersEvent("early"))
	mustCIDErr(t, "before the first connection", err, ErrNotConnected, "early")
	if !strings.Contains(err.Error(), "not connected yet") {
		t.Fatalf("error %q does not say the Conn never connected", err)
	}
	waitUntil(t, "a failed attempt", nil, func() bool { return c.Stats().ReconnectFailures >= 2 })
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = c.WaitConnected(wctx)
	mustKind(t, err, ErrTimeout)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last attempt") || !strings.Contains(err.Error(), path) {
		t.Fatalf("WaitConnected gave up with %q: want the deadline and the last attempt's error", err)
	}
	rec.none(t)

	startUDSAgentAt(t, path, newTestAgent())
	if err := c.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if s := c.State(); s != StateConnected {
		t.Fatalf("state %v after WaitConnected", s)
	}
	rec.next(t, StateConnecting, StateConnected)
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("late")); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Reconnects != 0 || st.ReconnectFailures < 2 {
		t.Fatalf("stats %+v: the first connection is no reconnection", st)
	}
	c.Close()
	// Close may have seen the previous callback still running: then it
	// did not wait (see WithOnStateChange).
	rec.next(t, StateConnected, StateClosed)
	mustKind(t, c.WaitConnected(testCtx(t)), ErrClosed)
}

// TestNewConnCallsWaitWithFailFastOff: with
// WithFailFastWhileReconnecting(false) a call made before the first
// connection waits for it within its context.
func TestNewConnCallsWaitWithFailFastOff(t *testing.T) {
	path := sockPath(t)
	c, err := NewConn("unix://"+path, fastBackoff, WithFailFastWhileReconnecting(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// It waits (no ErrNotConnected) until its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = c.RequestHeaders(ctx, headersEvent("waits"))
	mustCIDErr(t, "waiting call", err, ErrTimeout, "waits")
	// And succeeds when the agent comes up meanwhile.
	waitUntil(t, "a failed attempt", nil, func() bool { return c.Stats().ReconnectFailures >= 1 })
	done := asyncCall(c, testCtx(t), "patient")
	startUDSAgentAt(t, path, newTestAgent())
	if err := recvErr(t, done, "waiting call"); err != nil {
		t.Fatal(err)
	}
}

// TestNewConnGRPC: the same over gRPC (grpc-go's own reconnection runs
// under the Conn's backoff).
func TestNewConnGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens until the agent starts
	rec := newStateRecorder()
	c, err := NewConn("grpc://"+addr, WithInsecure(), fastBackoff, rec.option())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitUntil(t, "a failed attempt", nil, func() bool { return c.Stats().ReconnectFailures >= 1 })
	_, err = c.RequestHeaders(testCtx(t), headersEvent("early"))
	mustKind(t, err, ErrNotConnected)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	serveAgent(t, ln, newTestAgent())
	if err := c.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	rec.next(t, StateConnecting, StateConnected)
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("late")); err != nil {
		t.Fatal(err)
	}
}

// TestNewConnCloseWhileConnecting: Close stops the background attempts at
// once; WaitConnected then reports ErrClosed (goleak checks that nothing
// is left running).
func TestNewConnCloseWhileConnecting(t *testing.T) {
	rec := newStateRecorder()
	c, err := NewConn("unix://"+sockPath(t), WithReconnectBackoff(time.Hour, time.Hour), rec.option())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first attempt", nil, func() bool { return c.Stats().ReconnectFailures >= 1 })
	waitErr := make(chan error, 1)
	go func() { waitErr <- c.WaitConnected(context.Background()) }()
	within(t, 2*time.Second, "Close during an hour of backoff", func() { c.Close() })
	rec.now(t, StateConnecting, StateClosed)
	mustKind(t, recvErr(t, waitErr, "WaitConnected"), ErrClosed)
	if s := c.State(); s != StateClosed {
		t.Fatalf("state %v after Close", s)
	}
}

// TestDialDoesNotWait: Dial keeps its meaning: an agent that is not up is
// an error at once, not a background connection.
func TestDialDoesNotWait(t *testing.T) {
	start := time.Now()
	_, err := Dial(testCtx(t), "unix://"+sockPath(t), fastBackoff)
	mustKind(t, err, ErrConnectFailed)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Dial took %v", d)
	}
}
