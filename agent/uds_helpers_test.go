package agent

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// This file holds the test side of the Unix-socket transport: a raw client
// that plays the Rust proxy frame by frame, and the golden vector loader.

// goldenVector is one record of testdata/golden/{events,control,handshake,
// reverse}.json (the fields the agent tests use).
type goldenVector struct {
	Name        string          `json:"name"`
	TypeByte    *string         `json:"type_byte"`
	EmittedBy   string          `json:"emitted_by"`
	JSONPayload string          `json:"json_payload"`
	MsgpackHex  *string         `json:"msgpack_payload_hex"`
	RustDecodes *bool           `json:"rust_decodes"`
	JSONDecoded json.RawMessage `json:"json_decoded_value"`
}

func (g *goldenVector) typ(t testing.TB) frame.Type {
	t.Helper()
	if g.TypeByte == nil {
		t.Fatalf("%s: no type byte", g.Name)
	}
	b, err := hex.DecodeString((*g.TypeByte)[2:])
	if err != nil || len(b) != 1 {
		t.Fatalf("%s: bad type byte %q", g.Name, *g.TypeByte)
	}
	return frame.Type(b[0])
}

func (g *goldenVector) msgpack(t testing.TB) []byte {
	t.Helper()
	if g.MsgpackHex == nil {
		return nil
	}
	b, err := hex.DecodeString(*g.MsgpackHex)
	if err != nil {
		t.Fatalf("%s: bad msgpack hex: %v", g.Name, err)
	}
	return b
}

func loadGolden(t testing.TB, file string) []goldenVector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "golden", file))
	if err != nil {
		t.Fatal(err)
	}
	var out []goldenVector
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return out
}

