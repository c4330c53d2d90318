package payload

import (
	"math/bits"
	"slices"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/agentwire/agentwire/internal/wiretext"
)

// The request-headers event in MessagePack for the common case: names in
// strictly ascending order. The output is reserved once (an upper bound
// from the strings' lengths) and written through a bare pointer by
// helpers that take and return it in registers (mpPut, mpPutName,
// putRun): no per-string bounds check and no write position kept in
// memory. The names' order is checked as they are written (mpPutName
// returns each name's order key from the words it copied); before that,
// the first bytes of the first four names turn away headers in arrival
// order untouched (mpFirstNamesAscending), and an order broken further
// on sends the event to the general encoder, which writes it into the
// room reserved (the caller keeps that room for its next event). Text is
// copied as it is and checked a word at a time on the way: the words of
// the metadata's strings are ORed into one word tested once at the end,
// a header's into one tested after it. Non-ASCII text that is valid
// UTF-8 is written as it is (as the general encoder writes it), so only
// a part with a non-ASCII byte is checked for UTF-8; an event with a
// string that is not valid UTF-8 is written again by
// mpAppendRequestHeadersMixed (the per-string writer that hands such
// strings to the general encoder, which replaces the bad bytes). So the
// bytes written are always the general encoder's
// (TestRequestHeadersFastPathMatchesGeneral, TestMpPutEveryLength,
// TestMsgpackFastPathTextEveryField).
//
// Pointer rule: every pointer written through or returned stays inside
// the reserved room, whose bound exceeds what the event can take (the
// timestamp's scratch room included), so the write pointer never reaches
// the end of the buffer's allocation; the writer panics should it ever
// have written past the bound.

// mpPutWordMax is the longest string mpPut copies in its own word loop;
// longer ones are copied by memmove and then checked.
const mpPutWordMax = 256

// mpPut writes s as a MessagePack str (header and bytes) at d, which has
// room for it, and returns the end of what it wrote and the OR of s's
// bytes folded into a word (s is ASCII iff acc&wiretext.HighBits == 0).
// The bytes are copied as they are: a string that is not ASCII may stay
// only once it is known to be valid UTF-8.
func mpPut(d unsafe.Pointer, s string) (end unsafe.Pointer, acc uint64) {
	n := len(s)
	p := unsafe.Pointer(unsafe.StringData(s))
	if n < 32 {
		*(*byte)(d) = 0xa0 | byte(n)
		d = unsafe.Add(d, 1)
		switch {
		case n >= 16:
			x0, x1 := *(*uint64)(p), *(*uint64)(unsafe.Add(p, 8))
			y0, y1 := *(*uint64)(unsafe.Add(p, n-16)), *(*uint64)(unsafe.Add(p, n-8))
			*(*uint64)(d) = x0
			*(*uint64)(unsafe.Add(d, 8)) = x1
			*(*uint64)(unsafe.Add(d, n-16)) = y0
			*(*uint64)(unsafe.Add(d, n-8)) = y1
			return unsafe.Add(d, n), x0 | x1 | y0 | y1
		case n >= 8:
			x, y := *(*uint64)(p), *(*uint64)(unsafe.Add(p, n-8))
			*(*uint64)(d) = x
			*(*uint64)(unsafe.Add(d, n-8)) = y
			return unsafe.Add(d, n), x | y
		case n >= 4:
			x, y := *(*uint32)(p), *(*uint32)(unsafe.Add(p, n-4))
			*(*uint32)(d) = x
			*(*uint32)(unsafe.Add(d, n-4)) = y
			return unsafe.Add(d, n), uint64(x | y)
		case n > 0: // 1 to 3 bytes: positions 0, n/2 and n-1 cover them all
			a, b, c := *(*byte)(p), *(*byte)(unsafe.Add(p, n/2)), *(*byte)(unsafe.Add(p, n-1))
			*(*byte)(d) = a
			*(*byte)(unsafe.Add(d, n/2)) = b
			*(*byte)(unsafe.Add(d, n-1)) = c
			return unsafe.Add(d, n), uint64(a | b | c)
		}
		return d, 0
	}
	switch {
	case n <= 0xff:
		*(*byte)(d) = 0xd9
		*(*byte)(unsafe.Add(d, 1)) = byte(n)
		d = unsafe.Add(d, 2)
	case n <= 0xffff:
		*(*byte)(d) = 0xda
		*(*byte)(unsafe.Add(d, 1)) = byte(n >> 8)
		*(*byte)(unsafe.Add(d, 2)) = byte(n)
		d = unsafe.Add(d, 3)
	default:
		*(*byte)(d) = 0xdb
		*(*byte)(unsafe.Add(d, 1)) = byte(n >> 24)
		*(*byte)(unsafe.Add(d, 2)) = byte(n >> 16)
		*(*byte)(unsafe.Add(d, 3)) = byte(n >> 8)
		*(*byte)(unsafe.Add(d, 4)) = byte(n)
		d = unsafe.Add(d, 5)
	}
	if n > mpPutWordMax {
		copy(unsafe.Slice((*byte)(d), n), s)
		return unsafe.Add(d, n), wiretext.OrBytes(s)
	}
	// 32 to 256 bytes: two words a round into two accumulators, then the
	// last two words, ending at n (they may overlap the round before).
	var acc1 uint64
	for i := 0; i+16 < n; i += 16 {
		x, y := *(*uint64)(unsafe.Add(p, i)), *(*uint64)(unsafe.Add(p, i+8))
		acc |= x
		acc1 |= y
		*(*uint64)(unsafe.Add(d, i)) = x
		*(*uint64)(unsafe.Add(d, i+8)) = y
	}
	x, y := *(*uint64)(unsafe.Add(p, n-16)), *(*uint64)(unsafe.Add(p, n-8))
	*(*uint64)(unsafe.Add(d, n-16)) = x
	*(*uint64)(unsafe.Add(d, n-8)) = y
	return unsafe.Add(d, n), acc | acc1 | x | y
}

