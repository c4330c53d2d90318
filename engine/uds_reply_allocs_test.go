//go:build !race

package engine

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
	"github.com/agentwire/agentwire/internal/loopagent"
)

// TestUDSAllocsEchoReply: a round trip whose reply carries a request-header
// operation, as the reference echo agent's does, costs no allocation, in
// JSON and MessagePack (the pending map allocates nothing since pendmap.go),
// counted
// exactly: the reply is routed and decoded in one pass
// (payload.ScanReplyJSON; MessagePack's decoder keeps equal strings), and
// the header name and value equal to the reused destination's are kept, so
// the reply itself allocates nothing, not even a share of a decoder arena
// chunk (the JSON decoder's copies of the id and the header strings cost a
// chunk every ~120 replies).
func TestUDSAllocsEchoReply(t *testing.T) {
	for _, m := range udsModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			enc := agentwire.EncodingJSON
			if m.msgpack {
				enc = agentwire.EncodingMsgpack
			}
			path := loopagent.Start(t, loopagent.Config{Encoding: enc, SetProcessed: true})
			c := dialUDS(t, path, m.opts...)
			ctx := context.Background()
			ev := benchEvent("alloc-echo-0123456789")
			dst := new(agentwire.AgentResponse)
			for range 200 {
				if err := c.RequestHeadersInto(ctx, &ev, dst); err != nil {
					t.Fatal(err)
				}
			}
			if len(dst.RequestHeaders) != 1 || dst.RequestHeaders[0].Name != "x-agent-processed" || dst.RequestHeaders[0].Value != "true" {
				t.Fatalf("reply: %+v", dst.RequestHeaders)
			}
			const n = 4000
			got := allocs.AtMost(t, m.name+": RequestHeadersInto, echo reply", n, 0, func() {
				if err := c.RequestHeadersInto(ctx, &ev, dst); err != nil || dst.CorrelationID != "alloc-echo-0123456789" {
					t.Fatal(err)
				}
			})
			t.Logf("%s: allocations in %d round trips: %d", m.name, n, got)
		})
	}
}
