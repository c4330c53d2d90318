package payload

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// jsonWordPlainByTable is the per-byte reference for jsonEscapeAny: every
// byte of x is one a JSON string carries as is (jsonStrPlain).
func jsonWordPlainByTable(x uint64) bool {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], x)
	for _, c := range b {
		if !jsonStrPlain[c] {
			return false
		}
	}
	return true
}

// TestJSONEscapeAny: the word check of the JSON fast path's string writer
// agrees with the byte table on every byte value at every position of a
// plain word, on every pair of byte values at two positions (borrows from
// one byte into the next), and on random words over an alphabet of the
// boundary bytes (0x00, 0x1f, 0x20, '!', '"', '#', '[', '\', ']', 0x7f,
// 0x80, 0xff).
func TestJSONEscapeAny(t *testing.T) {
	check := func(x uint64) {
		t.Helper()
		if got, want := jsonEscapeAny(x)&0x8080808080808080 == 0, jsonWordPlainByTable(x); got != want {
			t.Fatalf("jsonEscapeAny(%#016x) says plain=%v, the table %v", x, got, want)
		}
	}
	const fill = 0x6161616161616161 // "aaaaaaaa"
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			check(uint64(fill)&^(0xff<<(8*pos)) | uint64(c)<<(8*pos))
		}
	}
	for _, pq := range [][2]int{{0, 1}, {3, 4}, {6, 7}, {0, 7}, {2, 5}} {
		for c := 0; c < 256; c++ {
			for d := 0; d < 256; d++ {
				x := uint64(fill) &^ (0xff<<(8*pq[0]) | 0xff<<(8*pq[1]))
				check(x | uint64(c)<<(8*pq[0]) | uint64(d)<<(8*pq[1]))
			}
		}
	}
	alpha := []byte{0x00, 0x1f, 0x20, '!', '"', '#', '[', '\\', ']', 0x7f, 0x80, 0xff, 'a'}
	r := rand.New(rand.NewPCG(3, 4))
	for range 500000 {
		var b [8]byte
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		check(binary.LittleEndian.Uint64(b[:]))
	}
}

// TestJSONStrEveryLength: the fast path's string writer (word copy, escape
// check, closing quote) matches jsonAppendString for every length from 0
// to jsonStrWordMax+16 (each copy shape: bytes, two half-words, two words,
// rounds of two words with overlapping tails, and the memmove copy past
// jsonStrWordMax bytes), plain and
// with one byte that needs escaping or a UTF-8 check ('"', '\', 0x00,
// 0x1f, 0x80, 0xff) at every position, and with the boundary bytes that
// need neither (' ', 0x7f) at every position; the string is written
// between other output, which must stay as it was.
func TestJSONStrEveryLength(t *testing.T) {
	special := []byte{'"', '\\', 0x00, 0x1f, 0x80, 0xff, ' ', 0x7f}
	for n := 0; n <= jsonStrWordMax+16; n++ {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = 'a' + byte(i%26)
		}
		cases := []string{string(plain)}
		for at := 0; at < n; at++ {
			for _, c := range special {
				b := append([]byte(nil), plain...)
				b[at] = c
				cases = append(cases, string(b))
			}
		}
		for _, s := range cases {
			var w fastBuf
			w.b = make([]byte, 2+len(s)+1+8)
			w.b[0], w.b[1] = 'P', '"'
			w.n = 2
			w.jsonStrQ(s)
			w.b[w.n] = 'Z'
			w.n++
			want := append(jsonAppendString([]byte("P"), s), 'Z')
			if got := w.done(); !bytes.Equal(got, want) {
				t.Fatalf("jsonStrQ(%q) = %q, want %q", s, got, want)
			}
		}
	}
}

// TestJSONRunLengths: every protocol run of the JSON request-headers fast
// path fits the word-move helper that copies it: key 4 to 16 bytes, key32
// 16 to 32 (checkRuns).
func TestJSONRunLengths(t *testing.T) {
	checkRuns(t, []string{jsRHHeaders, jsRHPort, jsRHProto, jsRHReqID, jsRHRoute, jsRHServer, jsRHTime,
		jsRHCipher, jsRHTLSVer, jsRHUpstream, jsRHMethod, jsRHURI},
		[]string{jsRHHead, jsRHClientIP, jsRHCorrID, jsRHTrace})
}

