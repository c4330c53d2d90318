package engine

import (
	"testing"

	"github.com/agentwire/agentwire/codec/grpccodec"
)

// TestOutPoolLargestTier: the engine encodes into grpccodec.Pool (one pool
// for the codec, the agent and the engine), whose largest tier is
// maxPooledCap: a buffer of that size comes from the pool (wrapOut hands
// it back there), a larger one is allocated for its size (wrapOut leaves
// it to the garbage collector).
func TestOutPoolLargestTier(t *testing.T) {
	if outPool != grpccodec.Pool() {
		t.Fatal("outPool is not grpccodec.Pool()")
	}
	for _, tc := range []struct{ n, cap int }{{maxPooledCap, maxPooledCap}, {maxPooledCap + 1, maxPooledCap + 1}} {
		bp := newOutBuffer(tc.n)
		if cap(*bp) != tc.cap {
			t.Errorf("newOutBuffer(%d): cap %d, want %d", tc.n, cap(*bp), tc.cap)
		}
		*bp = (*bp)[:tc.n]
		wrapOut(bp).Free()
	}
}
