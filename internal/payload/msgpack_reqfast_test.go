package payload

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// mpRustRequestHeaders writes e the way the Rust proxy does (SPEC 6.11):
// the envelope map, metadata as a positional array of 11 elements (12 with
// traceparent), the headers in the given order, not sorted.
func mpRustRequestHeaders(e *RequestHeadersEvent) []byte {
	m := &e.Metadata
	b := msgp.AppendMapHeader(nil, 5)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, m.CorrelationID)
	b = mpAppendKey(b, "metadata")
	n := uint32(11)
	if m.Traceparent != "" {
		n++
	}
	b = msgp.AppendArrayHeader(b, n)
	b = mpAppendStr(b, m.CorrelationID)
	b = mpAppendStr(b, m.RequestID)
	b = mpAppendStr(b, m.ClientIP)
	b = msgp.AppendUint16(b, m.ClientPort)
	b = mpAppendOptStr(b, m.ServerName)
	b = mpAppendStr(b, m.Protocol)
	b = mpAppendOptStr(b, m.TLSVersion)
	b = mpAppendOptStr(b, m.TLSCipher)
	b = mpAppendOptStr(b, m.RouteID)
	b = mpAppendOptStr(b, m.UpstreamID)
	b = mpAppendTimestamp(b, m.Timestamp)
	if m.Traceparent != "" {
		b = mpAppendStr(b, m.Traceparent)
	}
	b = mpAppendKey(b, "method")
	b = mpAppendStr(b, e.Method)
	b = mpAppendKey(b, "uri")
	b = mpAppendStr(b, e.URI)
	b = mpAppendKey(b, "headers")
	b = msgp.AppendMapHeader(b, uint32(len(e.Headers)))
	for _, h := range e.Headers {
		b = mpAppendStr(b, h.Name)
		b = mpAppendStringList(b, h.Values)
	}
	return b
}

// mpFastSeeds returns request-headers inputs in and around the shapes the
// fast decoder takes: ours and the Rust proxy's, with variations.
func mpFastSeeds(t testing.TB) [][]byte {
	seeds := mpSeeds(t, "0x10")
	bench := mpBenchRequestHeaders()
	sample := mpSampleRequestHeaders()
	noTrace := mpSampleRequestHeaders()
	noTrace.Metadata.Traceparent = ""
	noTrace.Metadata.RequestID = noTrace.Metadata.CorrelationID
	noTrace.Metadata.ServerName = Opt[string]{}
	noTrace.Metadata.ClientPort = 7
	noTrace.Headers = nil
	long := mpSampleRequestHeaders()
	long.URI = "/" + strings.Repeat("a", 300)                                           // str16
	long.Headers = append(long.Headers, Header{Name: "x-ü", Values: []string{"é", ""}}) // non-ASCII
	long.Metadata.ClientPort = 200
	long.Metadata.Timestamp = time.Unix(1, 0).UTC()
	for _, e := range []*RequestHeadersEvent{bench, sample, noTrace, long} {
		seeds = append(seeds, AppendRequestHeadersMsgpack(nil, e), mpRustRequestHeaders(e))
	}
	// A repeated name (last wins), and more names than a fixmap holds.
	dup := mpSampleRequestHeaders()
	dup.Headers = append(dup.Headers, Header{Name: "host", Values: []string{"a", "b"}})
	seeds = append(seeds, mpRustRequestHeaders(dup))
	many := mpSampleRequestHeaders()
	for i := 0; i < 20; i++ {
		many.Headers = append(many.Headers, Header{Name: "x-" + string(rune('a'+i)), Values: []string{"v"}})
	}
	seeds = append(seeds, mpRustRequestHeaders(many))
	// str16 values at several offsets (a misread str16 length once went
	// unnoticed: every such seed fell back to the general decoder).
	for _, n := range []int{256, 257, 300, 511, 1000} {
		v := mpSampleRequestHeaders()
		v.Headers = append(v.Headers, Header{Name: "cookie", Values: []string{strings.Repeat("c", n)}})
		seeds = append(seeds, AppendRequestHeadersMsgpack(nil, v), mpRustRequestHeaders(v))
	}
	return seeds
}

// mpNormEmpty returns h with empty value lists as nil: which of the two a
// used destination ends up with depends on its history, for either
// decoder.
func mpNormEmpty(e RequestHeadersEvent) RequestHeadersEvent {
	h := make(Headers, len(e.Headers))
	for i, x := range e.Headers {
		h[i] = Header{Name: x.Name}
		if len(x.Values) > 0 {
			h[i].Values = x.Values
		}
	}
	if len(h) == 0 {
		h = nil
	}
	e.Headers = h
	return e
}

