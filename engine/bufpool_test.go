package engine

import (
	"testing"

	"github.com/agentwire/agentwire/codec/grpccodec"
)

// TestOutPoolLargestTier: the engine encodes into grpccodec.Pool (one pool
// for the codec, the agent and the engine): a buffer of its largest tier
// (1 MiB) has exactly that capacity, a larger one is allocated for its
// size, and both can be wrapped and freed (Put drops the larger one).
func TestOutPoolLargestTier(t *testing.T) {
	if outPool != grpccodec.Pool() {
		t.Fatal("outPool is not grpccodec.Pool()")
	}
	const largest = 1 << 20
	for _, tc := range []struct{ n, cap int }{{largest, largest}, {largest + 1, largest + 1}} {
		bp := newOutBuffer(tc.n)
		if cap(*bp) != tc.cap {
			t.Errorf("newOutBuffer(%d): cap %d, want %d", tc.n, cap(*bp), tc.cap)
		}
		*bp = (*bp)[:tc.n]
		wrapOut(bp).Free()
	}
}
