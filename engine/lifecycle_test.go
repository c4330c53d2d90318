package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// ctxHonouringMemDialer is memDialer with the one property every real
// dialer has: an attempt under an ended context fails. onFirstOpen runs
// inside the first open, after the connection is "established".
type ctxHonouringMemDialer struct {
	opens       atomic.Int32
	onFirstOpen func()
}

func (d *ctxHonouringMemDialer) open(ctx context.Context, hs *agentwire.HandshakeRequest) (transport, agentwire.Capabilities, error) {
	if err := ctx.Err(); err != nil {
		return nil, agentwire.Capabilities{}, &Error{Kind: ErrConnectFailed, Err: err}
	}
	t, caps, err := memDialer{}.open(ctx, hs)
	if d.opens.Add(1) == 1 && d.onFirstOpen != nil {
		d.onFirstOpen()
	}
	return t, caps, err
}

func (*ctxHonouringMemDialer) close() error { return nil }

// TestDialContextEndingAtHandshakeKeepsReconnecting: when the context
// given to Dial ends just as the first connection completes (the dialer
// already succeeded), Dial returns a working Conn — and that Conn must
// still be able to reconnect later. The context bounds the first
// connection only. The precondition is established deterministically
// (the dialer cancels the context inside its first, successful open), and
// a Dial that fails then is a failure of the test, not a reason to skip
// it.
func TestDialContextEndingAtHandshakeKeepsReconnecting(t *testing.T) {
	dialCtx, cancelDial := context.WithCancel(context.Background())
	defer cancelDial()
	d := &ctxHonouringMemDialer{onFirstOpen: cancelDial}
	o := defaultOptions()
	WithReconnectBackoff(time.Millisecond, 5*time.Millisecond).apply(&o)
	c, err := newConn(dialCtx, d, o)
	if dialCtx.Err() == nil || d.opens.Load() != 1 {
		t.Fatalf("precondition not established: context error %v after %d opens", dialCtx.Err(), d.opens.Load())
	}
	if err != nil {
		t.Fatalf("Dial failed although its dialer succeeded before the context ended: %v", err)
	}
	defer c.Close()
	// The agent drops the stream.
	c.sess.Load().t.close()
	waitUntil(t, "a reconnection", nil, func() bool { return c.Stats().Reconnects >= 1 })
	if n := d.opens.Load(); n < 2 {
		t.Fatalf("%d opens after a reconnection", n)
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); err != nil {
		t.Fatal(err)
	}
}

// cancelOnFirstErr is a context that gets cancelled right after its first
// Err call returned nil: the caller's context ends while ListenReverse is
// running (after its up-front check).
type cancelOnFirstErr struct {
	context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancelOnFirstErr) Err() error {
	err := c.Context.Err()
	c.once.Do(c.cancel)
	return err
}

// TestListenReverseContextEndingDuringSetup: the context passed to
// ListenReverse may end while it sets up; the listener then closes itself
// (Close on the AfterFunc goroutine) without racing the setup (nil
// stopCtx, WaitGroup Add after Wait) and without leaking.
func TestListenReverseContextEndingDuringSetup(t *testing.T) {
	for range 20 {
		inner, cancel := context.WithCancel(context.Background())
		ctx := &cancelOnFirstErr{Context: inner, cancel: cancel}
		l, err := ListenReverse(ctx, "unix://"+sockPath(t))
		if err != nil {
			cancel()
			continue
		}
		within(t, 5*time.Second, "Close", func() { l.Close() })
		if _, err := l.Accept(testCtx(t)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Accept after the context ended: %v", err)
		}
		cancel()
	}
}

// TestCloseFromCallback: a user callback (dispatcher goroutine) may close
// its own Conn, e.g. when the agent reports itself unhealthy, directly or
// through Drain (which ends in Close). Neither may wait for the dispatcher
// that is running it.
func TestCloseFromCallback(t *testing.T) {
	for name, end := range map[string]func(*Conn) error{
		"Close": (*Conn).Close,
		"Drain": func(c *Conn) error { return c.Drain(context.Background()) },
	} {
		t.Run(name, func(t *testing.T) {
			ended := make(chan error, 1)
			var c *Conn
			var ready sync.WaitGroup
			ready.Add(1)
			c = uncleanMemConn(t, WithOnHealth(func(h agentwire.HealthStatus) {
				ready.Wait()
				if h.State == agentwire.HealthUnhealthy {
					ended <- end(c)
				}
			}))
			ready.Done()
			c.sess.Load().onHealth(agentwire.HealthStatus{State: agentwire.HealthUnhealthy})
			mustNoErrWithin(t, ended, 3*time.Second, name+" called from a callback")
			mustKind(t, func() error { _, err := c.RequestHeaders(testCtx(t), headersEvent("x")); return err }(), ErrClosed)
		})
	}
}

// uncleanMemConn is memConn without the Close at cleanup (which would
// hang the test binary if the Conn's Close deadlocked).
func uncleanMemConn(t testing.TB, opts ...Option) *Conn {
	t.Helper()
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	c, err := newConn(context.Background(), memDialer{}, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLeaveOnReplacedSessionWakesCapacityWaiters: the in-flight count is
// the Conn's while capacities are per session, so a call ending on a
// session that was already replaced frees room on the current one. A
// caller waiting there for capacity must wake then, not at its deadline.
func TestLeaveOnReplacedSessionWakesCapacityWaiters(t *testing.T) {
	c := memConn(t, WithFlowControl(FlowWait))
	cur := c.sess.Load()
	cur.capacity.Store(1)
	old := &session{}       // the replaced session the earlier call ran on
	old.capacity.Store(-1)  // no capacity limit there
	c.stats.inFlight.Add(1) // that call, still counted
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.RequestHeaders(ctx, headersEvent("waits"))
		done <- err
	}()
	waitUntil(t, "the caller to wait for capacity", nil, func() bool { return cur.aq.nslots.Load() == 1 })
	c.leave(old)
	mustNoErrWithin(t, done, 2*time.Second, "the capacity waiter (woken by a call ending on the replaced session)")
}
