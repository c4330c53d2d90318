//go:build !race

package engine

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
)

// TestTraceOffAllocs: with no tracer provider, the trace support costs no
// allocation on the request path (exact counts, the numbers of
// TestAllocsPerRoundTrip and TestUDSAllocsPerRoundTrip): a request-headers
// event without traceparent sent with a context that carries no span
// context (the lookup), and — the propagation itself — one sent with a
// context that does (the event copy is pooled and the traceparent is
// formatted into it), both on the in-memory transport (gRPC's encoder path:
// the caller encodes) and over a Unix socket (the writer encodes), where
// the allocation-free loopAgent answers.
func TestTraceOffAllocs(t *testing.T) {
	traced := ContextWithTraceparent(context.Background(), sampleTP)
	run := func(t *testing.T, c *Conn, want float64) {
		ev := headersEvent("trace-probe")
		dst := new(agentwire.AgentResponse)
		for _, ctx := range []context.Context{context.Background(), traced} {
			for range 200 {
				if err := c.RequestHeadersInto(ctx, ev, dst); err != nil {
					t.Fatal(err)
				}
			}
		}
		const n = 2000
		off := allocs.AtMost(t, "no span context", n, want, func() {
			if err := c.RequestHeadersInto(context.Background(), ev, dst); err != nil {
				t.Fatal(err)
			}
		})
		on := allocs.AtMost(t, "remote span context propagated", n, want, func() {
			if err := c.RequestHeadersInto(traced, ev, dst); err != nil {
				t.Fatal(err)
			}
		})
		if ev.Metadata.Traceparent != "" {
			t.Fatal("the caller's event was modified")
		}
		t.Logf("allocations in %d round trips: no span context %d, span context propagated %d", n, off, on)
	}
	t.Run("mem", func(t *testing.T) { run(t, memConn(t), 0) })
	t.Run("uds-msgpack", func(t *testing.T) {
		run(t, dialUDS(t, startLoopAgent(t, agentwire.EncodingMsgpack), WithMsgpack()), 0)
	})
}