func goldenByName(t testing.TB, file, name string) goldenVector {
	t.Helper()
	for _, g := range loadGolden(t, file) {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("%s: no vector %q", file, name)
	return goldenVector{}
}

// sockDir returns a short temporary directory (socket paths are limited to
// 108 bytes, which t.TempDir can exceed).
func sockDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// udsEnv is a server serving the Unix-socket transport on a fresh path.
type udsEnv struct {
	t      testing.TB
	srv    *Server
	path   string
	served chan error
}

func startUDS(t testing.TB, h Handler, opts ...Option) *udsEnv {
	t.Helper()
	e := &udsEnv{t: t, srv: NewServer(h, opts...), served: make(chan error, 1)}
	e.path = filepath.Join(sockDir(t), "agent.sock")
	ln, err := listenUnix(e.path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	go func() { e.served <- e.srv.ServeUDS(ln) }()
	t.Cleanup(e.close)
	return e
}

func (e *udsEnv) close() {
	e.srv.Close()
	select {
	case err := <-e.served:
		if !errors.Is(err, ErrServerClosed) {
			e.t.Errorf("ServeUDS returned %v, want ErrServerClosed", err)
		}
	case <-time.After(testTimeout):
		e.t.Error("ServeUDS did not return")
	}
}

// rawProxy is the test's proxy: it speaks frames on a raw connection.
type rawProxy struct {
	t  testing.TB
	c  net.Conn
	rd *frame.Reader
}

func dialRaw(t testing.TB, path string) *rawProxy {
	t.Helper()
	c, err := net.DialTimeout("unix", path, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawProxy{t: t, c: c, rd: frame.NewReader(c, 0)}
	t.Cleanup(p.close)
	return p
}

func (p *rawProxy) close() {
	p.c.Close()
	p.rd.Release()
}

func (p *rawProxy) send(typ frame.Type, payload []byte) {
	p.t.Helper()
	buf := make([]byte, 0, len(payload)+5)
	buf, err := frame.AppendFrame(buf, typ, payload)
	if err != nil {
		p.t.Fatal(err)
	}
	p.writeRaw(buf)
}

func (p *rawProxy) writeRaw(b []byte) {
	p.t.Helper()
	p.c.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := p.c.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// recv reads the next frame (payload copied).
func (p *rawProxy) recv() (frame.Type, []byte) {
	p.t.Helper()
	typ, b, err := p.tryRecv(testTimeout)
	if err != nil {
		p.t.Fatalf("recv: %v", err)
	}
	return typ, b
}

func (p *rawProxy) tryRecv(d time.Duration) (frame.Type, []byte, error) {
	p.c.SetReadDeadline(time.Now().Add(d))
	typ, b, err := p.rd.ReadFrame()
	if err != nil {
		return 0, nil, err
	}
	return typ, append([]byte(nil), b...), nil
}

// expectClosed waits until the agent closes the connection.
func (p *rawProxy) expectClosed() {
	p.t.Helper()
	for {
		typ, _, err := p.tryRecv(testTimeout)
		if err == nil {
			p.t.Logf("frame %v before close", typ)
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isClosedConnErr(err) {
			return
		}
		p.t.Fatalf("want the connection closed, got %v", err)
	}
}

// handshakeRaw sends a handshake offering encodings (nil: key absent) and
// returns the raw answer payload.
func (p *rawProxy) handshakeRaw(encodings []string) []byte {
	p.t.Helper()
	req := agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "zentinel-proxy", ProxyVersion: "0.6.20", SupportedEncodings: encodings}
	p.send(frame.TypeHandshakeRequest, payload.AppendHandshakeRequestJSON(nil, &req))
	typ, b := p.recv()
	if typ != frame.TypeHandshakeResponse {
		p.t.Fatalf("handshake answer type %v", typ)
	}
	return b
}

// handshake completes a successful handshake and returns the answer.
func (p *rawProxy) handshake(encodings ...string) agentwire.HandshakeResponse {
	p.t.Helper()
	b := p.handshakeRaw(encodings)
	var hs agentwire.HandshakeResponse
	if err := payload.DecodeHandshakeResponseJSON(b, &hs); err != nil {
		p.t.Fatalf("handshake answer %s: %v", b, err)
	}
	if !hs.Success {
		p.t.Fatalf("handshake failed: %s", b)
	}
	return hs
}

// recvReply reads frames until a 0x20 arrives (skipping pushes) and decodes
// it in the given encoding.
func (p *rawProxy) recvReply(msgpack bool) agentwire.AgentResponse {
	p.t.Helper()
	for {
		typ, b := p.recv()
		if typ != frame.TypeAgentResponse {
			continue
		}
		return decodeReply(p.t, b, msgpack)
	}
}

func decodeReply(t testing.TB, b []byte, msgpack bool) agentwire.AgentResponse {
	t.Helper()
	var r agentwire.AgentResponse
	var err error
	if msgpack {
		err = payload.DecodeAgentResponseMsgpack(b, &r)
	} else {
		err = payload.DecodeAgentResponseJSON(b, &r)
	}
	if err != nil {
		t.Fatalf("reply %x: %v", b, err)
	}
	return r
}

func (p *rawProxy) ping(seq int) {
	p.t.Helper()
	pg := agentwire.Ping{Sequence: uint64(seq), TimestampMS: 1781256463123}
	p.send(frame.TypePing, payload.AppendPingJSON(nil, &pg))
}

// expectPong reads frames until a pong, failing on any 0x20 before it.
func (p *rawProxy) expectPongOnly() []byte {
	p.t.Helper()
	for {
		typ, b := p.recv()
		switch typ {
		case frame.TypePong:
			return b
		case frame.TypeAgentResponse:
			p.t.Fatalf("unexpected reply before pong: %s", b)
		}
	}
}

// reqHeadersJSON is a 0x10 payload for cid and uri.
func reqHeadersJSON(cid, uri string) []byte {
	ev := agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{CorrelationID: cid, RequestID: "r-" + cid, ClientIP: "10.0.0.1", ClientPort: 4242,
			Protocol: "HTTP/1.1", Timestamp: time.Unix(1781256463, 0).UTC()},
		Method:  "GET",
		URI:     uri,
		Headers: agentwire.Headers{{Name: "host", Values: []string{"example.com"}}},
	}
	return payload.AppendRequestHeadersJSON(nil, &ev)
}

func reqHeadersMsgpack(cid, uri string) []byte {
	ev := agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{CorrelationID: cid, RequestID: "r-" + cid, ClientIP: "10.0.0.1", ClientPort: 4242,
			Protocol: "HTTP/1.1", Timestamp: time.Unix(1781256463, 0).UTC()},
		Method:  "GET",
		URI:     uri,
		Headers: agentwire.Headers{{Name: "host", Values: []string{"example.com"}}},
	}
	return payload.AppendRequestHeadersMsgpack(nil, &ev)
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
