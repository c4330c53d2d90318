package agent

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire/codec/frame"
)

// BenchmarkUDSDispatchInline measures the inline reader's per-event work
// without the socket, the way the echo agent runs at 64 in flight:
// dispatchInline over 16 request-headers frames that differ in their
// correlation id (as consecutive events of a proxy do), the replies
// collected in the reader's batch.
func BenchmarkUDSDispatchInline(b *testing.B) {
	for _, enc := range []string{"json", "msgpack"} {
		b.Run(enc, func(b *testing.B) {
			s := NewServer(echoHandler{})
			defer s.Close()
			uc := &udsConn{srv: s, msgpack: enc == "msgpack", inline: true}
			uc.ctx, uc.cancel = context.WithCancel(s.baseCtx)
			defer uc.cancel()
			uc.wbuf = make([]byte, 0, writeBufSize)
			const distinct = 16
			frames, offs := udsBenchFrames(distinct, uc.msgpack)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				j := i % distinct
				if !uc.dispatchInline(frame.TypeRequestHeaders, frames[offs[j]+frame.HeaderSize:offs[j+1]]) {
					b.Fatal("dispatchInline reported the connection over")
				}
				if len(uc.wbuf) >= 1<<10 {
					uc.wbuf = uc.wbuf[:0] // what flushInline leaves (no socket here)
				}
			}
		})
	}
}
