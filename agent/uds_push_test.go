package agent

import (
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// TestUDSInlinePushWriterExits: on a connection with inline handlers a
// push starts a writer that exits once the push is written, so an idle
// connection is back to its reader alone (uds_push.go); events keep
// being answered around the pushes, and the connection ends cleanly with
// the server (goleak in TestMain checks that nothing is left).
func TestUDSInlinePushWriterExits(t *testing.T) {
	e := startUDS(t, BaseHandler{}, WithInlineHandlers())
	p := dialRaw(t, e.path)
	p.handshake("msgpack")
	waitFor(t, "connection registered", func() bool { return e.srv.Stats().Conns == 1 })
	// The reader alone (and ServeUDS's own goroutine, which stops it).
	want := agentGoroutines()
	for i := range 3 {
		e.srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthState(1 + i%2)})
		if typ, _ := p.recv(); typ != frame.TypeHealthStatus {
			t.Fatalf("push %d: got a %v frame, want health", i, typ)
		}
		waitFor(t, "the push writer to exit", func() bool { return agentGoroutines() == want })
		p.send(frame.TypeRequestHeaders, reqHeadersMsgpack("after-push", "/"))
		if r := p.recvReply(true); r.Decision.Kind != agentwire.DecisionAllow {
			t.Fatalf("reply after push %d: %+v", i, r)
		}
	}
}

// agentPkg prefixes the functions of this package.
const agentPkg = "github.com/agentwire/agentwire/agent."

// allStacks returns every goroutine's stack, one string each.
func allStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Split(string(buf), "\n\n")
}

// agentGoroutines counts the goroutines started by the agent's own code
// (their "created by" function is the agent's, outside its tests).
func agentGoroutines() int {
	count := 0
	for _, g := range allStacks() {
		lines := strings.Split(g, "\n")
		for i, l := range lines {
			fn, ok := strings.CutPrefix(l, "created by ")
			if !ok || !strings.HasPrefix(fn, agentPkg) || i+1 >= len(lines) {
				continue
			}
			file, _, _ := strings.Cut(strings.TrimSpace(lines[i+1]), ":")
			if !strings.HasSuffix(file, "_test.go") {
				count++
			}
		}
	}
	return count
}

// writeGateLn hands out connections whose first Write (the handshake
// reply) waits until gate is closed; held is closed when it starts
// waiting.
type writeGateLn struct {
	net.Listener
	held, gate chan struct{}
}

func (l *writeGateLn) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writeGateConn{Conn: c, l: l}, nil
}

type writeGateConn struct {
	net.Conn
	l       *writeGateLn
	started atomic.Bool
}

// Write holds the first call only; later ones (a push writer racing the
// handshake reply) go straight through.
func (c *writeGateConn) Write(b []byte) (int, error) {
	if c.started.CompareAndSwap(false, true) {
		close(c.l.held)
		<-c.l.gate
	}
	return c.Conn.Write(b)
}

// TestUDSInlinePushWaitsForHandshakeReply: on a connection with inline
// handlers, a push queued while the handshake reply is being written (the
// connection is registered just before) leaves after that reply, never
// before it: the proxy must see the handshake answer first.
func TestUDSInlinePushWaitsForHandshakeReply(t *testing.T) {
	srv := NewServer(BaseHandler{}, WithInlineHandlers())
	path := filepath.Join(sockDir(t), "agent.sock")
	ln, err := listenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	gl := &writeGateLn{Listener: ln, held: make(chan struct{}), gate: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- srv.ServeUDS(gl) }()
	defer func() {
		srv.Close()
		<-served
	}()
	p := dialRaw(t, path)
	req := agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "zentinel-proxy", ProxyVersion: "0.6.20", SupportedEncodings: []string{"msgpack"}}
	p.send(frame.TypeHandshakeRequest, payload.AppendHandshakeRequestJSON(nil, &req))
	select {
	case <-gl.held:
	case <-time.After(testTimeout):
		t.Fatal("no handshake reply written")
	}
	waitFor(t, "connection registered", func() bool { return srv.Stats().Conns == 1 })
	srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthState(2)})
	close(gl.gate)
	if typ, _ := p.recv(); typ != frame.TypeHandshakeResponse {
		t.Fatalf("first frame %v, want the handshake answer", typ)
	}
	if typ, _ := p.recv(); typ != frame.TypeHealthStatus {
		t.Fatalf("second frame %v, want the health push", typ)
	}
}
