package agent

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// TestGRPCInlineRepliesSentDirectly: on an inline ProcessStream whose
// writer is idle, the reader sends each reply itself (sendDirect) instead
// of queueing it for the writer (one event in flight at a time, as at low
// load); a pong still goes through the writer.
func TestGRPCInlineRepliesSentDirectly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := NewServer(echoHandler{}, WithInlineHandlers())
		defer srv.Close()
		transport, endTransport := context.WithCancel(context.Background())
		defer endTransport()
		fs := newFakeServerStream(transport)
		fs.stalled.Store(true) // no send stalls
		serveFake(srv, fs)
		synctest.Wait() // answered; the writer is idle again
		const n = 5
		for i := range n {
			fs.in <- reqHeaders(fmt.Sprintf("c-%d", i), "/")
			synctest.Wait()
		}
		fs.in <- ping(9)
		synctest.Wait()
		fs.mu.Lock()
		var order []string
		for _, m := range fs.sent[1:] { // after the handshake answer
			if r := m.GetResponse(); r != nil {
				order = append(order, r.GetCorrelationId())
			} else if p := m.GetPong(); p != nil {
				order = append(order, fmt.Sprint("pong ", p.Sequence))
			}
		}
		fs.mu.Unlock()
		if want := "[c-0 c-1 c-2 c-3 c-4 pong 9]"; fmt.Sprint(order) != want {
			t.Fatalf("sent %v, want %s", order, want)
		}
		if got := fs.direct.Load(); got != n {
			t.Fatalf("%d of %d replies sent by the reader itself, want all", got, n)
		}
		endTransport()
		<-fs.returned
	})
}

// TestGRPCInlineDirectSendNotAfterReturn: when the server is closed while
// the reader's own send of a reply is stalled, processStream returns only
// after that send has ended (grpc-go forbids SendMsg after the handler
// returned).
func TestGRPCInlineDirectSendNotAfterReturn(t *testing.T) {
	srv := NewServer(echoHandler{}, WithInlineHandlers())
	transport, endTransport := context.WithCancel(context.Background())
	defer endTransport()
	fs := newFakeServerStream(transport)
	fs.stallDirect = true
	serveFake(srv, fs)
	<-fs.notify
	// One event at a time until the reader sends a reply itself (the
	// writer may still hold the send lock after its last send).
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("100 replies, none sent by the reader")
		}
		fs.in <- reqHeaders(fmt.Sprint("c-", i), "/")
		select {
		case <-fs.notify:
			continue
		case <-fs.stalling:
		}
		break
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	// processStream must not return while the send is stalled; give a
	// wrong implementation time to do so before the send completes.
	select {
	case <-fs.returned:
		t.Error("processStream returned while the reader was in SendMsg")
	case <-time.After(200 * time.Millisecond):
	}
	close(fs.release)
	<-closed
	<-fs.returned
	if n := fs.lateSends(); n != 0 {
		t.Fatalf("%d SendMsg calls after (or running at) the handler's return, want 0", n)
	}
	if got := fs.direct.Load(); got != 1 {
		t.Fatalf("%d replies sent by the reader, want the stalled one", got)
	}
}
