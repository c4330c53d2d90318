package agent

import (
	"bytes"
	"strings"
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

// TestServerCodecLargeReply: a direct reply longer than the reply pool's
// buffers comes from grpc-go's default pool, with the same bytes.
func TestServerCodecLargeReply(t *testing.T) {
	c := new(grpcCall)
	c.resp = agentwire.AgentResponse{CorrelationID: "c", RequestHeaders: []agentwire.HeaderOp{
		{Kind: agentwire.HeaderSet, Name: "x-big", Value: strings.Repeat("v", 3*replyBufCap)}}}
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
