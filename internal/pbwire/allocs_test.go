//go:build !race

package pbwire

import (
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
)

// Encoding a request-headers event into a buffer with room allocates
// nothing, whether its strings are ASCII (the fast path), other valid
// UTF-8, or need repair.
func TestEncodeRequestHeadersAllocs(t *testing.T) {
	for name, mutate := range map[string]func(*agentwire.RequestHeadersEvent){
		"ascii":   func(*agentwire.RequestHeadersEvent) {},
		"utf8":    func(ev *agentwire.RequestHeadersEvent) { ev.URI = "/café" },
		"invalid": func(ev *agentwire.RequestHeadersEvent) { ev.Headers[0].Values[0] = "caf\xe9" },
	} {
		ev := benchEvent()
		mutate(ev)
		buf := make([]byte, 0, 8192)
		allocs.Zero(t, name, 1000, func() {
			sz := MeasureRequestHeaders(ev, nowMS)
			buf = AppendMeasuredRequestHeaders(buf[:0], ev, sz)
			if len(buf) != sz.Len {
				t.Fatalf("%s: wrote %d bytes, measured %d", name, len(buf), sz.Len)
			}
		})
	}
}
