package agent

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc/metadata"
)

// fakeServerStream is the server side of a ProcessStream without grpc-go,
// for checking the rule grpc-go imposes on stream handlers: no SendMsg may
// run after the handler returned. The test closes returned when
// processStream has returned; ctx plays the transport (cancelled: the
// connection is gone, as when grpc.Server.Stop closes it). Like grpc-go,
// RecvMsg and a stalled SendMsg end when the stream ends (the handler
// returned) or the transport does.
type fakeServerStream struct {
	ctx      context.Context
	in       chan *pb.ProxyToAgent
	returned chan struct{}
	// stall: the first pong's SendMsg blocks until the stream or the
	// transport ends, like a send waiting for flow-control window from a
	// proxy that stopped reading.
	stalled atomic.Bool
	release chan struct{} // closed by the test: the stalled send completes
	// stallDirect: the first reply the reader sends itself stalls instead
	// of the first pong; stalling is closed when the stalled send begins.
	stallDirect bool
	stalling    chan struct{}
	// notify gets a value after every completed send (when not full).
	notify chan struct{}
	// direct counts the replies sent by the reader itself (sendDirect).
	direct atomic.Int32

	mu   sync.Mutex
	sent []*pb.AgentToProxy
	late int // SendMsg calls started after the return, or running at it
}

func newFakeServerStream(ctx context.Context) *fakeServerStream {
	return &fakeServerStream{ctx: ctx, in: make(chan *pb.ProxyToAgent, 16), returned: make(chan struct{}), release: make(chan struct{}),
		stalling: make(chan struct{}), notify: make(chan struct{}, 64)}
}

// serveFake runs srv.processStream on fs (fs.returned is closed when it
// returns) and sends the handshake.
func serveFake(srv *Server, fs *fakeServerStream) {
	go func() {
		_ = srv.processStream(fs)
		close(fs.returned)
	}()
	fs.in <- handshakeMsg(2)
}

func (f *fakeServerStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeServerStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeServerStream) SetTrailer(metadata.MD)       {}
func (f *fakeServerStream) Context() context.Context     { return f.ctx }

func (f *fakeServerStream) isReturned() bool {
	select {
	case <-f.returned:
		return true
	default:
		return false
	}
}

func (f *fakeServerStream) SendMsg(m any) error {
	if f.isReturned() {
		f.mu.Lock()
		f.late++
		f.mu.Unlock()
	}
	var msg *pb.AgentToProxy
	stall := false
	switch v := m.(type) {
	case *pb.AgentToProxy:
		msg = v
	case *grpcReply: // a reply, as grpc-go's codec would encode it
		b, err := v.MarshalVT()
		if err != nil {
			return err
		}
		msg = new(pb.AgentToProxy)
		if err := msg.UnmarshalVT(b); err != nil {
			return err
		}
		if sentDirectly() {
			f.direct.Add(1)
			stall = f.stallDirect
		}
	}
	if !f.stallDirect && msg.GetPong() != nil {
		stall = true
	}
	if stall && f.stalled.CompareAndSwap(false, true) {
		close(f.stalling)
		select {
		case <-f.returned:
			// The handler returned while this send was running.
			f.mu.Lock()
			f.late++
			f.mu.Unlock()
		case <-f.ctx.Done():
			return errors.New("transport closed")
		case <-f.release:
		}
	}
	f.mu.Lock()
	f.sent = append(f.sent, msg.CloneVT())
	f.mu.Unlock()
	select {
	case f.notify <- struct{}{}:
	default:
	}
	return nil
}

// sentDirectly reports whether the calling goroutine is in the reader's
// sendDirect (its stack says so).
func sentDirectly() bool {
	buf := make([]byte, 16<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "(*procStream).sendDirect")
}

func (f *fakeServerStream) RecvMsg(m any) error {
	select {
	case msg := <-f.in:
		b, err := msg.MarshalVT()
		if err != nil {
			return err
		}
		return m.(*inbound).UnmarshalVT(b)
	case <-f.ctx.Done():
		return f.ctx.Err()
	case <-f.returned:
		return context.Canceled
	}
}

func (f *fakeServerStream) lateSends() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.late
}

// pongs returns the sequence numbers of the pongs sent.
func (f *fakeServerStream) pongs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint64
	for _, m := range f.sent {
		if p := m.GetPong(); p != nil {
			out = append(out, p.Sequence)
		}
	}
	return out
}

// TestGRPCWriterNoSendAfterReturn: when the server is closed (directly, or
// by Shutdown when its context ends) while the stream's writer is stuck in
// SendMsg with more replies queued, processStream returns only after the
// writer has exited, and the writer sends nothing once the server is
// closed. Before, processStream returned at once and the writer went on
// sending the queued replies after the handler had returned. The stalled
// send ends either by the transport closing or by completing ("close,
// send completes": the queued pongs are dropped, not sent, since the
// server is closed).
func TestGRPCWriterNoSendAfterReturn(t *testing.T) {
	for _, how := range []string{"close", "shutdown timeout", "close, send completes"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := NewServer(BaseHandler{})
				transport, endTransport := context.WithCancel(context.Background())
				defer endTransport()
				fs := newFakeServerStream(transport)
				serveFake(srv, fs)
				for seq := range uint64(3) {
					fs.in <- ping(seq)
				}
				// The handshake answer is sent, the first pong's send
				// stalls, the other two pongs wait in the queue.
				synctest.Wait()

				closed := make(chan struct{})
				switch how {
				case "close", "close, send completes":
					go func() { srv.Close(); close(closed) }()
				default:
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), time.Second)
						defer cancel()
						_ = srv.Shutdown(ctx)
						close(closed)
					}()
					// Virtual time: lets Shutdown's context expire, which
					// makes it fall back to Close.
					time.Sleep(2 * time.Second)
				}
				synctest.Wait()
				if fs.isReturned() {
					t.Error("processStream returned while its writer was in SendMsg")
				}
				if how == "close, send completes" {
					close(fs.release)
				} else {
					// The transport ends the stalled send (grpc.Server.Stop,
					// which Close calls for the server ServeGRPC created,
					// closes it).
					endTransport()
				}
				<-closed
				<-fs.returned
				if n := fs.lateSends(); n != 0 {
					t.Fatalf("%d SendMsg calls after (or running at) the handler's return, want 0", n)
				}
				if got, want := len(fs.pongs()), 0; how != "close, send completes" && got != want {
					t.Fatalf("pongs sent %v, want none", fs.pongs())
				}
				if got := fs.pongs(); how == "close, send completes" && (len(got) != 1 || got[0] != 0) {
					t.Fatalf("pongs sent %v, want only the stalled one (0): the server was closed", got)
				}
			})
		})
	}
}
