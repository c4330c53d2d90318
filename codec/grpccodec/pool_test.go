package grpccodec

import (
	"testing"

	"google.golang.org/grpc/mem"
)

// smallCap is the capacity of Pool's smallest tier.
const smallCap = 1 << minTierShift

// TestPool: Get(n) returns n bytes with the capacity of the smallest
// power-of-two tier holding them, 2 KiB (above grpc-go's pooling
// threshold, so mem.NewBuffer recycles it) to 1 MiB; a larger buffer has
// just n bytes. Put takes them all (the largest is dropped).
func TestPool(t *testing.T) {
	p := Pool()
	for _, tc := range []struct{ n, cap int }{
		{0, smallCap}, {1, smallCap}, {100, smallCap}, {smallCap, smallCap}, {smallCap + 1, 4 << 10},
		{20 << 10, 32 << 10}, {1 << maxTierShift, 1 << maxTierShift}, {1<<maxTierShift + 1, 1<<maxTierShift + 1},
	} {
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

// TestPoolDoesNotClear: a buffer above 2 KiB given back and handed out
// again keeps its bytes (grpc-go's default pool, which Pool used above
// 2 KiB, clears every buffer it hands out). sync.Pool may drop a buffer
// (always under -race, now and then), so the round trip is tried until
// the same buffer comes back.
func TestPoolDoesNotClear(t *testing.T) {
	p := Pool()
	for _, n := range []int{smallCap, 3000, 40 << 10} {
		same := false
		for try := 0; try < 200 && !same; try++ {
			bp := p.Get(n)
			for i := range *bp {
				(*bp)[i] = 0xa5
			}
			p.Put(bp)
			bq := p.Get(n)
			if same = bq == bp; same {
				for i, c := range *bq {
					if c != 0xa5 {
						t.Fatalf("Get(%d): byte %d cleared to %#x", n, i, c)
					}
				}
			}
			p.Put(bq)
		}
		if !same {
			t.Fatalf("Get(%d): the buffer given back never came back in 200 tries", n)
		}
	}
}

// TestMarshalIntoPool: Codec().Marshal encodes a small message into one of
// Pool's 2 KiB buffers (grpc-go's default pool would hand out, and clear,
// a 4 KiB one), a large one into one of its power-of-two tiers, and the
// bytes are the message's.
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
