//go:build !race

package agent

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire/codec/frame"
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
			n := testing.AllocsPerRun(1000, run)
			// JSON: the decoded strings share 4 KiB arena chunks (about one
			// chunk per four events of this size, which AllocsPerRun's
			// integer division reports as 0); MessagePack: the two strings
			// that change between the alternating events (correlation and
			// request id) are allocated by the decoder.
			limit := 0.0
			if uc.msgpack {
				limit = 2
			}
			t.Logf("%s: %.2f allocs per request", enc, n)
			if n > limit {
				t.Fatalf("%.2f allocs per request, want <= %v", n, limit)
			}
		})
	}
}
