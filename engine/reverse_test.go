package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// listenReverse starts a listener on a fresh socket path and closes it at
// cleanup.
func listenReverse(t testing.TB, opts ...ReverseOption) (*ReverseListener, string) {
	t.Helper()
	path := sockPath(t)
	l, err := ListenReverse(context.Background(), "unix://"+path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

// register dials the listener like an agent, sends req and returns the
// answer (nil when the listener closed the socket without one) and the
// socket.
func register(t testing.TB, network, addr string, req *agentwire.RegistrationRequest) (*agentwire.RegistrationResponse, net.Conn) {
	t.Helper()
	nc, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if req != nil {
		b, _ := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendRegistrationRequestJSON(nil, req))
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	return readAnswer(t, nc), nc
}

func readAnswer(t testing.TB, nc net.Conn) *agentwire.RegistrationResponse {
	t.Helper()
	rd := frame.NewReader(nc, 0)
	defer rd.Release()
	typ, p, err := rd.ReadFrame()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		t.Fatalf("read registration answer: %v", err)
	}
	if typ != frame.TypeHandshakeResponse {
		t.Fatalf("answer frame %v", typ)
	}
	var r agentwire.RegistrationResponse
	if err := payload.DecodeRegistrationResponseJSON(p, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func regRequest(id string, token *string) *agentwire.RegistrationRequest {
	r := &agentwire.RegistrationRequest{ProtocolVersion: 2, AgentID: id, Capabilities: fullCaps(id)}
	if token != nil {
		r.AuthToken = agentwire.Some(*token)
	}
	return r
}

func ptr(s string) *string { return &s }

// closedByPeer reports whether the listener closed nc (EOF on read).
func closedByPeer(nc net.Conn) bool {
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	_, err := nc.Read(b[:])
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
}

var connIDPattern = regexp.MustCompile(`^([a-z0-9-]+)-([0-9a-f]+)$`)

// TestReverseRegistrationValidation: every refusal is answered with its
// reason and the socket closed; the accepted one becomes a Conn.
func TestReverseRegistrationValidation(t *testing.T) {
	l, path := listenReverse(t,
		WithAuthToken("s3cret"),
		WithAllowedAgents("waf", "bot"),
		WithConnOptions(WithProxyID("px-1"), WithProxyVersion("1.2.3")))
	cases := []struct {
		name string
		req  *agentwire.RegistrationRequest
		want string
	}{
		{"wrong token", regRequest("waf", ptr("guess")), "authentication failed"},
		{"empty token", regRequest("waf", ptr("")), "authentication failed"},
		{"token prefix", regRequest("waf", ptr("s3cre")), "authentication failed"},
		{"no token", regRequest("waf", nil), "no token provided"},
		{"unknown agent", regRequest("rogue", ptr("s3cret")), `agent "rogue" is not in the allowed list`},
		// Without a valid token the allow-list is not revealed.
		{"unknown agent, wrong token", regRequest("rogue", ptr("guess")), "authentication failed"},
		{"empty agent id", regRequest("", ptr("s3cret")), "agent id cannot be empty"},
		{"version 1", func() *agentwire.RegistrationRequest {
			r := regRequest("waf", ptr("s3cret"))
			r.ProtocolVersion = 1
			return r
		}(), "expected 2, got 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, nc := register(t, "unix", path, tc.req)
			if r == nil || r.Success || !strings.Contains(r.Error.Value, tc.want) || r.ConnectionID != "" || r.ProxyID != "px-1" || r.ProxyVersion != "1.2.3" {
				t.Fatalf("answer %+v, want failure mentioning %q", r, tc.want)
			}
			if !closedByPeer(nc) {
				t.Fatal("socket left open after a refusal")
			}
		})
	}
	// Another frame type and undecodable JSON are answered too.
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b, _ := frame.AppendFrame(nil, frame.TypeRequestHeaders, []byte(`{}`))
	nc.Write(b)
	if r := readAnswer(t, nc); r == nil || r.Success || !strings.Contains(r.Error.Value, "expected a registration request") {
		t.Fatalf("answer to a non-registration frame: %+v", r)
	}
	nc2, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	b, _ = frame.AppendFrame(nil, frame.TypeHandshakeRequest, []byte(`{"protocol_version":2,"agent_id":"waf"}`))
	nc2.Write(b)
	if r := readAnswer(t, nc2); r == nil || r.Success || !strings.Contains(r.Error.Value, "invalid registration request") {
		t.Fatalf("answer to a registration without capabilities: %+v", r)
	}

	// The right token.
	r, _ := register(t, "unix", path, regRequest("waf", ptr("s3cret")))
	if r == nil || !r.Success || r.Error.Valid || r.ProxyID != "px-1" {
		t.Fatalf("answer %+v", r)
	}
	m := connIDPattern.FindStringSubmatch(r.ConnectionID)
	if m == nil || m[1] != "waf" {
		t.Fatalf("connection id %q", r.ConnectionID)
	}
	c, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Capabilities(); got.AgentID != "waf" || got.ProtocolVersion != 2 || !got.Features.Cancellation {
		t.Fatalf("capabilities %+v", got)
	}
	if conns := l.Conns("waf"); len(conns) != 1 || conns[0] != c {
		t.Fatalf("Conns(waf) = %v", conns)
	}
	if st := l.Stats(); st.Registered != 1 || st.Rejected != 10 || st.Active != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReverseTokenVerifier: per-agent secrets through the verifier hook.
func TestReverseTokenVerifier(t *testing.T) {
	secrets := map[string]string{"a": "ta", "b": "tb"}
	_, path := listenReverse(t, WithTokenVerifier(func(id, tok string) bool { return secrets[id] == tok }))
	if r, _ := register(t, "unix", path, regRequest("a", ptr("tb"))); r == nil || r.Success {
		t.Fatalf("a with b's token: %+v", r)
	}
	if r, _ := register(t, "unix", path, regRequest("b", ptr("tb"))); r == nil || !r.Success {
		t.Fatalf("b with its token: %+v", r)
	}
}

// TestReverseRegistrationTimeout: a peer that never (or only partly) sends
// its registration is dropped without an answer; an oversized frame too.
func TestReverseRegistrationTimeout(t *testing.T) {
	l, path := listenReverse(t, WithRegistrationTimeout(100*time.Millisecond))
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"silent", nil},
		{"half frame", []byte{0, 0, 1, 0, 0x01, '{'}},
		{"oversized", []byte{0, 2, 0, 0, 0x01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.Write(tc.bytes)
			start := time.Now()
			if r := readAnswer(t, nc); r != nil {
				t.Fatalf("answered %+v", r)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("dropped only after %v", d)
			}
		})
	}
	if st := l.Stats(); st.Abandoned != 3 || st.Registered != 0 || st.Rejected != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReverseConnectionLimit: the connection over the limit is refused
// with a reason (before any success); a slot frees when a Conn closes.
func TestReverseConnectionLimit(t *testing.T) {
	l, path := listenReverse(t, WithMaxConnectionsPerAgent(2))
	var socks []net.Conn
	for i := range 2 {
		r, nc := register(t, "unix", path, regRequest("waf", nil))
		if r == nil || !r.Success {
			t.Fatalf("registration %d: %+v", i, r)
		}
		socks = append(socks, nc)
	}
	r, nc := register(t, "unix", path, regRequest("waf", nil))
	if r == nil || r.Success || !strings.Contains(r.Error.Value, "already has 2 connections (limit 2)") {
		t.Fatalf("third registration: %+v", r)
	}
	if !closedByPeer(nc) {
		t.Fatal("refused socket left open")
	}
	// Another agent id has its own limit.
	if r, _ := register(t, "unix", path, regRequest("bot", nil)); r == nil || !r.Success {
		t.Fatalf("other agent: %+v", r)
	}
	// One agent socket closes: its Conn closes itself and frees the slot.
	// (A success answer is sent once the slot is reserved; the Conn is
	// listed a moment later.)
	waitUntil(t, "admitted", nil, func() bool { return l.Stats().Active == 3 })
	socks[0].Close()
	waitUntil(t, "slot freed", nil, func() bool { return len(l.Conns("waf")) == 1 })
	if r, _ := register(t, "unix", path, regRequest("waf", nil)); r == nil || !r.Success {
		t.Fatalf("after a slot freed: %+v", r)
	}
	// Distinct connection ids even within one millisecond.
	ids := map[string]bool{}
	var mu sync.Mutex
	l2, path2 := listenReverse(t, WithMaxConnectionsPerAgent(50))
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _ := register(t, "unix", path2, regRequest("many", nil))
			mu.Lock()
			defer mu.Unlock()
			if r == nil || !r.Success || ids[r.ConnectionID] {
				t.Errorf("registration %+v (duplicate id?)", r)
				return
			}
			ids[r.ConnectionID] = true
		}()
	}
	wg.Wait()
	waitUntil(t, "all admitted", nil, func() bool { return l2.Stats().Registered == 20 })
}

