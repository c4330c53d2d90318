package payload

import "testing"

// BenchmarkRequestHeadersSorted: the 15-header event with sorted names and
// plain ASCII strings (what a proxy that keeps headers sorted sends; the
// encoders' fast paths).
func BenchmarkRequestHeadersSorted(b *testing.B) {
	e := mpBenchRequestHeaders()
	b.Run("msgpack", func(b *testing.B) {
		b.ReportAllocs()
		buf := AppendRequestHeadersMsgpack(nil, e)
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf = AppendRequestHeadersMsgpack(buf[:0], e)
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		buf := AppendRequestHeadersJSON(nil, e)
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf = AppendRequestHeadersJSON(buf[:0], e)
		}
	})
	q := mpBenchRequestHeaders()
	q.Headers[12].Values = []string{`"Chromium";v="120", "Not?A_Brand";v="24"`}
	b.Run("json_quoted_value", func(b *testing.B) {
		b.ReportAllocs()
		buf := AppendRequestHeadersJSON(nil, q)
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			buf = AppendRequestHeadersJSON(buf[:0], q)
		}
	})
}
