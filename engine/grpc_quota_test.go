package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// quotaWindow is the agent's HTTP/2 stream window in these tests (fixed:
// grpc.InitialWindowSize turns grpc-go's dynamic window off).
const quotaWindow = 64 << 10

// sizedEvent returns a request-headers event for cid whose gRPC message
// (with its 5-byte prefix) is exactly n bytes.
func sizedEvent(t *testing.T, cid string, n int) *agentwire.RequestHeadersEvent {
	t.Helper()
	enc := grpcEncoder{maxSend: DefaultMaxMessageSize}
	pad := n
	for range 4 {
		ev := headersEvent(cid)
		ev.Metadata.Timestamp = time.UnixMilli(1_700_000_000_000)
		ev.Headers = append(ev.Headers, agentwire.Header{Name: "x-pad", Values: []string{strings.Repeat("p", pad)}})
		buf, err := enc.requestHeaders(ev, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := buf.Len() + grpcPrefixLen
		buf.Free()
		if got == n {
			return ev
		}
		pad += n - got
	}
	t.Fatalf("no event of %d bytes", n)
	return nil
}

// TestGRPCSlowReaderCallsReturnByDeadline: an agent that answers but has
// not read what the stream was fed. One call's event fills the agent's
// window and grpc-go's write quota for the stream up to its last byte;
// the cancel of that call (it times out) uses the last byte up; the agent
// then sends a message (a health report) without reading. A call alone in
// flight that finds the writer idle must not hand its event to SendMsg,
// which would wait there until the write timeout (5 s): it leaves the
// event to the writer and returns ErrTimeout at its deadline, as do calls
// started meanwhile (queued behind the writer's blocked send), and the
// writer's wait costs no CPU (it does not spin for the write role). Once
// the agent reads again, the same stream answers, and the next call alone
// sends its event itself again.
//
// Without the fix (tryFlush sending whenever it is called) the lone call
// returned after the write timeout, with ErrConnectionLost, and the
// writer spun for the write role all along.
func TestGRPCSlowReaderCallsReturnByDeadline(t *testing.T) {
	sendHealth := make(chan struct{})
	resume := make(chan struct{})
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := acceptHandshake(stream, nil); err != nil {
			return err
		}
		select {
		case <-sendHealth:
		case <-stream.Context().Done():
			return nil
		}
		if err := stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Health{Health: &pb.HealthStatus{
			AgentId: "fake", State: int32(pb.HealthState_HEALTH_STATE_HEALTHY),
		}}}); err != nil {
			return err
		}
		select {
		case <-resume:
		case <-stream.Context().Done():
			return nil
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				return nil
			}
			if cid := m.GetRequestHeaders().GetMetadata().GetCorrelationId(); cid != "" {
				if err := stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{CorrelationId: cid}}}); err != nil {
					return err
				}
			}
		}
	}}, grpc.InitialWindowSize(quotaWindow), grpc.InitialConnWindowSize(quotaWindow))
	healthSeen := make(chan struct{}, 1)
	c := dial(t, addr, WithGRPCWindow(64<<10), WithWriteTimeout(5*time.Second),
		WithOnHealth(func(agentwire.HealthStatus) {
			select {
			case healthSeen <- struct{}{}:
			default:
			}
		}))
	s := c.sess.Load()
	g := grpcOf(t, c)

	// The handshake and the big event end the stream one byte short of
	// window plus quota: grpc-go's writer writes the window's worth, and
	// one byte of quota is left for the cancel.
	big := sizedEvent(t, "big", quotaWindow+grpcWriteQuota-1-int(g.handed))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := c.RequestHeaders(ctx, big)
	cancel()
	mustKind(t, err, ErrTimeout)
	if g.directSends != 1 {
		t.Fatalf("%d direct sends, want 1 (the big event)", g.directSends)
	}
	waitUntil(t, "the writer to send the cancel and go idle", nil, func() bool {
		return c.Stats().CancelsSent == 1 && s.out.Len() == 0 && s.wrole.Load() == 0
	})
	close(sendHealth)
	select {
	case <-healthSeen:
	case <-time.After(testTimeout):
		t.Fatal("no health report")
	}

	const deadline = 150 * time.Millisecond
	const slack = time.Second // a loaded machine under -race
	type outcome struct {
		err  error
		took time.Duration
	}
	call := func(cid string, out chan<- outcome) {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		_, err := c.RequestHeaders(ctx, headersEvent(cid))
		out <- outcome{err, time.Since(start)}
	}
	waits := s.roleWaits.Load()
	sent := c.Stats().Sent
	lone := make(chan outcome, 1)
	go call("lone", lone)
	waitUntil(t, "the lone call's event to be collected", nil, func() bool { return c.Stats().Sent == sent+1 })
	const others = 4
	more := make(chan outcome, others)
	for i := range others {
		go call(fmt.Sprint("other-", i), more)
	}
	check := func(what string, o outcome) {
		t.Helper()
		if !errors.Is(o.err, ErrTimeout) || o.took > deadline+slack {
			t.Errorf("%s: %v after %v, want ErrTimeout by its %v deadline", what, o.err, o.took, deadline)
		}
	}
	within(t, 10*time.Second, "the calls", func() {
		check("lone call", <-lone)
		for range others {
			check("concurrent call", <-more)
		}
	})
	if n := s.roleWaits.Load() - waits; n > 1000 {
		t.Errorf("the writer waited %d turns for the write role while a send was blocked", n)
	}
	if t.Failed() {
		return
	}

	close(resume)
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); err != nil {
		t.Fatal(err)
	}
	direct := g.directSends
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("direct-again")); err != nil {
		t.Fatal(err)
	}
	if g.directSends != direct+1 {
		t.Fatalf("a call alone after the agent caught up was not sent directly (%d direct sends, want %d)", g.directSends, direct+1)
	}
	if st := c.Stats(); st.Reconnects != 0 || st.ConnectionLost != 0 {
		t.Fatalf("the stream did not survive: %+v", st)
	}
}