// reverseAgent runs agent.Server.ServeReverse against a listener.
func serveReverse(t testing.TB, h agent.Handler, endpoint string, opts ...agent.ReverseOption) (*agent.Server, context.CancelFunc, chan error) {
	t.Helper()
	srv := agent.NewServer(h, agent.WithAgentID("rev-agent"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeReverse(ctx, endpoint, opts...) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return srv, cancel, done
}

// TestReverseWithAgentServer: the real agent dials in, registers with its
// token, and serves every event kind over the admitted connection; its
// pushes reach the Conn; when it dies pending calls fail at once and it
// comes back as a new Conn.
func TestReverseWithAgentServer(t *testing.T) {
	health := make(chan agentwire.HealthStatus, 4)
	l, path := listenReverse(t, WithAuthToken("tok"),
		WithConnOptions(WithOnHealth(func(h agentwire.HealthStatus) { health <- h }), WithAgentConfig([]byte(`{"rules":"strict"}`))))
	a := newTestAgent()
	block := make(chan struct{})
	a.reqHeaders = func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		if ev.URI == "/hang" {
			<-block // never answers while the agent is alive
			return nil
		}
		r.Decision = agentwire.Block(401)
		r.Audit.Tags = []string{ev.URI}
		return nil
	}
	srv, stop, _ := serveReverse(t, a, "unix://"+path, agent.WithAuthToken("tok"), agent.WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))

	c, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	r, err := c.RequestHeaders(ctx, headersEvent("r1"))
	if err != nil || r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 401 || r.Audit.Tags[0] != "/r1" {
		t.Fatalf("reply %+v %v", r, err)
	}
	if _, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "r1", Data: []byte{0, 0xff}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: "r1", Status: 200}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResponseBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "r1", Data: []byte("x"), IsLast: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestComplete(ctx, &agentwire.RequestCompleteEvent{CorrelationID: "r1", Status: 200}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WebSocketFrame(ctx, &agentwire.WebSocketFrameEvent{CorrelationID: "r1", Opcode: "text", Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GuardrailInspect(ctx, &agentwire.GuardrailInspectEvent{CorrelationID: "r1", InspectionType: agentwire.InspectionPromptInjection, Content: "hi"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// The agent configuration went out as a Configure after registration.
	a.waitFor(t, "configure", func() bool { return len(a.configs) == 1 })
	// Agent pushes reach a reverse Conn (the reference's reader drops them).
	srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: 2})
	if h := <-health; h.State != agentwire.HealthDegraded {
		t.Fatalf("health %+v", h)
	}
	if st := c.Stats(); st.Orphans != 0 || st.ProtocolErrors != 0 {
		t.Fatalf("stats %+v", st)
	}

	// The agent dies with a request in flight: it fails at once.
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("hang"))
		errs <- err
	}()
	waitUntil(t, "request in flight", nil, func() bool { return c.Stats().InFlight == 1 })
	stop() // the agent's reverse connection ends at once
	start := time.Now()
	mustKind(t, <-errs, ErrConnectionLost)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("pending request failed only after %v", d)
	}
	waitUntil(t, "Conn closed and forgotten", nil, func() bool { return len(l.Conns("rev-agent")) == 0 })
	_, err = c.RequestHeaders(testCtx(t), headersEvent("after"))
	mustKind(t, err, ErrClosed)

	// A new agent process dials again: a new Conn.
	_, _, _ = serveReverse(t, newTestAgent(), "unix://"+path, agent.WithAuthToken("tok"))
	c2, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.RequestHeaders(testCtx(t), headersEvent("again")); err != nil {
		t.Fatal(err)
	}
	close(block)
}

