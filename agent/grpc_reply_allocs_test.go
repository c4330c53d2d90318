//go:build !race

package agent

import (
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/grpccodec"
	"github.com/agentwire/agentwire/internal/allocs"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// TestGRPCReplyMarshalAllocs: marshalling the writer's reply through
// codec/grpccodec or the server's own codec (serverCodec), as grpc-go does
// for every reply, allocates only the
// one-element mem.BufferSlice the codec returns (as for any vtprotobuf
// message, see grpccodec's TestAllocsMarshalVTPooled), on the direct path
// and on the generic one (a block decision), counted exactly over 1000
// calls.
func TestGRPCReplyMarshalAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp agentwire.AgentResponse
	}{
		{"direct", agentwire.AgentResponse{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
			RequestHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"}}}},
		{"generic", agentwire.AgentResponse{CorrelationID: "c", Decision: agentwire.Block(403)}},
	} {
		for _, codec := range []struct {
			name string
			c    encoding.CodecV2
		}{{"grpccodec", grpccodec.Codec()}, {"serverCodec", serverCodec{}}} {
			c := new(grpcCall)
			c.resp = tc.resp
			marshal := func() {
				c.measured, c.direct = false, false // a fresh send, as after release
				c.out.Message = nil
				out, err := codec.c.Marshal((*grpcReply)(c))
				if err != nil {
					t.Fatal(err)
				}
				out.Free()
			}
			for range 100 {
				marshal()
			}
			allocs.AtMost(t, tc.name+": reply through "+codec.name, 1000, 1, marshal)
		}
	}
}

// TestServerCodecUnmarshalAllocs: receiving a hot event that grpc-go holds
// in one mem.SliceBuffer allocates nothing (it used to copy the message),
// counted exactly over 1000 calls.
func TestServerCodecUnmarshalAllocs(t *testing.T) {
	raw, err := benchRequest("cid-allocs").MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	data := mem.BufferSlice{mem.SliceBuffer(raw)}
	in := &inbound{ProxyToAgent: pb.ProxyToAgentFromVTPool()}
	defer in.ReturnToVTPool()
	allocs.Zero(t, "hot event from a SliceBuffer through serverCodec", 1000, func() {
		in.raw = ""
		if err := (serverCodec{}).Unmarshal(data, in); err != nil || in.raw == "" {
			t.Fatal(err)
		}
	})
}
