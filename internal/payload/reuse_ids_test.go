package payload

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"
)

// decodeRequestHeaders is DecodeRequestHeadersMsgpack or ...JSON.
type decodeRequestHeaders func([]byte, *RequestHeadersEvent) error

// reuseEncodings are both encodings' request-headers codecs.
var reuseEncodings = []struct {
	name   string
	append func([]byte, *RequestHeadersEvent) []byte
	decode decodeRequestHeaders
}{
	{"msgpack", AppendRequestHeadersMsgpack, DecodeRequestHeadersMsgpack},
	{"json", AppendRequestHeadersJSON, DecodeRequestHeadersJSON},
}

// sameString reports whether a and b share their bytes.
func sameString(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// TestRequestIDSharesCorrelationID: a request id equal to the correlation
// id decoded just before it is the same string, not a copy of its own;
// a different one is decoded as itself; invalid UTF-8 is refused either
// way (msgpack: the JSON encoder escapes it).
func TestRequestIDSharesCorrelationID(t *testing.T) {
	for _, enc := range reuseEncodings {
		t.Run(enc.name, func(t *testing.T) {
			for _, id := range []string{"5f0c2a9e", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"} { // fixstr, str8
				ev := mpSampleRequestHeaders()
				ev.Metadata.CorrelationID, ev.Metadata.RequestID = id, id
				var v RequestHeadersEvent
				if err := enc.decode(enc.append(nil, ev), &v); err != nil {
					t.Fatal(err)
				}
				if v.Metadata.RequestID != id || !sameString(v.Metadata.RequestID, v.Metadata.CorrelationID) {
					t.Fatalf("%q: request id %q not shared with the correlation id", id, v.Metadata.RequestID)
				}
				ev.Metadata.RequestID = id[:len(id)-1] + "x"
				if err := enc.decode(enc.append(nil, ev), &v); err != nil {
					t.Fatal(err)
				}
				if v.Metadata.RequestID != ev.Metadata.RequestID || v.Metadata.CorrelationID != id {
					t.Fatalf("request id %q, correlation id %q", v.Metadata.RequestID, v.Metadata.CorrelationID)
				}
			}
		})
	}
	// MessagePack: a request id equal to the correlation id, invalid
	// UTF-8, is refused, also when the destination holds that text already
	// (a caller's strings, never checked).
	const bad = "ab\xffcd"
	ev := mpSampleRequestHeaders()
	ev.Metadata.CorrelationID, ev.Metadata.RequestID = "abXcd", "abXcd"
	data := mpPatchStr(t, AppendRequestHeadersMsgpack(nil, ev), "request_id", bad)
	v := RequestHeadersEvent{Metadata: RequestMetadata{CorrelationID: "abXcd", RequestID: bad}}
	if err := DecodeRequestHeadersMsgpack(data, &v); err == nil {
		t.Fatal("invalid UTF-8 request id accepted")
	}
	v = RequestHeadersEvent{Metadata: RequestMetadata{CorrelationID: bad, RequestID: bad}}
	if err := DecodeRequestHeadersMsgpack(mpPatchStr(t, data, "correlation_id", bad), &v); err == nil {
		t.Fatal("invalid UTF-8 ids accepted")
	}
}

// mpPatchStr overwrites the str value of every key in MessagePack data
// with raw (of the same length), which the encoder would not write (it
// replaces invalid UTF-8).
func mpPatchStr(t *testing.T, data []byte, key, raw string) []byte {
	t.Helper()
	out := append([]byte(nil), data...)
	k := append([]byte{0xa0 | byte(len(key))}, key...)
	found := false
	for i := 0; ; {
		j := bytes.Index(out[i:], k)
		if j < 0 {
			break
		}
		p := i + j + len(k)
		var n, at int
		switch h := out[p]; {
		case h&0xe0 == 0xa0:
			n, at = int(h&0x1f), p+1
		case h == 0xd9:
			n, at = int(out[p+1]), p+2
		default:
			t.Fatalf("%s: not a short str", key)
		}
		if n != len(raw) {
			t.Fatalf("%s: %d bytes, want %d", key, n, len(raw))
		}
		copy(out[at:], raw)
		found, i = true, at+n
	}
	if !found {
		t.Fatalf("no key %s", key)
	}
	return out
}

// TestMsgpackEqualInvalidStringRefused: a string equal to the one the
// destination holds is still checked for UTF-8 (the destination may hold
// a caller's invalid text); valid non-ASCII text equal to it is kept, and
// a changed one of the same length is stored.
func TestMsgpackEqualInvalidStringRefused(t *testing.T) {
	for _, s := range []string{"\xff", "abc\xfe", "abcdefg\xff", "abcdefghijklmno\xc3", "\xc3abcdefghijklmnop"} {
		ev := mpSampleRequestHeaders()
		ev.Method = strings.Repeat("m", len(s))
		v := RequestHeadersEvent{Method: s}
		if err := DecodeRequestHeadersMsgpack(mpPatchStr(t, AppendRequestHeadersMsgpack(nil, ev), "method", s), &v); err == nil {
			t.Fatalf("%q: invalid UTF-8 equal to the destination's accepted", s)
		}
	}
	for _, s := range []string{"ü", "abcü", "abcdefgü", "abcdefghijklmnoü", "üabcdefghijklmnop", "GET", "abcdefgh", "abcdefghi", "abcdefghijklmnopqrstuvwxyz0123456789ABCDE", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFü"} {
		ev := mpSampleRequestHeaders()
		ev.Method = s
		keep := string([]byte(s))
		v := RequestHeadersEvent{Method: keep}
		if err := DecodeRequestHeadersMsgpack(AppendRequestHeadersMsgpack(nil, ev), &v); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if v.Method != s || !sameString(v.Method, keep) {
			t.Fatalf("%q: equal method not kept (%q)", s, v.Method)
		}
		// One byte changed, anywhere: stored.
		for i := range len(s) {
			if s[i] >= 0x80 {
				continue
			}
			b := []byte(s)
			b[i] ^= 1
			ev.Method = string(b)
			if err := DecodeRequestHeadersMsgpack(AppendRequestHeadersMsgpack(nil, ev), &v); err != nil {
				t.Fatal(err)
			}
			if v.Method != ev.Method {
				t.Fatalf("%q: method %q after changing byte %d", s, v.Method, i)
			}
			v.Method = keep
		}
	}
}

// TestJSONMetadataReuse: metadata strings, method and uri equal to the
// ones the destination held keep their strings in a copying decoder;
// changed ones are decoded afresh; a NoCopy decoder points into its input.
func TestJSONMetadataReuse(t *testing.T) {
	ev := mpSampleRequestHeaders()
	ev.Metadata.UpstreamID = Some("pool-1")
	var v RequestHeadersEvent
	if err := DecodeRequestHeadersJSON(AppendRequestHeadersJSON(nil, ev), &v); err != nil {
		t.Fatal(err)
	}
	prev := v
	ev.Metadata.CorrelationID = "another-id"
	ev.Metadata.RouteID = Some("another-route")
	if err := DecodeRequestHeadersJSON(AppendRequestHeadersJSON(nil, ev), &v); err != nil {
		t.Fatal(err)
	}
	m, p := &v.Metadata, &prev.Metadata
	for _, c := range []struct {
		name     string
		now, old string
	}{
		{"client_ip", m.ClientIP, p.ClientIP}, {"protocol", m.Protocol, p.Protocol},
		{"server_name", m.ServerName.Value, p.ServerName.Value}, {"tls_version", m.TLSVersion.Value, p.TLSVersion.Value},
		{"upstream_id", m.UpstreamID.Value, p.UpstreamID.Value}, {"traceparent", m.Traceparent, p.Traceparent},
		{"method", v.Method, prev.Method}, {"uri", v.URI, prev.URI},
	} {
		if c.now == "" || !sameString(c.now, c.old) {
			t.Errorf("%s %q was copied again", c.name, c.now)
		}
	}
	if m.CorrelationID != "another-id" || m.RouteID.Value != "another-route" || p.RouteID.Value == "another-route" {
		t.Fatalf("changed fields: %+v", m)
	}
	if got, want := AppendRequestHeadersJSON(nil, &v), AppendRequestHeadersJSON(nil, ev); string(got) != string(want) {
		t.Fatalf("decoded\n%s\nwant\n%s", got, want)
	}
	data := AppendRequestHeadersJSON(nil, ev)
	if err := DecodeRequestHeadersJSONNoCopy(data, &v); err != nil {
		t.Fatal(err)
	}
	if sameString(v.Metadata.ClientIP, p.ClientIP) {
		t.Fatal("NoCopy decoder kept a string of an earlier decode")
	}
}

// TestMsgpackHeaderNameUTF8: a header name is checked for UTF-8 also when
// it equals the name the destination's slot holds (a caller's text), and
// when it repeats an earlier name; a repeated valid name keeps the last
// values; a valid non-ASCII name equal to the slot's is kept.
func TestMsgpackHeaderNameUTF8(t *testing.T) {
	const bad = "x-\xffbad"
	ev := mpSampleRequestHeaders()
	ev.Headers = Headers{{Name: "x-Ybad", Values: []string{"1"}}, {Name: "x-Zbad", Values: []string{"2"}}}
	enc := AppendRequestHeadersMsgpack(nil, ev)
	for _, dst := range []Headers{nil, {{Name: bad}}, {{Name: "other"}, {Name: bad}}} {
		v := RequestHeadersEvent{Headers: dst}
		raw := bytes.ReplaceAll(bytes.ReplaceAll(enc, []byte("x-Ybad"), []byte(bad)), []byte("x-Zbad"), []byte(bad))
		if err := DecodeRequestHeadersMsgpack(raw, &v); err == nil {
			t.Fatalf("destination %q: invalid header name accepted", dst)
		}
		raw = bytes.ReplaceAll(enc, []byte("x-Zbad"), []byte(bad))
		if err := DecodeRequestHeadersMsgpack(raw, &v); err == nil {
			t.Fatalf("destination %q: invalid second header name accepted", dst)
		}
	}
	v := RequestHeadersEvent{}
	if err := DecodeRequestHeadersMsgpack(bytes.ReplaceAll(enc, []byte("x-Zbad"), []byte("x-Ybad")), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Headers) != 1 || v.Headers[0].Name != "x-Ybad" || len(v.Headers[0].Values) != 1 || v.Headers[0].Values[0] != "2" {
		t.Fatalf("repeated name: headers %+v", v.Headers)
	}
	ev.Headers = Headers{{Name: "x-ü", Values: []string{"1"}}}
	keep := string([]byte("x-ü"))
	v = RequestHeadersEvent{Headers: Headers{{Name: keep}}}
	if err := DecodeRequestHeadersMsgpack(AppendRequestHeadersMsgpack(nil, ev), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Headers) != 1 || !sameString(v.Headers[0].Name, keep) || v.Headers[0].Values[0] != "1" {
		t.Fatalf("headers %+v", v.Headers)
	}
}
