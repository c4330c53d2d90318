//go:build !race

package ring

import (
	"context"
	"testing"
)

func TestAllocsZero(t *testing.T) {
	r := New[*int](64)
	x := new(int)
	dst := make([]*int, 16)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		for range 8 {
			if err := r.TryEnqueue(x); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Enqueue(ctx, x); err != nil {
			t.Fatal(err)
		}
		if n, err := r.DequeueBatch(dst); n != 9 || err != nil {
			t.Fatal(n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("TryEnqueue/Enqueue/DequeueBatch allocate %.1f times per run, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(1000, func() {
		_ = r.TryEnqueue(x)
		_ = r.TryDequeueBatch(dst)
	})
	if allocs != 0 {
		t.Fatalf("TryEnqueue/TryDequeueBatch allocate %.1f times per run, want 0", allocs)
	}
}
