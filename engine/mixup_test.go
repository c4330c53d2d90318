package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire/codec/frame"
)

// TestEndpointMixups: a real gRPC agent dialled as a Unix-socket agent, and
// a real Unix-socket agent dialled as gRPC, both on Unix sockets, fail with
// an error that names the likely cause and the endpoint to use instead.
func TestEndpointMixups(t *testing.T) {
	grpcPath := sockPath(t)
	ln, err := net.Listen("unix", grpcPath)
	if err != nil {
		t.Fatal(err)
	}
	serveAgent(t, ln, newTestAgent()) // speaks gRPC
	udsPath := startUDSAgent(t, newTestAgent()).path

	t.Run("grpc-agent-as-unix", func(t *testing.T) {
		for _, ep := range []string{"unix://" + grpcPath, grpcPath} {
			_, err := Dial(testCtx(t), ep)
			mustKind(t, err, ErrHandshakeRejected)
			if !strings.Contains(err.Error(), "speaks gRPC") || !strings.Contains(err.Error(), "use grpc+unix://"+grpcPath) {
				t.Fatalf("Dial(%q): %q does not name the cause", ep, err)
			}
		}
	})
	t.Run("unix-agent-as-grpc", func(t *testing.T) {
		_, err := Dial(testCtx(t), "grpc+unix://"+udsPath)
		mustKind(t, err, ErrConnectFailed)
		if !strings.Contains(err.Error(), "does not speak gRPC") || !strings.Contains(err.Error(), "use unix://"+udsPath) {
			t.Fatalf("%q does not name the cause", err)
		}
	})
	t.Run("NewConn", func(t *testing.T) {
		// The background connection reports it through WaitConnected.
		for ep, want := range map[string]string{
			"unix://" + grpcPath:     "use grpc+unix://",
			"grpc+unix://" + udsPath: "use unix://",
		} {
			c, err := NewConn(ep, fastBackoff)
			if err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "a failed attempt", nil, func() bool { return c.Stats().ReconnectFailures >= 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			err = c.WaitConnected(ctx)
			cancel()
			c.Close()
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("NewConn(%q): WaitConnected %q does not name the cause", ep, err)
			}
		}
	})
	t.Run("right-endpoints", func(t *testing.T) {
		// The hints do not get in the way of the right endpoints.
		for _, ep := range []string{"grpc+unix://" + grpcPath, "unix://" + udsPath} {
			c, err := Dial(testCtx(t), ep)
			if err != nil {
				t.Fatalf("Dial(%q): %v", ep, err)
			}
			if _, err := c.RequestHeaders(testCtx(t), headersEvent("ok")); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	})
}

// TestReadHandshakeFrame: the handshake reader takes exactly one frame
// (nothing after it), tells an HTTP/2 server's SETTINGS frame from a
// frame, and reports the frame reader's errors.
func TestReadHandshakeFrame(t *testing.T) {
	settings := []byte{0, 0, 12, 0x04, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0x40, 0, 0, 3, 0, 0, 0, 100}
	cases := []struct {
		name string
		in   []byte
		typ  frame.Type
		want string // payload, or
		err  error  // error kind
	}{
		{"frame then more", []byte{0, 0, 0, 3, 0x02, '{', '}', 0, 0, 0, 1, 0x30}, frame.TypeHandshakeResponse, "{}", nil},
		{"http2 settings", settings, 0, "", errSpeaksHTTP2},
		{"empty http2 settings", []byte{0, 0, 0, 0x04, 0, 0, 0, 0, 0}, 0, "", errSpeaksHTTP2},
		{"settings-like on a stream", []byte{0, 0, 6, 0x04, 0, 0, 0, 0, 1}, 0, "", &frame.UnknownTypeError{}},
		{"eof", nil, 0, "", io.EOF},
		{"cut header", []byte{0, 0}, 0, "", io.ErrUnexpectedEOF},
		{"cut payload", []byte{0, 0, 0, 9, 0x02, '{'}, 0, "", io.ErrUnexpectedEOF},
		{"zero length", []byte{0, 0, 0, 0, 0x02}, 0, "", frame.ErrZeroLength},
		{"too large", []byte{0, 0x10, 0, 1, 0x02}, 0, "", &frame.TooLargeError{}},
		{"unknown type", []byte{0, 0, 0, 1, 0x99}, 0, "", &frame.UnknownTypeError{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			typ, p, err := readHandshakeFrame(r, 1<<20)
			switch want := tc.err.(type) {
			case nil:
				if err != nil || typ != tc.typ || string(p) != tc.want {
					t.Fatalf("got %v %q %v", typ, p, err)
				}
				if r.Len() != 5 {
					t.Fatalf("read ahead: %d bytes left, want 5", r.Len())
				}
			case *frame.UnknownTypeError:
				var ut *frame.UnknownTypeError
				if !errors.As(err, &ut) {
					t.Fatalf("error %v, want an unknown type", err)
				}
			case *frame.TooLargeError:
				var tl *frame.TooLargeError
				if !errors.As(err, &tl) {
					t.Fatalf("error %v, want too large", err)
				}
			default:
				if err != want {
					t.Fatalf("error %v, want %v", err, want)
				}
			}
		})
	}
}

// TestProbeNotHTTP2: the probe concludes only on evidence: a gRPC server
// answers the preface (false), a Unix-socket agent hangs up (true), and
// nothing listening or a peer that stays silent is inconclusive (false,
// within the probe's bound).
func TestProbeNotHTTP2(t *testing.T) {
	grpcPath := sockPath(t)
	ln, err := net.Listen("unix", grpcPath)
	if err != nil {
		t.Fatal(err)
	}
	serveAgent(t, ln, newTestAgent())
	udsPath := startUDSAgent(t, newTestAgent()).path
	silentPath := sockPath(t)
	silent := startRawAgentAt(t, silentPath, func(rc *rawConn) { _, _ = io.Copy(io.Discard, rc) })
	ctx := testCtx(t)
	if probeNotHTTP2(ctx, grpcPath, time.Second) {
		t.Error("a gRPC agent was taken for a non-HTTP/2 peer")
	}
	if !probeNotHTTP2(ctx, udsPath, time.Second) {
		t.Error("a Unix-socket agent was not recognized")
	}
	if probeNotHTTP2(ctx, sockPath(t), time.Second) {
		t.Error("nothing listening: concluded anyway")
	}
	start := time.Now()
	if probeNotHTTP2(ctx, silentPath, 50*time.Millisecond) {
		t.Error("a silent peer: concluded anyway")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the probe took %v", d)
	}
	silent.stop()
}
