package engine

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// TestUDSSlowReaderIsNotStuck: an agent that reads slowly (30 ms per
// 64 KiB event, a megabyte queued at once: far more than the socket
// holds, and no max_concurrency to hold the calls back) keeps each write
// blocked much longer than the write timeout (150 ms) but accepts bytes
// all along: it is busy, not stuck, and its session must survive. The
// write timeout used to bound the whole write, and failed it.
func TestUDSSlowReaderIsNotStuck(t *testing.T) {
	caps := fullCaps("slow")
	caps.Limits.MaxConcurrency = 0 // announces no limit
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshakeCaps("", caps) != nil {
			return
		}
		for {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ == frame.TypeRequestBodyChunk {
				time.Sleep(30 * time.Millisecond)
				if rc.reply(eventID(p)) != nil {
					return
				}
			}
		}
	})
	c := dialUDS(t, fa.path, WithWriteTimeout(150*time.Millisecond))
	const n = 16
	body := bytes.Repeat([]byte("x"), 64<<10)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: fmt.Sprint("slow-", i), Data: body})
			errs <- err
		}()
	}
	for range n {
		mustNoErrWithin(t, errs, 10*time.Second, "a call to the slow agent")
	}
	if st := c.Stats(); st.ConnectionLost != 0 || st.Reconnects != 0 {
		t.Fatalf("slow agent taken for a stuck one: %+v", st)
	}
}
