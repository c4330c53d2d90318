package payload

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/agentwire/agentwire/internal/wiretext"
)

// putString runs put (mpPut's shape) on s into a buffer with room and
// returns the bytes written and the OR it returned.
func putString(put func(unsafe.Pointer, string) (unsafe.Pointer, uint64), s string) ([]byte, uint64) {
	b := make([]byte, len(s)+16)
	d := unsafe.Pointer(&b[1])
	end, acc := put(d, s)
	return b[1 : 1+int(uintptr(end)-uintptr(d))], acc
}

// TestMpPutEveryLength: mpPut writes what the general string encoder
// writes for every length from 0 to 300 (each copy shape: bytes, half
// words, words, two-word rounds with overlapping tails, memmove past
// mpPutWordMax) and at the str16 and str32 edges, and its OR flags a
// non-ASCII byte at every position (the event is then written again by
// the mixed writer); mpPutName writes the same bytes and returns
// nameWord's key.
func TestMpPutEveryLength(t *testing.T) {
	var lengths []int
	for n := 0; n <= 300; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 0xffff, 0x10000, 70000)
	for _, n := range lengths {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = 'a' + byte(i%26)
		}
		s := string(plain)
		got, acc := putString(mpPut, s)
		if want := mpAppendStr(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("mpPut of %d bytes = %.40x, want %.40x", n, got, want)
		}
		if acc&wiretext.HighBits != 0 {
			t.Fatalf("mpPut of %d ASCII bytes: OR %#x has a high bit", n, acc)
		}
		var at []int
		if n <= 300 {
			for i := 0; i < n; i++ {
				at = append(at, i)
			}
		} else {
			at = []int{0, n / 2, n - 1}
		}
		for _, i := range at {
			b := slices.Clone(plain)
			b[i] = 0x80 | byte(i) // alone: not UTF-8
			if _, acc := putString(mpPut, string(b)); acc&wiretext.HighBits == 0 {
				t.Fatalf("mpPut of %d bytes, non-ASCII at %d: OR %#x misses it", n, i, acc)
			}
			if i+2 <= n {
				b[i], b[i+1] = 0xc3, 0xa9 // é: valid, written as it is
				got, acc := putString(mpPut, string(b))
				if want := mpAppendStr(nil, string(b)); acc&wiretext.HighBits == 0 || !bytes.Equal(got, want) {
					t.Fatalf("mpPut of %d bytes, é at %d: OR %#x, %.40x, want %.40x", n, i, acc, got, want)
				}
			}
		}
	}
}

// TestMpPutName: mpPutName writes and ORs what mpPut does and returns
// nameWord's key, for every length up to 40 and random bytes (NUL and
// high bytes included, where a key's padding would be, and valid UTF-8).
func TestMpPutName(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alpha := []string{"\x00", "\x01", "a", "z", "\x7f", "\x80", "\xff", "\u00e9", "\u20ac"}
	for n := 0; n <= 40; n++ {
		for range 200 {
			var b []byte
			for len(b) < n {
				b = append(b, alpha[r.IntN(len(alpha))]...)
			}
			s := string(b[:n])
			want, wantAcc := putString(mpPut, s)
			got, acc := putString(func(d unsafe.Pointer, s string) (unsafe.Pointer, uint64) {
				end, acc, key := mpPutName(d, s)
				if key != nameWord(s) {
					t.Fatalf("mpPutName(%q) key %#x, want nameWord's %#x", s, key, nameWord(s))
				}
				return end, acc
			}, s)
			if !bytes.Equal(got, want) || acc != wantAcc {
				t.Fatalf("mpPutName(%q) = %x (OR %#x), mpPut = %x (OR %#x)", s, got, acc, want, wantAcc)
			}
		}
	}
}

