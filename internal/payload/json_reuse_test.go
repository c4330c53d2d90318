package payload

import (
	"testing"
	"unsafe"
)

// TestJSONRequestHeadersReuse decodes into the same event twice: names and
// values equal to the previous ones keep their strings (same memory),
// changed, escaped and non-ASCII ones are decoded afresh and correctly.
func TestJSONRequestHeadersReuse(t *testing.T) {
	first := []byte(`{"metadata":{"correlation_id":"a","request_id":"r","client_ip":"1.2.3.4","client_port":1,"protocol":"HTTP/1.1","timestamp":"2026-01-01T00:00:00Z"},` +
		`"method":"GET","uri":"/","headers":{"accept":["x","y"],"host":["h"],"user-agent":["ua"]}}`)
	second := []byte(`{"metadata":{"correlation_id":"b","request_id":"r","client_ip":"1.2.3.4","client_port":1,"protocol":"HTTP/1.1","timestamp":"2026-01-01T00:00:00Z"},` +
		`"method":"GET","uri":"/","headers":{"accept":["x","z"],"h\u006fst":["h"],"user-agent":["\u00fc"],"x-new":["n"]}}`)
	var ev RequestHeadersEvent
	if err := DecodeRequestHeadersJSON(first, &ev); err != nil {
		t.Fatal(err)
	}
	prev := append(Headers(nil), ev.Headers...)
	prevVals := [][]string{append([]string(nil), ev.Headers[0].Values...), append([]string(nil), ev.Headers[1].Values...)}
	if err := DecodeRequestHeadersJSON(second, &ev); err != nil {
		t.Fatal(err)
	}
	want := Headers{{Name: "accept", Values: []string{"x", "z"}}, {Name: "host", Values: []string{"h"}},
		{Name: "user-agent", Values: []string{"ü"}}, {Name: "x-new", Values: []string{"n"}}}
	if len(ev.Headers) != len(want) {
		t.Fatalf("headers %v", ev.Headers)
	}
	for i := range want {
		if ev.Headers[i].Name != want[i].Name || len(ev.Headers[i].Values) != len(want[i].Values) {
			t.Fatalf("header %d = %+v, want %+v", i, ev.Headers[i], want[i])
		}
		for j := range want[i].Values {
			if ev.Headers[i].Values[j] != want[i].Values[j] {
				t.Fatalf("header %d = %+v, want %+v", i, ev.Headers[i], want[i])
			}
		}
	}
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	if !same(ev.Headers[0].Name, prev[0].Name) || !same(ev.Headers[0].Values[0], prevVals[0][0]) {
		t.Error("unchanged name or value was copied again")
	}
	if !same(ev.Headers[1].Name, prev[1].Name) || !same(ev.Headers[1].Values[0], prevVals[1][0]) {
		t.Error("escaped key equal to the old name, or the equal value, was not reused")
	}
	// The first decode's strings are intact (nothing was overwritten).
	if prev[0].Name != "accept" || prevVals[0][1] != "y" || prev[2].Name != "user-agent" {
		t.Fatalf("old strings changed: %+v %v", prev, prevVals)
	}
}
