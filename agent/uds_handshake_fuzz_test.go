package agent

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// FuzzUDSHandshake connects to a real server on a Unix socket and sends
// arbitrary raw bytes as the handshake (a valid 0x01, a valid header
// followed by junk, a partial frame, an oversized or zero length, another
// frame type), then half-closes its side or stays silent, and reads what
// comes back with a deadline. Checked for every input:
//   - the server does not panic;
//   - within the handshake timeout plus a bound, the server answers with a
//     well-formed 0x02 or closes the connection: a failed handshake is the
//     last thing it sends before closing, a successful one is the first
//     frame (whatever follows is not checked here);
//   - a well-behaved connection opened afterwards completes a handshake
//     and a request;
//   - Close returns within a bound, ServeUDS returns ErrServerClosed, and
//     every goroutine the server started has ended.
//
// Seeded with the golden proxy handshake requests, alone, truncated,
// followed by junk or an event, and with invalid lengths and types.
func FuzzUDSHandshake(f *testing.F) {
	ev := agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: "fuzz", RequestID: "r"}, Method: "GET", URI: "/"}
	evFrame, _ := frame.AppendFrame(nil, frame.TypeRequestHeaders, payload.AppendRequestHeadersJSON(nil, &ev))
	for _, g := range loadGolden(f, "handshake.json") {
		if g.TypeByte == nil || g.typ(f) != frame.TypeHandshakeRequest {
			continue
		}
		b, err := frame.AppendFrame(nil, frame.TypeHandshakeRequest, []byte(g.JSONPayload))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
		f.Add(append(append([]byte(nil), b...), evFrame...), true)
		f.Add(append(append([]byte(nil), b...), 0, 0, 0, 9, 0x10, '{'), false)
		f.Add(append(append([]byte(nil), b...), 0xde, 0xad, 0xbe, 0xef, 0x10), true)
		f.Add(b[:len(b)-1], false)
		f.Add(b[:len(b)-1], true)
		f.Add(b[:frame.HeaderSize], false)
		f.Add(b[:3], true)
		bad := append([]byte(nil), b...)
		bad[4] = byte(frame.TypeRequestHeaders) // an event before the handshake
		f.Add(bad, false)
		bad = append([]byte(nil), b...)
		bad[4] = 0x99 // unknown type
		f.Add(bad, false)
		bad = append([]byte(nil), b...)
		bad[0] = 0x7f // declared length far beyond the frame limit
		f.Add(bad, false)
	}
	f.Add([]byte(nil), false)
	f.Add([]byte(nil), true)
	f.Add([]byte{0, 0, 0, 0, 1}, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, false)
	f.Add([]byte{0, 0, 0, 3, 1, '{', '}', 'x'}, true)
	f.Add([]byte{0, 0, 0, 2, 1, '{', '}'}, false)
	f.Add([]byte(`{"supported_versions":[2]}`), true)
	f.Fuzz(fuzzUDSHandshakeOnce)
}

func fuzzUDSHandshakeOnce(t *testing.T, in []byte, closeWrite bool) {
	const (
		hsTimeout = 200 * time.Millisecond
		bound     = 5 * time.Second
	)
	base := runtime.NumGoroutine()
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "a.sock")
	ln, err := listenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(BaseHandler{}, WithHandshakeTimeout(hsTimeout), WithMaxFrameSize(1<<16),
		WithMaxConcurrency(4), WithLogger(slog.New(slog.DiscardHandler)))
	served := make(chan error, 1)
	go func() { served <- s.ServeUDS(ln) }()
	closed := false
	closeServer := func() {
		if closed {
			return
		}
		closed = true
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Close()
		}()
		select {
		case <-done:
		case <-time.After(bound):
			t.Fatalf("Close did not return (input %x)", in)
		}
		select {
		case err := <-served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("ServeUDS returned %v", err)
			}
		case <-time.After(bound):
			t.Fatal("ServeUDS did not return")
		}
	}
	defer closeServer()

	// The fuzzed connection.
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(hsTimeout + bound))
	if _, err := nc.Write(in); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server stopped reading without answering or closing (input %x)", in)
	}
	if closeWrite {
		nc.(*net.UnixConn).CloseWrite()
	}
	rd := frame.NewReader(nc, 0)
	typ, p, err := rd.ReadFrame()
	switch {
	case err != nil:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server neither answered nor closed within %v (input %x)", hsTimeout+bound, in)
		}
		if err != io.EOF && !isClosedConnErr(err) {
			t.Fatalf("reading the answer: %v (input %x)", err, in)
		}
	case typ != frame.TypeHandshakeResponse:
		t.Fatalf("first frame is %v, want a handshake response (input %x)", typ, in)
	default:
		var r agentwire.HandshakeResponse
		if err := payload.DecodeHandshakeResponseJSON(p, &r); err != nil {
			t.Fatalf("undecodable handshake response %q: %v (input %x)", p, err, in)
		}
		if !r.Success {
			if !r.Error.Valid || r.Error.Value == "" {
				t.Fatalf("failed handshake without a reason: %q (input %x)", p, in)
			}
			// A failure is the last frame: the server closes.
			if typ, _, err := rd.ReadFrame(); err == nil {
				t.Fatalf("frame %v after a failed handshake (input %x)", typ, in)
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the server did not close after a failed handshake (input %x)", in)
			}
		} else if r.ProtocolVersion != agentwire.ProtocolVersion {
			t.Fatalf("successful handshake with protocol version %d", r.ProtocolVersion)
		}
	}
	rd.Release()
	nc.Close()

	// A well-behaved connection is still served.
	wc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("second connection after input %x: %v", in, err)
	}
	defer wc.Close()
	wc.SetDeadline(time.Now().Add(bound))
	wrd := frame.NewReader(wc, 0)
	defer wrd.Release()
	hs := agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "fuzz", ProxyVersion: "0", SupportedEncodings: []string{agentwire.EncodingJSON}}
	hsFrame, _ := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendHandshakeRequestJSON(nil, &hs))
	if _, err := wc.Write(hsFrame); err != nil {
		t.Fatalf("second connection after input %x: %v", in, err)
	}
	typ, p, err = wrd.ReadFrame()
	var hr agentwire.HandshakeResponse
	if err != nil || typ != frame.TypeHandshakeResponse || payload.DecodeHandshakeResponseJSON(p, &hr) != nil || !hr.Success {
		t.Fatalf("second handshake after input %x: %v %v %q", in, typ, err, p)
	}
	ev := agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: "second", RequestID: "r"}, Method: "GET", URI: "/"}
	evFrame, _ := frame.AppendFrame(nil, frame.TypeRequestHeaders, payload.AppendRequestHeadersJSON(nil, &ev))
	if _, err := wc.Write(evFrame); err != nil {
		t.Fatalf("second connection after input %x: %v", in, err)
	}
	for {
		typ, p, err = wrd.ReadFrame()
		if err != nil {
			t.Fatalf("second request after input %x: %v", in, err)
		}
		if typ != frame.TypeAgentResponse {
			continue // pushes (health)
		}
		var r agentwire.AgentResponse
		if err := payload.DecodeAgentResponseJSON(p, &r); err != nil || r.CorrelationID != "second" || r.Decision.Kind != agentwire.DecisionAllow {
			t.Fatalf("second request after input %x: %v %q", in, err, p)
		}
		break
	}
	wc.Close()
	closeServer()
	waitGoroutines(t, base, bound)
}
