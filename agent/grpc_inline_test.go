package agent

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// TestGRPCInlineHandlers: with WithInlineHandlers a ProcessStream runs its
// handlers on the stream's reader, one at a time in arrival order (with
// workers, these slow handlers would overlap), the replies keep that order,
// and a ping sent after the events is answered after their replies.
func TestGRPCInlineHandlers(t *testing.T) {
	var active, maxActive atomic.Int32
	hh := newHookHandler()
	hh.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		n := active.Add(1)
		for {
			m := maxActive.Load()
			if n <= m || maxActive.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		active.Add(-1)
		r.Decision = agentwire.Block(403)
		r.Decision.Body = agentwire.Some(ev.URI)
		return nil
	}
	e := startEnv(t, hh, "tcp", WithInlineHandlers(), WithMaxConcurrency(8))
	p := e.open()
	const n = 8
	for i := range n {
		cid := fmt.Sprintf("c-%d", i)
		p.send(reqHeaders(cid, "/"+cid))
	}
	p.send(ping(7))
	for i := range n {
		m := p.recv()
		r := m.GetResponse()
		if r == nil {
			t.Fatalf("message %d: %v, want the reply to c-%d", i, m, i)
		}
		cid := fmt.Sprintf("c-%d", i)
		if r.GetCorrelationId() != cid || r.GetBlock().GetStatus() != 403 || r.GetBlock().GetBody() != "/"+cid {
			t.Fatalf("reply %d: %v", i, r)
		}
	}
	if m := p.recv(); m.GetPong().GetSequence() != 7 {
		t.Fatalf("after the replies: %v, want pong 7", m)
	}
	if m := maxActive.Load(); m != 1 {
		t.Fatalf("%d handlers ran at once, want 1 (inline)", m)
	}
}
