package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestJSONAppendFloat(t *testing.T) {
	f := func(v float64, bits int, want string) {
		t.Helper()
		if got := string(jsonAppendFloat(nil, v, bits)); got != want {
			t.Errorf("jsonAppendFloat(%v, %d) = %s, want %s", v, bits, got, want)
		}
	}
	// Expected spellings follow serde_json 1.0.150 (zmij): the golden
	// vectors, the zmij test-suite values and its fixed-notation ranges.
	f(3, 64, "3.0")
	f(12.5, 64, "12.5")
	f(0.005, 64, "0.005")
	f(0.1, 64, "0.1")
	f(1, 64, "1.0")
	f(0, 64, "0.0")
	f(math.Copysign(0, -1), 64, "-0.0")
	f(-2.5, 64, "-2.5")
	f(1e15, 64, "1000000000000000.0")
	f(9.061488e15, 64, "9061488000000000.0")
	f(5.444310685350916e+14, 64, "544431068535091.6")
	f(1e16, 64, "1e+16")
	f(1.5e16, 64, "1.5e+16")
	f(0.00001, 64, "0.00001")
	f(0.000001, 64, "1e-6")
	f(1.5e-7, 64, "1.5e-7")
	f(6.62607015e-34, 64, "6.62607015e-34")
	f(5e-324, 64, "5e-324")
	f(1.234e-320, 64, "1.234e-320")
	f(3.439070283483335e+35, 64, "3.439070283483335e+35")
	f(math.MaxFloat64, 64, "1.7976931348623157e+308")
	f(float64(float32(0.95)), 32, "0.95")
	f(float64(float32(1.5)), 32, "1.5")
	f(float64(float32(1.342178e+08)), 32, "134217800.0")
	f(float64(float32(1.3421781e+08)), 32, "134217810.0")
	f(float64(float32(1e12)), 32, "1000000000000.0")
	f(float64(float32(1e13)), 32, "1e+13")
	f(float64(float32(1e-6)), 32, "0.000001")
	f(float64(float32(1e-7)), 32, "1e-7")
	f(float64(float32(6.62607e-34)), 32, "6.62607e-34")
	f(float64(math.SmallestNonzeroFloat32), 32, "1e-45")
	f(math.NaN(), 64, "null")
	f(math.Inf(1), 64, "null")
	f(math.Inf(-1), 32, "null")
}

func TestJSONAppendFloatRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		v := math.Float64frombits(rng.Uint64())
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		s := jsonAppendFloat(nil, v, 64)
		back, err := strconv.ParseFloat(string(s), 64)
		if err != nil || back != v {
			t.Fatalf("%v -> %s -> %v (%v)", v, s, back, err)
		}
		if !bytes.ContainsAny(s, ".e") {
			t.Fatalf("%v -> %s: not a float literal", v, s)
		}
		f32 := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(f32)) || math.IsInf(float64(f32), 0) {
			continue
		}
		s = jsonAppendFloat(nil, float64(f32), 32)
		back, err = strconv.ParseFloat(string(s), 32)
		if err != nil || float32(back) != f32 {
			t.Fatalf("f32 %v -> %s -> %v (%v)", f32, s, back, err)
		}
	}
}

