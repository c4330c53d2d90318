//go:build !race

package bench

import (
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

func TestAppendIDAllocs(t *testing.T) {
	buf := make([]byte, 0, 32)
	allocs.Zero(t, "AppendID", 1000, func() { buf = AppendID(buf[:0], 7, 123456) })
}

// TestIDSlabAllocs: ids come from 4 KiB slabs, one allocation per slab
// and none per id (ids of 12 bytes here: a slab per ~340 ids, 32
// allocations in 10000).
func TestIDSlabAllocs(t *testing.T) {
	var s idSlab
	seq := uint64(1000)
	got := allocs.AtMost(t, "idSlab.next", 10000, 1.0/250, func() { _ = s.next(3, seq); seq++ })
	t.Logf("idSlab.next: %d allocations in 10000 ids", got)
}
