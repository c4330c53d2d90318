package payload

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
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

// TestJSONRequestHeadersReuseEscaped: a value written with escape
// sequences that unescapes to the string the destination held keeps that
// string (same memory), in header values and metadata; one that unescapes
// to something else is decoded afresh, and an invalid one still fails.
// The NoCopy decoder's request id equal to an escaped correlation id is
// the correlation id's string (not a view of scratch space).
func TestJSONRequestHeadersReuseEscaped(t *testing.T) {
	ev1 := []byte(`{"metadata":{"correlation_id":"c\"1","request_id":"c\"1","client_ip":"1.2.3.4","client_port":1,"protocol":"HTTP/1.1","timestamp":"2026-01-01T00:00:00Z"},` +
		`"method":"GET","uri":"/a\/b","headers":{"sec-ch-ua":["\"Chromium\";v=\"120\"","x\\y"]}}`)
	ev2 := []byte(`{"metadata":{"correlation_id":"c\"1","request_id":"c\"1","client_ip":"1.2.3.4","client_port":1,"protocol":"HTTP/1.1","timestamp":"2026-01-01T00:00:00Z"},` +
		`"method":"GET","uri":"\/a\/b","headers":{"sec-ch-ua":["\u0022Chromium\";v=\"120\"","x\\z"]}}`)
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	var ev RequestHeadersEvent
	if err := DecodeRequestHeadersJSON(ev1, &ev); err != nil {
		t.Fatal(err)
	}
	uri, ua, other := ev.URI, ev.Headers[0].Values[0], ev.Headers[0].Values[1]
	cid := ev.Metadata.CorrelationID
	if err := DecodeRequestHeadersJSON(ev2, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.URI != "/a/b" || ev.Headers[0].Values[0] != `"Chromium";v="120"` || ev.Headers[0].Values[1] != `x\z` ||
		ev.Metadata.CorrelationID != `c"1` || ev.Metadata.RequestID != `c"1` {
		t.Fatalf("decoded %q %q %+v", ev.URI, ev.Metadata.CorrelationID, ev.Headers)
	}
	if !same(ev.URI, uri) || !same(ev.Headers[0].Values[0], ua) || !same(ev.Metadata.CorrelationID, cid) {
		t.Error("escaped string equal to the destination's was copied again")
	}
	if !same(ev.Metadata.RequestID, ev.Metadata.CorrelationID) {
		t.Error("request id equal to the correlation id does not share its string")
	}
	if other != `x\y` {
		t.Errorf("old value changed to %q", other)
	}
	// Invalid: a lone surrogate where the old value was; the error is the
	// one readString reports.
	bad := bytes.Replace(ev2, []byte(`"x\\z"`), []byte(`"\udc00xx"`), 1)
	err := DecodeRequestHeadersJSON(bad, &ev)
	var je *JSONError
	if !errors.As(err, &je) || !strings.Contains(je.Msg, "lone leading surrogate") {
		t.Fatalf("lone surrogate: %v", err)
	}

	var nc RequestHeadersEvent
	if err := DecodeRequestHeadersJSONNoCopy(ev2, &nc); err != nil {
		t.Fatal(err)
	}
	if nc.Metadata.RequestID != `c"1` || !same(nc.Metadata.RequestID, nc.Metadata.CorrelationID) {
		t.Fatalf("NoCopy request id %q does not share the correlation id %q", nc.Metadata.RequestID, nc.Metadata.CorrelationID)
	}
	// A different escaped request id is its own string, intact after a
	// later escaped key has used the scratch space.
	ev3 := bytes.Replace(ev2, []byte(`"request_id":"c\"1"`), []byte(`"request_id":"r\"x"`), 1)
	ev3 = bytes.Replace(ev3, []byte(`"sec-ch-ua"`), []byte(`"s\u0065c-ch-ua"`), 1)
	if err := DecodeRequestHeadersJSONNoCopy(ev3, &nc); err != nil {
		t.Fatal(err)
	}
	if nc.Metadata.RequestID != `r"x` || nc.Headers[0].Name != "sec-ch-ua" {
		t.Fatalf("NoCopy request id %q, header %q", nc.Metadata.RequestID, nc.Headers[0].Name)
	}
}

// TestJSONHeaderValuesShapes: header value arrays of every shape decode
// the same with the copying decoder (which reads a compact array's first
// string directly, json_scan.go readHeaderValues) as with the NoCopy one
// (the general array walk), into a fresh and into a reused destination,
// with the same errors at the same offsets.
func TestJSONHeaderValuesShapes(t *testing.T) {
	const pre = `{"metadata":{"correlation_id":"a","request_id":"r","client_ip":"1.2.3.4","client_port":1,"protocol":"HTTP/1.1","timestamp":"2026-01-01T00:00:00Z"},"method":"GET","uri":"/","headers":{"h":`
	for _, vals := range []string{
		`["a"]`, `["a","b"]`, `["a" ,"b"]`, `["a" ]`, `[ "a"]`, `[]`, `["a\"b"]`, `["a","b","c"]`,
		`["\u0001"]`, "[\"\x01\"]", `["a",]`, `["a"`, `["a`, `["a"}`, `["a",1]`, `[1]`, `["\ud800"]`, `["a"]]`,
	} {
		in := []byte(pre + vals + `}}`)
		var fresh, nc RequestHeadersEvent
		reused := RequestHeadersEvent{Headers: Headers{{Name: "h", Values: []string{"a", "x"}}}}
		errFresh := DecodeRequestHeadersJSON(in, &fresh)
		errReused := DecodeRequestHeadersJSON(in, &reused)
		errNC := DecodeRequestHeadersJSONNoCopy(in, &nc)
		if fmt.Sprint(errFresh) != fmt.Sprint(errNC) || fmt.Sprint(errReused) != fmt.Sprint(errNC) {
			t.Errorf("%s: errors %v / %v (reused), NoCopy %v", vals, errFresh, errReused, errNC)
			continue
		}
		// (nil and empty Values are the same here.)
		if errNC == nil && (fmt.Sprintf("%q", fresh.Headers) != fmt.Sprintf("%q", nc.Headers) ||
			fmt.Sprintf("%q", reused.Headers) != fmt.Sprintf("%q", nc.Headers)) {
			t.Errorf("%s: headers %q / %q (reused), NoCopy %q", vals, fresh.Headers, reused.Headers, nc.Headers)
		}
	}
}

// TestJSONHeaderKeyShapes: header names of every shape (compact, spaced
// before the colon, escaped, non-ASCII, invalid) decode to the same names
// and errors (with offsets) in both decoders, whether readKey settles
// them at once (compact) or finishes them in keyRest (the others), each
// from one scan of the name.
func TestJSONHeaderKeyShapes(t *testing.T) {
	const pre = `{"metadata":{"correlation_id":"a","request_id":"r","client_ip":"1.2.3.4","client_port":1,"protocol":"HTTP/1.1","timestamp":"2026-01-01T00:00:00Z"},"method":"GET","uri":"/","headers":{`
	for _, tc := range []struct{ keys, want string }{
		{`"h":["a"]`, `[{"h" ["a"]}]`},
		{`"h" :["a"]`, `[{"h" ["a"]}]`},
		{`"h": ["a"],"g":["b"]`, `[{"h" ["a"]} {"g" ["b"]}]`},
		{`"\u0068":["a"]`, `[{"h" ["a"]}]`},
		{`"h\"x":["a"]`, `[{"h\"x" ["a"]}]`},
		{`"hü":["a"]`, `[{"hü" ["a"]}]`},
		{`"h":["a"],"h":["b"]`, `[{"h" ["b"]}]`},
		{`"":["a"]`, `[{"" ["a"]}]`},
		{"\"h\xff\":[\"a\"]", `agentwire: json: invalid unicode code point at offset 184`},
		{"\"h\x01\":[\"a\"]", `agentwire: json: control character (\u0000-\u001F) found while parsing a string at offset 185`},
		{`"h\q":["a"]`, `agentwire: json: invalid escape at offset 186`},
		{`"h"["a"]`, "agentwire: json: expected `:` at offset 186"},
		{`"h`, `agentwire: json: EOF while parsing a string at offset 187`},
		{`h:["a"]`, `agentwire: json: key must be a string at offset 183`},
		{`"\u0068" :["a"]`, `[{"h" ["a"]}]`},
		{`"\u0068":["a"],"\u0067":["b"]`, `[{"h" ["a"]} {"g" ["b"]}]`},
		{"\"h\u00fc\"\n:[\"a\"]", `[{"hü" ["a"]}]`},
		{`"hü" :["a"],"hü":["b"]`, `[{"hü" ["b"]}]`},
		{`"\ud800":["a"]`, `agentwire: json: unexpected end of hex escape at offset 190`},
		{`"\udc00x":["a"]`, `agentwire: json: lone leading surrogate in hex escape at offset 190`},
		{`"\u0068"`, "agentwire: json: expected `:` at offset 191"},
		{`"hü"`, "agentwire: json: expected `:` at offset 188"},
		{`"\u0068" ["a"]`, "agentwire: json: expected `:` at offset 192"},
		{`"h" `, "agentwire: json: expected `:` at offset 187"},
	} {
		in := []byte(pre + tc.keys + `}}`)
		for _, dec := range []func([]byte, *RequestHeadersEvent) error{DecodeRequestHeadersJSON, DecodeRequestHeadersJSONNoCopy} {
			var ev RequestHeadersEvent
			got := ""
			if err := dec(in, &ev); err != nil {
				got = err.Error()
			} else {
				got = fmt.Sprintf("%q", ev.Headers)
			}
			if got != tc.want {
				t.Errorf("%s: got %s, want %s", tc.keys, got, tc.want)
			}
		}
	}
}
