package payload_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/bench"
	"github.com/agentwire/agentwire/internal/payload"
)

// BenchmarkWorkloadEncode encodes the benchmark workload's request-headers
// event (bench.SampleRequestHeaders with its headers sorted once, as
// agentwire bench does at setup: the encoders' sorted fast paths, with
// strings past 64 bytes and one header value that needs escaping).
func BenchmarkWorkloadEncode(b *testing.B) {
	ev := bench.SampleRequestHeaders(string(bench.AppendID(nil, 3, 12345)))
	slices.SortStableFunc(ev.Headers, func(x, y agentwire.Header) int { return strings.Compare(x.Name, y.Name) })
	for _, enc := range []string{"json", "msgpack"} {
		b.Run(enc, func(b *testing.B) {
			encode := payload.AppendRequestHeadersMsgpack
			if enc == "json" {
				encode = payload.AppendRequestHeadersJSON
			}
			buf := encode(nil, &ev)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = encode(buf[:0], &ev)
			}
		})
	}
}
