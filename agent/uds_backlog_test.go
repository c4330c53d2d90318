package agent

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// TestUDSSaturatedReaderKeepsReading fills the only handler slot with a
// request that waits for its cancel, queues more events behind it, and
// checks that a ping is still answered and that the cancel still reaches
// the stuck handler (before the backlog, the reader stopped reading while
// every slot was busy, so both waited for ever).
func TestUDSSaturatedReaderKeepsReading(t *testing.T) {
	started := make(chan string, 4)
	var handled atomic.Int32
	hh := newHookHandler()
	hh.reqHeaders = func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		handled.Add(1)
		started <- ev.Metadata.CorrelationID
		if ev.URI == "/stuck" {
			select {
			case <-ctx.Done():
				r.Decision = agentwire.Block(499)
			case <-time.After(testTimeout):
				r.Decision = agentwire.Block(500)
			}
		}
		return nil
	}
	e := startUDS(t, hh, WithMaxConcurrency(1))
	p := dialRaw(t, e.path)
	p.handshake("json")
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("stuck", "/stuck"))
	if cid := recvTimeout(t, started, "stuck handler start"); cid != "stuck" {
		t.Fatalf("first handler for %q", cid)
	}
	// The slot is taken: this one waits in the backlog.
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("queued", "/fast"))
	p.ping(7)
	p.expectPongOnly()
	if n := handled.Load(); n != 1 {
		t.Fatalf("%d handlers ran while the only slot was busy", n)
	}
	p.send(frame.TypeCancel, payload.AppendCancelJSON(nil, &agentwire.Cancel{CorrelationID: "stuck", Reason: agentwire.CancelTimeout, TimestampMS: 1}))
	got := map[string]uint16{}
	for range 2 {
		r := p.recvReply(false)
		got[r.CorrelationID] = r.Decision.Status
	}
	if got["stuck"] != 499 {
		t.Fatalf("stuck request answered %v, want 499 (cancelled)", got)
	}
	if _, ok := got["queued"]; !ok {
		t.Fatalf("queued request not answered: %v", got)
	}
}

// TestUDSInlineHandlers runs handlers on the reader: replies keep their
// order and pings are answered between events.
func TestUDSInlineHandlers(t *testing.T) {
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			hh := newHookHandler()
			hh.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
				r.Decision = agentwire.Block(403)
				r.Decision.Body = agentwire.Some(ev.URI)
				return nil
			}
			e := startUDS(t, hh, WithInlineHandlers(), WithMaxConcurrency(2))
			p := dialRaw(t, e.path)
			p.handshake(enc)
			msgpack := enc == "msgpack"
			// Enough events that the reader's collected replies pass
			// writeBufSize and are flushed before its buffer runs dry.
			const n = 1000
			cidOf := func(i int) string { return "c-" + strconv.Itoa(i) }
			var frames []byte
			for i := range n {
				var pl []byte
				if msgpack {
					pl = reqHeadersMsgpack(cidOf(i), "/"+cidOf(i))
				} else {
					pl = reqHeadersJSON(cidOf(i), "/"+cidOf(i))
				}
				frames, _ = frame.AppendFrame(frames, frame.TypeRequestHeaders, pl)
			}
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				p.c.Write(frames) // one write: many frames per read on the agent side
			}()
			for i := range n {
				cid := cidOf(i)
				r := p.recvReply(msgpack)
				if r.CorrelationID != cid || r.Decision.Status != 403 || r.Decision.Body.Value != "/"+cid {
					t.Fatalf("reply %d: %+v", i, r)
				}
			}
			<-sent
			p.ping(3)
			p.expectPongOnly()
		})
	}
}

// TestGRPCSaturatedReaderKeepsReading is the gRPC counterpart: with the
// only handler slot stuck, a queued event does not stop the stream's
// reader, so a ping is answered and a cancel reaches the stuck handler.
func TestGRPCSaturatedReaderKeepsReading(t *testing.T) {
	started := make(chan string, 4)
	hh := newHookHandler()
	hh.reqHeaders = func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		started <- ev.Metadata.CorrelationID
		if ev.URI == "/stuck" {
			select {
			case <-ctx.Done():
				r.Decision = agentwire.Block(499)
			case <-time.After(testTimeout):
				r.Decision = agentwire.Block(500)
			}
		}
		return nil
	}
	e := startEnv(t, hh, "tcp", WithMaxConcurrency(1))
	p := e.open()
	p.send(reqHeaders("stuck", "/stuck"))
	if cid := recvTimeout(t, started, "stuck handler start"); cid != "stuck" {
		t.Fatalf("first handler for %q", cid)
	}
	p.send(reqHeaders("queued", "/fast"))
	p.send(ping(9))
	for {
		m := p.recv()
		if m.GetResponse() != nil {
			t.Fatalf("reply before the pong: %v", m)
		}
		if pg := m.GetPong(); pg != nil {
			if pg.GetSequence() != 9 {
				t.Fatalf("pong %v", pg)
			}
			break
		}
	}
	p.send(cancelMsg("stuck", 2))
	got := map[string]int32{}
	for range 2 {
		r := p.recvResponse()
		var status int32
		if b := r.GetBlock(); b != nil {
			status = int32(b.GetStatus())
		}
		got[r.GetCorrelationId()] = status
	}
	if got["stuck"] != 499 {
		t.Fatalf("stuck request answered %v, want 499 (cancelled)", got)
	}
	if _, ok := got["queued"]; !ok {
		t.Fatalf("queued request not answered: %v", got)
	}
}
