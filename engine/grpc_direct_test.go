package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// grpcOf returns c's gRPC transport.
func grpcOf(t testing.TB, c *Conn) *grpcTransport {
	t.Helper()
	s := c.sess.Load()
	if s == nil {
		t.Fatal("no session")
		return nil
	}
	g, ok := s.t.(*grpcTransport)
	if !ok {
		t.Fatalf("transport is %T", s.t)
	}
	return g
}

// TestGRPCDirectSendAtOneInFlight: sequential calls over gRPC send their
// request-headers events themselves (grpc_direct.go); the writer
// goroutine never handles them.
func TestGRPCDirectSendAtOneInFlight(t *testing.T) {
	a := startAgent(t, newTestAgent())
	c := dial(t, a.addr)
	for i := range 5 {
		cid := "direct-" + string(rune('a'+i))
		r, err := c.RequestHeaders(testCtx(t), headersEvent(cid))
		if err != nil {
			t.Fatal(err)
		}
		if r.CorrelationID != cid {
			t.Fatalf("reply for %q, want %q", r.CorrelationID, cid)
		}
	}
	// Read on the calling goroutine, which did the sends.
	if n := grpcOf(t, c).directSends; n != 5 {
		t.Fatalf("%d direct sends, want 5", n)
	}
	if st := c.Stats(); st.Sent < 5 || st.Received != 5 {
		t.Fatalf("stats %+v", st)
	}
}

// recordStream is a grpc.ClientStream whose SendMsg records the bytes of
// each sendFrame (what the wire codec would hand to grpc-go).
type recordStream struct {
	grpc.ClientStream
	sent []string
}

func (r *recordStream) SendMsg(m any) error {
	f := m.(*sendFrame)
	r.sent = append(r.sent, string(f.buf.ReadOnlyData()))
	f.taken = true
	f.buf.Free()
	return nil
}

// TestGRPCBatchKeepsOrder: events collected for a flush go out before a
// message sent after them (send flushes the batch first), in the order
// they were collected; a full batch is flushed at grpcMaxBatch.
func TestGRPCBatchKeepsOrder(t *testing.T) {
	rs := &recordStream{}
	tr := &grpcTransport{stream: rs, grpcEncoder: grpcEncoder{maxSend: DefaultMaxMessageSize}}
	want := func(cids ...string) []string {
		var out []string
		for _, cid := range cids {
			b, err := tr.requestHeaders(headersEvent(cid), 1)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b.ReadOnlyData()))
			b.Free()
		}
		return out
	}
	for _, cid := range []string{"a", "b"} {
		ev := headersEvent(cid)
		ev.Metadata.Timestamp = time.UnixMilli(1)
		if err := tr.appendRequestHeadersEvent(ev); err != nil {
			t.Fatal(err)
		}
	}
	if len(rs.sent) != 0 || tr.batchEmpty() {
		t.Fatalf("sent %d before a flush; batch empty %v", len(rs.sent), tr.batchEmpty())
	}
	ping, err := tr.ping(7, 1)
	if err != nil {
		t.Fatal(err)
	}
	pingBytes := string(ping.ReadOnlyData())
	if err := tr.send(outbound{buf: ping}); err != nil {
		t.Fatal(err)
	}
	if got, w := rs.sent, append(want("a", "b"), pingBytes); !slices.Equal(got, w) {
		t.Fatalf("sent %d messages in the wrong order or form", len(got))
	}
	rs.sent = nil
	for i := range grpcMaxBatch {
		ev := headersEvent(fmt.Sprint("c", i))
		ev.Metadata.Timestamp = time.UnixMilli(1)
		if err := tr.appendRequestHeadersEvent(ev); err != nil {
			t.Fatal(err)
		}
		if err := tr.batchFull(); err != nil {
			t.Fatal(err)
		}
	}
	if len(rs.sent) != grpcMaxBatch || !tr.batchEmpty() {
		t.Fatalf("%d sent after %d collected events; batch empty %v", len(rs.sent), grpcMaxBatch, tr.batchEmpty())
	}
}