// TestJSONFastNameOrder: the JSON fast path takes exactly the events whose
// header names are all distinct (in any order: unsorted ones are written
// in sorted order) and writes the general encoder's bytes for them; the
// others (repeated names, which the general encoder merges) are left to
// the general encoder untouched. Names are drawn from a small set with shared 8-byte
// prefixes, NUL and high bytes, so that the word comparison's ties and
// padding are exercised.
func TestJSONFastNameOrder(t *testing.T) {
	names := []string{"", "\x00", "a", "a\x00", "ab", "abcdefg", "abcdefg\x00", "abcdefgh", "abcdefgh\x00",
		"abcdefghi", "abcdefgi", "accept", "accept-encoding", "accept-language", "\xff", "\xff\xff\xff\xff\xff\xff\xff\xff",
		"\xff\xff\xff\xff\xff\xff\xff\xff\x00"}
	r := rand.New(rand.NewPCG(5, 6))
	var taken, left, unsorted int
	for it := 0; it < 20000; it++ {
		e := mpBenchRequestHeaders()
		e.Headers = e.Headers[:0]
		k := r.IntN(5)
		start := r.IntN(len(names))
		for j := 0; j < k; j++ {
			var n string
			if r.IntN(4) == 0 {
				n = names[r.IntN(len(names))]
			} else {
				n = names[(start+j)%len(names)] // mostly ascending runs
			}
			e.Headers = append(e.Headers, Header{Name: n, Values: []string{"v"}})
		}
		out, ok := jsonAppendRequestHeadersFast([]byte("p"), e)
		if ok != headerNamesDistinct(e.Headers) {
			t.Fatalf("names %q: fast path ok=%v", e.Headers, ok)
		}
		if !ok {
			left++
			if string(out) != "p" {
				t.Fatalf("names %q: fast path declined but wrote %q", e.Headers, out)
			}
			continue
		}
		taken++
		if !headerNamesAscending(e.Headers) {
			unsorted++
		}
		if want := jsonAppendRequestHeadersGeneral([]byte("p"), e); !bytes.Equal(out, want) {
			t.Fatalf("names %q:\n got %q\nwant %q", e.Headers, out, want)
		}
	}
	if taken < 1000 || left < 500 || unsorted < 1000 {
		t.Fatalf("taken %d (unsorted %d), left %d: the inputs do not cover every side", taken, unsorted, left)
	}
}

// FuzzJSONRequestHeadersFast is the differential test of the JSON
// request-headers fast path: an event built from the input (its strings
// cut at NUL-free separators: URI, method, request id, traceparent, an
// optional field, then header names and values) is encoded by
// AppendRequestHeadersJSON exactly as by the general encoder, whether the
// names come out ascending (fast path) or not.
func FuzzJSONRequestHeadersFast(f *testing.F) {
	f.Add([]byte("/a\x01GET\x01id\x01tp\x01opt\x01accept\x01*/*\x01host\x01x"))
	f.Add([]byte("/a\x01GET\x01id\x01tp\x01opt\x01host\x01x\x01accept\x01*/*\x01b\x01\xc3\xa9")) // unsorted
	f.Add([]byte("/a\x01GET\x01\x01\x01\x01b\x01x\x01a\x01y\x01b\x01z"))                         // repeated name
	f.Add([]byte("/\"q\\\x01G\xffT\x01\x01\x01\x01a\x01\x1f\x01b\x01\xc3\xa9"))
	f.Add([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234\"\x01M\x01\x01\x01\x01n\x01v"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := fuzzRequestHeadersEvent(data)
		want := jsonAppendRequestHeadersGeneral([]byte("p"), e)
		if got := AppendRequestHeadersJSON([]byte("p"), e); !bytes.Equal(got, want) {
			t.Fatalf("fast path differs:\n got %q\nwant %q", got, want)
		}
	})
}
