//go:build !race

package engine

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
)

// The per-request path with the transport replaced by memory: encode into
// a pooled buffer, pending registration, ring hand-off to the writer,
// reply decode on the reader, completion. Measured numbers (this machine,
// Go 1.26): RequestHeadersInto no allocation per round trip (the pending
// registration threads the pooled entry into the map's chains, pendmap.go;
// the xsync map it replaced allocated one entry per call), RequestHeaders
// 1 (the returned reply).
func TestAllocsPerRoundTrip(t *testing.T) {
	c := memConn(t)
	ctx := context.Background()
	ev := headersEvent("alloc-probe")
	dst := new(agentwire.AgentResponse)
	for range 100 { // warm pools, map and ring
		if err := c.RequestHeadersInto(ctx, ev, dst); err != nil {
			t.Fatal(err)
		}
	}
	const n = 2000
	into := allocs.AtMost(t, "RequestHeadersInto", n, 0, func() {
		if err := c.RequestHeadersInto(ctx, ev, dst); err != nil {
			t.Fatal(err)
		}
	})
	plain := allocs.AtMost(t, "RequestHeaders", n, 1, func() {
		r, err := c.RequestHeaders(ctx, ev)
		if err != nil || r.CorrelationID != "alloc-probe" {
			t.Fatal(err)
		}
	})
	withDeadline := allocs.AtMost(t, "RequestHeadersInto with a context deadline", n, 0, func() {
		if err := c.RequestHeadersInto(deadlineCtx, ev, dst); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations in %d round trips: RequestHeadersInto %d, RequestHeaders %d, with a context deadline %d", n, into, plain, withDeadline)
}

var deadlineCtx, _ = context.WithTimeout(context.Background(), 1<<62)

func TestAllocsEncode(t *testing.T) {
	tr := &grpcEncoder{maxSend: DefaultMaxMessageSize}
	ev := headersEvent("enc")
	for range 10 {
		b, _ := tr.requestHeaders(ev, 1)
		b.Free()
	}
	allocs.Zero(t, "encode request headers into a pooled buffer", 1000, func() {
		b, err := tr.requestHeaders(ev, 1)
		if err != nil {
			t.Fatal(err)
		}
		b.Free()
	})
	chunk := &agentwire.BodyChunk{CorrelationID: "enc", Data: make([]byte, 16<<10), IsLast: true}
	allocs.Zero(t, "encode a 16 KiB body chunk", 1000, func() {
		b, err := tr.bodyChunk(chunk, false, 1)
		if err != nil {
			t.Fatal(err)
		}
		b.Free()
	})
}