func TestJSONAppendString(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(jsonAppendString(nil, in)); got != want {
			t.Errorf("jsonAppendString(%q) = %s, want %s", in, got, want)
		}
	}
	f("", `""`)
	f("plain", `"plain"`)
	f(`"q" \b`, `"\"q\" \\b"`)
	f("\n\r\t\b\f", `"\n\r\t\b\f"`)
	f("\x00\x01\x1f\x7f", `"\u0000\u0001\u001f`+"\x7f"+`"`)
	f("</script>&", `"</script>&"`)
	f("café ☕ \u2028\u2029 😀", "\"café ☕ \u2028\u2029 😀\"")
	f("bad\xffutf8\xc3", "\"bad\ufffdutf8\ufffd\"")
	// Whatever Go string goes in, the output is valid JSON for the same
	// text (modulo invalid UTF-8).
	for _, s := range []string{"a\x00b", "\u2028", "x\"y\\z", "\xed\xa0\x80"} {
		var back string
		if err := json.Unmarshal(jsonAppendString(nil, s), &back); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestJSONTimestamp(t *testing.T) {
	base := time.Date(2026, 6, 12, 9, 27, 43, 0, time.UTC)
	f := func(tm time.Time, want string) {
		t.Helper()
		got := string(jsonAppendTimestamp(nil, tm))
		if got != `"`+want+`"` {
			t.Errorf("timestamp %v = %s, want %q", tm, got, want)
		}
		if back := jsonParseTimestamp([]byte(want)); !back.Equal(tm) {
			t.Errorf("parse %q = %v, want %v", want, back, tm)
		}
	}
	f(base, "2026-06-12T09:27:43+00:00")
	f(base.Add(123*time.Millisecond), "2026-06-12T09:27:43.123+00:00")
	f(base.Add(123456*time.Microsecond), "2026-06-12T09:27:43.123456+00:00")
	f(base.Add(123456789), "2026-06-12T09:27:43.123456789+00:00")
	f(base.Add(100*time.Millisecond), "2026-06-12T09:27:43.100+00:00")
	f(base.Add(1), "2026-06-12T09:27:43.000000001+00:00")
	f(base.In(time.FixedZone("x", 7200)), "2026-06-12T09:27:43+00:00")
	f(time.Time{}, "0001-01-01T00:00:00+00:00")
	f(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "+10000-01-01T00:00:00+00:00")
	f(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), "-0001-01-01T00:00:00+00:00")
	f(time.Date(0, 3, 1, 0, 0, 0, 0, time.UTC), "0000-03-01T00:00:00+00:00")

	p := func(in string, want time.Time) {
		t.Helper()
		got := jsonParseTimestamp([]byte(in))
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("parse %q = %v, want %v (UTC)", in, got, want)
		}
	}
	p("2026-06-12T09:27:43Z", base)
	p("2026-06-12t09:27:43z", base)
	p("2026-06-12 09:27:43+00:00", base)
	p("2026-06-12T11:27:43+02:00", base)
	p("2026-06-12T04:57:43-04:30", base)
	p("2026-06-12T09:27:43.1234567891234+00:00", base.Add(123456789))
	p("1781256463123", time.UnixMilli(1781256463123))
	p("-1000", time.UnixMilli(-1000))
	p("0", time.Unix(0, 0))
	var zero time.Time
	for _, bad := range []string{"", "t", "2026-06-12", "2026-06-12T09:27:43", "2026-13-12T09:27:43Z",
		"2026-02-30T09:27:43Z", "2026-06-12T24:00:00Z", "2026-06-12T09:27:43.Z", "2026-06-12T09:27:43+0000",
		"2026-06-12T09:27:43+24:00", "12e3", "1781256463123.5", "+123-01-01T00:00:00Z", "１２３"} {
		if got := jsonParseTimestamp([]byte(bad)); got != zero {
			t.Errorf("parse %q = %v, want zero time", bad, got)
		}
	}
	if got := jsonParseTimestamp([]byte("2024-02-29T00:00:00Z")); got.IsZero() {
		t.Error("leap day rejected")
	}
}

