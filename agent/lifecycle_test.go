package agent

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// Close documents that it waits for handler calls still running. A unary
// ProcessEvent handler was not counted in the server's wait group, so
// Close returned while it still ran.
func TestCloseWaitsForUnaryHandler(t *testing.T) {
	started := make(chan struct{}, 1)
	var finished atomic.Bool
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		started <- struct{}{}
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // cleanup after cancellation
		finished.Store(true)
		return nil
	}}
	e := startEnv(t, h, "tcp")
	errc := make(chan error, 1)
	go func() {
		_, err := e.client.ProcessEvent(testCtx(t), reqHeaders("u1", "/"))
		errc <- err
	}()
	recvTimeout(t, started, "handler start")
	e.srv.Close()
	if !finished.Load() {
		t.Error("Close returned while a ProcessEvent handler was still running")
	}
	recvTimeout(t, errc, "ProcessEvent return")
	waitFor(t, "handler end", finished.Load)
}

// Two Drain calls waiting at once: the idle signal was a single token, so
// only one of them saw the last event end; the other waited until its
// context expired although nothing was in flight any more.
func TestConcurrentDrainsBothReturn(t *testing.T) {
	e, p, release := startHeldRequest(t, "d1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- e.srv.Drain(ctx) }()
	go func() { done <- e.srv.Drain(ctx) }()
	time.Sleep(200 * time.Millisecond) // both are waiting
	close(release)
	p.recvResponse()
	for i := range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Drain %d = %v, want nil", i, err)
			}
		case <-time.After(time.Second):
			t.Fatalf("Drain %d still waiting 1 s after the last event was answered", i)
		}
	}
}

// gateConn holds the first SetDeadline call (the Unix-socket handshake
// arming its deadline) until a read deadline in the past was set (the
// connection's Shutdown hook, watch): the interleaving of a connection accepted
// just as Shutdown starts.
type gateConn struct {
	net.Conn
	held atomic.Bool
	gate chan struct{}
	once sync.Once
}

func (c *gateConn) SetDeadline(t time.Time) error {
	if c.held.CompareAndSwap(false, true) {
		<-c.gate
	}
	return c.Conn.SetDeadline(t)
}

func (c *gateConn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	if t.Before(time.Unix(2, 0)) {
		c.once.Do(func() { close(c.gate) })
	}
	return err
}

// Shutdown stops a Unix-socket handshake in progress by moving the read
// deadline into the past; the handshake then armed its own deadline over
// it, so a connection accepted just as Shutdown started kept Shutdown
// waiting for the whole handshake timeout when the proxy stayed silent.
func TestShutdownDuringHandshakeSetup(t *testing.T) {
	srv := NewServer(&funcHandler{}, WithHandshakeTimeout(10*time.Second))
	agentSide, proxySide := net.Pipe()
	defer proxySide.Close()
	go io.Copy(io.Discard, proxySide) // a silent proxy that reads (net.Pipe does not buffer)
	gc := &gateConn{Conn: agentSide, gate: make(chan struct{})}
	if !srv.track(1) {
		t.Fatal("server closed")
	}
	go func() {
		defer srv.wg.Done()
		srv.serveConn(context.Background(), gc, nil, nil, false)
	}()
	waitFor(t, "handshake arming its deadline", gc.held.Load)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := srv.Shutdown(ctx)
	if err != nil {
		t.Errorf("Shutdown = %v after %v, want nil (a silent proxy in the handshake held it up)", err, time.Since(start).Round(time.Millisecond))
	}
	srv.Close()
}

// capsHandshaker rewrites the first announced event in place for one proxy.
type capsHandshaker struct {
	funcHandler
}

func (capsHandshaker) OnHandshake(_ context.Context, req *agentwire.HandshakeRequest, resp *agentwire.HandshakeResponse) error {
	if req.ProxyID == "narrow" {
		resp.Capabilities.SupportedEvents[0] = agentwire.EventGuardrailInspect
	}
	return nil
}

// The handshake answer was pre-filled with the server's own
// SupportedEvents slice: a Handshaker editing it in place changed the
// capabilities of the whole server (every later connection, Capabilities,
// and a data race between concurrent handshakes), while the gRPC answer of
// its own connection did not show the change.
func TestHandshakerEditsDoNotLeak(t *testing.T) {
	e := startEnv(t, &capsHandshaker{}, "tcp")
	want := e.srv.Capabilities().SupportedEvents
	if want[0] == agentwire.EventGuardrailInspect {
		t.Fatal("test assumes the first event is not guardrail")
	}
	hs := func(proxy string) []int32 {
		p := e.openRaw()
		m := handshakeMsg(2)
		m.GetHandshake().ProxyId = proxy
		p.send(m)
		r := p.recv().GetHandshake()
		if !r.GetSuccess() {
			t.Fatalf("handshake of %s failed: %v", proxy, r)
		}
		return r.GetCapabilities().GetSupportedEvents()
	}
	if got := hs("narrow"); got[0] != agentwire.EventGuardrailInspect {
		t.Errorf("the hook's own connection announces %v, want its edit", got)
	}
	if got := hs("other"); got[0] != want[0] {
		t.Errorf("another connection announces %v, want %v", got, want)
	}
	if got := e.srv.Capabilities().SupportedEvents; got[0] != want[0] {
		t.Errorf("Capabilities() = %v after the hook, want %v", got, want)
	}
}

// A second handshake on an established stream is answered too (its reply
// goes through the blocking enqueue, not the first handshake's TryEnqueue,
// which would drop it if the queue were full).
func TestRepeatedHandshakeIsAnswered(t *testing.T) {
	e := startEnv(t, newHookHandler(), "tcp")
	p := e.openRaw()
	for i := 0; i < 2; i++ {
		p.send(handshakeMsg(2))
		if !p.recv().GetHandshake().GetSuccess() {
			t.Fatalf("handshake %d not answered with success", i+1)
		}
	}
}
