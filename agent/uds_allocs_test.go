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
// nothing: pooled reader buffer, one write buffer per connection), on the
// worker path (encodeReply into the call's buffer) and on the inline path
// (dispatchInline: the reply encoded into the reader's batch, which is the
// connection's and reused after every flush).
func TestUDSDispatchAllocs(t *testing.T) {
	for _, inline := range []bool{false, true} {
		for _, enc := range []string{"json", "msgpack"} {
			name := enc
			if inline {
				name += "/inline"
			}
			t.Run(name, func(t *testing.T) { udsDispatchAllocs(t, enc == "msgpack", inline) })
		}
	}
}

func udsDispatchAllocs(t *testing.T, msgpack, inline bool) {
	s := NewServer(echoHandler{})
	defer s.Close()
	uc := &udsConn{srv: s, msgpack: msgpack, inline: inline}
	uc.ctx, uc.cancel = context.WithCancel(s.baseCtx)
	defer uc.cancel()
	if inline {
		uc.wbuf = make([]byte, 0, writeBufSize)
	}
	frames, offs := udsBenchFrames(2, msgpack)
	i := 0
	run := func() {
		p := frames[offs[i%2]+frame.HeaderSize : offs[i%2+1]]
		i++
		if inline {
			if !uc.dispatchInline(frame.TypeRequestHeaders, p) {
				t.Fatal("dispatchInline reported the connection over")
			}
			if len(uc.wbuf) > writeBufSize/2 {
				uc.wbuf = uc.wbuf[:0] // what flushInline leaves (no socket here)
			}
			return
		}
		c := getUDSCall(uc)
		if err := c.decodeEvent(frame.TypeRequestHeaders, p, msgpack); err != nil {
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
	if inline && len(uc.wbuf) == 0 {
		t.Fatal("no reply collected")
	}
	// Counted exactly over n requests: both paths allocate a slab of
	// request contexts every slabSize requests. The decoded strings that
	// change between the alternating events share 4 KiB arena chunks: in
	// JSON the decoder's pooled ones, in MessagePack the connection's
	// (udsConn.strs; the correlation id, which the request id, equal to
	// it, shares): 22 or 23 allocations in 1168 requests (16 slabs of 73),
	// either way (MessagePack: 1040 in 1024 when the decoder allocated the
	// id).
	const n = slabSize * 16
	limit := 24.0 / n // 16 slabs and 7 or 8 chunks, one of slack
	got := allocs.AtMost(t, "allocations per request", n, limit, run)
	t.Logf("%d allocations in %d requests", got, n)
}
