//go:build !race

package agent

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/allocs"
)

// TestUDSInlineDispatchAllocs pins the allocations per request of the
// inline path (dispatchInline: decode, handler, reply encoded into the
// reader's batch), counted exactly over slabSize×16 requests: what
// TestUDSDispatchAllocs allows the worker path, nothing more (the batch
// buffer is the connection's, reused after every flush).
func TestUDSInlineDispatchAllocs(t *testing.T) {
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			s := NewServer(echoHandler{})
			defer s.Close()
			uc := &udsConn{srv: s, msgpack: enc == "msgpack", inline: true}
			uc.ctx, uc.cancel = context.WithCancel(s.baseCtx)
			defer uc.cancel()
			uc.wbuf = make([]byte, 0, writeBufSize)
			frames, offs := udsBenchFrames(2, uc.msgpack)
			i := 0
			run := func() {
				p := frames[offs[i%2]+frame.HeaderSize : offs[i%2+1]]
				i++
				if !uc.dispatchInline(frame.TypeRequestHeaders, p) {
					t.Fatal("dispatchInline reported the connection over")
				}
				if len(uc.wbuf) > writeBufSize/2 {
					uc.wbuf = uc.wbuf[:0] // what flushInline leaves (no socket here)
				}
			}
			for range 100 {
				run()
			}
			if len(uc.wbuf) == 0 {
				t.Fatal("no reply collected")
			}
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
