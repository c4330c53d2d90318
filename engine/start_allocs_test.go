//go:build !race

package engine

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
)

// TestAllocsStartWait: a round trip split into StartRequestHeaders and
// Call.Wait costs what RequestHeadersInto costs (no allocation in
// MessagePack), and so does a fan-out of three started calls on three
// connections waited for one after the other:
// counted exactly over 2000 rounds against the allocation-free loopAgent.
func TestAllocsStartWait(t *testing.T) {
	ctx := context.Background()
	var conns [3]*Conn
	for i := range conns {
		conns[i] = dialUDS(t, startLoopAgent(t, agentwire.EncodingMsgpack), WithMsgpack())
	}
	evs := [3]agentwire.RequestHeadersEvent{benchEvent("start-0"), benchEvent("start-1"), benchEvent("start-2")}
	var calls [3]Call
	var dsts [3]agentwire.AgentResponse
	one := func() {
		if ok, err := conns[0].StartRequestHeaders(ctx, &evs[0], &dsts[0], &calls[0]); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if err := calls[0].Wait(); err != nil || dsts[0].CorrelationID != "start-0" {
			t.Fatal(err)
		}
	}
	three := func() {
		for i, c := range conns {
			if ok, err := c.StartRequestHeaders(ctx, &evs[i], &dsts[i], &calls[i]); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		for i := range calls {
			if err := calls[i].Wait(); err != nil || dsts[i].CorrelationID != evs[i].Metadata.CorrelationID {
				t.Fatal(err)
			}
		}
	}
	const n = 2000
	got1 := allocs.AtMost(t, "start+wait, one call", n, 0, one)
	got3 := allocs.AtMost(t, "start+wait, three calls", n, 0, three)
	t.Logf("allocations in %d rounds: one call %d, three calls %d", n, got1, got3)
}
