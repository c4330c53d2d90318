//go:build !race

package grpccodec

import (
	"testing"

	"google.golang.org/grpc/mem"
)

func TestAllocsMarshalVTPooled(t *testing.T) {
	ev := requestHeaders()
	pool := mem.DefaultBufferPool()
	if size := ev.SizeVT(); size <= directAllocMax {
		t.Fatalf("fixture is %d bytes, too small for the pooled path", size)
	}
	// Warm the pool and the buffer-object pool.
	for range 4 {
		b, _ := marshalVT(ev, pool)
		b.Free()
	}
	if a := testing.AllocsPerRun(1000, func() {
		b, err := marshalVT(ev, pool)
		if err != nil {
			t.Fatal(err)
		}
		b.Free()
	}); a != 0 {
		t.Fatalf("SizeVT+MarshalToSizedBufferVT into a pooled buffer: %.1f allocs, want 0", a)
	}
	// Through the CodecV2 interface the one remaining allocation is the
	// returned one-element mem.BufferSlice, which gRPC keeps.
	if a := testing.AllocsPerRun(1000, func() {
		out, err := Codec().Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		out.Free()
	}); a > 1 {
		t.Fatalf("Codec().Marshal: %.1f allocs, want <= 1", a)
	}
}
