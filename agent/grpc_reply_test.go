package agent

import (
	"bytes"
	"encoding/json"
	"testing"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers grpc-go's default codec

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/grpccodec"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// TestGRPCReplyEncoding: the writer's reply message (grpcReply) writes the
// same bytes as the message internal/pbconv builds, marshalled by
// vtprotobuf, under codec/grpccodec and under grpc-go's default codec; the
// usual reply (allow, no audit.custom) is written directly by
// internal/pbwire under grpccodec and under the server's own codec
// (serverCodec), without building the protobuf message.
func TestGRPCReplyEncoding(t *testing.T) {
	cases := []struct {
		name   string
		resp   agentwire.AgentResponse
		direct bool
	}{
		{"echo", agentwire.AgentResponse{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
			RequestHeaders:   []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"}},
			ProcessingTimeMS: agentwire.Some[uint64](0)}, true},
		{"audit", agentwire.AgentResponse{CorrelationID: "c", NeedsMore: true,
			ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderRemove, Name: "server"}, {Kind: agentwire.HeaderAdd, Name: "x\xff", Value: "é"}},
			Audit:           agentwire.AuditMetadata{Tags: []string{"sqli"}, RuleIDs: []string{"942100"}, Confidence: agentwire.Some[float32](0.5)}}, true},
		{"block", agentwire.AgentResponse{CorrelationID: "c", Decision: agentwire.Block(403),
			Audit: agentwire.AuditMetadata{Tags: []string{"t"}}}, false},
		{"custom", agentwire.AgentResponse{CorrelationID: "c",
			Audit: agentwire.AuditMetadata{Custom: map[string]json.RawMessage{"k": json.RawMessage(`"v"`)}}}, false},
	}
	def := encoding.GetCodecV2("proto")
	for _, tc := range cases {
		var e pbconv.ResponseEncoder
		want, err := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: e.Encode(&tc.resp)}}).MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		for _, codec := range []struct {
			name string
			c    encoding.CodecV2
		}{{"grpccodec", grpccodec.Codec()}, {"server", serverCodec{}}, {"default", def}} {
			c := new(grpcCall)
			c.resp = tc.resp
			out, err := codec.c.Marshal((*grpcReply)(c))
			if err != nil {
				t.Fatalf("%s/%s: %v", tc.name, codec.name, err)
			}
			if got := out.Materialize(); !bytes.Equal(got, want) {
				t.Errorf("%s/%s: reply differs\n got %x\nwant %x", tc.name, codec.name, got, want)
			}
			out.Free()
			if codec.name != "default" {
				if c.direct != tc.direct {
					t.Errorf("%s: written directly: %v, want %v", tc.name, c.direct, tc.direct)
				}
				if built := c.out.Message != nil; built == tc.direct {
					t.Errorf("%s: protobuf message built: %v", tc.name, built)
				}
			}
			if got, err := (*grpcReply)(c).MarshalVT(); err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s/%s: MarshalVT = %x, %v", tc.name, codec.name, got, err)
			}
			c.release()
		}
	}
}
