package grpccodec

import (
	"testing"

	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// FuzzUnmarshal feeds arbitrary bytes to the codec as ProxyToAgent and
// AgentToProxy messages, whole and split into pieces. It must never panic
// nor allocate beyond the bound of checkDecodeAllocs, the split and whole forms must
// agree, and whatever decodes must survive a marshal/unmarshal round trip
// unchanged.
func FuzzUnmarshal(f *testing.F) {
	for _, r := range requests() {
		b, _ := proto.Marshal(r)
		f.Add(b)
		b, _ = proto.Marshal(response(correlationOf(r), false))
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newMsg := range []func() proto.Message{
			func() proto.Message { return &pb.ProxyToAgent{} },
			func() proto.Message { return &pb.AgentToProxy{} },
		} {
			whole, pieces := newMsg(), newMsg()
			in := split(data, 3)
			var errWhole, errPieces error
			checkDecodeAllocs(t, "whole", len(data), func() {
				errWhole = Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, whole)
			})
			checkDecodeAllocs(t, "pieces", len(data), func() { errPieces = Codec().Unmarshal(in, pieces) })
			if (errWhole == nil) != (errPieces == nil) {
				t.Fatalf("whole: %v, pieces: %v", errWhole, errPieces)
			}
			if errWhole != nil {
				continue
			}
			if !proto.Equal(whole, pieces) {
				t.Fatal("whole and split input decode differently")
			}
			out, err := Codec().Marshal(whole)
			if err != nil {
				t.Fatalf("re-marshal: %v", err)
			}
			again := newMsg()
			if err := Codec().Unmarshal(out, again); err != nil {
				t.Fatalf("decode of re-marshaled bytes: %v", err)
			}
			out.Free()
			if !proto.Equal(whole, again) {
				t.Fatal("round trip changed the message")
			}
		}
	})
}
