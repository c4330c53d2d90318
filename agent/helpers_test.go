package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

const testTimeout = 10 * time.Second

// funcHandler is a Handler whose methods can be replaced one by one; unset
// methods allow.
type funcHandler struct {
	reqHeaders  func(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error
	reqBody     func(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error
	respHeaders func(context.Context, *agentwire.ResponseHeadersEvent, *agentwire.AgentResponse) error
	respBody    func(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error
	complete    func(context.Context, *agentwire.RequestCompleteEvent, *agentwire.AgentResponse) error
	ws          func(context.Context, *agentwire.WebSocketFrameEvent, *agentwire.AgentResponse) error
	guard       func(context.Context, *agentwire.GuardrailInspectEvent, *agentwire.AgentResponse) error
}

func (f *funcHandler) OnRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	if f.reqHeaders != nil {
		return f.reqHeaders(ctx, ev, r)
	}
	return nil
}

func (f *funcHandler) OnRequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
	if f.reqBody != nil {
		return f.reqBody(ctx, ev, r)
	}
	return nil
}

func (f *funcHandler) OnResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent, r *agentwire.AgentResponse) error {
	if f.respHeaders != nil {
		return f.respHeaders(ctx, ev, r)
	}
	return nil
}

func (f *funcHandler) OnResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
	if f.respBody != nil {
		return f.respBody(ctx, ev, r)
	}
	return nil
}

func (f *funcHandler) OnRequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent, r *agentwire.AgentResponse) error {
	if f.complete != nil {
		return f.complete(ctx, ev, r)
	}
	return nil
}

func (f *funcHandler) OnWebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent, r *agentwire.AgentResponse) error {
	if f.ws != nil {
		return f.ws(ctx, ev, r)
	}
	return nil
}

func (f *funcHandler) OnGuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent, r *agentwire.AgentResponse) error {
	if f.guard != nil {
		return f.guard(ctx, ev, r)
	}
	return nil
}

// hookHandler adds every optional hook to a funcHandler, recording calls.
type hookHandler struct {
	funcHandler
	mu         sync.Mutex
	configs    []string // "version=config"
	cancels    []agentwire.Cancel
	drains     []DrainNotice
	shutdowns  []ShutdownNotice
	handshakes []agentwire.HandshakeRequest
	rejectHS   string
	rejectCfg  string
	calls      chan string
}

func newHookHandler() *hookHandler { return &hookHandler{calls: make(chan string, 64)} }

func (h *hookHandler) note(s string) {
	select {
	case h.calls <- s:
	default:
	}
}

func (h *hookHandler) OnHandshake(_ context.Context, req *agentwire.HandshakeRequest, resp *agentwire.HandshakeResponse) error {
	h.mu.Lock()
	r := *req
	r.SupportedVersions = append([]uint32(nil), req.SupportedVersions...)
	r.Config = append(json.RawMessage(nil), req.Config...)
	h.handshakes = append(h.handshakes, r)
	reject := h.rejectHS
	h.mu.Unlock()
	h.note("handshake")
	if reject != "" {
		return errors.New(reject)
	}
	return nil
}

func (h *hookHandler) OnConfigure(_ context.Context, cfg json.RawMessage, version string) error {
	h.mu.Lock()
	h.configs = append(h.configs, version+"="+string(cfg))
	reject := h.rejectCfg
	h.mu.Unlock()
	h.note("configure")
	if reject != "" && string(cfg) == reject {
		return errors.New("bad config")
	}
	return nil
}

func (h *hookHandler) OnCancel(_ context.Context, c agentwire.Cancel) {
	h.mu.Lock()
	h.cancels = append(h.cancels, c)
	h.mu.Unlock()
	h.note("cancel")
}

func (h *hookHandler) OnDrain(_ context.Context, n DrainNotice) {
	h.mu.Lock()
	h.drains = append(h.drains, n)
	h.mu.Unlock()
	h.note("drain")
}

func (h *hookHandler) OnShutdown(_ context.Context, n ShutdownNotice) {
	h.mu.Lock()
	h.shutdowns = append(h.shutdowns, n)
	h.mu.Unlock()
	h.note("shutdown")
}

func (h *hookHandler) waitCall(t *testing.T, want string) {
	t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	for {
		select {
		case got := <-h.calls:
			if got == want {
				return
			}
		case <-timer.C:
			t.Fatalf("hook %q not called", want)
		}
	}
}

// env is a server on a loopback listener plus a client connection.
type env struct {
	t      *testing.T
	srv    *Server
	cc     *grpc.ClientConn
	client pb.AgentServiceV2Client
	served chan error
	stop   func() // stops a caller-owned grpc.Server
}

