//go:build !race

package agent

import (
	"context"
	"testing"
)

// TestDispatchAllocs pins the agent's per-event allocations outside grpc-go
// on the fast path: one for the private copy of the message bytes, plus a
// slab of request contexts every 64 events. Decoding, the handler call,
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
	if a := testing.AllocsPerRun(2000, func() { out = processOne(s, &tbl, &slab, ctx, in, out, true) }); a > 1.1 {
		t.Fatalf("fast path: %.2f allocations per event, want <= 1 (+1/64 for the context slab)", a)
	}
}
