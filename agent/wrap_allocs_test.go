//go:build !race

package agent

import (
	"context"
	"runtime"
	"testing"

	"github.com/agentwire/agentwire"
)

// TestWrapAllocs: a call through Wrap with two pass-through middlewares
// allocates nothing (exact count of mallocs over many calls).
func TestWrapAllocs(t *testing.T) {
	pass := func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, ev Event, r *agentwire.AgentResponse) error { return next(ctx, ev, r) }
	}
	h := Wrap(echoHandler{}, pass, pass)
	ctx := context.Background()
	ev := &agentwire.RequestHeadersEvent{URI: "/"}
	body := &agentwire.BodyChunk{}
	var r agentwire.AgentResponse
	ops := make([]agentwire.HeaderOp, 0, 4)
	call := func() {
		r = agentwire.AgentResponse{RequestHeaders: ops[:0]}
		_ = h.OnRequestHeaders(ctx, ev, &r)
		_ = h.OnRequestBodyChunk(ctx, body, &r)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	call()
	const n = 10000
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	for range n {
		call()
	}
	runtime.ReadMemStats(&b)
	if m := b.Mallocs - a.Mallocs; m != 0 {
		t.Fatalf("%d allocations in %d wrapped calls, want 0", m, n)
	}
}
