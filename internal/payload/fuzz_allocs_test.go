package payload

import (
	"testing"

	"github.com/agentwire/agentwire/internal/fuzzcheck"
)

// checkDecodeAllocs runs decode once and fails t when it allocated more
// than 64 bytes per byte of the n-byte input (plus fuzzcheck.Slack).
func checkDecodeAllocs(t testing.TB, what string, n int, decode func()) {
	t.Helper()
	fuzzcheck.Allocs(t, what, n, 64, decode)
}