// TestReverseRejectedAgentServer: the agent server's reverse dialer sees
// the refusal (wrong token) as a RegistrationRejectedError.
func TestReverseRejectedAgentServer(t *testing.T) {
	_, path := listenReverse(t, WithAuthToken("tok"))
	srv := agent.NewServer(newTestAgent())
	defer srv.Close()
	err := srv.ServeReverse(testCtx(t), "unix://"+path, agent.WithAuthToken("nope"), agent.WithStopOnRejection())
	var rej *agent.RegistrationRejectedError
	if !errors.As(err, &rej) || !strings.Contains(rej.Message, "authentication failed") {
		t.Fatalf("ServeReverse: %v", err)
	}
}

// TestReverseOnAgentCallback: with WithOnAgent the Conn goes to the
// callback.
func TestReverseOnAgentCallback(t *testing.T) {
	got := make(chan *Conn, 1)
	_, path := listenReverse(t, WithOnAgent(func(id string, c *Conn) {
		if id == "cb" {
			got <- c
		}
	}))
	if r, _ := register(t, "unix", path, regRequest("cb", nil)); r == nil || !r.Success {
		t.Fatalf("answer %+v", r)
	}
	select {
	case c := <-got:
		if c.Capabilities().AgentID != "cb" {
			t.Fatalf("caps %+v", c.Capabilities())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("callback not called")
	}
}

// TestReverseRawAgentTraffic: over an admitted raw socket, events are JSON
// frames and replies are routed; frames pipelined right behind the
// registration are not lost.
func TestReverseRawAgentTraffic(t *testing.T) {
	l, path := listenReverse(t)
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg, _ := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendRegistrationRequestJSON(nil, regRequest("raw", nil)))
	// Pipelined behind the registration: a health report.
	health, _ := frame.AppendFrame(nil, frame.TypeHealthStatus, []byte(`{"state":2,"timeout_multiplier":3}`))
	nc.Write(append(reg, health...))
	rc := &rawConn{Conn: nc, rd: frame.NewReader(nc, 0)}
	echoDone := make(chan struct{})
	defer func() {
		nc.Close()
		<-echoDone
		rc.rd.Release()
	}()
	typ, p, err := rc.rd.ReadFrame()
	if err != nil || typ != frame.TypeHandshakeResponse {
		close(echoDone)
		t.Fatalf("answer: %v %v", typ, err)
	}
	var resp agentwire.RegistrationResponse
	if payload.DecodeRegistrationResponseJSON(p, &resp) != nil || !resp.Success {
		close(echoDone)
		t.Fatalf("answer %s", p)
	}
	go func() {
		defer close(echoDone)
		rc.echoLoop()
	}()
	c, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("raw-1")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "pipelined health report", nil, func() bool { return c.Health().Report.State == agentwire.HealthDegraded })
}