// TestMsgpackFastPathOutOfOrder: an event whose names stop ascending at
// any position (a pair out of order, or a repeated name: equal keys,
// decided by the names) gets the general encoder's bytes: the fast path
// refuses it untouched when the first names' first bytes show it (the
// caller then runs the general encoder), or, having found it while
// writing the headers, writes it with the general encoder over what it
// wrote.
func TestMsgpackFastPathOutOfOrder(t *testing.T) {
	base := mpBenchRequestHeaders()
	prefix := []byte("prefix")
	for i := 1; i < len(base.Headers); i++ {
		for _, repeat := range []bool{false, true} {
			e := mpBenchRequestHeaders()
			if repeat {
				e.Headers[i].Name = e.Headers[i-1].Name
			} else {
				e.Headers[i-1].Name, e.Headers[i].Name = e.Headers[i].Name, e.Headers[i-1].Name
			}
			want := mpAppendRequestHeadersGeneral(slices.Clone(prefix), e)
			out, ok := mpAppendRequestHeadersFast(slices.Clone(prefix), e)
			if ok && !bytes.Equal(out, want) || !ok && !bytes.Equal(out, prefix) {
				t.Fatalf("names out of order at %d (repeat %v): fast path ok=%v, output %q", i, repeat, ok, out)
			}
			if got := AppendRequestHeadersMsgpack(slices.Clone(prefix), e); !bytes.Equal(got, want) {
				t.Fatalf("names out of order at %d (repeat %v): output differs from the general encoder", i, repeat)
			}
		}
	}
	// Arrival order (host, user-agent, accept...) is written in sorted
	// order by the fast writer; with a repeated name it is refused
	// untouched.
	e := mpBenchRequestHeaders()
	e.Headers[0].Name, e.Headers[9].Name = e.Headers[9].Name, e.Headers[0].Name // host first
	want := mpAppendRequestHeadersGeneral(slices.Clone(prefix), e)
	if out, ok := mpAppendRequestHeadersFast(slices.Clone(prefix), e); !ok || !bytes.Equal(out, want) {
		t.Fatalf("host first: fast path ok=%v, output %q", ok, out)
	}
	e.Headers[5].Name = "host"
	if out, ok := mpAppendRequestHeadersFast(slices.Clone(prefix), e); ok || !bytes.Equal(out, prefix) {
		t.Fatalf("host first and repeated: fast path ok=%v, output %q", ok, out)
	}
	// Names sharing their first 8 bytes, in order and not.
	e = mpBenchRequestHeaders()
	e.Headers = []Header{{Name: "content-length", Values: []string{"1"}}, {Name: "content-type", Values: []string{"x"}}}
	if _, ok := mpAppendRequestHeadersFast(nil, e); !ok {
		t.Fatal("content-length, content-type: refused")
	}
	e.Headers[0], e.Headers[1] = e.Headers[1], e.Headers[0]
	if out, ok := mpAppendRequestHeadersFast(nil, e); ok && !bytes.Equal(out, mpAppendRequestHeadersGeneral(nil, e)) {
		t.Fatal("content-type, content-length: written out of order")
	}
	e.Headers = []Header{{Name: strings.Repeat("n", 40)}, {Name: strings.Repeat("n", 39) + "o"}}
	if _, ok := mpAppendRequestHeadersFast(nil, e); !ok {
		t.Fatal("long names in order: refused")
	}
}

// BenchmarkRequestHeadersNonASCII: the sorted 15-header event with one
// header value that is not ASCII (valid UTF-8), which the MessagePack
// fast path hands to the per-string writer after its first pass.
func BenchmarkRequestHeadersNonASCII(b *testing.B) {
	e := mpBenchRequestHeaders()
	e.Headers[11].Values = []string{"https://example.com/caf\u00e9"}
	b.ReportAllocs()
	buf := AppendRequestHeadersMsgpack(nil, e)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = AppendRequestHeadersMsgpack(buf[:0], e)
	}
}

