package agent

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// TestServerCodecKeepsSliceBuffer: a hot event that grpc-go hands over as
// one mem.SliceBuffer (its unpooled buffer, what every DATA frame of at
// most 1 KiB becomes) is kept in place: inbound.raw is the buffer's bytes,
// not a copy, and the fast decoder reads it as before.
func TestServerCodecKeepsSliceBuffer(t *testing.T) {
	raw, err := benchRequest("cid-shared").MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	in := &inbound{ProxyToAgent: pb.ProxyToAgentFromVTPool()}
	defer in.ReturnToVTPool()
	if err := (serverCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, in); err != nil {
		t.Fatal(err)
	}
	if in.raw != string(raw) {
		t.Fatalf("raw = %q, want the message", in.raw)
	}
	if unsafe.StringData(in.raw) != &raw[0] {
		t.Fatal("raw is a copy of the SliceBuffer's bytes, want the bytes themselves")
	}
	var x exchange
	if !decodeFast(in.raw, &x) || x.cid != "cid-shared" {
		t.Fatalf("decodeFast: cid %q", x.cid)
	}
}

// TestServerCodecCopiesOtherBuffers: a hot event in a pooled buffer (which
// grpc-go reuses once freed) or split over several buffers is copied, so
// that the handler's strings survive the buffer's next use; other messages
// are decoded into the pooled ProxyToAgent, as grpccodec does.
func TestServerCodecCopiesOtherBuffers(t *testing.T) {
	raw, err := benchRequest("cid-pooled").MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	pool := mem.NewTieredBufferPool(4 << 10)
	pooled := func() mem.BufferSlice {
		bp := pool.Get(len(raw))
		copy(*bp, raw)
		return mem.BufferSlice{mem.NewBuffer(bp, pool)}
	}
	split := func() mem.BufferSlice {
		b := append([]byte(nil), raw...)
		return mem.BufferSlice{mem.SliceBuffer(b[:100]), mem.SliceBuffer(b[100:])}
	}
	for _, tc := range []struct {
		name string
		data func() mem.BufferSlice
	}{{"pooled", pooled}, {"split", split}} {
		in := &inbound{ProxyToAgent: pb.ProxyToAgentFromVTPool()}
		data := tc.data()
		if err := (serverCodec{}).Unmarshal(data, in); err != nil {
			t.Fatal(err)
		}
		// grpc-go frees the data after Unmarshal; the pool's next user
		// overwrites it.
		for _, b := range data {
			clear(b.ReadOnlyData())
		}
		data.Free()
		if in.raw != string(raw) {
			t.Errorf("%s: raw changed with the buffer it came from", tc.name)
		}
		in.ReturnToVTPool()
	}

	hs, err := (&pb.ProxyToAgent{Message: &pb.ProxyToAgent_Handshake{Handshake: &pb.HandshakeRequest{ProxyId: "p"}}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	in := &inbound{ProxyToAgent: pb.ProxyToAgentFromVTPool()}
	defer in.ReturnToVTPool()
	if err := (serverCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(hs)}, in); err != nil {
		t.Fatal(err)
	}
	if in.raw != "" || in.GetHandshake().GetProxyId() != "p" {
		t.Fatalf("handshake: raw %q, decoded %v", in.raw, in.ProxyToAgent)
	}
}

// TestServerCodecLargeReply: a direct reply longer than grpccodec.Pool's
// small buffers (2 KiB) comes from grpc-go's default pool, with the same
// bytes.
func TestServerCodecLargeReply(t *testing.T) {
	c := new(grpcCall)
	c.resp = agentwire.AgentResponse{CorrelationID: "c", RequestHeaders: []agentwire.HeaderOp{
		{Kind: agentwire.HeaderSet, Name: "x-big", Value: strings.Repeat("v", 6<<10)}}}
	want, err := (*grpcReply)(c).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	c.measured = false
	out, err := (serverCodec{}).Marshal((*grpcReply)(c))
	if err != nil {
		t.Fatal(err)
	}
	if !c.direct || !bytes.Equal(out.Materialize(), want) {
		t.Fatalf("direct %v, bytes equal %v", c.direct, bytes.Equal(out.Materialize(), want))
	}
	out.Free()
}

// TestGRPCKeptStringsSurviveLaterEvents: a handler may keep the event's
// strings after it returns (see wire.go). Through ServeGRPC, events of
// both sizes grpc-go distinguishes (a DATA frame of at most 1 KiB, which
// the codec keeps in place, and a larger one from grpc-go's buffer pool,
// which grpc-go reuses for later frames once freed, so the codec copies
// it) keep their text while many more events pass over the same stream.
// (Seen failing with every single buffer kept in place without a
// reference.)
func TestGRPCKeptStringsSurviveLaterEvents(t *testing.T) {
	var mu sync.Mutex
	kept := map[string]string{} // correlation id → URI, as the handler saw it
	hh := newHookHandler()
	hh.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		mu.Lock()
		kept[ev.Metadata.CorrelationID] = ev.URI
		mu.Unlock()
		return nil
	}
	e := startEnv(t, hh, "tcp")
	p := e.open()
	uri := func(i int) string {
		u := fmt.Sprintf("/%d/", i)
		if i%2 == 1 {
			u += strings.Repeat(string(rune('a'+i%26)), 3000) // over 1 KiB: a pooled frame
		}
		return u
	}
	const n = 64
	for i := range n {
		p.send(reqHeaders(fmt.Sprintf("c-%d", i), uri(i)))
		if m := p.recv(); m.GetResponse() == nil {
			t.Fatalf("event %d: %v, want a reply", i, m)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if got := kept[fmt.Sprintf("c-%d", i)]; got != uri(i) {
			t.Fatalf("event %d: kept URI changed to %.40q…, want %.40q…", i, got, uri(i))
		}
	}
}
