// Package wiretext holds the one rule by which agentwire writes Go strings
// as protocol text, on every transport: valid UTF-8 goes out as is, and
// every byte that does not begin a valid UTF-8 sequence becomes U+FFFD.
// Rust peers require valid UTF-8 (serde_json, rmp_serde and prost all
// reject anything else), while Go strings may hold any bytes (an HTTP
// header with obs-text, a handler's output). It also holds the
// word-at-a-time ASCII test the encoders' fast paths use.
package wiretext

import (
	"unicode/utf8"
	"unsafe"
)

// HighBits masks the high bit of every byte of an OrBytes result: s is
// ASCII iff OrBytes(s)&HighBits == 0.
const HighBits = 0x8080808080808080

// OrBytes returns the OR of s's bytes folded into a word, read eight bytes
// at a time (the last word overlapping the one before it); only the high
// bit of each byte is meaningful. ORing the results of several strings
// tests them all at once.
func OrBytes(s string) uint64 {
	n := len(s)
	p := unsafe.Pointer(unsafe.StringData(s))
	switch {
	case n >= 8:
		acc := *(*uint64)(unsafe.Add(p, n-8))
		for i := 0; i+8 <= n; i += 8 {
			acc |= *(*uint64)(unsafe.Add(p, i))
		}
		return acc
	case n >= 4:
		return uint64(*(*uint32)(p) | *(*uint32)(unsafe.Add(p, n-4)))
	}
	var acc uint64
	for i := 0; i < n; i++ {
		acc |= uint64(*(*byte)(unsafe.Add(p, i)))
	}
	return acc
}

// IsASCII reports whether every byte of s is below 0x80.
func IsASCII(s string) bool { return OrBytes(s)&HighBits == 0 }

// Len returns the length of s as written on the wire (len(Valid(s))),
// without allocating.
func Len(s string) int {
	if IsASCII(s) || utf8.ValidString(s) {
		return len(s)
	}
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += utf8.RuneLen(utf8.RuneError)
		} else {
			n += size
		}
		i += size
	}
	return n
}

// Append appends the wire text of s (Valid(s)) to dst.
func Append(dst []byte, s string) []byte {
	if IsASCII(s) || utf8.ValidString(s) {
		return append(dst, s...)
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// Valid returns s when it is valid UTF-8, else a copy with every invalid
// byte replaced by U+FFFD.
func Valid(s string) string {
	if IsASCII(s) || utf8.ValidString(s) {
		return s
	}
	return string(Append(make([]byte, 0, Len(s)), s))
}
