//go:build !race

package agent

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
	"github.com/agentwire/agentwire/ring"
	"google.golang.org/grpc/metadata"
)

// discardStream is a ProcessStream server side whose sends go nowhere
// (encoding a reply is TestGRPCReplyMarshalAllocs's count).
type discardStream struct{ ctx context.Context }

func (d discardStream) SetHeader(metadata.MD) error  { return nil }
func (d discardStream) SendHeader(metadata.MD) error { return nil }
func (d discardStream) SetTrailer(metadata.MD)       {}
func (d discardStream) Context() context.Context     { return d.ctx }
func (d discardStream) SendMsg(any) error            { return nil }
func (d discardStream) RecvMsg(any) error            { return context.Canceled }

// TestGRPCInlineEventAllocs: an inline event on a ProcessStream, from the
// decoded message to the reply sent by the reader (accept, runInline:
// request context, handler, sendDirect, release), allocates only the
// request-context slab every slabSize events; counted exactly over
// 100·slabSize events. (The message bytes' copy is the codec's, counted by
// TestDispatchAllocs.)
func TestGRPCInlineEventAllocs(t *testing.T) {
	s := NewServer(echoHandler{}, WithInlineHandlers())
	defer s.Close()
	raw, err := benchRequest("5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7").MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	in := string(raw)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &procStream{srv: s, ss: discardStream{ctx}, out: ring.New[outItem](64), inline: true, inlineIdle: make(chan struct{}, 1)}
	st.ctx, st.cancel = context.WithCancel(ctx)
	defer st.cancel()
	st.established.Store(true)
	event := func() {
		c := grpcCallPool.Get().(*grpcCall)
		if !decodeFast(in, &c.exchange) {
			t.Fatal("fast decode failed")
		}
		if err := st.accept(c); err != nil {
			t.Fatal(err)
		}
	}
	event()
	n := allocs.AtMost(t, "inline event: allocations per event (a context slab every slabSize)", slabSize*100, 1.0/slabSize, event)
	t.Logf("%d allocations in %d events", n, slabSize*100)
	if st.out.Len() != 0 {
		t.Fatalf("%d replies queued, want all sent by the reader", st.out.Len())
	}
}
