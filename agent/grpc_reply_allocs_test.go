//go:build !race

package agent

import (
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/grpccodec"
	"github.com/agentwire/agentwire/internal/allocs"
)

// TestGRPCReplyMarshalAllocs: marshalling the writer's reply through
// codec/grpccodec, as grpc-go does for every reply, allocates only the
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
		c := new(grpcCall)
		c.resp = tc.resp
		marshal := func() {
			c.measured, c.direct = false, false // a fresh send, as after release
			c.out.Message = nil
			out, err := grpccodec.Codec().Marshal((*grpcReply)(c))
			if err != nil {
				t.Fatal(err)
			}
			out.Free()
		}
		for range 100 {
			marshal()
		}
		allocs.AtMost(t, tc.name+": reply through grpccodec", 1000, 1, marshal)
	}
}
