package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/agentwire/agentwire"
)

// TestGRPCInlineHandlers: with WithInlineHandlers a ProcessStream runs its
// handlers on the stream's reader, one at a time in arrival order (with
// workers, these slow handlers would overlap), the replies keep that order,
// and a ping sent after the events is answered after their replies.
func TestGRPCInlineHandlers(t *testing.T) {
	var active, maxActive atomic.Int32
	hh := newHookHandler()
	hh.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		n := active.Add(1)
		for {
			m := maxActive.Load()
			if n <= m || maxActive.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		active.Add(-1)
		r.Decision = agentwire.Block(403)
		r.Decision.Body = agentwire.Some(ev.URI)
		return nil
	}
	e := startEnv(t, hh, "tcp", WithInlineHandlers(), WithMaxConcurrency(8))
	p := e.open()
	const n = 8
	for i := range n {
		cid := fmt.Sprintf("c-%d", i)
		p.send(reqHeaders(cid, "/"+cid))
	}
	p.send(ping(7))
	for i := range n {
		m := p.recv()
		r := m.GetResponse()
		if r == nil {
			t.Fatalf("message %d: %v, want the reply to c-%d", i, m, i)
		}
		cid := fmt.Sprintf("c-%d", i)
		if r.GetCorrelationId() != cid || r.GetBlock().GetStatus() != 403 || r.GetBlock().GetBody() != "/"+cid {
			t.Fatalf("reply %d: %v", i, r)
		}
	}
	if m := p.recv(); m.GetPong().GetSequence() != 7 {
		t.Fatalf("after the replies: %v, want pong 7", m)
	}
	if m := maxActive.Load(); m != 1 {
		t.Fatalf("%d handlers ran at once, want 1 (inline)", m)
	}
}

// onlyStream returns the server's one ProcessStream.
func onlyStream(t *testing.T, srv *Server) *procStream {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.streams) != 1 {
		t.Fatalf("%d streams, want 1", len(srv.streams))
	}
	for st := range srv.streams {
		return st
	}
	return nil
}

// TestGRPCInlineEventsNotBooked: while an inline handler runs, its event
// holds no concurrency slot and is not in the stream's in-flight table
// (the reader reads a cancel only after the handler returned, so neither
// could act, see grpc_direct.go); with workers an event holds both, so
// that a cancel reaches it. Seen failing (inline: 1 slot, 1 id) with the
// inline path booking as the workers' path does.
func TestGRPCInlineEventsNotBooked(t *testing.T) {
	for _, inline := range []bool{true, false} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var st *procStream
				var slots, ids int
				hh := newHookHandler()
				hh.reqHeaders = func(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error {
					slots = len(st.sem)
					st.inflight.mu.Lock()
					ids = len(st.inflight.m)
					st.inflight.mu.Unlock()
					return nil
				}
				var opts []Option
				if inline {
					opts = append(opts, WithInlineHandlers())
				}
				srv := NewServer(hh, opts...)
				defer srv.Close()
				transport, endTransport := context.WithCancel(context.Background())
				defer endTransport()
				fs := newFakeServerStream(transport)
				fs.stalled.Store(true) // no send stalls
				serveFake(srv, fs)
				synctest.Wait()
				st = onlyStream(t, srv)
				fs.in <- reqHeaders("c-1", "/")
				synctest.Wait()
				want := 0
				if !inline {
					want = 1
				}
				if slots != want || ids != want {
					t.Errorf("while the handler ran: %d slots taken and %d ids in the in-flight table, want %d and %d", slots, ids, want, want)
				}
				fs.mu.Lock()
				n := len(fs.sent)
				fs.mu.Unlock()
				if n != 2 {
					t.Errorf("%d messages sent, want the handshake answer and the reply", n)
				}
				endTransport()
				<-fs.returned
			})
		})
	}
}

// TestGRPCInlineShutdownWaitsForRunningEvent: Shutdown while an inline
// handler runs on the reader waits for it (the event takes no slot for
// waitHandlers to wait on; waitInline does): processStream returns only
// after the handler's reply was sent, and an event that arrives meanwhile
// is not handled. Seen failing with waitInline returning at once:
// processStream returned while the handler was still running and the
// reply was never sent.
func TestGRPCInlineShutdownWaitsForRunningEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var handled []string
		hh := newHookHandler()
		hh.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
			handled = append(handled, ev.Metadata.CorrelationID)
			if ev.Metadata.CorrelationID == "held" {
				<-release
			}
			return nil
		}
		srv := NewServer(hh, WithInlineHandlers())
		defer srv.Close()
		var releaseOnce sync.Once
		releaseHandler := func() { releaseOnce.Do(func() { close(release) }) }
		defer releaseHandler() // before Close, which waits for the handler
		transport, endTransport := context.WithCancel(context.Background())
		defer endTransport()
		fs := newFakeServerStream(transport)
		fs.stalled.Store(true) // no send stalls
		serveFake(srv, fs)
		synctest.Wait()
		fs.in <- reqHeaders("held", "/")
		synctest.Wait() // the handler waits for release
		shutdown := make(chan error, 1)
		go func() { shutdown <- srv.Shutdown(context.Background()) }()
		synctest.Wait()
		fs.in <- reqHeaders("late", "/")
		synctest.Wait()
		if fs.isReturned() {
			t.Fatal("processStream returned while an inline handler was running")
		}
		releaseHandler()
		synctest.Wait()
		if !fs.isReturned() {
			t.Fatal("processStream did not return after the handler")
		}
		if err := <-shutdown; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		var replies []string
		fs.mu.Lock()
		for _, m := range fs.sent {
			if r := m.GetResponse(); r != nil {
				replies = append(replies, r.GetCorrelationId())
			}
		}
		fs.mu.Unlock()
		if fmt.Sprint(replies) != "[held]" || fmt.Sprint(handled) != "[held]" {
			t.Fatalf("handled %v, replies %v; want only the event that was running", handled, replies)
		}
	})
}
