package engine

import (
	"fmt"
	"testing"

	"github.com/agentwire/agentwire"
)

// TestGRPCDirectSendAfterBodyChunks: body chunks of more than
// grpcWriteQuota bytes in all, answered by the agent, do not switch the
// direct send of request-headers events off: their replies move acked
// as request-headers replies do (the writer marks where each chunk ends
// in the stream), so every round's headers call goes direct.
func TestGRPCDirectSendAfterBodyChunks(t *testing.T) {
	a := startAgent(t, newTestAgent())
	c := dial(t, a.addr)
	body := make([]byte, 40<<10)
	for round := range 5 {
		cid := fmt.Sprintf("body-direct-%d", round)
		before := grpcOf(t, c).directSends
		r, err := c.RequestHeaders(testCtx(t), headersEvent(cid))
		if err != nil {
			t.Fatal(err)
		}
		if r.CorrelationID != cid {
			t.Fatalf("reply for %q, want %q", r.CorrelationID, cid)
		}
		// Read on the calling goroutine, which did the direct sends.
		if after := grpcOf(t, c).directSends; after != before+1 {
			t.Fatalf("round %d: headers call not sent directly (direct sends %d → %d)", round, before, after)
		}
		for i := range 2 {
			r, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: cid, ChunkIndex: uint32(i), Data: body})
			if err != nil {
				t.Fatal(err)
			}
			if r.CorrelationID != cid {
				t.Fatalf("chunk reply for %q, want %q", r.CorrelationID, cid)
			}
		}
	}
}
