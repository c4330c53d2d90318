package payload_test

import (
	"testing"

	"github.com/agentwire/agentwire/bench"
	"github.com/agentwire/agentwire/internal/payload"
)

// BenchmarkWorkloadDecode decodes the benchmark workload's request-headers
// event (bench.SampleRequestHeaders, what agentwire bench sends) the way
// the agent does at 64 in flight: into one of 64 reused destinations in
// turn, each event with its own correlation and request id. allocs/op are
// the decoder's string allocations per event.
func BenchmarkWorkloadDecode(b *testing.B) {
	const dsts = 64
	const frames = 1024
	for _, enc := range []string{"json", "msgpack"} {
		b.Run(enc, func(b *testing.B) {
			data := make([][]byte, frames)
			var id []byte
			for i := range data {
				id = bench.AppendID(id[:0], i%dsts, uint64(i))
				ev := bench.SampleRequestHeaders(string(id))
				if enc == "json" {
					data[i] = payload.AppendRequestHeadersJSON(nil, &ev)
				} else {
					data[i] = payload.AppendRequestHeadersMsgpack(nil, &ev)
				}
			}
			decode := payload.DecodeRequestHeadersMsgpack
			if enc == "json" {
				decode = payload.DecodeRequestHeadersJSON
			}
			vs := make([]payload.RequestHeadersEvent, dsts)
			b.SetBytes(int64(len(data[0])))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := decode(data[i%frames], &vs[i%dsts]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
