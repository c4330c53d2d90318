package grpccodec

import (
	"fmt"
	"testing"

	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

type benchCase struct {
	name string
	msg  proto.Message
	new  func() proto.Message
}

func benchCases() []benchCase {
	cases := []benchCase{{"RequestHeaders15", requestHeaders(), func() proto.Message { return &pb.RequestHeadersEvent{} }}}
	for _, n := range []int{0, 1 << 10, 16 << 10, 64 << 10} {
		name := fmt.Sprintf("BodyChunk%dB", n)
		if n >= 1<<10 {
			name = fmt.Sprintf("BodyChunk%dKiB", n>>10)
		}
		cases = append(cases, benchCase{name, bodyChunk(n), func() proto.Message { return &pb.BodyChunkEvent{} }})
	}
	return cases
}

func benchCodecs(b *testing.B) []struct {
	name string
	c    encoding.CodecV2
} {
	return []struct {
		name string
		c    encoding.CodecV2
	}{{"vtproto", Codec()}, {"default", defaultCodec(b)}}
}

// BenchmarkMarshal measures Marshal followed by Free, as gRPC does after
// writing the message.
func BenchmarkMarshal(b *testing.B) {
	for _, bc := range benchCases() {
		for _, cc := range benchCodecs(b) {
			b.Run(bc.name+"/"+cc.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(proto.Size(bc.msg)))
				for b.Loop() {
					out, err := cc.c.Marshal(bc.msg)
					if err != nil {
						b.Fatal(err)
					}
					out.Free()
				}
			})
		}
	}
}

// BenchmarkUnmarshal decodes into a new message each time, as grpc-go's
// generated stubs do.
func BenchmarkUnmarshal(b *testing.B) {
	for _, bc := range benchCases() {
		raw, err := proto.Marshal(bc.msg)
		if err != nil {
			b.Fatal(err)
		}
		data := mem.BufferSlice{mem.SliceBuffer(raw)}
		for _, cc := range benchCodecs(b) {
			b.Run(bc.name+"/"+cc.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(raw)))
				for b.Loop() {
					if err := cc.c.Unmarshal(data, bc.new()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMarshalVTPool isolates the pool's cost: grpc's default pool
// clears the whole tier buffer on Get and jumps from 32 KiB to 1 MiB, so a
// 64 KiB chunk pays a 1 MiB memclr. A binary-tiered pool with every power
// of two from 256 B to 4 MiB is shown for comparison.
func BenchmarkMarshalVTPool(b *testing.B) {
	var exps []uint8
	for e := uint8(8); e <= 22; e++ {
		exps = append(exps, e)
	}
	fine, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		b.Fatal(err)
	}
	pools := []struct {
		name string
		p    mem.BufferPool
	}{{"default", mem.DefaultBufferPool()}, {"pow2", fine}}
	for _, bc := range benchCases() {
		for _, pl := range pools {
			b.Run(bc.name+"/"+pl.name, func(b *testing.B) {
				m := bc.msg.(vtMessage)
				b.ReportAllocs()
				b.SetBytes(int64(m.SizeVT()))
				for b.Loop() {
					buf, err := marshalVT(m, pl.p)
					if err != nil {
						b.Fatal(err)
					}
					buf.Free()
				}
			})
		}
	}
}
