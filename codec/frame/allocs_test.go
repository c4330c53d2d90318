//go:build !race

package frame

import (
	"bytes"
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

func TestAllocsZero(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 1000)
	buf := make([]byte, 0, 4096)
	allocs.Zero(t, "AppendFrame into a reused buffer", 1000, func() {
		var err error
		buf, err = AppendFrame(buf[:0], TypeRequestHeaders, payload)
		if err != nil {
			t.Fatal(err)
		}
	})
	allocs.Zero(t, "BeginFrame/EndFrame into a reused buffer", 1000, func() {
		b, start := BeginFrame(buf[:0], TypeAgentResponse)
		b = append(b, payload...)
		if err := EndFrame(b, start); err != nil {
			t.Fatal(err)
		}
		buf = b
	})

	var stream []byte
	for _, n := range []int{0, 17, 300, 1000, 5000} {
		stream, _ = AppendFrame(stream, TypeRequestBodyChunk, bytes.Repeat([]byte{1}, n))
	}
	rd := NewReader(&loopReader{data: stream}, 0)
	defer rd.Release()
	if _, _, err := rd.ReadFrame(); err != nil { // warm: takes the read buffer
		t.Fatal(err)
	}
	allocs.Zero(t, "ReadFrame of small frames", 5000, func() {
		if _, _, err := rd.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	})
}
