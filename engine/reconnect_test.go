package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// cutter is a TCP forwarder in front of an agent: kill cuts every
// connection at once (what the proxy sees when the agent process dies), and
// while down it refuses new connections.
type cutter struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	conns   []net.Conn
	down    bool
	wg      sync.WaitGroup
}

func newCutter(t *testing.T, backend string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, backend: backend}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() {
		ln.Close()
		c.kill()
		c.wg.Wait()
	})
	return c
}

func (c *cutter) addr() string { return c.ln.Addr().String() }

func (c *cutter) accept() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		down := c.down
		c.mu.Unlock()
		if down {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", c.backend)
		if err != nil {
			in.Close()
			continue
		}
		c.mu.Lock()
		c.conns = append(c.conns, in, out)
		c.mu.Unlock()
		c.wg.Add(2)
		go func() { defer c.wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
		go func() { defer c.wg.Done(); _, _ = io.Copy(in, out); in.Close() }()
	}
}

// kill closes every forwarded connection and refuses new ones until up.
func (c *cutter) kill() {
	c.mu.Lock()
	c.down = true
	for _, cn := range c.conns {
		cn.Close()
	}
	c.conns = nil
	c.mu.Unlock()
}

func (c *cutter) up() {
	c.mu.Lock()
	c.down = false
	c.mu.Unlock()
}

func TestAgentKilledMidFlightFailsPendingAtOnce(t *testing.T) {
	srv := startAgent(t, blockingAgent())
	cut := newCutter(t, srv.addr)
	c := dial(t, cut.addr(), WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))
	const n = 50
	type result struct {
		err error
		at  time.Time
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			_, err := c.RequestHeaders(testCtx(t), headersEvent("pending-"+time.Duration(i).String()))
			results <- result{err, time.Now()}
		}()
	}
	waitUntil(t, "all requests sent", nil, func() bool { return c.Stats().Sent >= n })
	killed := time.Now()
	cut.kill()
	var last time.Time
	for range n {
		r := <-results
		mustKind(t, r.err, ErrConnectionLost)
		if r.at.After(last) {
			last = r.at
		}
	}
	if d := last.Sub(killed); d > 50*time.Millisecond {
		t.Fatalf("pending requests failed %v after the agent died, want <= 50ms", d)
	}
	t.Logf("all %d pending requests failed %v after the kill", n, last.Sub(killed))
	if st := c.Stats(); st.ConnectionLost != n || st.InFlight != 0 {
		t.Fatalf("stats: %+v", st)
	}

	// While the agent is away, calls fail fast.
	waitUntil(t, "disconnect noticed", nil, func() bool { return !c.Health().Connected })
	_, err := c.RequestHeaders(testCtx(t), headersEvent("meanwhile"))
	mustKind(t, err, ErrNotConnected)

	// The agent comes back: the Conn recovers by itself.
	cut.up()
	waitUntil(t, "reconnect", nil, func() bool { return c.Health().Connected })
	if _, err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Reconnects < 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestAgentRestartOnSameAddress(t *testing.T) {
	a := newTestAgent()
	srv := startAgent(t, a)
	addr := srv.addr
	c := dial(t, addr, WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond),
		WithFailFastWhileReconnecting(false), WithAgentConfig([]byte(`{"gen":1}`)))
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("before")); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	waitUntil(t, "disconnect noticed", nil, func() bool { return !c.Health().Connected })

	// A call made while reconnecting waits (fail-fast is off) and succeeds
	// once the agent is back.
	done := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("during"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("call returned while the agent was down: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	var ln net.Listener
	var err error
	waitUntil(t, "port free again", nil, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	a2 := newTestAgent()
	serveAgent(t, ln, a2)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The new agent got the configuration again.
	a2.waitFor(t, "configuration after reconnect", func() bool { return len(a2.configs) == 1 && a2.configs[0] == ` {"gen":1}` })
	// A call with a short deadline while down ends at its deadline.
	if st := c.Stats(); st.Reconnects != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestWaitWhileReconnectingHonoursDeadline(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	cut := newCutter(t, srv.addr)
	c := dial(t, cut.addr(), WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond), WithFailFastWhileReconnecting(false))
	cut.kill()
	waitUntil(t, "disconnect noticed", nil, func() bool { return !c.Health().Connected })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Millisecond)
	defer cancel()
	_, err := c.RequestHeaders(ctx, headersEvent("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v", err)
	}
	// Close while waiting.
	errc := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(context.Background(), headersEvent("y"))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	_ = c.Close()
	mustKind(t, <-errc, ErrClosed)
}

func TestCloseDuringReconnectLeavesNoGoroutine(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	cut := newCutter(t, srv.addr)
	c := dial(t, cut.addr(), WithReconnectBackoff(time.Millisecond, 2*time.Millisecond), WithConnectTimeout(50*time.Millisecond))
	cut.kill()
	waitUntil(t, "reconnect attempts", nil, func() bool { return c.Stats().ReconnectFailures >= 3 })
	_ = c.Close()
	// goleak in TestMain checks that nothing is left running.
	_, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: "x"})
	mustKind(t, err, ErrClosed)
}
