package agent

import (
	"testing"
	"unsafe"
)

// TestReqCtxSize: a request context, allocated for every event in slabs
// of slabSize, stays within 104 bytes. Its size is most of the bytes the
// agent allocates per event, and so sets how often its garbage collector
// runs at 64 in flight: the remote span context it carried as a parsed
// SpanContext with a sync.Once (168 bytes in all) made the echo agent
// collect 2.7 times as often per request as before tracing was added.
func TestReqCtxSize(t *testing.T) {
	if n := unsafe.Sizeof(reqCtx{}); n > 104 {
		t.Fatalf("reqCtx is %d bytes, want at most 104", n)
	}
	if n := unsafe.Sizeof(remoteSpan{}); n > 24 {
		t.Fatalf("remoteSpan is %d bytes, want at most 24 (a marker pointer and the traceparent)", n)
	}
}
