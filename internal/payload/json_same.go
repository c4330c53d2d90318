package payload

import "unsafe"

// The request-headers decoder's common case on a reused destination is a
// string equal to the one the destination already holds (the same header
// value, name or metadata field as the last event's). jsonSameString settles
// that case in one pass over the string, comparing and checking at once, in
// a function that calls nothing; anything else (a different string, an
// escape, a non-ASCII byte, whitespace) is left to the general readers,
// which then scan from the same position.

// jsonPadPlain fills the bytes of a word that jsonSameString does not load
// with a character that needs no escaping ('a').
const jsonPadPlain = 0x6161616161616161

// jsonSameString reports whether the JSON string whose opening quote is at
// data[p] holds exactly the bytes of s, each of them printable ASCII other
// than '"' and '\' (so the string has no escape and is its own value), and
// returns the offset after its closing quote. When it says yes, scanString
// would return s's bytes as the body with escaped and nonASCII false: the
// general readers' result for a plain string equal to s. It is safe for any
// p and s; it only reads data[p:p+len(s)+2] and s.
func jsonSameString(data []byte, p int, s string) (q int, same bool) {
	n := len(s)
	if uint(p) >= uint(len(data)) || n >= len(data)-p-1 {
		return p, false
	}
	base := unsafe.Pointer(unsafe.SliceData(data))
	// data[p] and data[p+1+n] are in bounds: p < len(data), p+1+n < len(data).
	if *(*byte)(unsafe.Add(base, p)) != '"' || *(*byte)(unsafe.Add(base, p+1+n)) != '"' {
		return p, false
	}
	if n == 0 {
		return p + 2, true
	}
	// Every load below is within the n bytes at data[p+1:] and the n of s.
	pv, ps := unsafe.Add(base, p+1), unsafe.Pointer(unsafe.StringData(s))
	var esc, diff uint64
	switch {
	case n >= 8:
		i := 0
		for ; i+8 <= n; i += 8 {
			x := *(*uint64)(unsafe.Add(pv, i))
			esc |= jsonEscapeAny(x)
			diff |= x ^ *(*uint64)(unsafe.Add(ps, i))
		}
		if i < n {
			x := *(*uint64)(unsafe.Add(pv, n-8))
			esc |= jsonEscapeAny(x)
			diff |= x ^ *(*uint64)(unsafe.Add(ps, n-8))
		}
	case n >= 4:
		x, y := *(*uint32)(pv), *(*uint32)(unsafe.Add(pv, n-4))
		esc = jsonEscapeAny(uint64(x) | uint64(y)<<32)
		diff = uint64((x ^ *(*uint32)(ps)) | (y ^ *(*uint32)(unsafe.Add(ps, n-4))))
	default: // 1 to 3 bytes: positions 0, n/2 and n-1 cover them all
		x := uint64(*(*byte)(pv)) | uint64(*(*byte)(unsafe.Add(pv, n/2)))<<8 | uint64(*(*byte)(unsafe.Add(pv, n-1)))<<16
		esc = jsonEscapeAny(x | jsonPadPlain&^0xffffff)
		diff = x ^ (uint64(*(*byte)(ps)) | uint64(*(*byte)(unsafe.Add(ps, n/2)))<<8 | uint64(*(*byte)(unsafe.Add(ps, n-1)))<<16)
	}
	if diff|esc&0x8080808080808080 != 0 {
		return p, false
	}
	return p + n + 2, true
}

// jsonEscapedSame reports whether body, the text between the quotes of a
// string that scanString accepted with escapes, unescapes to exactly s,
// comparing as it goes instead of unescaping into scratch space first. It
// settles only ASCII text and the one-character escapes; it says no to a
// \u escape or a byte at or above 0x80 (the general path then unescapes,
// checks surrogates and UTF-8, and compares). When it says yes, that path
// would also have produced s: every byte it compared is ASCII.
func jsonEscapedSame(body []byte, s string) bool {
	j := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\\' {
			// scanString checked the syntax: a character follows.
			i++
			switch body[i] {
			case '"', '\\', '/':
				c = body[i]
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			default: // 'u'
				return false
			}
		} else if c >= 0x80 {
			return false
		}
		if j >= len(s) || s[j] != c {
			return false
		}
		j++
	}
	return j == len(s)
}
