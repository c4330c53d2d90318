package payload

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkJSONHeaderKeys decodes the fixture request-headers event with
// its header names in three forms: compact ("name":), spaced before the
// colon ("name" :) and escaped (first byte as \u00XX). readKey scans each
// form once; the last two once went through a second scan.
func BenchmarkJSONHeaderKeys(b *testing.B) {
	ev := jsonFixtureRequestHeaders()
	compact := AppendRequestHeadersJSON(nil, ev)
	spaced := bytes.ReplaceAll(compact, []byte(`":[`), []byte(`" :[`))
	escaped := compact
	for _, h := range ev.Headers {
		escaped = bytes.Replace(escaped, []byte(`"`+h.Name+`":[`),
			fmt.Appendf(nil, `"\u%04x%s":[`, h.Name[0], h.Name[1:]), 1)
	}
	var want RequestHeadersEvent
	if err := DecodeRequestHeadersJSON(compact, &want); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{{"compact", compact}, {"spaced", spaced}, {"escaped", escaped}} {
		b.Run(tc.name, func(b *testing.B) {
			var v RequestHeadersEvent
			if err := DecodeRequestHeadersJSON(tc.data, &v); err != nil {
				b.Fatal(err)
			}
			if fmt.Sprintf("%q", v.Headers) != fmt.Sprintf("%q", want.Headers) {
				b.Fatalf("headers %q, want %q", v.Headers, want.Headers)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.data)))
			for b.Loop() {
				if err := DecodeRequestHeadersJSON(tc.data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
