package agent

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// stallPeer handshakes on the server's socket and then writes events
// back to back without ever reading, until the agent stops reading too
// (a write of the peer's times out: both socket buffers are full and the
// agent's reader is blocked writing replies). It returns once that state
// is reached.
func stallPeer(t *testing.T, e *udsEnv, msgpack bool) *rawProxy {
	t.Helper()
	p := dialRaw(t, e.path)
	if msgpack {
		p.handshake(agentwire.EncodingJSON, agentwire.EncodingMsgpack)
	} else {
		p.handshake(agentwire.EncodingJSON)
	}
	var ev []byte
	if msgpack {
		ev = reqHeadersMsgpack("c-1", "/stall")
	} else {
		ev = reqHeadersJSON("c-1", "/stall")
	}
	one, err := frame.AppendFrame(nil, frame.TypeRequestHeaders, ev)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]byte, 0, 64*len(one))
	for range 64 {
		batch = append(batch, one...)
	}
	deadline := time.Now().Add(testTimeout)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the agent kept reading a peer that never reads")
		}
		p.c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := p.c.Write(batch); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return p
			}
			t.Fatalf("peer write: %v", err)
		}
	}
}

// TestUDSShutdownPeerStalls: a proxy that stops reading mid-batch leaves
// the agent's reader blocked writing replies; Shutdown with a deadline
// returns ctx.Err() shortly after that deadline, closing the connection
// hard, also with the write timeout disabled (nothing else would unblock
// the write). A proxy that disappears meanwhile (the process was killed)
// does not hold Shutdown up: the write fails, the connection ends, and
// Shutdown returns nil well within its deadline.
func TestUDSShutdownPeerStalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"inline", []Option{WithInlineHandlers(), WithWriteTimeout(0)}},
		{"workers", []Option{WithWriteTimeout(0)}},
	} {
		t.Run(tc.name+"/stops reading", func(t *testing.T) {
			e := startUDS(t, BaseHandler{}, tc.opts...)
			stallPeer(t, e, true)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- e.srv.Shutdown(ctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("Shutdown did not return within its bound")
			}
		})
		t.Run(tc.name+"/vanishes", func(t *testing.T) {
			e := startUDS(t, BaseHandler{}, tc.opts...)
			p := stallPeer(t, e, true)
			p.c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			if err := e.srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown = %v, want nil", err)
			}
			if n := e.srv.Stats().Conns; n != 0 {
				t.Fatalf("%d connections left after Shutdown", n)
			}
		})
	}
}
