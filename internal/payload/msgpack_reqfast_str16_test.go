package payload

import (
	"reflect"
	"strings"
	"testing"
)

// TestMsgpackFastStrHeadAgree: the fast decoder's three string readers
// (mpFastStr, mpFastStore and mpFastSame) find the same string, of the
// right length, for fixstr, str8 and str16 headers of every length up to
// 600 at every start offset modulo 8 (a str16 length was once read as
// (p + hi<<8) | lo, short whenever p and lo shared a bit).
func TestMsgpackFastStrHeadAgree(t *testing.T) {
	for n := 0; n <= 600; n++ {
		text := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", n/36+1)[:n]
		forms := [][]byte{{0xda, byte(n >> 8), byte(n)}}
		if n <= 255 {
			forms = append(forms, []byte{0xd9, byte(n)})
		}
		if n <= 31 {
			forms = append(forms, []byte{0xa0 | byte(n)})
		}
		for _, head := range forms {
			for off := range 8 {
				b := append(append(append(make([]byte, off), head...), text...), 0xc0)
				want := off + len(head) + n
				s, q, ok := mpFastStr(b, off)
				if !ok || q != want || string(s) != text {
					t.Fatalf("mpFastStr, length %d, header % x, offset %d: %q, %d, %v; want %d bytes to %d", n, head, off, s, q, ok, n, want)
				}
				var dst string
				if q, ok := mpFastStore(b, off, &dst, nil); !ok || q != want || dst != text {
					t.Fatalf("mpFastStore, length %d, header % x, offset %d: %d, %v, %d bytes; want %d", n, head, off, q, ok, len(dst), want)
				}
				if q, ok := mpFastSame(b, off, text); !ok || q != want {
					t.Fatalf("mpFastSame, length %d, header % x, offset %d: %d, %v; want %d", n, head, off, q, ok, want)
				}
			}
		}
	}
}

// TestMsgpackRequestHeadersFastLongStrings: events with a header value,
// a header name or a URI of every length from 200 to 600 bytes (str8 and
// str16), written by our encoder and the Rust proxy's way, take the fast
// path with the general decoder's value, into fresh destinations and into
// a destination holding the previous event.
func TestMsgpackRequestHeadersFastLongStrings(t *testing.T) {
	base := mpBenchRequestHeaders()
	var reused RequestHeadersEvent
	for n := 200; n <= 600; n++ {
		long := strings.Repeat("v0123456789abcdefghijklmnopqrstuvwxyz", n/37+1)[:n]
		e := *base
		e.Headers = append(Headers(nil), base.Headers...)
		e.Headers[0] = Header{Name: e.Headers[0].Name, Values: []string{long}}
		e.Headers = append(e.Headers, Header{Name: "z-" + long[:n-2], Values: []string{"x"}})
		e.URI = "/" + long
		for name, in := range map[string][]byte{
			"ours":       AppendRequestHeadersMsgpack(nil, &e),
			"rust proxy": mpRustRequestHeaders(&e),
		} {
			var g RequestHeadersEvent
			if err := mpDecodeRequestHeadersGeneral(in, &g); err != nil {
				t.Fatalf("%s, length %d: general decoder: %v", name, n, err)
			}
			var v RequestHeadersEvent
			if _, ok := mpFastRequestHeaders(in, &v); !ok {
				t.Fatalf("%s, length %d: not taken by the fast path", name, n)
			}
			if !reflect.DeepEqual(v, g) {
				t.Fatalf("%s, length %d: fast path:\n%#v\ngeneral:\n%#v", name, n, v, g)
			}
			if _, ok := mpFastRequestHeaders(in, &reused); !ok || !reflect.DeepEqual(reused, g) {
				t.Fatalf("%s, length %d: fast path into a reused destination (%v):\n%#v", name, n, ok, reused)
			}
		}
	}
}

// TestMsgpackRequestHeadersStr16Smuggle: a str16 header value whose
// misread length would end inside it, just before bytes that read as a
// str8 header (0xd9 then a continuation byte, valid UTF-8 together), must
// not decode into other headers than the ones sent. The public decoder
// must give exactly the headers written.
func TestMsgpackRequestHeadersStr16Smuggle(t *testing.T) {
	v1 := []byte(strings.Repeat("a", 288))
	copy(v1[256:], "\xd9\xa0")
	v2 := []byte(strings.Repeat("b", 128))
	copy(v2[118:], "\xd9\x8c")
	name := strings.Repeat("n", 130)
	e := *mpBenchRequestHeaders()
	e.Headers = Headers{{Name: "a", Values: []string{string(v1), string(v2)}}, {Name: name, Values: []string{"v"}}}
	for label, in := range map[string][]byte{
		"ours":       AppendRequestHeadersMsgpack(nil, &e),
		"rust proxy": mpRustRequestHeaders(&e),
	} {
		for off := range 8 {
			// Shift the content's offset by lengthening the URI.
			e2 := e
			e2.URI = e.URI + strings.Repeat("u", off)
			if label == "ours" {
				in = AppendRequestHeadersMsgpack(nil, &e2)
			} else {
				in = mpRustRequestHeaders(&e2)
			}
			var got RequestHeadersEvent
			if err := DecodeRequestHeadersMsgpack(in, &got); err != nil {
				t.Fatalf("%s, offset %d: %v", label, off, err)
			}
			if !reflect.DeepEqual(got.Headers, e2.Headers) {
				t.Fatalf("%s, offset %d: headers decoded as %q, sent %q", label, off, got.Headers, e2.Headers)
			}
		}
	}
}