func TestJSONStrictBase64(t *testing.T) {
	for _, in := range []string{"aGVsbG8", "aGVsbG8==", "-_8=", "aGVs\nbG8=", "aGVs\rbG8=", "aGVsbG9=", "aGk=aGk=", "=", "a"} {
		if _, err := DecodeBase64Strict(nil, []byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	buf := make([]byte, 0, 16)
	out, err := DecodeBase64Strict(buf, []byte("aGVsbG8="))
	if err != nil || string(out) != "hello" || &out[0] != &buf[:1][0] {
		t.Errorf("got %q, %v (reused buffer: %v)", out, err, err == nil && &out[0] == &buf[:1][0])
	}
}

// jsonMustReject asserts that every input is rejected by decode.
func jsonMustReject(t *testing.T, c jsonCodec, inputs ...string) {
	t.Helper()
	for _, in := range inputs {
		if v, err := c.decode([]byte(in)); err == nil {
			t.Errorf("%s accepted %s as %+v", c.name, in, v)
		} else if !strings.HasPrefix(err.Error(), "agentwire: json: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
}

func TestJSONDecoderSyntax(t *testing.T) {
	c := jsonCodecPing
	jsonMustReject(t, c,
		``, ` `, `{`, `[`, `{"sequence":1,"timestamp_ms":2`, `{"sequence":1,"timestamp_ms":2,}`,
		`{"sequence":1 "timestamp_ms":2}`, `{"sequence":1,,"timestamp_ms":2}`, `{sequence:1}`,
		`{"sequence":01,"timestamp_ms":2}`, `{"sequence":1.,"timestamp_ms":2}`, `{"sequence":1e,"timestamp_ms":2}`,
		`{"sequence":-0,"timestamp_ms":2}`, `{"sequence":1,"timestamp_ms":2}x`, `{"sequence":1,"timestamp_ms":2}{}`,
		`{"sequence":1,"timestamp_ms":2,"x":tru}`, `{"sequence":1,"timestamp_ms":2,"x":"\x"}`,
		`{"sequence":1,"timestamp_ms":2,"x":"a`+"\x01"+`"}`, `{"sequence":1,"timestamp_ms":2,"x":"\u12"}`,
		`{"sequence":1,"timestamp_ms":2,"x":[1,]}`, `{"sequence":1,"timestamp_ms":2,"x":{"a":1,}}`,
		`{"sequence":1,"timestamp_ms":2,"x":[}`, `{"sequence":1,"timestamp_ms":18446744073709551616}`,
		`{"sequence":1,"sequence":1,"timestamp_ms":2}`, `[1]`, `[1,2,3]`, `[1,2,]`, `null`, `"x"`, `1`,
		"\xef\xbb\xbf{\"sequence\":1,\"timestamp_ms\":2}",
		`{"sequence":1,"timestamp_ms":2,"x":`+strings.Repeat("[", 200)+strings.Repeat("]", 200)+`}`,
	)
	for _, ok := range []string{
		`{"sequence":1,"timestamp_ms":2}`, " \t\r\n{ \"sequence\" : 1 , \"timestamp_ms\" : 2 } \n",
		`{"sequence":1,"timestamp_ms":18446744073709551615}`, `[1,2]`,
		`{"timestamp_ms":2,"unknown":{"a":[1,2.5e-3,"x\u00e9\ud83d\ude00",null,true,false,{}]},"sequence":1}`,
		`{"seq\u0075ence":1,"timestamp_ms":2}`,
		// Ignored values are only checked syntactically, as serde_json does.
		`{"sequence":1,"timestamp_ms":2,"x":"\ud800","y":"` + "\xff" + `","z":1e999}`,
		`{"sequence":1,"timestamp_ms":2,"x":` + strings.Repeat("[", 120) + strings.Repeat("]", 120) + `}`,
	} {
		if _, err := c.decode([]byte(ok)); err != nil {
			t.Errorf("rejected %s: %v", ok, err)
		}
	}
}

func TestJSONDecoderStrings(t *testing.T) {
	var cp Cancel
	dec := func(s string) error {
		return DecodeCancelJSON([]byte(`{"correlation_id":`+s+`,"reason":0,"timestamp_ms":1}`), &cp)
	}
	for in, want := range map[string]string{
		`"plain"`:                               "plain",
		`"a\"b\\c\/d\b\f\n\r\t"`:                "a\"b\\c/d\b\f\n\r\t",
		`"\u00e9\u2028\uD83D\uDE00"`:            "é\u2028😀",
		`"caf` + "é" + `"`:                      "café",
		`"` + strings.Repeat("x\\n", 400) + `"`: strings.Repeat("x\n", 400),
	} {
		if err := dec(in); err != nil || cp.CorrelationID != want {
			t.Errorf("%s: got %q, %v; want %q", in, cp.CorrelationID, err, want)
		}
	}
	for _, bad := range []string{`"\ud800"`, `"\udc00"`, `"\ud800\u0041"`, `"\ud800x"`, `"` + "\xff" + `"`,
		`"` + "\xed\xa0\x80" + `"`, `"\u00"`, "\"a\x00\"", `1`, `null`} {
		if err := dec(bad); err == nil {
			t.Errorf("%s accepted as %q", bad, cp.CorrelationID)
		}
	}
}

func TestJSONDecodedStringsOwnership(t *testing.T) {
	in := []byte(`{"version":2,"decision":{"block":{"status":403,"body":"denied"}},"audit":{"custom":{"correlation_id":"c-1","x":{"a":1}}}}`)
	data := bytes.Clone(in)
	var r AgentResponse
	if err := DecodeAgentResponseJSON(data, &r); err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'Z'
	}
	if r.CorrelationID != "c-1" || r.Decision.Body.Value != "denied" || string(r.Audit.Custom["x"]) != `{"a":1}` {
		t.Fatalf("decoded values changed with the input: %+v", r)
	}
	// A second decode into the same value must not disturb strings taken
	// from the first one.
	id := r.CorrelationID
	if err := DecodeAgentResponseJSON([]byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"c-2"}}}`), &r); err != nil {
		t.Fatal(err)
	}
	if id != "c-1" || r.CorrelationID != "c-2" {
		t.Fatalf("id %q / %q", id, r.CorrelationID)
	}
	// Appending to a decoded raw value must not overwrite arena neighbours.
	raw := r.Audit.Custom["x"]
	_ = append(raw, "garbage"...)

	// The NoCopy variant aliases the input.
	data = bytes.Clone(in)
	if err := DecodeAgentResponseJSONNoCopy(data, &r); err != nil {
		t.Fatal(err)
	}
	p := unsafe.StringData(r.CorrelationID)
	if uintptr(unsafe.Pointer(p)) < uintptr(unsafe.Pointer(&data[0])) ||
		uintptr(unsafe.Pointer(p)) >= uintptr(unsafe.Pointer(&data[0]))+uintptr(len(data)) {
		t.Fatal("NoCopy did not alias the input")
	}
}

func TestJSONDecodeResetsDestination(t *testing.T) {
	var r AgentResponse
	full := jsonLoadVectorPayload(t, "responses.json", "audit_metadata_full")
	if err := DecodeAgentResponseJSON([]byte(full), &r); err != nil {
		t.Fatal(err)
	}
	r.RequestHeaders = append(r.RequestHeaders, HeaderOp{Name: "stale"})
	r.RoutingMetadata = map[string]string{"stale": "1"}
	r.WebSocketDecision = Some(WebSocketDecision{Kind: WebSocketDrop})
	r.ProcessingTimeMS = Some[uint64](5)
	if err := DecodeAgentResponseJSON([]byte(`{"version":2,"decision":"allow"}`), &r); err != nil {
		t.Fatal(err)
	}
	want := AgentResponse{Version: 2}
	if !jsonEqual(r, want) {
		t.Fatalf("stale data survived: %+v", r)
	}

	var ev RequestHeadersEvent
	typical := jsonLoadVectorPayload(t, "events.json", "request_headers_typical")
	minimal := jsonLoadVectorPayload(t, "events.json", "request_headers_spec_example")
	for _, p := range []string{typical, minimal, typical} {
		if err := DecodeRequestHeadersJSON([]byte(p), &ev); err != nil {
			t.Fatal(err)
		}
		want := jsonStdToRequestHeaders(p)
		if !jsonEqual(jsonSortHeaders(ev.Headers), jsonSortHeaders(want.Headers)) || !jsonEqual(ev.Metadata, want.Metadata) {
			t.Fatalf("reused decode differs:\n got %+v\nwant %+v", ev, want)
		}
	}
}

func jsonLoadVectorPayload(tb testing.TB, file, name string) string {
	for _, v := range jsonLoadVectors(tb, file) {
		if v.Name == name {
			return v.JSONPayload
		}
	}
	tb.Fatalf("vector %s/%s not found", file, name)
	return ""
}

func TestJSONHeaders(t *testing.T) {
	// Decoding: input order kept, repeated names replaced in place (last
	// wins), also past the switch to an index map.
	var b strings.Builder
	b.WriteString(`{"correlation_id":"c","status":200,"headers":{`)
	const n = 100
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `"h%03d":["v%d"],`, n-1-i, i)
	}
	b.WriteString(`"h050":["last"],"h099":["x","y"]}}`)
	var ev ResponseHeadersEvent
	if err := DecodeResponseHeadersJSON([]byte(b.String()), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Headers) != n || ev.Headers[0].Name != "h099" || ev.Headers.Get("h050") != "last" ||
		len(ev.Headers.Values("h099")) != 2 {
		t.Fatalf("decoded headers wrong: %d entries, first %q, h050=%q, h099=%v",
			len(ev.Headers), ev.Headers[0].Name, ev.Headers.Get("h050"), ev.Headers.Values("h099"))
	}
	// Encoding: sorted by name, equal names merged in order.
	out := AppendResponseHeadersJSON(nil, &ResponseHeadersEvent{CorrelationID: "c", Status: 204, Headers: Headers{
		{Name: "b", Values: []string{"1"}}, {Name: "a", Values: []string{"2"}},
		{Name: "b", Values: []string{"3", "4"}}, {Name: "c"},
	}})
	want := `{"correlation_id":"c","headers":{"a":["2"],"b":["1","3","4"],"c":[]},"status":204}`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	// Large unsorted sets use the pooled scratch path and stay sorted.
	out = AppendResponseHeadersJSON(nil, &ev)
	var back ResponseHeadersEvent
	if err := DecodeResponseHeadersJSON(out, &back); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(back.Headers); i++ {
		if back.Headers[i-1].Name >= back.Headers[i].Name {
			t.Fatalf("not sorted at %d: %s", i, out)
		}
	}
	if !jsonEqual(jsonSortHeaders(back.Headers), jsonSortHeaders(ev.Headers)) {
		t.Fatal("large header set did not round-trip")
	}
}

func TestJSONMapsAndRaw(t *testing.T) {
	md := map[string]string{}
	for i := 0; i < 40; i++ {
		md[fmt.Sprintf("k%02d", 39-i)] = strconv.Itoa(i)
	}
	ev := GuardrailInspectEvent{CorrelationID: "c", InspectionType: InspectionPIIDetection, Metadata: md}
	out := AppendGuardrailInspectJSON(nil, &ev)
	if !bytes.Contains(out, []byte(`"metadata":{"k00":"39","k01":"38",`)) {
		t.Fatalf("metadata not sorted: %s", out)
	}
	var back GuardrailInspectEvent
	if err := DecodeGuardrailInspectJSON(out, &back); err != nil || !jsonEqual(back, ev) {
		t.Fatalf("round trip: %v\n%+v", err, back)
	}
	// Raw values: written verbatim without surrounding whitespace; invalid
	// or empty ones become null.
	for raw, want := range map[string]string{
		` {"a": [1, 2]} `: `{"a": [1, 2]}`, ``: `null`, `{`: `null`, `1 2`: `null`, `"\ud800"`: `null`, `1e999`: `null`,
	} {
		got := AppendConfigureJSON(nil, &ConfigureEvent{Config: json.RawMessage(raw)})
		if !bytes.HasPrefix(got, []byte(`{"config":`+want+`,`)) {
			t.Errorf("config %q written as %s", raw, got)
		}
	}
	// Custom entries: correlation id first, the reserved key ignored.
	r := AgentResponse{CorrelationID: "c-9", Audit: AuditMetadata{Custom: map[string]json.RawMessage{
		"correlation_id": json.RawMessage(`"other"`), "z": json.RawMessage(`1`), "a": json.RawMessage(`[true]`),
	}}}
	out = AppendAgentResponseJSON(nil, &r)
	if !bytes.Contains(out, []byte(`"custom":{"correlation_id":"c-9","a":[true],"z":1}`)) {
		t.Fatalf("custom written as %s", out)
	}
}

func TestJSONAgentResponseShapes(t *testing.T) {
	f := func(in string, check func(r *AgentResponse) bool) {
		t.Helper()
		var r AgentResponse
		if err := DecodeAgentResponseJSON([]byte(in), &r); err != nil {
			t.Errorf("%s: %v", in, err)
			return
		}
		if !check(&r) {
			t.Errorf("%s decoded as %+v", in, r)
		}
		// Whatever decodes re-encodes to something that decodes the same.
		var back AgentResponse
		if err := DecodeAgentResponseJSON(AppendAgentResponseJSON(nil, &r), &back); err != nil || !jsonEqual(back, r) {
			t.Errorf("%s: round trip %v\n%+v\n%+v", in, err, back, r)
		}
	}
	f(`[2,"allow",[{"set":["x","1"]},{"remove":["y"]}],[],{"k":"v"},[["t"],[],0.5,[],{"correlation_id":"c"}],true,{"data":"aGk=","chunk_index":1},null,{"close":[1000,"bye"]}]`,
		func(r *AgentResponse) bool {
			return r.CorrelationID == "c" && len(r.RequestHeaders) == 2 && r.RequestHeaders[1].Kind == HeaderRemove &&
				r.RoutingMetadata["k"] == "v" && r.Audit.Confidence.Value == 0.5 && r.NeedsMore &&
				string(r.RequestBodyMutation.Value.Data) == "hi" && r.WebSocketDecision.Value.Code == 1000
		})
	f(`{"version":2,"decision":{"redirect":["https://x",307]},"websocket_decision":{"drop":null}}`,
		func(r *AgentResponse) bool {
			return r.Decision.Kind == DecisionRedirect && r.Decision.Status == 307 && r.WebSocketDecision.Value.Kind == WebSocketDrop
		})
	f(`{"version":2,"decision":{"block":{"status":403,"headers":{}}},"audit":{"confidence":1e30}}`,
		func(r *AgentResponse) bool {
			return r.Decision.BlockHeaders != nil && r.Audit.Confidence.Value == 1e30
		})
	// Beyond the f32 range the value becomes +Inf (Rust's `as f32`), which
	// serde_json and Go both write as null.
	var inf AgentResponse
	if err := DecodeAgentResponseJSON([]byte(`{"version":2,"decision":"allow","audit":{"confidence":1e39}}`), &inf); err != nil ||
		!math.IsInf(float64(inf.Audit.Confidence.Value), 1) ||
		!bytes.Contains(AppendAgentResponseJSON(nil, &inf), []byte(`"confidence":null`)) {
		t.Errorf("f32 overflow: %+v %v", inf.Audit, err)
	}
	f(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"a","correlation_id":"b"}}}`,
		func(r *AgentResponse) bool { return r.CorrelationID == "b" })
	f(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"a","correlation_id":7}}}`,
		func(r *AgentResponse) bool { return r.CorrelationID == "" && len(r.Audit.Custom) == 0 })
	f(`{"version":2,"decision":"allow","request_body_mutation":{"data":"aGk=\n"}}`,
		func(r *AgentResponse) bool {
			m := r.RequestBodyMutation.Value
			return m.Action == MutationInvalid && string(m.Data) == "aGk=\n"
		})
	jsonMustReject(t, jsonCodecAgentResponse,
		`[2]`, `[2,"allow",[],[],{},{},false,null,null,null,1]`, `{"version":2,"decision":{"block":[403]}}`,
		`{"version":2,"decision":{"block":[403,null,null,1]}}`, `{"version":2,"decision":{}}`,
		`{"version":2,"decision":{"allow":[]}}`, `{"version":2,"decision":"allow","audit":[[],[]]}`,
		`{"version":2,"decision":"allow","request_body_mutation":[]}`,
		`{"version":2,"decision":"allow","websocket_decision":{"close":{"code":1,"reason":"x"},"drop":null}}`,
		`{"version":2,"decision":"allow","audit":{"custom":{"x":"\ud800"}}}`,
		`{"version":2,"decision":"allow","audit":{"custom":{"x":1e999}}}`,
		`{"version":2,"decision":"allow","audit":{"confidence":1e999}}`,
		`{"version":2,"decision":"allow","request_headers":[{"set":{"name":"a","value":"b","name":"c"}}]}`,
	)
}

func TestJSONControlShapes(t *testing.T) {
	var p Pong
	if err := DecodePongJSON([]byte(`{"sequence":3,"timestamp_ms":10}`), &p); err != nil || p != (Pong{Sequence: 3, PingTimestampMS: 10}) {
		t.Fatalf("echo pong: %+v %v", p, err)
	}
	if err := DecodePongJSON(AppendPongJSON(nil, &Pong{Sequence: 3, PingTimestampMS: 10, TimestampMS: 12}), &p); err != nil || p != (Pong{Sequence: 3, PingTimestampMS: 10, TimestampMS: 12}) {
		t.Fatalf("pong: %+v %v", p, err)
	}
	out := AppendCancelJSON(nil, &Cancel{CorrelationID: "c", Reason: CancelManual, TimestampMS: 5})
	if string(out) != `{"correlation_id":"c","reason":5,"timestamp_ms":5}` {
		t.Fatalf("cancel: %s", out)
	}
	h := HealthStatus{AgentID: "a", State: HealthDegraded, Message: Some("slow"), DisabledFeatures: []string{"x"},
		TimeoutMultiplier: 1.5, DrainETAMS: Some[uint64](0), UnhealthyReason: Some(""), Recoverable: true,
		ValidUntilMS: Some[uint64](9), TimestampMS: 7}
	var hb HealthStatus
	if err := DecodeHealthStatusJSON(AppendHealthStatusJSON(nil, &h), &hb); err != nil || !jsonEqual(hb, h) {
		t.Fatalf("health: %+v %v", hb, err)
	}
	jsonMustReject(t, jsonCodecHealth, `{"state":2147483648}`, `{"state":1.0}`, `{"state":"1"}`, `[]`, `[1,2]`, `{"state":1,"state":2}`)
	fc := FlowControlSignal{CorrelationID: Some("c"), Action: FlowUpdateCapacity, BufferAvailable: Some[uint64](4096), TimestampMS: 1}
	var fb FlowControlSignal
	if err := DecodeFlowControlSignalJSON(AppendFlowControlSignalJSON(nil, &fc), &fb); err != nil || fb != fc {
		t.Fatalf("flow: %+v %v", fb, err)
	}
	if err := DecodeFlowControlSignalJSON([]byte(`[2]`), &fb); err != nil || fb.Action != FlowResume {
		t.Fatalf("flow array form: %+v %v", fb, err)
	}
	cr := ConfigUpdateResponse{RequestID: "r", Accepted: false, Error: Some("no"), TimestampMS: 3}
	var crb ConfigUpdateResponse
	if err := DecodeConfigUpdateResponseJSON(AppendConfigUpdateResponseJSON(nil, &cr), &crb); err != nil || crb != cr {
		t.Fatalf("config update response: %+v %v", crb, err)
	}
	var cu ConfigUpdateRequest
	if err := DecodeConfigUpdateRequestJSON([]byte(`{"update_type":["list_update","l",["a"],[]],"request_id":"r","timestamp_ms":1}`), &cu); err != nil ||
		cu.Kind != ConfigListUpdate || cu.ListID != "l" || len(cu.Add) != 1 {
		t.Fatalf("array-form config update: %+v %v", cu, err)
	}
	jsonMustReject(t, jsonCodecConfigUpdate,
		`{"update_type":{"type":"request_reload","type":"request_reload"},"request_id":"r","timestamp_ms":1}`,
		`{"update_type":{},"request_id":"r","timestamp_ms":1}`,
		`{"update_type":{"type":1},"request_id":"r","timestamp_ms":1}`,
		`{"update_type":["request_reload",1],"request_id":"r","timestamp_ms":1}`,
		`{"update_type":{"type":"restart_required","reason":"x"},"request_id":"r","timestamp_ms":1}`,
		`{"update_type":{"type":"request_reload","x":"\ud800"},"request_id":"r","timestamp_ms":1}`,
	)
	m := MetricsReport{Histograms: []HistogramMetric{{Name: "h", Buckets: []HistogramBucket{
		{Le: math.Inf(-1)}, {Le: math.NaN()}, {Le: 2.5},
	}}}}
	out = AppendMetricsReportJSON(nil, &m)
	if !bytes.Contains(out, []byte(`"buckets":[{"le":"+Inf","count":0},{"le":"NaN","count":0},{"le":2.5,"count":0}]`)) {
		t.Fatalf("buckets: %s", out)
	}
	for in, want := range map[string]float64{`"1e400"`: math.Inf(1), `"-infinity"`: math.Inf(-1), `".5"`: 0.5, `"5."`: 5, `"+1E2"`: 100} {
		var mr MetricsReport
		if err := DecodeMetricsReportJSON([]byte(jsonHistogramWrap(`{"le":`+in+`,"count":1}`)), &mr); err != nil ||
			mr.Histograms[0].Buckets[0].Le != want {
			t.Errorf("le %s: %+v %v", in, mr.Histograms, err)
		}
	}
	for _, bad := range []string{`"0x1p-2"`, `"1_0"`, `"."`, `"e5"`, `""`, `"in"`, `true`} {
		var mr MetricsReport
		if err := DecodeMetricsReportJSON([]byte(jsonHistogramWrap(`{"le":`+bad+`,"count":1}`)), &mr); err == nil {
			t.Errorf("le %s accepted", bad)
		}
	}
}

func TestJSONPlainWord(t *testing.T) {
	check := func(w [8]byte) {
		x := uint64(0)
		want := true
		for i, c := range w {
			x |= uint64(c) << (8 * i)
			want = want && jsonStrPlain[c]
		}
		if got := jsonPlainWord(x); got != want {
			t.Fatalf("jsonPlainWord(%q) = %v, want %v", w[:], got, want)
		}
	}
	base := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			w := base
			w[pos] = byte(c)
			check(w)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		var w [8]byte
		for j := range w {
			w[j] = byte(rng.IntN(256))
			if rng.IntN(4) > 0 {
				w[j] = byte(0x20 + rng.IntN(0x60))
			}
		}
		check(w)
	}
}
