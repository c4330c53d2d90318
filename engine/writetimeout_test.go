package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// TestUDSSlowReaderIsNotStuck: an agent that reads slowly (30 ms per
// 64 KiB event, a megabyte queued at once: far more than the socket
// holds, and no max_concurrency to hold the calls back) keeps each write
// blocked much longer than the write timeout (400 ms) but accepts bytes
// all along: it is busy, not stuck, and its session must survive. The
// write timeout used to bound the whole write, and failed it.
func TestUDSSlowReaderIsNotStuck(t *testing.T) {
	caps := fullCaps("slow")
	caps.Limits.MaxConcurrency = 0 // announces no limit
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshakeCaps("", caps) != nil {
			return
		}
		for {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ == frame.TypeRequestBodyChunk {
				time.Sleep(30 * time.Millisecond)
				if rc.reply(eventID(p)) != nil {
					return
				}
			}
		}
	})
	// 32 events take about a second to be read, far longer than the
	// write timeout; 400 ms leaves room for a loaded machine under -race
	// between two reads (150 ms was seen to fail).
	c := dialUDS(t, fa.path, WithWriteTimeout(400*time.Millisecond))
	const n = 32
	body := bytes.Repeat([]byte("x"), 64<<10)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: fmt.Sprint("slow-", i), Data: body})
			errs <- err
		}()
	}
	for range n {
		mustNoErrWithin(t, errs, 10*time.Second, "a call to the slow agent")
	}
	if st := c.Stats(); st.ConnectionLost != 0 || st.Reconnects != 0 {
		t.Fatalf("slow agent taken for a stuck one: %+v", st)
	}
}

// TestGRPCAgentStopsReading: a gRPC agent whose handler stops calling Recv
// after the handshake (HTTP/2 windows of 64 KiB on both sides) lets the
// stream's window fill, after which the writer's SendMsg blocks without
// bound. The write timeout (200 ms) watches each SendMsg: the session
// fails with ErrConnectionLost (the cause says the agent is not reading)
// long before the calls' own deadlines, and the Conn reconnects to the
// agent, which reads again on its second stream.
func TestGRPCAgentStopsReading(t *testing.T) {
	var streams atomic.Int32
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := acceptHandshake(stream, nil); err != nil {
			return err
		}
		if streams.Add(1) == 1 {
			<-stream.Context().Done() // never reads again
			return nil
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				return nil
			}
			if cid := m.GetRequestHeaders().GetMetadata().GetCorrelationId(); cid != "" {
				_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{CorrelationId: cid}}})
			}
		}
	}}, grpc.InitialWindowSize(64<<10), grpc.InitialConnWindowSize(64<<10))
	c := dial(t, addr, WithGRPCWindow(64<<10), WithWriteTimeout(200*time.Millisecond),
		WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))
	const n = 16
	body := bytes.Repeat([]byte("x"), 64<<10) // 1 MiB in all: far beyond the window
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		go func() {
			_, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: fmt.Sprint("g-", i), Data: body})
			errs <- err
		}()
	}
	lost := 0
	within(t, 10*time.Second, "every call fails", func() {
		for range n {
			err := <-errs
			if errors.Is(err, ErrNotConnected) {
				continue // started after the session had failed
			}
			mustKind(t, err, ErrConnectionLost)
			if !strings.Contains(err.Error(), "not reading") {
				t.Errorf("cause does not say the agent is not reading: %v", err)
			}
			lost++
		}
	})
	if lost == 0 {
		t.Fatal("no call failed with the stuck session")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("calls failed after %v with a 200ms write timeout", d)
	}
	waitUntil(t, "reconnect", nil, func() bool { return c.Stats().Reconnects == 1 && c.Health().Connected })
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); err != nil {
		t.Fatal(err)
	}
}

// TestGRPCSlowReaderIsNotStuck: a gRPC agent that reads one 64 KiB
// message per 30 ms through 64 KiB windows keeps the writer's SendMsg
// waiting for window updates all along, but each one completes well
// within the write timeout (400 ms): the session survives.
func TestGRPCSlowReaderIsNotStuck(t *testing.T) {
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := acceptHandshake(stream, nil); err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				return nil
			}
			if cid := m.GetRequestBodyChunk().GetCorrelationId(); cid != "" {
				time.Sleep(30 * time.Millisecond)
				_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{CorrelationId: cid}}})
			}
		}
	}}, grpc.InitialWindowSize(64<<10), grpc.InitialConnWindowSize(64<<10))
	// 32 messages take about a second to be read, far longer than the
	// write timeout, while each one waits far less than it (400 ms leaves
	// room for a loaded machine under -race: 150 ms was seen to fail).
	c := dial(t, addr, WithGRPCWindow(64<<10), WithWriteTimeout(400*time.Millisecond))
	const n = 32
	body := bytes.Repeat([]byte("x"), 64<<10)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: fmt.Sprint("gs-", i), Data: body})
			errs <- err
		}()
	}
	for range n {
		mustNoErrWithin(t, errs, 10*time.Second, "a call to the slow agent")
	}
	if st := c.Stats(); st.ConnectionLost != 0 || st.Reconnects != 0 {
		t.Fatalf("slow agent taken for a stuck one: %+v", st)
	}
}

// TestGRPCCallDeadlineAgentStopsReading: calls one at a time to a gRPC
// agent that stopped reading each end at their own deadline, also once the
// stream's window and grpc-go's write quota are full and a send would
// block until the write timeout (5 s here): once grpcWriteQuota bytes
// that the agent has not answered were handed to grpc-go, the callers
// leave their events to the writer (which may block in SendMsg) instead
// of sending them themselves (grpc_direct.go).
func TestGRPCCallDeadlineAgentStopsReading(t *testing.T) {
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := acceptHandshake(stream, nil); err != nil {
			return err
		}
		<-stream.Context().Done() // never reads again
		return nil
	}}, grpc.InitialWindowSize(64<<10), grpc.InitialConnWindowSize(64<<10))
	c := dial(t, addr, WithGRPCWindow(64<<10), WithWriteTimeout(5*time.Second))
	// 8 KiB per event: the stream's window (64 KiB) and then grpc-go's
	// write quota for the stream (64 KiB more) are full after 16.
	big := strings.Repeat("v", 8<<10)
	for i := range 40 {
		ev := headersEvent(fmt.Sprint("d-", i))
		ev.Headers = append(ev.Headers, agentwire.Header{Name: "x-big", Values: []string{big}})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		start := time.Now()
		_, err := c.RequestHeaders(ctx, ev)
		cancel()
		if err == nil {
			t.Fatalf("call %d answered by an agent that does not read", i)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("call %d with a 50ms deadline returned after %v (%v)", i, d, err)
		}
	}
	// Read on the calling goroutine, which did the direct sends: the
	// handshake and 8 events of more than 8 KiB reach grpcWriteQuota.
	if n := grpcOf(t, c).directSends; n < 1 || n > 8 {
		t.Fatalf("%d direct sends to an agent that never answered, want 1 to 8", n)
	}
}
