//go:build !race

package agent

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

// TestDispatchAllocs pins the agent's per-event allocations outside grpc-go
// on the fast path: one for the private copy of the message bytes, plus a
// slab of request contexts every slabSize (73) events. Decoding, the handler call,
// in-flight bookkeeping and reply encoding allocate nothing.
func TestDispatchAllocs(t *testing.T) {
	s := NewServer(echoHandler{})
	defer s.Close()
	in, err := benchRequest("5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7").MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	var tbl inflightTable
	var slab reqCtxSlab
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make([]byte, 0, 256)
	out = processOne(s, &tbl, &slab, ctx, in, out, true)
	allocs.AtMost(t, "fast path: allocations per event (1, plus a context slab every slabSize)", slabSize*100, 1+1.0/slabSize,
		func() { out = processOne(s, &tbl, &slab, ctx, in, out, true) })
}

// TestReqCtxAllocs: request contexts come from slabs of slabSize, one
// allocation per slab and none per context.
func TestReqCtxAllocs(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	var slab reqCtxSlab
	allocs.AtMost(t, "request contexts (one slab per slabSize)", slabSize*100, 1.0/slabSize, func() {
		c := slab.get(parent)
		_ = c.Err()
		c.cancel(context.Canceled)
	})
}

// TestReqCtxDoneAllocs: a handler that asks for Done (passing ctx to an
// HTTP or gRPC client does) pays five allocations: the ctxWait, the
// channel and the hook on its parent (context.AfterFunc's three). The
// count is held here so that it cannot grow unnoticed (see reqCtx).
func TestReqCtxDoneAllocs(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	var slab reqCtxSlab
	allocs.AtMost(t, "request context with Done, then cancelled", slabSize*100, 5+1.0/slabSize, func() {
		c := slab.get(parent)
		_ = c.Done()
		c.cancel(context.Canceled)
	})
}
