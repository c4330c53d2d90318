package payload

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestNamesAscending: the word-wise order check of the MessagePack
// request-headers fast path agrees with Go's string order on every pair of
// a set built to hit its edges (names shorter than, equal to and longer
// than a word, prefixes of each other, NUL and high bytes where padding
// would be), and on random pairs over a small alphabet with those bytes.
func TestNamesAscending(t *testing.T) {
	edge := []string{"", "\x00", "\x00\x00", "a", "a\x00", "a\x00b", "ab", "abc", "abcdefg", "abcdefg\x00",
		"abcdefgh", "abcdefgh\x00", "abcdefghi", "abcdefgi", "abcdefgha", "accept", "accept-encoding",
		"accept-language", "\xff", "\xff\xff\xff\xff\xff\xff\xff\xff", "\xff\xff\xff\xff\xff\xff\xff\xff\x00", "x-request-id"}
	for _, a := range edge {
		for _, b := range edge {
			if got := namesAscending(a, b); got != (a < b) {
				t.Fatalf("namesAscending(%q, %q) = %v, want %v", a, b, got, a < b)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	alpha := []byte{0, 'a', 'b', 0x7f, 0x80, 0xff}
	gen := func() string {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alpha[r.IntN(len(alpha))]
		}
		return string(b)
	}
	for range 200000 {
		a, b := gen(), gen()
		if got := namesAscending(a, b); got != (a < b) {
			t.Fatalf("namesAscending(%q, %q) = %v, want %v", a, b, got, a < b)
		}
	}
}

// TestMsgpackKeyLengths: every protocol run of the MessagePack
// request-headers fast writers fits the word-move helpers that copy it:
// key and putRun 4 to 16 bytes, key32 and putRun32 (the metadata runs:
// key, map header, first key) 16 to 32.
func TestMsgpackKeyLengths(t *testing.T) {
	checkRuns(t, []string{mpRHHead, mpRHReqID, mpRHClientIP, mpRHPort, mpRHServer, mpRHProto, mpRHTLSVer,
		mpRHCipher, mpRHRoute, mpRHUpstream, mpRHTime, mpRHTrace, mpRHMethod, mpRHURI, mpRHHeaders},
		[]string{mpRHMeta11, mpRHMeta12})
}

// checkRuns checks that every run of short is 4 to 16 bytes and every one
// of long 16 to 32, and that the helpers for those lengths (key and
// putRun, key32 and putRun32) write each run exactly.
func checkRuns(t *testing.T, short, long []string) {
	t.Helper()
	for _, set := range []struct {
		runs     []string
		min, max int
		key      func(*fastBuf, string)
		put      func(unsafe.Pointer, string) unsafe.Pointer
	}{
		{short, 4, 16, (*fastBuf).key, putRun},
		{long, 16, 32, (*fastBuf).key32, putRun32},
	} {
		for _, k := range set.runs {
			if len(k) < set.min || len(k) > set.max {
				t.Errorf("run %q is %d bytes, its helpers copy %d to %d", k, len(k), set.min, set.max)
				continue
			}
			w := fastBuf{b: make([]byte, 40)}
			set.key(&w, k)
			if string(w.done()) != k {
				t.Errorf("key of %q wrote %q", k, w.done())
			}
			b := make([]byte, 40)
			end := set.put(unsafe.Pointer(&b[0]), k)
			if n := int(uintptr(end) - uintptr(unsafe.Pointer(&b[0]))); string(b[:n]) != k {
				t.Errorf("putRun of %q wrote %q", k, b[:n])
			}
		}
	}
}

// TestMpStrEveryLength: the fast path's string writer (header, word copy,
// ASCII check) matches the general encoder for every length from 0 to 80
// (each copy shape: bytes, two half-words, two words, rounds of two words
// with overlapping tails, and the copy past 64 bytes), plain and with one
// non-ASCII byte at every position (which only the accumulated check
// finds: the string must then go through the general encoder's UTF-8
// replacement).
func TestMpStrEveryLength(t *testing.T) {
	for n := 0; n <= 80; n++ {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = 'a' + byte(i%26)
		}
		cases := []string{string(plain)}
		for at := 0; at < n; at++ {
			b := append([]byte(nil), plain...)
			b[at] = 0xff
			cases = append(cases, string(b))
		}
		for _, s := range cases {
			var w fastBuf
			w.b = make([]byte, 8+len(s)+5)
			w.b[0] = 0x42
			w.n = 1
			w.mpStr(s)
			want := mpAppendStr([]byte{0x42}, s)
			if got := w.done(); !bytes.Equal(got, want) {
				t.Fatalf("mpStr(%q) = %x, want %x", s, got, want)
			}
		}
	}
}

// namesAscending reports whether header name a sorts strictly before b,
// as the fast writers decide it
// (a < b), deciding most pairs by their first 8 bytes loaded as one
// big-endian word (a shorter name padded with zero bytes), without
// runtime.cmpstring's call. Words that differ order the names as their
// bytes do (where a name ends first, its padding 0 is below the other's
// byte, or both bytes are 0 and the words go on); equal words are left to
// the full comparison.
func namesAscending(a, b string) bool {
	if x, y := nameWord(a), nameWord(b); x != y {
		return x < y
	}
	return a < b
}