func startEnv(t *testing.T, h Handler, network string, opts ...Option) *env {
	t.Helper()
	srv := NewServer(h, opts...)
	var ln net.Listener
	var target string
	var err error
	switch network {
	case "unix":
		dir, derr := os.MkdirTemp("", "aw")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "a.sock")
		ln, err = net.Listen("unix", path)
		target = "unix://" + path
	default:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			target = "passthrough:///" + ln.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, served: make(chan error, 1)}
	if network == "tcp-default-codec" {
		// A caller-owned grpc.Server with grpc-go's default codec.
		g := grpc.NewServer()
		srv.RegisterGRPC(g)
		go func() {
			err := g.Serve(ln)
			if err == nil {
				err = ErrServerClosed
			}
			e.served <- err
		}()
		e.stop = g.Stop
	} else {
		go func() { e.served <- srv.ServeGRPC(ln) }()
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.cc = cc
	e.client = pb.NewAgentServiceV2Client(cc)
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	e.cc.Close()
	e.srv.Close()
	if e.stop != nil {
		e.stop()
	}
	select {
	case err := <-e.served:
		if !errors.Is(err, ErrServerClosed) {
			e.t.Errorf("ServeGRPC returned %v, want ErrServerClosed", err)
		}
	case <-time.After(testTimeout):
		e.t.Error("ServeGRPC did not return")
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// pstream is a client-side ProcessStream.
type pstream struct {
	t      *testing.T
	s      pb.AgentServiceV2_ProcessStreamClient
	cancel context.CancelFunc
	header metadata.MD
}

// openRaw opens a ProcessStream and waits for the response headers before
// sending anything, as the Rust (tonic) client does.
func (e *env) openRaw() *pstream {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	s, err := e.client.ProcessStream(ctx)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	md, err := s.Header()
	if err != nil {
		cancel()
		e.t.Fatalf("waiting for response headers before the first message: %v", err)
	}
	p := &pstream{t: e.t, s: s, cancel: cancel, header: md}
	e.t.Cleanup(cancel)
	return p
}

func handshakeMsg(versions ...uint32) *pb.ProxyToAgent {
	return &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Handshake{Handshake: &pb.HandshakeRequest{
		SupportedVersions: versions, ProxyId: "zentinel-proxy", ProxyVersion: "0.6.20", ConfigJson: "{}",
	}}}
}

// open opens a ProcessStream and completes a successful handshake.
func (e *env) open() *pstream {
	e.t.Helper()
	p := e.openRaw()
	p.send(handshakeMsg(2, 1))
	m := p.recv()
	hs := m.GetHandshake()
	if hs == nil || !hs.Success || hs.ProtocolVersion != 2 {
		e.t.Fatalf("handshake answer = %v", m)
	}
	return p
}

func (p *pstream) send(m *pb.ProxyToAgent) {
	p.t.Helper()
	if err := p.s.Send(m); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func (p *pstream) recv() *pb.AgentToProxy {
	p.t.Helper()
	m, err := p.s.Recv()
	if err != nil {
		p.t.Fatalf("recv: %v", err)
	}
	return m
}

// recvResponse reads messages until a response arrives (skipping pushes).
func (p *pstream) recvResponse() *pb.AgentResponse {
	p.t.Helper()
	for {
		m := p.recv()
		if r := m.GetResponse(); r != nil {
			return r
		}
	}
}

func reqHeaders(cid, uri string) *pb.ProxyToAgent {
	return &pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestHeaders{RequestHeaders: &pb.RequestHeadersEvent{
		Metadata: &pb.RequestMetadata{CorrelationId: cid, RequestId: "r-" + cid, ClientIp: "10.0.0.1", ClientPort: 4242, Protocol: "HTTP/1.1", TimestampMs: 1781256463123},
		Method:   "GET",
		Uri:      uri,
		Headers: []*pb.Header{
			{Name: "host", Value: "example.com"},
			{Name: "accept", Value: "a"},
			{Name: "host", Value: "second"},
		},
	}}}
}

func ping(seq uint64) *pb.ProxyToAgent {
	return &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Ping{Ping: &pb.Ping{Sequence: seq, TimestampMs: 1000 + seq}}}
}

func cancelMsg(cid string, reason int32) *pb.ProxyToAgent {
	return &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Cancel{Cancel: &pb.CancelRequest{CorrelationId: cid, Reason: reason, TimestampMs: 7}}}
}

func hasSetOp(ops []*pb.HeaderOp, name, value string) bool {
	for _, op := range ops {
		if s := op.GetSet(); s != nil && s.Name == name && s.Value == value {
			return true
		}
	}
	return false
}

// recvTimeout receives from ch or fails after the test timeout.
func recvTimeout[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func listenTCP() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// startHeldRequest starts a gRPC server whose request-headers handler holds
// every event until release is closed, sends one event with correlation id
// cid and waits until its handler runs.
func startHeldRequest(t *testing.T, cid string) (e *env, p *pstream, release chan struct{}) {
	t.Helper()
	started := make(chan struct{}, 1)
	release = make(chan struct{})
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		started <- struct{}{}
		<-release
		return nil
	}}
	e = startEnv(t, h, "tcp")
	p = e.open()
	p.send(reqHeaders(cid, "/"))
	recvTimeout(t, started, "handler start")
	return e, p, release
}