// mpPutName is mpPut for a header name shorter than 32 bytes (longer
// ones go to mpPut; key is then left to nameWord) that also returns the
// name's order key, nameWord's value, from the words the copy loaded.
func mpPutName(d unsafe.Pointer, s string) (end unsafe.Pointer, acc, key uint64) {
	n := len(s)
	if n >= 32 {
		end, acc = mpPut(d, s)
		return end, acc, nameWord(s)
	}
	p := unsafe.Pointer(unsafe.StringData(s))
	*(*byte)(d) = 0xa0 | byte(n)
	d = unsafe.Add(d, 1)
	switch {
	case n >= 16:
		x0, x1 := *(*uint64)(p), *(*uint64)(unsafe.Add(p, 8))
		y0, y1 := *(*uint64)(unsafe.Add(p, n-16)), *(*uint64)(unsafe.Add(p, n-8))
		*(*uint64)(d) = x0
		*(*uint64)(unsafe.Add(d, 8)) = x1
		*(*uint64)(unsafe.Add(d, n-16)) = y0
		*(*uint64)(unsafe.Add(d, n-8)) = y1
		return unsafe.Add(d, n), x0 | x1 | y0 | y1, bits.ReverseBytes64(x0)
	case n >= 8:
		x, y := *(*uint64)(p), *(*uint64)(unsafe.Add(p, n-8))
		*(*uint64)(d) = x
		*(*uint64)(unsafe.Add(d, n-8)) = y
		return unsafe.Add(d, n), x | y, bits.ReverseBytes64(x)
	case n >= 4:
		// The little-endian word of the name's bytes: the last four
		// (loaded where they end) shifted to their places over the
		// first four, the bytes they share landing on equal bytes.
		x, y := *(*uint32)(p), *(*uint32)(unsafe.Add(p, n-4))
		*(*uint32)(d) = x
		*(*uint32)(unsafe.Add(d, n-4)) = y
		return unsafe.Add(d, n), uint64(x | y), bits.ReverseBytes64(uint64(x) | uint64(y)<<(8*uint(n-4)))
	case n > 0:
		a, b, c := *(*byte)(p), *(*byte)(unsafe.Add(p, n/2)), *(*byte)(unsafe.Add(p, n-1))
		*(*byte)(d) = a
		*(*byte)(unsafe.Add(d, n/2)) = b
		*(*byte)(unsafe.Add(d, n-1)) = c
		le := uint64(a) | uint64(b)<<(8*uint(n/2)) | uint64(c)<<(8*uint(n-1))
		return unsafe.Add(d, n), uint64(a | b | c), bits.ReverseBytes64(le)
	}
	return d, 0, 0
}

// putRun writes a protocol run of 4 to 16 bytes at d (key's shapes: two
// overlapping word moves) and returns its end.
func putRun(d unsafe.Pointer, k string) unsafe.Pointer {
	n := len(k)
	p := unsafe.Pointer(unsafe.StringData(k))
	if n >= 8 {
		*(*uint64)(d) = *(*uint64)(p)
		*(*uint64)(unsafe.Add(d, n-8)) = *(*uint64)(unsafe.Add(p, n-8))
	} else {
		*(*uint32)(d) = *(*uint32)(p)
		*(*uint32)(unsafe.Add(d, n-4)) = *(*uint32)(unsafe.Add(p, n-4))
	}
	return unsafe.Add(d, n)
}

