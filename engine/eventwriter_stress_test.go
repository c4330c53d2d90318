package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
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
// body chunks intact, and a cancel only for an event it has received
// (before the cancel, and at all: counted again once the connection has
// closed). Every path the test is there for must be taken a minimum number
// of times, or the test fails as not exercising it: events abandoned by
// their callers while queued (never sent, no cancel), events the expirer
// dropped while queued (never sent, no cancel), events cancelled after
// they were sent (by their callers, and by the expirer), small chunks
// (copied into the batch) and large ones (written from their own buffer).
// The agent stops reading now and then, as a slow agent does, so that the
// writer blocks and events wait in the queue.
func TestUDSEventWriterStress(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	cancelled := map[string]int{}
	var violations []string
	var events, smallChunks, largeChunks atomic.Int64
	violation := func(format string, args ...any) {
		mu.Lock()
		violations = append(violations, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	agentDone := make(chan struct{})
	a := startRawAgent(t, func(rc *rawConn) {
		defer close(agentDone)
		if rc.handshake("") != nil {
			return
		}
		for n := 0; ; n++ {
			if n%128 == 127 {
				time.Sleep(10 * time.Millisecond) // a slow agent: the writer blocks, events wait
			}
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
				if len(bc.Data) > udsCopyMax {
					largeChunks.Add(1)
				} else {
					smallChunks.Add(1)
				}
				mu.Lock()
				seen[bc.CorrelationID] = true
				mu.Unlock()
				_ = rc.reply(bc.CorrelationID)
			case frame.TypeCancel:
				var c agentwire.Cancel
				_ = payload.DecodeCancelJSON(p, &c)
				mu.Lock()
				cancelled[c.CorrelationID]++
				if !seen[c.CorrelationID] {
					violations = append(violations, "cancel before/without event: "+c.CorrelationID)
				}
				mu.Unlock()
			}
		}
	})
	c := dialUDS(t, a.path, WithRequestTimeout(3*time.Millisecond))
	// A small socket send buffer, so that the writer blocks as soon as the
	// agent stops reading (Linux's default holds some 200 KiB).
	if err := udsOf(t, c).nc.(*net.UnixConn).SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	// The caller's deadline (even i) or the expirer's (odd i) for each
	// request-headers event, by correlation id.
	var idMu sync.Mutex
	ownDeadline := map[string]bool{}
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
				idMu.Lock()
				ownDeadline[cid] = i%2 == 0
				idMu.Unlock()
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
	// Close, and let the agent read everything the engine wrote before
	// counting: a cancel written last is checked too.
	st := c.Stats()
	c.Close()
	select {
	case <-agentDone:
	case <-time.After(testTimeout):
		t.Fatal("the agent did not see the connection close")
	}
	mu.Lock()
	defer mu.Unlock()

	var abandoned, expirerDropped, cancelledByCaller, cancelledByExpirer int
	for cid, own := range ownDeadline {
		switch {
		case !seen[cid] && own:
			abandoned++
		case !seen[cid]:
			expirerDropped++
		case cancelled[cid] > 0 && own:
			cancelledByCaller++
		case cancelled[cid] > 0:
			cancelledByExpirer++
		}
	}
	for cid, n := range cancelled {
		if !seen[cid] {
			violations = append(violations, fmt.Sprintf("cancel for %s, an event never received", cid))
		}
		if n > 1 {
			violations = append(violations, fmt.Sprintf("%d cancels for %s", n, cid))
		}
	}
	t.Logf("events received %d of %d; abandoned while queued %d, dropped by the expirer %d; cancelled after sending by the caller %d, by the expirer %d; chunks small %d large %d; stats %+v",
		events.Load(), len(ownDeadline), abandoned, expirerDropped, cancelledByCaller, cancelledByExpirer, smallChunks.Load(), largeChunks.Load(), st)
	if len(violations) > 0 {
		n := min(len(violations), 20)
		t.Fatalf("%d violations, first: %q", len(violations), violations[:n])
	}
	for _, p := range []struct {
		what     string
		got, min int
	}{
		{"events abandoned by their callers while queued", abandoned, 100},
		{"events dropped by the expirer while queued", expirerDropped, 100},
		{"events cancelled by their callers after being sent", cancelledByCaller, 100},
		{"events cancelled by the expirer after being sent", cancelledByExpirer, 100},
		{"small body chunks", int(smallChunks.Load()), 100},
		{"large body chunks", int(largeChunks.Load()), 100},
	} {
		if p.got < p.min {
			t.Errorf("not exercised: %s: %d, want at least %d", p.what, p.got, p.min)
		}
	}
}
