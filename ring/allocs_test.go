//go:build !race

package ring

import (
	"context"
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

func TestAllocsZero(t *testing.T) {
	r := New[*int](64)
	x := new(int)
	dst := make([]*int, 16)
	ctx := context.Background()
	allocs.Zero(t, "TryEnqueue/Enqueue/DequeueBatch", 1000, func() {
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
	allocs.Zero(t, "TryEnqueue/TryDequeueBatch", 1000, func() {
		_ = r.TryEnqueue(x)
		_ = r.TryDequeueBatch(dst)
	})
}
