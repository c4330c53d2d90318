//go:build !race

package wiretext

import (
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

func TestNoAllocs(t *testing.T) {
	s, bad := "content-type: application/json", "caf\xe9 au lait"
	buf := make([]byte, 0, 64)
	allocs.Zero(t, "Valid, Len, Append", 1000, func() {
		_ = Valid(s)
		_ = Len(bad)
		buf = Append(buf[:0], bad)
	})
}
