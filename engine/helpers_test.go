package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

func TestMain(m *testing.M) {
	if os.Getenv(childAgentEnv) != "" {
		runChildAgent() // benchmark agent in a child process (bench_test.go)
		return
	}
	if os.Getenv(childUDSAgentEnv) != "" {
		runChildUDSAgent() // Unix-socket benchmark agent (uds_bench_test.go)
		return
	}
	goleak.VerifyTestMain(m)
}

const testTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testAgent is a handler for the real agent server (package agent) whose
// methods can be replaced; unset methods allow. It implements every hook
// and records what the hooks saw.
type testAgent struct {
	reqHeaders  func(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error
	reqBody     func(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error
	respHeaders func(context.Context, *agentwire.ResponseHeadersEvent, *agentwire.AgentResponse) error
	respBody    func(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error
	complete    func(context.Context, *agentwire.RequestCompleteEvent, *agentwire.AgentResponse) error
	ws          func(context.Context, *agentwire.WebSocketFrameEvent, *agentwire.AgentResponse) error
	guard       func(context.Context, *agentwire.GuardrailInspectEvent, *agentwire.AgentResponse) error

	mu         sync.Mutex
	configs    []string // OnConfigure: version + " " + config
	cancels    []agentwire.Cancel
	drains     []agent.DrainNotice
	shutdowns  []agent.ShutdownNotice
	handshakes []agentwire.HandshakeRequest
	changed    chan struct{} // signalled (non-blocking) on every hook call
}

func newTestAgent() *testAgent { return &testAgent{changed: make(chan struct{}, 1)} }

// holdingAgent is a test agent whose request-headers handler waits until
// release is closed (or its request is canceled) and then allows.
func holdingAgent(release <-chan struct{}) *testAgent {
	a := newTestAgent()
	a.reqHeaders = func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	return a
}

func (a *testAgent) poke() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *testAgent) OnRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	if a.reqHeaders != nil {
		return a.reqHeaders(ctx, ev, r)
	}
	return nil
}

func (a *testAgent) OnRequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
	if a.reqBody != nil {
		return a.reqBody(ctx, ev, r)
	}
	return nil
}

func (a *testAgent) OnResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent, r *agentwire.AgentResponse) error {
	if a.respHeaders != nil {
		return a.respHeaders(ctx, ev, r)
	}
	return nil
}

func (a *testAgent) OnResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
	if a.respBody != nil {
		return a.respBody(ctx, ev, r)
	}
	return nil
}

func (a *testAgent) OnRequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent, r *agentwire.AgentResponse) error {
	if a.complete != nil {
		return a.complete(ctx, ev, r)
	}
	return nil
}

func (a *testAgent) OnWebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent, r *agentwire.AgentResponse) error {
	if a.ws != nil {
		return a.ws(ctx, ev, r)
	}
	return nil
}

func (a *testAgent) OnGuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent, r *agentwire.AgentResponse) error {
	if a.guard != nil {
		return a.guard(ctx, ev, r)
	}
	return nil
}

func (a *testAgent) OnHandshake(_ context.Context, req *agentwire.HandshakeRequest, _ *agentwire.HandshakeResponse) error {
	a.mu.Lock()
	cp := *req
	cp.Config = append(json.RawMessage(nil), req.Config...)
	a.handshakes = append(a.handshakes, cp)
	a.mu.Unlock()
	a.poke()
	return nil
}

func (a *testAgent) OnConfigure(_ context.Context, cfg json.RawMessage, version string) error {
	a.mu.Lock()
	a.configs = append(a.configs, version+" "+string(cfg))
	a.mu.Unlock()
	a.poke()
	return nil
}

func (a *testAgent) OnCancel(_ context.Context, c agentwire.Cancel) {
	a.mu.Lock()
	a.cancels = append(a.cancels, c)
	a.mu.Unlock()
	a.poke()
}

func (a *testAgent) OnDrain(_ context.Context, n agent.DrainNotice) {
	a.mu.Lock()
	a.drains = append(a.drains, n)
	a.mu.Unlock()
	a.poke()
}

func (a *testAgent) OnShutdown(_ context.Context, n agent.ShutdownNotice) {
	a.mu.Lock()
	a.shutdowns = append(a.shutdowns, n)
	a.mu.Unlock()
	a.poke()
}

// waitFor polls cond (woken by hook calls, and every 5 ms) until it holds or
// the test times out.
func (a *testAgent) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, what, a.changed, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return cond()
	})
}

func waitUntil(t testing.TB, what string, wake <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-wake:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// agentServer runs an agent.Server on a loopback listener.
type agentServer struct {
	srv  *agent.Server
	addr string
	done chan struct{}
}

func startAgent(t testing.TB, h agent.Handler, opts ...agent.Option) *agentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveAgent(t, ln, h, opts...)
}

func serveAgent(t testing.TB, ln net.Listener, h agent.Handler, opts ...agent.Option) *agentServer {
	t.Helper()
	a := &agentServer{srv: agent.NewServer(h, opts...), addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		_ = a.srv.ServeGRPC(ln)
	}()
	t.Cleanup(a.stop)
	return a
}

// stop closes the server at once and waits for it (idempotent).
func (a *agentServer) stop() {
	_ = a.srv.Close()
	<-a.done
}

// dial connects a Conn to the agent and closes it at cleanup.
func dial(t testing.TB, addr string, opts ...Option) *Conn {
	t.Helper()
	c, err := Dial(testCtx(t), "grpc://"+addr, append([]Option{WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func headersEvent(cid string) *agentwire.RequestHeadersEvent {
	return &agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{CorrelationID: cid, RequestID: "r-" + cid, ClientIP: "127.0.0.1", ClientPort: 40000, Protocol: "HTTP/1.1"},
		Method:   "GET",
		URI:      "/" + cid,
		Headers:  agentwire.Headers{{Name: "host", Values: []string{"example.com"}}},
	}
}

func mustKind(t testing.TB, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error %v, want kind %v", err, kind)
	}
}

// mustNoErrWithin waits up to d for an outcome on ch and fails the test
// when it is an error or when none arrives (what names the awaited call).
func mustNoErrWithin(t testing.TB, ch <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}
