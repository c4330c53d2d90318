package pbwire

import (
	"testing"

	"github.com/agentwire/agentwire"
)

// benchEvent is a browser-like request with 15 headers.
func benchEvent() *agentwire.RequestHeadersEvent {
	ev := sampleHeaders()
	for _, n := range []string{"user-agent", "accept-encoding", "accept-language", "cookie", "x-forwarded-for",
		"x-request-id", "content-type", "authorization", "referer", "cache-control", "connection", "sec-ch-ua"} {
		ev.Headers = append(ev.Headers, agentwire.Header{Name: n, Values: []string{"value of " + n + " with some length to it"}})
	}
	return ev
}

// BenchmarkEncodeRequestHeaders compares sizing and encoding into an exactly
// sized buffer with two walks (SizeRequestHeaders + AppendRequestHeaders)
// and with one (MeasureRequestHeaders + AppendMeasuredRequestHeaders).
func BenchmarkEncodeRequestHeaders(b *testing.B) {
	ev := benchEvent()
	buf := make([]byte, 0, 4096)
	b.Run("size+append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := SizeRequestHeaders(ev, nowMS)
			buf = AppendRequestHeaders(buf[:0], ev, nowMS)
			if len(buf) != n {
				b.Fatal("size mismatch")
			}
		}
	})
	b.Run("measure+append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sz := MeasureRequestHeaders(ev, nowMS)
			buf = AppendMeasuredRequestHeaders(buf[:0], ev, sz)
			if len(buf) != sz.Len {
				b.Fatal("size mismatch")
			}
		}
	})
}