// putRun32 writes a protocol run of 16 to 32 bytes at d (key32's shapes)
// and returns its end.
func putRun32(d unsafe.Pointer, k string) unsafe.Pointer {
	n := len(k)
	p := unsafe.Pointer(unsafe.StringData(k))
	*(*uint64)(d) = *(*uint64)(p)
	*(*uint64)(unsafe.Add(d, 8)) = *(*uint64)(unsafe.Add(p, 8))
	*(*uint64)(unsafe.Add(d, n-16)) = *(*uint64)(unsafe.Add(p, n-16))
	*(*uint64)(unsafe.Add(d, n-8)) = *(*uint64)(unsafe.Add(p, n-8))
	return unsafe.Add(d, n)
}

// mpPutOpt writes an optional string: nil, or the string (mpPut).
func mpPutOpt(d unsafe.Pointer, o Opt[string]) (unsafe.Pointer, uint64) {
	if !o.Valid {
		*(*byte)(d) = 0xc0
		return unsafe.Add(d, 1), 0
	}
	return mpPut(d, o.Value)
}

// mpPutCount writes a map (base 0x80) or array (base 0x90) header for n
// entries at d and returns its end.
func mpPutCount(d unsafe.Pointer, base byte, n int) unsafe.Pointer {
	switch {
	case n <= 15:
		*(*byte)(d) = base | byte(n)
		return unsafe.Add(d, 1)
	case n <= 0xffff:
		c := byte(0xde)
		if base == 0x90 {
			c = 0xdc
		}
		*(*byte)(d) = c
		*(*byte)(unsafe.Add(d, 1)) = byte(n >> 8)
		*(*byte)(unsafe.Add(d, 2)) = byte(n)
		return unsafe.Add(d, 3)
	}
	c := byte(0xdf)
	if base == 0x90 {
		c = 0xdd
	}
	*(*byte)(d) = c
	*(*byte)(unsafe.Add(d, 1)) = byte(n >> 24)
	*(*byte)(unsafe.Add(d, 2)) = byte(n >> 16)
	*(*byte)(unsafe.Add(d, 3)) = byte(n >> 8)
	*(*byte)(unsafe.Add(d, 4)) = byte(n)
	return unsafe.Add(d, 5)
}

// mpAppendRequestHeadersFast is AppendRequestHeadersMsgpack for events
// whose header names are distinct. Names in strictly ascending order are
// written as they come, their order checked as they are written; others
// (the first names show it, or a pair found out of order later) go to
// mpAppendRequestHeadersUnsorted, which writes them in sorted order. ok
// is false (and nothing is written) when the event is the general
// encoder's: a repeated name, or more than headerSortSmallMax headers
// out of order.
func mpAppendRequestHeadersFast(dst []byte, e *RequestHeadersEvent) (out []byte, ok bool) {
	hs := e.Headers
	// Headers in arrival order (as proxies keep them) are mostly refused
	// here, before anything is reserved or written: the first bytes of
	// the first names are out of order (host, user-agent, accept...).
	// The full order is checked as the names are written.
	if !mpFirstNamesAscending(hs) {
		return mpAppendRequestHeadersUnsorted(dst, e)
	}
	bound := mpRequestHeadersBound(e)
	n0 := len(dst)
	dst = slices.Grow(dst, bound)
	base := unsafe.Pointer(unsafe.SliceData(dst))
	d := unsafe.Add(base, n0)
	d, acc := mpPutRequestHeadersHead(d, e)
	var a uint64
	// Strictly ascending names, checked as they are written: most pairs
	// are decided by their first 8 bytes (the key mpPutName returns),
	// equal ones by the names. Out of order, nothing is kept.
	var prev, k uint64
	bad := false // a header string that is not valid UTF-8
	for i := range hs {
		h := &hs[i]
		d, a, k = mpPutName(d, h.Name)
		ha := a
		if k <= prev && i > 0 && (k < prev || !(hs[i-1].Name < h.Name)) {
			// Out of order after all: the event is written again
			// in sorted order, or by the general encoder, into the
			// room reserved here (the caller would otherwise grow
			// its buffer again, on every call when it keeps the
			// result).
			return mpAppendRequestHeadersResorted(dst[:n0], e), true
		}
		prev = k
		if vs := h.Values; len(vs) == 1 {
			// The common case, without the loop (whose exit the
			// branch predictor misses when counts vary).
			*(*byte)(d) = 0x91
			d, a = mpPut(unsafe.Add(d, 1), vs[0])
			ha |= a
		} else {
			d = mpPutCount(d, 0x90, len(vs))
			for _, v := range vs {
				d, a = mpPut(d, v)
				ha |= a
			}
		}
		if ha&wiretext.HighBits != 0 && !mpHeaderValidUTF8(h) {
			bad = true
		}
	}
	out = mpPutEnd(dst, base, d, n0, bound) // checks the bound first
	if bad || acc&wiretext.HighBits != 0 && !mpMetadataValidUTF8(e) {
		// A string that is not valid UTF-8: the writer that rewrites
		// such strings (U+FFFD) writes the event again. (Valid UTF-8
		// is written as it is, as copied here.)
		return mpAppendRequestHeadersMixed(dst[:n0], e), true
	}
	return out, true
}

