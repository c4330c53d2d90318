package payload

import (
	"encoding/binary"
	"slices"
)

// Standard padded base64 (RFC 4648 section 4), the body data encoding of
// every Rust peer, written and read a word at a time: the encoder turns 6
// bytes into 8 characters with four lookups of a 12-bit pair table, the
// decoder turns 8 characters into 6 bytes with eight lookups of tables
// that hold each character's 6 bits already in place (an invalid
// character sets the top byte, so one test per 8 characters validates
// them). About twice as fast as encoding/base64 on the 64 KiB chunks of
// BenchmarkBase64. Output and accepted inputs are exactly those of
// base64.StdEncoding (encoding) and base64.StdEncoding.Strict() with CR
// and LF rejected (decoding: the inputs Rust's base64 STANDARD engine
// accepts); FuzzBase64 holds them to it.

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// b64Invalid marks a character outside the alphabet in the b64Dec tables.
const b64Invalid = 0xff000000

var (
	// b64Pair[v] is the two characters of the 12-bit value v, the first
	// in the low byte.
	b64Pair [4096]uint16
	// b64Dec[k][c] is the 6-bit value of character c shifted to its place
	// as the k-th character of a quad (bits 18-23, 12-17, 6-11, 0-5), or
	// b64Invalid.
	b64Dec [4][256]uint32
)

func init() {
	for v := range b64Pair {
		b64Pair[v] = uint16(b64Alphabet[v>>6]) | uint16(b64Alphabet[v&63])<<8
	}
	for k := range b64Dec {
		for c := range b64Dec[k] {
			b64Dec[k][c] = b64Invalid
		}
		for v := 0; v < 64; v++ {
			b64Dec[k][b64Alphabet[v]] = uint32(v) << (18 - 6*k)
		}
	}
}

// b64EncodedLen is the padded base64 length of n bytes.
func b64EncodedLen(n int) int { return (n + 2) / 3 * 4 }

// b64AppendEncode appends the standard padded base64 encoding of src to
// dst.
func b64AppendEncode(dst, src []byte) []byte {
	n := b64EncodedLen(len(src))
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n]
	i, j := 0, 0
	// 12 bytes to 16 characters, then 6 to 8; each 8-byte load needs 2
	// bytes beyond the 6 it encodes.
	for ; len(src)-i >= 14; i, j = i+12, j+16 {
		s := src[i : i+14]
		o := out[j : j+16]
		v := binary.BigEndian.Uint64(s)
		u := binary.BigEndian.Uint64(s[6:])
		binary.LittleEndian.PutUint64(o, uint64(b64Pair[v>>52])|uint64(b64Pair[v>>40&0xfff])<<16|
			uint64(b64Pair[v>>28&0xfff])<<32|uint64(b64Pair[v>>16&0xfff])<<48)
		binary.LittleEndian.PutUint64(o[8:], uint64(b64Pair[u>>52])|uint64(b64Pair[u>>40&0xfff])<<16|
			uint64(b64Pair[u>>28&0xfff])<<32|uint64(b64Pair[u>>16&0xfff])<<48)
	}
	for ; len(src)-i >= 8; i, j = i+6, j+8 {
		v := binary.BigEndian.Uint64(src[i:])
		w := uint64(b64Pair[v>>52]) | uint64(b64Pair[v>>40&0xfff])<<16 |
			uint64(b64Pair[v>>28&0xfff])<<32 | uint64(b64Pair[v>>16&0xfff])<<48
		binary.LittleEndian.PutUint64(out[j:], w)
	}
	for ; len(src)-i >= 3; i, j = i+3, j+4 {
		v := uint(src[i])<<16 | uint(src[i+1])<<8 | uint(src[i+2])
		binary.LittleEndian.PutUint16(out[j:], b64Pair[v>>12])
		binary.LittleEndian.PutUint16(out[j+2:], b64Pair[v&0xfff])
	}
	switch len(src) - i {
	case 2:
		v := uint(src[i])<<16 | uint(src[i+1])<<8
		binary.LittleEndian.PutUint16(out[j:], b64Pair[v>>12])
		out[j+2] = b64Alphabet[v>>6&63]
		out[j+3] = '='
	case 1:
		v := uint(src[i]) << 16
		binary.LittleEndian.PutUint16(out[j:], b64Pair[v>>12])
		out[j+2], out[j+3] = '=', '='
	}
	return dst[:len(dst)+n]
}