// FuzzMsgpackRequestHeadersFast is the differential test of the fast
// request-headers decoder: whatever it accepts, the general decoder
// accepts with the same value (into fresh destinations, and into
// destinations used by earlier inputs); DecodeRequestHeadersMsgpack agrees
// with the general decoder on every input. The seeds must keep the fast
// path covered (TestMsgpackRequestHeadersFastShapes).
func FuzzMsgpackRequestHeadersFast(f *testing.F) {
	for _, s := range mpFastSeeds(f) {
		f.Add(s)
	}
	var usedFast, usedGeneral, usedArena RequestHeadersEvent
	var arena MsgpackArena
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		var fast, general RequestHeadersEvent
		top, ok := mpFastRequestHeaders(data, &fast)
		errGeneral := mpDecodeRequestHeadersGeneral(data, &general)
		if !bytes.Equal(in, data) {
			t.Fatal("decoder modified its input")
		}
		if ok {
			if errGeneral != nil {
				t.Fatalf("fast path accepted what the general decoder rejects: %v", errGeneral)
			}
			if !reflect.DeepEqual(fast, general) {
				t.Fatalf("fast path:\n%#v\ngeneral:\n%#v", fast, general)
			}
			_, o, _ := msgp.ReadMapHeaderBytes(data)
			k, o, _ := msgp.ReadStringZC(o)
			first, _, err := msgp.ReadStringZC(o)
			if string(k) != "correlation_id" || err != nil || !bytes.Equal(first, top) {
				t.Fatalf("top %q is not the envelope's first value (%q: %q, %v)", top, k, first, err)
			}
		}
		err := DecodeRequestHeadersMsgpack(data, &usedFast)
		errUsed := mpDecodeRequestHeadersGeneral(data, &usedGeneral)
		if (err == nil) != (errGeneral == nil) || (errUsed == nil) != (errGeneral == nil) {
			t.Fatalf("errors: used %v, used general %v, fresh general %v", err, errUsed, errGeneral)
		}
		if err != nil {
			if err.Error() != errGeneral.Error() {
				t.Fatalf("error %q, general decoder %q", err, errGeneral)
			}
			return
		}
		if a, b := mpNormEmpty(usedFast), mpNormEmpty(usedGeneral); !reflect.DeepEqual(a, b) {
			t.Fatalf("used destinations differ:\n%#v\n%#v", a, b)
		}
		// The same with the strings made in an arena.
		if _, _, err := DecodeRequestHeadersMsgpackRoutedIn(data, &usedArena, &arena); err != nil {
			t.Fatalf("with an arena: %v, without: none", err)
		}
		if a, b := mpNormEmpty(usedArena), mpNormEmpty(usedGeneral); !reflect.DeepEqual(a, b) {
			t.Fatalf("used destination with an arena differs:\n%#v\n%#v", a, b)
		}
		if a, b := mpNormEmpty(usedFast), mpNormEmpty(general); !reflect.DeepEqual(a, b) {
			t.Fatalf("used destination differs from a fresh one:\n%#v\n%#v", a, b)
		}
	})
}

