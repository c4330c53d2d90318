//go:build !race

package agent

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/allocs"
)

// TestUDSDispatchAllocs pins the agent's allocations per request on the
// decode → handler → encode path (the socket I/O itself allocates
// nothing: pooled reader buffer, one write buffer per connection).
func TestUDSDispatchAllocs(t *testing.T) {
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			s := NewServer(echoHandler{})
			defer s.Close()
			uc := &udsConn{srv: s, msgpack: enc == "msgpack"}
			uc.ctx, uc.cancel = context.WithCancel(s.baseCtx)
			defer uc.cancel()
			frames, offs := udsBenchFrames(2, uc.msgpack)
			i := 0
			run := func() {
				p := frames[offs[i%2]+frame.HeaderSize : offs[i%2+1]]
				i++
				c := getUDSCall(uc)
				if err := c.decodeEvent(frame.TypeRequestHeaders, p, uc.msgpack); err != nil {
					t.Fatal(err)
				}
				uc.begin(c)
				s.invoke(&c.exchange)
				uc.encodeReply(c)
				uc.end(c)
				c.release()
			}
			for range 100 {
				run()
			}
			// Both: a slab of request contexts every slabSize requests.
			// JSON: the decoded strings share 4 KiB arena chunks (measured
			// exactly: one chunk per 16 to 17 events of this size);
			// MessagePack: the two strings that change between the
			// alternating events (correlation and request id) are
			// allocated by the decoder. (Counted with AllocsPerRun's
			// rounding, this claimed 0 and 2: the slab and the arena were
			// invisible.)
			const n = slabSize * 16
			limit := 1.0/16 + 1.0/slabSize
			if uc.msgpack {
				limit = 2 + 1.0/slabSize
			}
			got := allocs.AtMost(t, enc+": allocations per request", n, limit, run)
			t.Logf("%s: %d allocations in %d requests", enc, got, n)
		})
	}
}
