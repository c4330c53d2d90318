//go:build !race

package grpccodec

import (
	"testing"

	"google.golang.org/grpc/mem"
)

func TestAllocsMarshalVTPooled(t *testing.T) {
	pool := mem.DefaultBufferPool()
	small := bodyChunk(0)
	if size := small.SizeVT(); size >= pooledMin {
		t.Fatalf("small fixture is %d bytes, want < %d", size, pooledMin)
	}
	large := requestHeaders()
	if size := large.SizeVT(); size < 256 {
		t.Fatalf("large fixture is only %d bytes", size)
	}
	for _, tc := range []struct {
		name string
		m    vtMessage
	}{{"small", small}, {"large", large}} {
		// Warm the pool and the buffer-object pool.
		for range 4 {
			b, _ := marshalVT(tc.m, pool)
			b.Free()
		}
		if a := testing.AllocsPerRun(1000, func() {
			b, err := marshalVT(tc.m, pool)
			if err != nil {
				t.Fatal(err)
			}
			if b.Len() != tc.m.SizeVT() {
				t.Fatalf("%s: buffer holds %d bytes, want %d", tc.name, b.Len(), tc.m.SizeVT())
			}
			b.Free()
		}); a != 0 {
			t.Fatalf("%s: SizeVT+MarshalToSizedBufferVT into a pooled buffer: %.1f allocs, want 0", tc.name, a)
		}
		// Through the CodecV2 interface the one remaining allocation is
		// the returned one-element mem.BufferSlice, which gRPC keeps.
		if a := testing.AllocsPerRun(1000, func() {
			out, err := Codec().Marshal(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			out.Free()
		}); a > 1 {
			t.Fatalf("%s: Codec().Marshal: %.1f allocs, want <= 1", tc.name, a)
		}
	}
}
