//go:build !race

package agentwire_test

import (
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
)

// TestHeadersGetAllocs: Get matches a name in another case without
// allocating (no lowered copy of the name).
func TestHeadersGetAllocs(t *testing.T) {
	h := make(agentwire.Headers, 0, 4)
	h.Add("host", "a")
	allocs.Zero(t, "Headers.Get", 1000, func() { _ = h.Get("Host") })
}
