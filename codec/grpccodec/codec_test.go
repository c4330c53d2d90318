package grpccodec

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"

	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the default codec
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func defaultCodec(t testing.TB) encoding.CodecV2 {
	c := encoding.GetCodecV2("proto")
	if c == nil {
		t.Fatal("grpc's proto codec is not registered")
	}
	if _, ours := c.(codec); ours {
		t.Fatal("the registered proto codec is ours; the comparison would be vacuous")
	}
	return c
}

func TestNameAndOptions(t *testing.T) {
	if Codec().Name() != "proto" {
		t.Fatalf("Name = %q", Codec().Name())
	}
	if ClientOption() == nil || ServerOption() == nil {
		t.Fatal("nil option")
	}
}

// split cuts b into a BufferSlice of n pieces, as gRPC delivers a message
// that spans several HTTP/2 frames.
func split(b []byte, n int) mem.BufferSlice {
	var out mem.BufferSlice
	step := len(b)/n + 1
	for len(b) > 0 {
		k := min(step, len(b))
		out = append(out, mem.SliceBuffer(bytes.Clone(b[:k])))
		b = b[k:]
	}
	return out
}

func TestMatchesDefaultCodec(t *testing.T) {
	def := defaultCodec(t)
	msgs := []proto.Message{
		requestHeaders(),
		bodyChunk(0), bodyChunk(100), bodyChunk(1 << 10), bodyChunk(64 << 10),
		&pb.RequestHeadersEvent{},
		response(testCorrelationID, false),
		response(testCorrelationID, true),
		// Without vtprotobuf methods: the fallback path.
		wrapperspb.String("hello"),
		wrapperspb.Bytes(bytes.Repeat([]byte{7}, 5000)),
		mustStruct(t),
	}
	for _, m := range msgs {
		name := string(m.ProtoReflect().Descriptor().FullName())
		_, isVT := m.(vtMessage)
		ours, err := Codec().Marshal(m)
		if err != nil {
			t.Fatalf("%s: Marshal: %v", name, err)
		}
		if len(ours) != 1 {
			t.Fatalf("%s: Marshal returned %d buffers, want 1", name, len(ours))
		}
		theirs, err := def.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		ob, tb := ours.Materialize(), theirs.Materialize()
		// Messages with maps of more than one entry may legitimately
		// differ in byte order; ours have at most one entry per map.
		if !bytes.Equal(ob, tb) {
			t.Errorf("%s (vt=%v): bytes differ from the default codec (%d vs %d bytes)", name, isVT, len(ob), len(tb))
		}
		for _, pieces := range []int{1, 3} {
			got := m.ProtoReflect().New().Interface()
			if err := Codec().Unmarshal(split(tb, pieces), got); err != nil {
				t.Fatalf("%s: Unmarshal of %d pieces: %v", name, pieces, err)
			}
			if !proto.Equal(got, m) {
				t.Errorf("%s: Unmarshal of %d pieces differs", name, pieces)
			}
		}
		got := m.ProtoReflect().New().Interface()
		if err := def.Unmarshal(mem.BufferSlice{mem.SliceBuffer(ob)}, got); err != nil || !proto.Equal(got, m) {
			t.Errorf("%s: default codec cannot read our bytes: %v", name, err)
		}
		ours.Free()
		theirs.Free()
	}
}

func mustStruct(t *testing.T) *structpb.Struct {
	s, err := structpb.NewStruct(map[string]any{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUnmarshalDoesNotAliasInput(t *testing.T) {
	b, err := requestHeaders().MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	for _, pieces := range []int{1, 4} {
		data := split(b, pieces)
		got := &pb.RequestHeadersEvent{}
		if err := Codec().Unmarshal(data, got); err != nil {
			t.Fatal(err)
		}
		// gRPC frees (and may reuse) the receive buffers after Unmarshal.
		for _, buf := range data {
			clear(buf.ReadOnlyData())
		}
		if !proto.Equal(got, requestHeaders()) {
			t.Fatalf("%d pieces: decoded message changed when the input buffers were overwritten", pieces)
		}
	}
}

func TestUnmarshalMergesIntoFreshPooledMessage(t *testing.T) {
	b, _ := requestHeaders().MarshalVT()
	for range 3 {
		m := pb.RequestHeadersEventFromVTPool()
		if err := Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, m); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(m, requestHeaders()) {
			t.Fatal("pooled message decoded wrongly")
		}
		m.ReturnToVTPool()
	}
}

func TestErrors(t *testing.T) {
	if _, err := Codec().Marshal("not a message"); err == nil {
		t.Fatal("Marshal of a string succeeded")
	}
	if err := Codec().Unmarshal(nil, 42); err == nil {
		t.Fatal("Unmarshal into an int succeeded")
	}
	bad := mem.BufferSlice{mem.SliceBuffer{0x0a, 0x05, 'a'}} // field 1, length 5, 1 byte
	if err := Codec().Unmarshal(bad, &pb.RequestHeadersEvent{}); err == nil {
		t.Fatal("truncated vt message decoded")
	}
	if err := Codec().Unmarshal(bad, &wrapperspb.StringValue{}); err == nil {
		t.Fatal("truncated fallback message decoded")
	}
}

// countingPool counts buffers handed out and given back.
type countingPool struct {
	mem.BufferPool
	gets, puts atomic.Int64
}

func (p *countingPool) Get(n int) *[]byte { p.gets.Add(1); return p.BufferPool.Get(n) }
func (p *countingPool) Put(b *[]byte)     { p.puts.Add(1); p.BufferPool.Put(b) }

// lyingMessage reports a size that MarshalToSizedBufferVT does not fill.
type lyingMessage struct{ size int }

func (l lyingMessage) SizeVT() int                                  { return l.size }
func (l lyingMessage) MarshalToSizedBufferVT(b []byte) (int, error) { return len(b) - 1, nil }
func (l lyingMessage) UnmarshalVT([]byte) error                     { return nil }

func TestMarshalVTPoolAccounting(t *testing.T) {
	pool := &countingPool{BufferPool: mem.DefaultBufferPool()}
	for _, m := range []vtMessage{requestHeaders(), bodyChunk(16 << 10), bodyChunk(10)} {
		buf, err := marshalVT(m, pool)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := m.(interface{ MarshalVT() ([]byte, error) }).MarshalVT()
		if !bytes.Equal(buf.ReadOnlyData(), want) {
			t.Fatal("marshalVT bytes differ from MarshalVT")
		}
		buf.Free()
	}
	if g, p := pool.gets.Load(), pool.puts.Load(); g != 3 || p != 3 {
		t.Fatalf("pool gets/puts = %d/%d, want 3/3 (the 10-byte chunk is pooled too)", g, p)
	}
	for _, size := range []int{10, 5000} {
		if _, err := marshalVT(lyingMessage{size}, pool); !errors.Is(err, errSizeMismatch) {
			t.Fatalf("size %d: lying message: %v", size, err)
		}
	}
	if g, p := pool.gets.Load(), pool.puts.Load(); g != p {
		t.Fatalf("pool gets/puts = %d/%d after a failed marshal", g, p)
	}
}