// TestGRPCWriteQuota pins what grpcWriteQuota says of grpc-go: with the
// agent's window full (it reads nothing), SendMsg takes messages while
// fewer than grpcWriteQuota bytes wait to be written, and waits once that
// many do, until the agent reads.
func TestGRPCWriteQuota(t *testing.T) {
	read := make(chan struct{})
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		select {
		case <-read:
		case <-stream.Context().Done():
			return nil
		}
		for {
			if _, err := stream.Recv(); err != nil {
				return nil
			}
		}
	}}, grpc.InitialWindowSize(quotaWindow), grpc.InitialConnWindowSize(quotaWindow))
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	st, err := cc.NewStream(ctx, &processStreamDesc, processStreamMethod, grpc.ForceCodecV2(wireCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	// An empty AgentToProxy-shaped message of n bytes with its prefix: the
	// agent only reads bytes off the stream (its Recv may fail to decode;
	// it stops reading then, which changes nothing here).
	send := func(n int) <-chan error {
		done := make(chan error, 1)
		go func() {
			var f sendFrame
			done <- sendOn(st, &f, mem.SliceBuffer(make([]byte, n-grpcPrefixLen)))
		}()
		return done
	}
	// The window's worth is written; one byte short of the quota waits.
	mustNoErrWithin(t, send(quotaWindow+grpcWriteQuota-1), 5*time.Second, "a send within window and quota")
	// One byte of quota left: taken without waiting for the agent.
	mustNoErrWithin(t, send(grpcPrefixLen+1), 5*time.Second, "a send with one byte of quota left")
	// None left: this one waits for the agent.
	blocked := send(grpcPrefixLen + 1)
	select {
	case err := <-blocked:
		t.Fatalf("a send with the quota used up returned (%v) while the agent reads nothing", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(read)
	mustNoErrWithin(t, blocked, 5*time.Second, "the blocked send once the agent reads")
}

// TestGRPCAckReplyMarks: the reader advances acked to the end recorded in
// a claimed pending, across the wrap of the 32-bit marks; an older mark
// or none (0) leaves it.
func TestGRPCAckReplyMarks(t *testing.T) {
	g := &grpcTransport{}
	s := &session{grpc: g}
	p := &pending{}
	ack := func(queued uint64) uint64 {
		t.Helper()
		g.queued = queued
		s.markSent(p)
		s.ackReply(p)
		return g.acked.Load()
	}
	if a := ack(100 << grpcMarkShift); a != 100 {
		t.Fatalf("acked %d, want 100", a)
	}
	if a := ack(50 << grpcMarkShift); a != 100 {
		t.Fatalf("an older reply moved acked to %d", a)
	}
	// Rounded down to whole units: never further than the event's end.
	if a := ack(130<<grpcMarkShift + 63); a != 130 {
		t.Fatalf("acked %d, want 130", a)
	}
	g.acked.Store(1<<32 - 10)
	if a := ack((1<<32 + 5) << grpcMarkShift); a != 1<<32+5 {
		t.Fatalf("across the wrap: acked %d, want %d", a, uint64(1<<32+5))
	}
	// A mark that wraps to 0 is not recorded.
	p.sentEnd = 0
	if a := ack(1 << 32 << 1 << grpcMarkShift); a != 1<<32+5 {
		t.Fatalf("a 0 mark moved acked to %d", a)
	}
	// Sends go on while fewer than grpcWriteQuota bytes past acked were
	// handed to grpc-go.
	g.acked.Store(100)
	g.handed = 100<<grpcMarkShift + grpcWriteQuota - 1
	if !g.mayNotWait() {
		t.Fatal("a send with one byte of quota left said to wait")
	}
	g.handed++
	if g.mayNotWait() {
		t.Fatal("a send with no quota left said not to wait")
	}
}

// TestPendingSize: the stream mark (sentEnd) sits in the padding after
// wstate, so a pending stays 64 bytes (a 64-byte size class) with the
// pendingMap's chain link and hash in it; every request waiting for its
// reply holds one.
func TestPendingSize(t *testing.T) {
	if n := unsafe.Sizeof(pending{}); n != 64 {
		t.Fatalf("pending is %d bytes, want 64", n)
	}
}
