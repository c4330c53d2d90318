//go:build !race

package tracectx

import (
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

// TestNoAllocations: parsing and formatting allocate nothing (exact count).
func TestNoAllocations(t *testing.T) {
	buf := make([]byte, 0, Len)
	sc, _ := Parse(sample)
	allocs.Zero(t, "Parse + Append", 1000, func() {
		if _, ok := Parse(sample); !ok {
			t.Fatal("parse")
		}
		buf = Append(buf[:0], sc)
	})
}