// TestReverseTCPAndTLS: TCP with mutual TLS; an untrusted client is
// dropped during the TLS handshake.
func TestReverseTCPAndTLS(t *testing.T) {
	p := newTestPKI(t)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	l, err := ListenReverse(context.Background(), "tcp://127.0.0.1:0", WithReverseTLS(srvCfg), WithRegistrationTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()

	_, _, _ = serveReverse(t, newTestAgent(), "tcp://"+addr,
		agent.WithReverseTLS(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}}))
	c, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("tls")); err != nil {
		t.Fatal(err)
	}

	// A client with a certificate from another CA never registers.
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.rogue}})
	if err == nil {
		tc.SetDeadline(time.Now().Add(3 * time.Second))
		b, _ := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendRegistrationRequestJSON(nil, regRequest("rogue", nil)))
		tc.Write(b)
		var buf [1]byte
		_, err = tc.Read(buf[:])
		tc.Close()
	}
	if err == nil {
		t.Fatal("rogue client got an answer")
	}
	if st := l.Stats(); st.Registered != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Plain TCP rejects on a TCP listener answer before closing (no reset
	// swallows the reason even with unread data behind the registration).
	l2, err := ListenReverse(context.Background(), "127.0.0.1:0", WithAllowedAgents("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	nc, err := net.Dial("tcp", l2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b, _ := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendRegistrationRequestJSON(nil, regRequest("y", nil)))
	junk, _ := frame.AppendFrame(nil, frame.TypeAgentResponse, make([]byte, 32<<10))
	nc.Write(append(b, junk...))
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if r := readAnswer(t, nc); r == nil || r.Success || !strings.Contains(r.Error.Value, "not in the allowed list") {
		t.Fatalf("answer %+v", r)
	}
}

// TestReverseSocketFile: mode 0600, stale sockets replaced, live ones and
// other files refused, the file removed on Close (not when the context
// given to ListenReverse ends: that bounds the setup only, see
// TestReverseContextBoundsSetupOnly), invalid endpoints refused with
// ErrInvalidConfig.
func TestReverseSocketFile(t *testing.T) {
	path := sockPath(t)
	// A stale socket (bound, then abandoned without unlinking).
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := ListenReverse(ctx, path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket file %v %v", fi.Mode(), err)
	}
	// A live one is refused.
	if _, err := ListenReverse(context.Background(), path); err == nil || !errors.Is(err, errReverseSocketInUse) {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	// Close removes the file; the context's end does not close anything.
	cancel()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket file gone after the setup context ended: %v", err)
	}
	l.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Close: %v", err)
	}
	if _, err := l.Accept(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after close: %v", err)
	}
	l.Close()
	// A regular file is never removed.
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenReverse(context.Background(), path); err == nil {
		t.Fatal("listened over a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Fatal("regular file touched")
	}
	for _, ep := range []string{"unix:", "tcp://nohost", "a:b:c"} {
		if _, err := ListenReverse(context.Background(), ep); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ListenReverse(%q): %v, want ErrInvalidConfig", ep, err)
		}
	}
}

// TestReverseCloseEndsEverything: Close fails pending calls on admitted
// Conns, drops registrations in progress and returns with no goroutine
// left (goleak checks the rest).
func TestReverseCloseEndsEverything(t *testing.T) {
	l, path := listenReverse(t)
	r, nc := register(t, "unix", path, regRequest("a", nil))
	if r == nil || !r.Success {
		t.Fatalf("answer %+v", r)
	}
	// The raw agent reads but never answers.
	go func() { _, _ = io.Copy(io.Discard, nc) }()
	c, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("p"))
		errs <- err
	}()
	waitUntil(t, "in flight", nil, func() bool { return c.Stats().InFlight == 1 })
	slow, err := net.Dial("unix", path) // registration in progress
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	within(t, 2*time.Second, "Close", func() { l.Close() })
	mustKind(t, <-errs, ErrClosed)
	if !closedByPeer(slow) {
		t.Fatal("registration in progress not dropped")
	}
	if st := l.Stats(); st.Active != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReverseCloseUnacceptedConn: a Conn still waiting in the Accept queue
// (used through Conns) fails its pending call with ErrClosed when the
// listener closes, like an accepted one.
func TestReverseCloseUnacceptedConn(t *testing.T) {
	l, path := listenReverse(t)
	r, nc := register(t, "unix", path, regRequest("a", nil))
	if r == nil || !r.Success {
		t.Fatalf("answer %+v", r)
	}
	go func() { _, _ = io.Copy(io.Discard, nc) }()
	var c *Conn
	waitUntil(t, "admitted Conn", nil, func() bool {
		if cs := l.Conns("a"); len(cs) == 1 {
			c = cs[0]
		}
		return c != nil
	})
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("p"))
		errs <- err
	}()
	waitUntil(t, "in flight", nil, func() bool { return c.Stats().InFlight == 1 })
	within(t, 2*time.Second, "Close", func() { l.Close() })
	mustKind(t, <-errs, ErrClosed)
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
}