// b64AppendDecodeStrict appends the decoding of the standard padded base64
// src to dst. It reports false (dst unchanged in length) for anything but
// canonical input: a length that is not a multiple of 4, a character
// outside the alphabet (CR and LF included), padding anywhere but at the
// end, or non-zero bits in the last character before the padding.
func b64AppendDecodeStrict(dst, src []byte) ([]byte, bool) {
	if len(src)%4 != 0 {
		return dst, false
	}
	if len(src) == 0 {
		return dst, true
	}
	// Every quad but the last decodes to 3 bytes; the last to 1 to 3. The
	// 8-byte stores need 2 bytes of room beyond the output.
	n := len(src) / 4 * 3
	base := len(dst)
	dst = slices.Grow(dst, n+2)
	out := dst[base : base+n+2]
	last := len(src) - 4
	d0, d1, d2, d3 := &b64Dec[0], &b64Dec[1], &b64Dec[2], &b64Dec[3]
	i, j := 0, 0
	for ; last-i >= 16; i, j = i+16, j+12 {
		q := src[i : i+16]
		o := out[j : j+14]
		a := d0[q[0]] | d1[q[1]] | d2[q[2]] | d3[q[3]]
		b := d0[q[4]] | d1[q[5]] | d2[q[6]] | d3[q[7]]
		c := d0[q[8]] | d1[q[9]] | d2[q[10]] | d3[q[11]]
		d := d0[q[12]] | d1[q[13]] | d2[q[14]] | d3[q[15]]
		if (a|b|c|d)&b64Invalid != 0 {
			return dst[:base], false
		}
		binary.BigEndian.PutUint64(o, uint64(a)<<40|uint64(b)<<16)
		binary.BigEndian.PutUint64(o[6:], uint64(c)<<40|uint64(d)<<16)
	}
	for ; last-i >= 8; i, j = i+8, j+6 {
		q := src[i : i+8]
		a := d0[q[0]] | d1[q[1]] | d2[q[2]] | d3[q[3]]
		b := d0[q[4]] | d1[q[5]] | d2[q[6]] | d3[q[7]]
		if (a|b)&b64Invalid != 0 {
			return dst[:base], false
		}
		binary.BigEndian.PutUint64(out[j:], uint64(a)<<40|uint64(b)<<16)
	}
	for ; i < last; i, j = i+4, j+3 {
		q := src[i : i+4]
		a := d0[q[0]] | d1[q[1]] | d2[q[2]] | d3[q[3]]
		if a&b64Invalid != 0 {
			return dst[:base], false
		}
		out[j], out[j+1], out[j+2] = byte(a>>16), byte(a>>8), byte(a)
	}
	q := src[last:]
	switch {
	case q[3] != '=':
		a := d0[q[0]] | d1[q[1]] | d2[q[2]] | d3[q[3]]
		if a&b64Invalid != 0 {
			return dst[:base], false
		}
		out[j], out[j+1], out[j+2] = byte(a>>16), byte(a>>8), byte(a)
		j += 3
	case q[2] != '=':
		a := d0[q[0]] | d1[q[1]] | d2[q[2]]
		if a&b64Invalid != 0 || a&0xff != 0 {
			return dst[:base], false
		}
		out[j], out[j+1] = byte(a>>16), byte(a>>8)
		j += 2
	default:
		a := d0[q[0]] | d1[q[1]]
		if a&b64Invalid != 0 || a&0xffff != 0 {
			return dst[:base], false
		}
		out[j] = byte(a >> 16)
		j++
	}
	return dst[:base+j], true
}
