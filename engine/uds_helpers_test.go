package engine

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// sockPath returns a fresh socket path in a short temporary directory
// (sockaddr_un paths are limited to about 108 bytes, and t.TempDir embeds
// the test name).
func sockPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

// udsAgent runs an agent.Server on a Unix socket.
type udsAgent struct {
	srv  *agent.Server
	path string
	done chan struct{}
	once sync.Once
}

func startUDSAgent(t testing.TB, h agent.Handler, opts ...agent.Option) *udsAgent {
	t.Helper()
	return startUDSAgentAt(t, sockPath(t), h, opts...)
}

func startUDSAgentAt(t testing.TB, path string, h agent.Handler, opts ...agent.Option) *udsAgent {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	a := &udsAgent{srv: agent.NewServer(h, opts...), path: path, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		_ = a.srv.ServeUDS(ln)
	}()
	t.Cleanup(a.stop)
	return a
}

// stop closes the server at once and waits for it (idempotent).
func (a *udsAgent) stop() {
	a.once.Do(func() {
		_ = a.srv.Close()
		<-a.done
	})
}

// dialUDS connects a Conn to a Unix-socket agent and closes it at cleanup.
func dialUDS(t testing.TB, path string, opts ...Option) *Conn {
	t.Helper()
	c, err := Dial(testCtx(t), "unix://"+path, opts...)
	if err != nil {
		t.Fatalf("dial unix %s: %v", path, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// udsOf returns the Unix-socket transport of c's current session.
func udsOf(t testing.TB, c *Conn) *udsTransport {
	t.Helper()
	s := c.sess.Load()
	if s == nil {
		t.Fatal("no session")
		return nil
	}
	u, ok := s.t.(*udsTransport)
	if !ok {
		t.Fatalf("transport is %T", s.t)
	}
	return u
}

// ---------------------------------------------------------------------------
// Raw fake agent: a Unix-socket listener whose connections are scripted by
// the test at the frame level.

type rawAgent struct {
	t     testing.TB
	path  string
	ln    net.Listener
	serve func(rc *rawConn)
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	once  sync.Once
}

// rawConn is one accepted connection of a rawAgent.
type rawConn struct {
	net.Conn
	rd  *frame.Reader
	wmu sync.Mutex
	hs  agentwire.HandshakeRequest // the proxy's handshake (after handshake)
}

func startRawAgent(t testing.TB, serve func(rc *rawConn)) *rawAgent {
	t.Helper()
	return startRawAgentAt(t, sockPath(t), serve)
}

func startRawAgentAt(t testing.TB, path string, serve func(rc *rawConn)) *rawAgent {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	a := &rawAgent{t: t, path: path, ln: ln, serve: serve, conns: map[net.Conn]struct{}{}}
	a.wg.Add(1)
	go a.acceptLoop()
	t.Cleanup(a.stop)
	return a
}

func (a *rawAgent) acceptLoop() {
	defer a.wg.Done()
	for {
		nc, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		a.conns[nc] = struct{}{}
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			rc := &rawConn{Conn: nc, rd: frame.NewReader(nc, 0)}
			defer rc.rd.Release()
			defer nc.Close()
			a.serve(rc)
		}()
	}
}

// kill closes the listener and every connection at once (the agent
// "process dies") and waits for the scripts to end.
func (a *rawAgent) stop() {
	a.once.Do(func() {
		a.ln.Close()
		a.mu.Lock()
		for nc := range a.conns {
			nc.Close()
		}
		a.mu.Unlock()
		a.wg.Wait()
	})
}

// writeFrame writes one whole frame.
func (rc *rawConn) writeFrame(t frame.Type, p []byte) error {
	b, err := frame.AppendFrame(nil, t, p)
	if err != nil {
		return err
	}
	return rc.writeRaw(b)
}

func (rc *rawConn) writeRaw(b []byte) error {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	_, err := rc.Write(b)
	return err
}

// fullCaps returns capabilities with every event subscribed.
func fullCaps(id string) agentwire.Capabilities {
	return agentwire.Capabilities{
		AgentID: id, Name: id, Version: "1",
		SupportedEvents: []int32{0, 1, 2, 3, 4, 5, 6, 7},
		Features:        agentwire.FullFeatures(),
		Limits:          agentwire.DefaultLimits(),
	}
}

// handshake reads the proxy's 0x01 and answers success with encoding enc
// ("" leaves the key out).
func (rc *rawConn) handshake(enc string) error {
	return rc.handshakeCaps(enc, fullCaps("raw"))
}

// handshakeCaps is handshake announcing caps.
func (rc *rawConn) handshakeCaps(enc string, caps agentwire.Capabilities) error {
	typ, p, err := rc.rd.ReadFrame()
	if err != nil {
		return err
	}
	if typ != frame.TypeHandshakeRequest {
		return errors.New("first frame is " + typ.String())
	}
	if err := payload.DecodeHandshakeRequestJSON(p, &rc.hs); err != nil {
		return err
	}
	resp := agentwire.HandshakeResponse{ProtocolVersion: 2, Capabilities: caps, Success: true, Encoding: enc}
	return rc.writeFrame(frame.TypeHandshakeResponse, payload.AppendHandshakeResponseJSON(nil, &resp))
}

// reply writes an allow reply for cid (JSON).
func (rc *rawConn) reply(cid string) error {
	r := agentwire.AgentResponse{CorrelationID: cid}
	return rc.writeFrame(frame.TypeAgentResponse, payload.AppendAgentResponseJSON(nil, &r))
}

// eventID returns the routing id of a JSON event payload.
func eventID(p []byte) string {
	var probe struct {
		CorrelationID string `json:"correlation_id"`
	}
	_ = json.Unmarshal(p, &probe)
	return probe.CorrelationID
}

// echoLoop answers every event with allow until the connection ends.
func (rc *rawConn) echoLoop() {
	for {
		typ, p, err := rc.rd.ReadFrame()
		if err != nil {
			var ut *frame.UnknownTypeError
			if errors.As(err, &ut) {
				continue
			}
			return
		}
		if typ >= frame.TypeRequestHeaders && typ <= frame.TypeConfigure {
			if rc.reply(eventID(p)) != nil {
				return
			}
		}
	}
}

// within fails the test unless f returns within d.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %v", what, d)
	}
}
