//go:build !race

package engine

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire"
)

// The per-request path with the transport replaced by memory: encode into
// a pooled buffer, pending registration, ring hand-off to the writer,
// reply decode on the reader, completion. Measured numbers (this machine,
// Go 1.26): RequestHeadersInto 1 allocation per round trip (the xsync map
// entry of the pending registration), RequestHeaders 2 (plus the returned
// reply).
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
	into := testing.AllocsPerRun(2000, func() {
		if err := c.RequestHeadersInto(ctx, ev, dst); err != nil {
			t.Fatal(err)
		}
	})
	plain := testing.AllocsPerRun(2000, func() {
		r, err := c.RequestHeaders(ctx, ev)
		if err != nil || r.CorrelationID != "alloc-probe" {
			t.Fatal(err)
		}
	})
	withDeadline := testing.AllocsPerRun(2000, func() {
		if err := c.RequestHeadersInto(deadlineCtx, ev, dst); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations per round trip: RequestHeadersInto %.2f, RequestHeaders %.2f, with a context deadline %.2f", into, plain, withDeadline)
	if into > 1 {
		t.Errorf("RequestHeadersInto: %.2f allocations per round trip, want <= 1", into)
	}
	if plain > 2 {
		t.Errorf("RequestHeaders: %.2f allocations per round trip, want <= 2", plain)
	}
	if withDeadline > 1 {
		t.Errorf("with a context deadline: %.2f allocations per round trip, want <= 1", withDeadline)
	}
}

var deadlineCtx, _ = context.WithTimeout(context.Background(), 1<<62)

func TestAllocsEncode(t *testing.T) {
	tr := &grpcTransport{maxSend: DefaultMaxMessageSize}
	ev := headersEvent("enc")
	for range 10 {
		b, _ := tr.requestHeaders(ev, 1)
		b.Free()
	}
	if a := testing.AllocsPerRun(1000, func() {
		b, err := tr.requestHeaders(ev, 1)
		if err != nil {
			t.Fatal(err)
		}
		b.Free()
	}); a != 0 {
		t.Fatalf("encode request headers into a pooled buffer: %.2f allocations, want 0", a)
	}
	chunk := &agentwire.BodyChunk{CorrelationID: "enc", Data: make([]byte, 16<<10), IsLast: true}
	if a := testing.AllocsPerRun(1000, func() {
		b, err := tr.bodyChunk(chunk, false, 1)
		if err != nil {
			t.Fatal(err)
		}
		b.Free()
	}); a != 0 {
		t.Fatalf("encode a 16 KiB body chunk: %.2f allocations, want 0", a)
	}
}