// mpMetadataValidUTF8 reports whether every string of e outside its
// headers is valid UTF-8 (the strings the general encoder writes as they
// are): the check of an event whose metadata, method or URI is not all
// ASCII.
func mpMetadataValidUTF8(e *RequestHeadersEvent) bool {
	m := &e.Metadata
	return mpTextValid(m.CorrelationID) && mpTextValid(m.RequestID) && mpTextValid(m.ClientIP) &&
		mpTextValid(m.ServerName.Value) && mpTextValid(m.Protocol) && mpTextValid(m.TLSVersion.Value) &&
		mpTextValid(m.TLSCipher.Value) && mpTextValid(m.RouteID.Value) && mpTextValid(m.UpstreamID.Value) &&
		mpTextValid(m.Traceparent) && mpTextValid(e.Method) && mpTextValid(e.URI)
}

// mpHeaderValidUTF8 reports whether h's name and values are valid UTF-8:
// the check of a header whose strings are not all ASCII.
func mpHeaderValidUTF8(h *Header) bool {
	if !utf8.ValidString(h.Name) {
		return false
	}
	for _, v := range h.Values {
		if !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// mpTextValid reports whether s is valid UTF-8.
func mpTextValid(s string) bool { return wiretext.IsASCII(s) || utf8.ValidString(s) }

// mpPutTimestamp writes t as the general encoder does (mpFormatTimestamp's
// text as a fixstr, or a str8 from 32 bytes on) at d, which has room for
// a header and 64 bytes, and returns its end. The text is formatted in
// place after the header its length is predicted to need (a copy
// through a stack buffer read the formatter's byte stores back as words,
// which stalls on store forwarding); a prediction that misses moves the
// text by the header's difference.
func mpPutTimestamp(d unsafe.Pointer, t time.Time) unsafe.Pointer {
	h := 1
	if mpTimestampLen(t) >= 32 {
		h = 2
	}
	txt := mpFormatTimestamp(unsafe.Slice((*byte)(unsafe.Add(d, h)), 64)[:0], t)
	n := len(txt)
	if unsafe.SliceData(txt) != (*byte)(unsafe.Add(d, h)) {
		panic("agentwire: payload: timestamp outgrew its room") // the longest is 44 bytes
	}
	switch {
	case n <= 31 && h == 2:
		copy(unsafe.Slice((*byte)(unsafe.Add(d, 1)), n), txt)
		h = 1
	case n > 31 && h == 1:
		copy(unsafe.Slice((*byte)(unsafe.Add(d, 2)), n), txt)
		h = 2
	}
	if h == 1 {
		*(*byte)(d) = 0xa0 | byte(n)
	} else {
		*(*byte)(d) = 0xd9
		*(*byte)(unsafe.Add(d, 1)) = byte(n)
	}
	return unsafe.Add(d, h+n)
}

// mpTimestampLen predicts the length of mpFormatTimestamp's text for t:
// 19 bytes of date and time, a fraction of 3, 6 or 9 digits after a dot
// when the nanoseconds need one, and "+00:00" (exact for years 0 to
// 9999; the caller checks).
func mpTimestampLen(t time.Time) int {
	n := 19 + 6
	switch ns := t.Nanosecond(); {
	case ns == 0:
	case ns%1_000_000 == 0:
		n += 4
	case ns%1_000 == 0:
		n += 7
	default:
		n += 10
	}
	return n
}

// mpFirstNamesAscending reports whether the first bytes of the first
// four names do not descend (headers in arrival order mostly fail it:
// host, user-agent, accept...).
func mpFirstNamesAscending(hs Headers) bool {
	var first byte // first byte of the previous name (0: empty)
	for i := range min(len(hs), 4) {
		var c byte
		if name := hs[i].Name; len(name) > 0 {
			c = name[0]
		}
		if c < first {
			return false
		}
		first = c
	}
	return true
}