// TestMsgpackRequestHeadersFastShapes: the fast path takes what our
// encoder and the Rust proxy send, including a repeated header name,
// and leaves other shapes to the general decoder.
func TestMsgpackRequestHeadersFastShapes(t *testing.T) {
	e := mpBenchRequestHeaders()
	positional := mpRustRequestHeaders(e)
	noTrace := *e
	noTrace.Metadata.Traceparent = ""
	dup := *e
	dup.Headers = append(Headers{{Name: "accept", Values: []string{"x"}}}, e.Headers...)
	for name, in := range map[string][]byte{
		"ours":                   AppendRequestHeadersMsgpack(nil, e),
		"ours, no traceparent":   AppendRequestHeadersMsgpack(nil, &noTrace),
		"rust proxy":             positional,
		"rust proxy, 11 fields":  mpRustRequestHeaders(&noTrace),
		"rust proxy, repeated":   mpRustRequestHeaders(&dup),
		"str8 string":            bytes.Replace(positional, []byte("\xa4POST"), []byte("\xd9\x04POST"), 1),
		"nil traceparent (rust)": bytes.Replace(positional, []byte("\xd9\x3700-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), []byte{0xc0}, 1),
	} {
		var v RequestHeadersEvent
		if _, ok := mpFastRequestHeaders(in, &v); !ok {
			t.Errorf("%s: not taken by the fast path", name)
			continue
		}
		var g RequestHeadersEvent
		if err := mpDecodeRequestHeadersGeneral(in, &g); err != nil || !reflect.DeepEqual(v, g) {
			t.Errorf("%s: general decoder %v:\n%#v\nfast:\n%#v", name, err, g, v)
		}
	}
	var v RequestHeadersEvent
	if _, ok := mpFastRequestHeaders(mpRustRequestHeaders(&dup), &v); !ok || len(v.Headers) != len(e.Headers) ||
		v.Headers[0].Name != "accept" || v.Headers[0].Values[0] != e.Headers[0].Values[0] {
		t.Errorf("repeated name: %v", v.Headers)
	}
	ours := AppendRequestHeadersMsgpack(nil, e)
	for name, in := range map[string][]byte{
		"bin string":  bytes.Replace(ours, []byte("\xa4POST"), []byte("\xc4\x04POST"), 1),
		"uint32 port": bytes.Replace(ours, []byte("\xabclient_port\xcd"), []byte("\xabclient_port\xce\x00\x00"), 1),
		"other order": bytes.Replace(ours, []byte("\xa6method\xa4POST\xa3uri"), []byte("\xa3uri\xa4POST\xa6method"), 1),
		"trailing":    append(bytes.Clone(ours), 0xc0),
		"truncated":   ours[:len(ours)-1],
	} {
		var v RequestHeadersEvent
		if _, ok := mpFastRequestHeaders(in, &v); ok {
			t.Errorf("%s: taken by the fast path", name)
		}
	}
}

// TestMsgpackRequestHeadersFastInvalidEqual: a destination may hold
// strings the decoder never checked (a handler's, a caller's); input equal
// to such an invalid string is still rejected, for every string the fast
// path reads (header name and value, metadata, method, uri).
func TestMsgpackRequestHeadersFastInvalidEqual(t *testing.T) {
	for _, bad := range []string{"\xff", "a\xffb", "abc\xff\xfe", "abcdefg\xff", "abcdefghijklmnopqrstuvwxyz0123\xff", strings.Repeat("x", 40) + "\xc3"} {
		for field, set := range map[string]func(e *RequestHeadersEvent){
			"header name":  func(e *RequestHeadersEvent) { e.Headers[0].Name = bad },
			"header value": func(e *RequestHeadersEvent) { e.Headers[3].Values[0] = bad },
			"client_ip":    func(e *RequestHeadersEvent) { e.Metadata.ClientIP = bad },
			"request_id":   func(e *RequestHeadersEvent) { e.Metadata.RequestID = bad },
			"route_id":     func(e *RequestHeadersEvent) { e.Metadata.RouteID = Some(bad) },
			"uri":          func(e *RequestHeadersEvent) { e.URI = bad },
		} {
			e := mpBenchRequestHeaders()
			set(e)
			// The encoder would replace the invalid bytes: write valid
			// text of the same length and put the bad bytes in its place.
			good := *e
			good.Headers = make(Headers, len(e.Headers))
			for i, h := range e.Headers {
				good.Headers[i] = Header{Name: h.Name, Values: append([]string(nil), h.Values...)}
			}
			placeholder := strings.Repeat("Q", len(bad))
			switch field {
			case "header name":
				good.Headers[0].Name = placeholder
			case "header value":
				good.Headers[3].Values[0] = placeholder
			case "client_ip":
				good.Metadata.ClientIP = placeholder
			case "request_id":
				good.Metadata.RequestID = placeholder
			case "route_id":
				good.Metadata.RouteID = Some(placeholder)
			case "uri":
				good.URI = placeholder
			}
			for _, enc := range []func(*RequestHeadersEvent) []byte{mpRustRequestHeaders,
				func(e *RequestHeadersEvent) []byte { return AppendRequestHeadersMsgpack(nil, e) }} {
				in := enc(&good)
				if bytes.Count(in, []byte(placeholder)) != 1 {
					t.Fatalf("%s: placeholder not unique", field)
				}
				in = bytes.Replace(in, []byte(placeholder), []byte(bad), 1)
				dst := *e // holds the invalid string where the input has it
				dst.Headers = append(Headers(nil), e.Headers...)
				if err := DecodeRequestHeadersMsgpack(in, &dst); err == nil {
					t.Errorf("%s %q: invalid UTF-8 equal to the destination's accepted", field, bad)
				}
			}
		}
	}
}

// TestMsgpackRequestHeadersFastEqualLength: a destination holding a string
// of the same length that differs in any one byte gets the new string, for
// every length up to 70 (fixstr and str8; every word-load case of
// mpFastSame and mpFastString), in the URI, a metadata string and a header
// value.
func TestMsgpackRequestHeadersFastEqualLength(t *testing.T) {
	e := mpBenchRequestHeaders()
	var dst RequestHeadersEvent
	for n := 1; n <= 70; n++ {
		old := strings.Repeat("a", n)
		for k := 0; k < n; k++ {
			b := []byte(old)
			b[k] = 'b'
			next := string(b)
			e.URI, e.Metadata.ClientIP, e.Headers[4].Values[0] = old, old, old
			if err := DecodeRequestHeadersMsgpack(AppendRequestHeadersMsgpack(nil, e), &dst); err != nil {
				t.Fatal(err)
			}
			e.URI, e.Metadata.ClientIP, e.Headers[4].Values[0] = next, next, next
			if err := DecodeRequestHeadersMsgpack(AppendRequestHeadersMsgpack(nil, e), &dst); err != nil {
				t.Fatal(err)
			}
			if dst.URI != next || dst.Metadata.ClientIP != next || dst.Headers[4].Values[0] != next {
				t.Fatalf("length %d, byte %d changed: kept %q %q %q", n, k, dst.URI, dst.Metadata.ClientIP, dst.Headers[4].Values[0])
			}
		}
	}
}

// mpFastRequestHeaders is mpFastRequestHeadersIn without an arena.
func mpFastRequestHeaders(b []byte, v *RequestHeadersEvent) (top []byte, ok bool) {
	return mpFastRequestHeadersIn(b, v, nil)
}
