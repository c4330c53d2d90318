package agent

import (
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/grpccodec"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// BenchmarkServerCodec compares ServeGRPC's codec before (codec=grpccodec)
// and after (codec=server) serverCodec, on the two messages of every
// event: receiving the request headers event as grpc-go holds a DATA frame
// of at most 1 KiB (one mem.SliceBuffer), and marshalling the echo agent's
// reply, then freeing it as grpc-go does once written (here on the same
// goroutine; in a stream grpc-go's writer frees it). Compare with
// benchstat -col /codec.
func BenchmarkServerCodec(b *testing.B) {
	raw, err := benchRequest("5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7").MarshalVT()
	if err != nil {
		b.Fatal(err)
	}
	data := mem.BufferSlice{mem.SliceBuffer(raw)}
	resp := agentwire.AgentResponse{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
		RequestHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"}}}
	for _, codec := range []struct {
		name string
		c    encoding.CodecV2
	}{{"grpccodec", grpccodec.Codec()}, {"server", serverCodec{}}} {
		b.Run("msg=event/codec="+codec.name, func(b *testing.B) {
			in := &inbound{ProxyToAgent: pb.ProxyToAgentFromVTPool()}
			b.ReportAllocs()
			for b.Loop() {
				if err := codec.c.Unmarshal(data, in); err != nil || in.raw == "" {
					b.Fatal(err)
				}
			}
		})
		b.Run("msg=reply/codec="+codec.name, func(b *testing.B) {
			c := new(grpcCall)
			c.resp = resp
			b.ReportAllocs()
			for b.Loop() {
				c.measured, c.direct = false, false
				out, err := codec.c.Marshal((*grpcReply)(c))
				if err != nil {
					b.Fatal(err)
				}
				out.Free()
			}
		})
	}
}