// TestMsgpackFastPathTextEveryField: each string field of the event (and
// a header name and value) holding valid non-ASCII UTF-8, which the fast
// path keeps as copied, or invalid UTF-8, which sends the event to the
// per-string writer, is written as the general encoder writes it.
func TestMsgpackFastPathTextEveryField(t *testing.T) {
	fields := []func(e *RequestHeadersEvent, s string){
		func(e *RequestHeadersEvent, s string) { e.Metadata.CorrelationID = s },
		func(e *RequestHeadersEvent, s string) { e.Metadata.RequestID = s },
		func(e *RequestHeadersEvent, s string) { e.Metadata.ClientIP = s },
		func(e *RequestHeadersEvent, s string) { e.Metadata.ServerName = Some(s) },
		func(e *RequestHeadersEvent, s string) { e.Metadata.Protocol = s },
		func(e *RequestHeadersEvent, s string) { e.Metadata.TLSVersion = Some(s) },
		func(e *RequestHeadersEvent, s string) { e.Metadata.TLSCipher = Some(s) },
		func(e *RequestHeadersEvent, s string) { e.Metadata.RouteID = Some(s) },
		func(e *RequestHeadersEvent, s string) { e.Metadata.UpstreamID = Some(s) },
		func(e *RequestHeadersEvent, s string) { e.Metadata.Traceparent = s },
		func(e *RequestHeadersEvent, s string) { e.Method = s },
		func(e *RequestHeadersEvent, s string) { e.URI = s },
		func(e *RequestHeadersEvent, s string) { e.Headers[len(e.Headers)-1].Name = "zz-" + s },
		func(e *RequestHeadersEvent, s string) { e.Headers[4].Values = []string{"a", s} },
	}
	for i, set := range fields {
		for _, s := range []string{"caf\u00e9 \u2028", "bad\xffutf8", "\xc3", strings.Repeat("\xe2\x82", 40)} {
			e := mpBenchRequestHeaders()
			set(e, s)
			want := mpAppendRequestHeadersGeneral([]byte("p"), e)
			if got := AppendRequestHeadersMsgpack([]byte("p"), e); !bytes.Equal(got, want) {
				t.Fatalf("field %d = %q: fast path differs from the general encoder", i, s)
			}
		}
	}
}

// TestMpPutTimestamp: mpPutTimestamp writes the general encoder's bytes
// (mpFormatTimestamp's text as a str) for years inside and outside 0 to
// 9999 and every fraction length, including texts whose length crosses
// the fixstr limit against the prediction (a 7-digit year with
// milliseconds: 32 bytes where 29 were predicted).
func TestMpPutTimestamp(t *testing.T) {
	var times []time.Time
	for _, y := range []int{0, 1, 1970, 2026, 9999, 10000, 123456, 1234567, -1, -12345, 292277026} {
		for _, ns := range []int{0, 1_000_000, 123_000, 1, 999_999_999} {
			times = append(times, time.Date(y, 12, 31, 23, 59, 59, ns, time.UTC))
		}
	}
	times = append(times, time.Time{}, time.Unix(1700000000, 0).In(time.FixedZone("x", 3600)))
	for _, ts := range times {
		b := make([]byte, 2+64+8)
		d := unsafe.Pointer(&b[0])
		end := mpPutTimestamp(d, ts)
		got := b[:int(uintptr(end)-uintptr(d))]
		want := mpAppendStr(nil, string(mpFormatTimestamp(nil, ts)))
		if !bytes.Equal(got, want) {
			t.Fatalf("mpPutTimestamp(%v) = %q, want %q", ts, got, want)
		}
	}
}

// TestAppendDateTimeInPlace: appendDateTime's cache hit, which stores
// words straight into dst's room, writes the 19 bytes of text and
// nothing past them.
func TestAppendDateTimeInPlace(t *testing.T) {
	ts := time.Date(2026, 12, 7, 10, 11, 12, 0, time.UTC)
	for range 2 { // the first call may fill the cache, the second hits it
		for room := 19; room <= 40; room++ {
			buf := bytes.Repeat([]byte{0xee}, 3+room)
			out, ok := appendDateTime(buf[:3:3+room], ts)
			if !ok || string(out[3:]) != "2026-12-07T10:11:12" {
				t.Fatalf("room %d: %q, %v", room, out, ok)
			}
			for i, c := range buf[len(out):] {
				if c != 0xee {
					t.Fatalf("room %d: byte %d past the text overwritten", room, i)
				}
			}
		}
	}
}
