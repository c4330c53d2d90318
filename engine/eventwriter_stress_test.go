package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// TestUDSEventWriterStress: 32 callers with short deadlines (their own, or
// the expirer's) over a real Unix socket, mixing writer-encoded events
// with small and large body chunks; each caller changes its event right
// after the call returns. The agent checks every frame: events unchanged,
// body chunks intact, and a cancel only for an event it has seen.
func TestUDSEventWriterStress(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	var violations []string
	var events, cancels atomic.Int64
	violation := func(format string, args ...any) {
		mu.Lock()
		violations = append(violations, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	a := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		for {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			switch typ {
			case frame.TypeRequestHeaders:
				var ev agentwire.RequestHeadersEvent
				if err := payload.DecodeRequestHeadersJSON(p, &ev); err != nil {
					violation("undecodable event: %v", err)
					continue
				}
				cid := ev.Metadata.CorrelationID
				if ev.URI != "/"+cid || len(ev.Headers) != 1 || ev.Headers[0].Values[0] != "example.com" {
					violation("mutated event %s: %q %v", cid, ev.URI, ev.Headers)
				}
				mu.Lock()
				seen[cid] = true
				mu.Unlock()
				events.Add(1)
				if rand.IntN(3) != 0 {
					_ = rc.reply(cid)
				}
			case frame.TypeRequestBodyChunk:
				var bc agentwire.BodyChunk
				if err := payload.DecodeRequestBodyChunkJSON(p, &bc); err != nil {
					violation("undecodable chunk: %v", err)
					continue
				}
				if !bytes.Equal(bc.Data, bytes.Repeat([]byte{byte(len(bc.CorrelationID))}, len(bc.Data))) {
					violation("bad chunk %s", bc.CorrelationID)
				}
				mu.Lock()
				seen[bc.CorrelationID] = true
				mu.Unlock()
				_ = rc.reply(bc.CorrelationID)
			case frame.TypeCancel:
				var c agentwire.Cancel
				_ = payload.DecodeCancelJSON(p, &c)
				cancels.Add(1)
				mu.Lock()
				if !seen[c.CorrelationID] {
					violations = append(violations, "cancel before/without event: "+c.CorrelationID)
				}
				mu.Unlock()
			}
		}
	})
	c := dialUDS(t, a.path, WithRequestTimeout(3*time.Millisecond))
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				cid := fmt.Sprintf("g%d-%d", g, i)
				if i%10 == 9 {
					n := 100
					if i%20 == 19 {
						n = 9000
					}
					bc := &agentwire.BodyChunk{CorrelationID: cid + "-b", Data: bytes.Repeat([]byte{byte(len(cid + "-b"))}, n)}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
					_, _ = c.RequestBodyChunk(ctx, bc)
					cancel()
					continue
				}
				ev := headersEvent(cid)
				var err error
				if i%2 == 0 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(300))*time.Microsecond)
					_, err = c.RequestHeaders(ctx, ev)
					cancel()
				} else {
					_, err = c.RequestHeaders(context.Background(), ev) // default timeout: expirer
				}
				_ = err
				ev.URI = "/mutated"
				ev.Headers[0].Values[0] = "mutated"
				ev.Metadata.CorrelationID = "mutated"
			}
		}()
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	st := c.Stats()
	t.Logf("events %d cancels %d stats %+v", events.Load(), cancels.Load(), st)
	if len(violations) > 0 {
		n := min(len(violations), 20)
		t.Fatalf("%d violations, first: %q", len(violations), violations[:n])
	}
}
