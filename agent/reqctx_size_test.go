package agent

import (
	"context"
	"testing"
	"unsafe"
)

// TestReqCtxSize: a request context, allocated for every event in slabs
// of slabSize, is at most 56 bytes, and a slab fills 4 KiB, a size class
// of its own, with less than one context to spare (at 88 bytes a slab of
// 64 was 5632 bytes, rounded up to 6144: 96 bytes per event; now 56).
// Its size is most of the bytes the agent allocates per event, and so
// sets how often its garbage collector runs at 64 in flight: the remote
// span context it carried as a parsed SpanContext with a sync.Once (168
// bytes in all) made the echo agent collect 2.7 times as often per
// request as before tracing was added.
func TestReqCtxSize(t *testing.T) {
	size := unsafe.Sizeof(reqCtx{})
	if size > 56 {
		t.Fatalf("reqCtx is %d bytes, want at most 56", size)
	}
	if n := unsafe.Sizeof(remoteSpan{}); n > 24 {
		t.Fatalf("remoteSpan is %d bytes, want at most 24 (the lazy part's pointer and the traceparent)", n)
	}
	if n := slabSize * size; n > 4<<10 || 4<<10-n >= size {
		t.Fatalf("a slab is %d bytes, want at most 4096 with less than %d to spare", n, size)
	}
}

// TestReqCtxAfterFuncList: AfterFunc's functions kept as a list: stopping
// any of several (the first registered, one in the middle) prevents just
// that one, the others all run on cancel, and a second stop reports false.
func TestReqCtxAfterFuncList(t *testing.T) {
	var slab reqCtxSlab
	c := slab.get(context.Background())
	ran := make(chan int, 4)
	stops := make([]func() bool, 4)
	for i := range stops {
		stops[i] = c.AfterFunc(func() { ran <- i })
	}
	if !stops[0]() || !stops[2]() {
		t.Fatal("stop of a registered function reported false")
	}
	if stops[2]() {
		t.Fatal("second stop reported true")
	}
	c.cancel(context.Canceled)
	got := map[int]bool{<-ran: true, <-ran: true}
	if !got[1] || !got[3] {
		t.Fatalf("ran %v, want 1 and 3", got)
	}
	select {
	case i := <-ran:
		t.Fatalf("stopped function %d ran", i)
	default:
	}
	if stops[1]() {
		t.Fatal("stop after the function ran reported true")
	}
}
