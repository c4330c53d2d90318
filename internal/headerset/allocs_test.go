//go:build !race

package headerset

import (
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

// TestGrouperReusesStorageAllocs: a small header list grouped into storage
// that held one before allocates nothing.
func TestGrouperReusesStorageAllocs(t *testing.T) {
	h := group(nil, "a", "1", "b", "2", "a", "3", "c", "4")
	allocs.Zero(t, "grouping into reused storage", 1000, func() { h = group(h, "a", "1", "b", "2", "a", "3") })
}
