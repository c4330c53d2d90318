package payload

import (
	"math/rand/v2"
	"testing"
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

// TestMsgpackKeyLengths: every key the request-headers fast path writes
// with fastBuf.key is 4 to 16 bytes long, the lengths its two overlapping
// word moves copy exactly.
func TestMsgpackKeyLengths(t *testing.T) {
	for _, k := range []string{mpRHHead, mpRHReqID, mpRHClientIP, mpRHPort, mpRHServer, mpRHProto, mpRHTLSVer,
		mpRHCipher, mpRHRoute, mpRHUpstream, mpRHTime, mpRHTrace, mpRHMethod, mpRHURI, mpRHHeaders} {
		if len(k) < 4 || len(k) > 16 {
			t.Errorf("key %q is %d bytes, fastBuf.key copies 4 to 16", k, len(k))
		}
		var w fastBuf
		w.b = make([]byte, 32)
		w.key(k)
		if string(w.done()) != k {
			t.Errorf("key(%q) wrote %q", k, w.done())
		}
	}
}
