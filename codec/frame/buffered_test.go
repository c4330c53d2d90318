package frame

import (
	"bytes"
	"testing"
)

// TestFrameBuffered checks Buffered and FrameBuffered against a stream
// holding one whole frame followed by a partial one.
func TestFrameBuffered(t *testing.T) {
	var stream []byte
	stream, _ = AppendFrame(stream, TypePing, []byte(`{"sequence":1}`))
	second, _ := AppendFrame(nil, TypePing, []byte(`{"sequence":2}`))
	stream = append(stream, second[:len(second)-3]...)
	r := NewReader(bytes.NewReader(stream), MaxLen)
	defer r.Release()
	if r.FrameBuffered() || r.Buffered() != 0 {
		t.Fatal("a fresh reader reports buffered data")
	}
	if _, p, err := r.ReadFrame(); err != nil || string(p) != `{"sequence":1}` {
		t.Fatalf("first frame %q, %v", p, err)
	}
	if got := r.Buffered(); got != len(second)-3 {
		t.Fatalf("Buffered = %d, want %d", got, len(second)-3)
	}
	if r.FrameBuffered() {
		t.Fatal("FrameBuffered true for a partial frame")
	}
	whole := append(append([]byte(nil), stream...), second[len(second)-3:]...)
	r2 := NewReader(bytes.NewReader(whole), MaxLen)
	defer r2.Release()
	if _, _, err := r2.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if !r2.FrameBuffered() {
		t.Fatal("FrameBuffered false with a whole frame buffered")
	}
}
