package grpccodec

import (
	"testing"

	"google.golang.org/grpc/mem"
)

// TestPool: Get(n) returns n bytes; up to 2 KiB with Pool's own capacity
// (above grpc-go's pooling threshold, so mem.NewBuffer recycles it),
// beyond from grpc-go's default pool (tier capacity); Put takes both back.
func TestPool(t *testing.T) {
	p := Pool()
	for _, tc := range []struct{ n, cap int }{{0, smallCap}, {1, smallCap}, {100, smallCap}, {smallCap, smallCap}, {smallCap + 1, 4 << 10}, {20 << 10, 32 << 10}} {
		bp := p.Get(tc.n)
		if len(*bp) != tc.n || cap(*bp) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tc.n, len(*bp), cap(*bp), tc.n, tc.cap)
		}
		if mem.IsBelowBufferPoolingThreshold(cap(*bp)) {
			t.Errorf("Get(%d): capacity %d is not pooled by mem.NewBuffer", tc.n, cap(*bp))
		}
		p.Put(bp)
	}
}

// TestMarshalIntoPool: Codec().Marshal encodes a small message into one of
// Pool's 2 KiB buffers (grpc-go's default pool would hand out, and clear,
// a 4 KiB one), a large one into a default-pool buffer, and the bytes are
// the message's.
func TestMarshalIntoPool(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    vtMessage
		cap  int
	}{{"small", bodyChunk(0), smallCap}, {"large", bodyChunk(16 << 10), 32 << 10}} {
		out, err := Codec().Marshal(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 {
			t.Fatalf("%s: %d buffers", tc.name, len(out))
		}
		b := out[0].ReadOnlyData()
		if cap(b) != tc.cap {
			t.Errorf("%s: buffer capacity %d, want %d", tc.name, cap(b), tc.cap)
		}
		want := make([]byte, tc.m.SizeVT())
		if _, err := tc.m.MarshalToSizedBufferVT(want); err != nil {
			t.Fatal(err)
		}
		if string(b) != string(want) {
			t.Errorf("%s: marshalled bytes differ", tc.name)
		}
		out.Free()
	}
}
