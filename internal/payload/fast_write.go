package payload

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/agentwire/agentwire/internal/wiretext"
)

// Single-pass writers for the request-headers encoders (the hottest encode
// on the proxy side). The output buffer is grown once to an upper bound of
// the plain encoded size, then every string is copied 8 bytes at a time
// (no call for strings up to 64 bytes) while its words are checked. A
// string with a byte that needs more than a plain copy (non-ASCII in
// MessagePack; non-ASCII, '"', '\' or a control character in JSON) is
// rewritten in place by the general string encoder, so the bytes written
// are always those of the general path.

// fastBuf is an output buffer with room already reserved: n is the write
// position inside b (len(b) is the reserved end).
type fastBuf struct {
	b []byte
	n int
}

// fastGrow reserves bound bytes after len(dst).
func fastGrow(dst []byte, bound int) fastBuf {
	n := len(dst)
	dst = slices.Grow(dst, bound)
	return fastBuf{b: dst[:n+bound], n: n}
}

// done returns the written bytes.
func (w *fastBuf) done() []byte { return w.b[:w.n] }

func (w *fastBuf) byte1(c byte) {
	w.b[w.n] = c
	w.n++
}

// mpStr appends s as a MessagePack str (header + bytes). A string that is
// not ASCII is rewritten by the general encoder (UTF-8 check, U+FFFD
// replacement). One call per string: the header, the copy (in words, up
// to 64 bytes) and the ASCII check are done here (through separate copy
// and check helpers it was three calls per string, most of the cost of
// the short strings of a request-headers event).
func (w *fastBuf) mpStr(s string) {
	start := w.n
	n := len(s)
	h := 1
	switch {
	case n <= 31:
		w.b[w.n] = 0xa0 | byte(n)
	case n <= 0xff:
		w.b[w.n], w.b[w.n+1] = 0xd9, byte(n)
		h = 2
	case n <= 0xffff:
		w.b[w.n], w.b[w.n+1], w.b[w.n+2] = 0xda, byte(n>>8), byte(n)
		h = 3
	default:
		w.b[w.n] = 0xdb
		binary.BigEndian.PutUint32(w.b[w.n+1:], uint32(n))
		h = 5
	}
	w.n += h
	var acc uint64
	if n > 64 {
		w.n += copy(w.b[w.n:], s)
		acc = wiretext.OrBytes(s)
	} else {
		_ = w.b[w.n : w.n+n] // the whole destination range is reserved (panics otherwise)
		d := unsafe.Pointer(unsafe.SliceData(w.b[w.n:]))
		p := unsafe.Pointer(unsafe.StringData(s))
		w.n += n
		switch {
		case n >= 16:
			// Two words a round, into two accumulators; the last two
			// words end at n (they may overlap the previous ones).
			var acc1 uint64
			for i := 0; i+16 < n; i += 16 {
				x, y := *(*uint64)(unsafe.Add(p, i)), *(*uint64)(unsafe.Add(p, i+8))
				acc |= x
				acc1 |= y
				*(*uint64)(unsafe.Add(d, i)) = x
				*(*uint64)(unsafe.Add(d, i+8)) = y
			}
			x, y := *(*uint64)(unsafe.Add(p, n-16)), *(*uint64)(unsafe.Add(p, n-8))
			acc |= x | acc1 | y
			*(*uint64)(unsafe.Add(d, n-16)) = x
			*(*uint64)(unsafe.Add(d, n-8)) = y
		case n >= 8:
			x, y := *(*uint64)(p), *(*uint64)(unsafe.Add(p, n-8))
			acc = x | y
			*(*uint64)(d) = x
			*(*uint64)(unsafe.Add(d, n-8)) = y
		case n >= 4:
			x, y := *(*uint32)(p), *(*uint32)(unsafe.Add(p, n-4))
			acc = uint64(x | y)
			*(*uint32)(d) = x
			*(*uint32)(unsafe.Add(d, n-4)) = y
		default:
			for i := 0; i < n; i++ {
				c := *(*byte)(unsafe.Add(p, i))
				acc |= uint64(c)
				*(*byte)(unsafe.Add(d, i)) = c
			}
		}
	}
	if acc&0x8080808080808080 != 0 {
		w.general(w.n, mpAppendStr(w.b[:start], s))
	}
}

// key appends a MessagePack protocol key of 4 to 16 bytes (a fixstr
// header and the name: every key of the request-headers event, see
// TestMsgpackKeyLengths) with two overlapping word moves, inlined: no
// call, no loop.
func (w *fastBuf) key(k string) {
	n := len(k)
	_ = w.b[w.n : w.n+n] // reserved (panics otherwise)
	d := unsafe.Pointer(unsafe.SliceData(w.b[w.n:]))
	p := unsafe.Pointer(unsafe.StringData(k))
	if n >= 8 {
		*(*uint64)(d) = *(*uint64)(p)
		*(*uint64)(unsafe.Add(d, n-8)) = *(*uint64)(unsafe.Add(p, n-8))
	} else {
		*(*uint32)(d) = *(*uint32)(p)
		*(*uint32)(unsafe.Add(d, n-4)) = *(*uint32)(unsafe.Add(p, n-4))
	}
	w.n += n
}

func (w *fastBuf) mpOptStr(o Opt[string]) {
	if !o.Valid {
		w.byte1(0xc0)
		return
	}
	w.mpStr(o.Value)
}

// mpCount appends a map (base 0x80) or array (base 0x90) header for n
// entries.
func (w *fastBuf) mpCount(base byte, n int) {
	switch {
	case n <= 15:
		w.byte1(base | byte(n))
	case n <= 0xffff:
		c := byte(0xde)
		if base == 0x90 {
			c = 0xdc
		}
		w.b[w.n], w.b[w.n+1], w.b[w.n+2] = c, byte(n>>8), byte(n)
		w.n += 3
	default:
		if base == 0x90 {
			w.byte1(0xdd)
		} else {
			w.byte1(0xdf)
		}
		binary.BigEndian.PutUint32(w.b[w.n:], uint32(n))
		w.n += 4
	}
}

// mpKey returns the fixstr encoding of a protocol field name.
func mpKey(k string) string { return string(append([]byte{0xa0 | byte(len(k))}, k...)) }

// Constant runs of the request-headers event (map headers and keys).
var (
	mpRHHead = "\x85" + mpKey("correlation_id") // envelope of 5 entries
	// The metadata key, its map header (11 entries, 12 with a
	// traceparent) and its first key, in one run.
	mpRHMeta11   = mpKey("metadata") + "\x8b" + mpKey("correlation_id")
	mpRHMeta12   = mpKey("metadata") + "\x8c" + mpKey("correlation_id")
	mpRHReqID    = mpKey("request_id")
	mpRHClientIP = mpKey("client_ip")
	mpRHPort     = mpKey("client_port")
	mpRHServer   = mpKey("server_name")
	mpRHProto    = mpKey("protocol")
	mpRHTLSVer   = mpKey("tls_version")
	mpRHCipher   = mpKey("tls_cipher")
	mpRHRoute    = mpKey("route_id")
	mpRHUpstream = mpKey("upstream_id")
	mpRHTime     = mpKey("timestamp")
	mpRHTrace    = mpKey("traceparent")
	mpRHMethod   = mpKey("method")
	mpRHURI      = mpKey("uri")
	mpRHHeaders  = mpKey("headers")
)

// nameWord returns the first 8 bytes of s as a big-endian word, padded
// with zero bytes, with at most two loads for names of 4 bytes or more:
// from 4 to 7 bytes the last four bytes are loaded where they end and
// shifted into place, the bytes they share with the first four landing
// on equal bytes.
func nameWord(s string) uint64 {
	n := len(s)
	p := unsafe.Pointer(unsafe.StringData(s))
	switch {
	case n >= 8:
		return bits.ReverseBytes64(*(*uint64)(p))
	case n >= 4:
		hi := uint64(bits.ReverseBytes32(*(*uint32)(p))) << 32
		lo := uint64(bits.ReverseBytes32(*(*uint32)(unsafe.Add(p, n-4)))) << (64 - 8*uint(n))
		return hi | lo
	}
	var x uint64
	for i := 0; i < n; i++ {
		x |= uint64(*(*byte)(unsafe.Add(p, i))) << (56 - 8*uint(i))
	}
	return x
}

// mpAppendRequestHeadersMixed is mpAppendRequestHeadersFast's writer for
// events with a string that is not ASCII (header names already checked
// to be in strictly ascending order): every string is copied as it is
// and checked, and one that is not ASCII is rewritten in place by the
// general string encoder.
func mpAppendRequestHeadersMixed(dst []byte, e *RequestHeadersEvent) []byte {
	m := &e.Metadata
	const perStr = 5
	bound := 256 + 2*len(m.CorrelationID) + len(m.RequestID) + len(m.ClientIP) + len(m.Protocol) +
		len(m.ServerName.Value) + len(m.TLSVersion.Value) + len(m.TLSCipher.Value) + len(m.RouteID.Value) +
		len(m.UpstreamID.Value) + len(m.Traceparent) + len(e.Method) + len(e.URI) + 12*perStr + 64
	for i := range e.Headers {
		bound += len(e.Headers[i].Name) + 2*perStr
		for _, v := range e.Headers[i].Values {
			bound += len(v) + perStr
		}
	}
	w := fastGrow(dst, bound)
	w.key(mpRHHead)
	w.mpStr(m.CorrelationID)
	if m.Traceparent != "" {
		w.key32(mpRHMeta12)
	} else {
		w.key32(mpRHMeta11)
	}
	w.mpStr(m.CorrelationID)
	w.key(mpRHReqID)
	w.mpStr(m.RequestID)
	w.key(mpRHClientIP)
	w.mpStr(m.ClientIP)
	w.key(mpRHPort)
	switch p := m.ClientPort; {
	case p < 0x80:
		w.byte1(byte(p))
	case p <= 0xff:
		w.b[w.n], w.b[w.n+1] = 0xcc, byte(p)
		w.n += 2
	default:
		w.b[w.n], w.b[w.n+1], w.b[w.n+2] = 0xcd, byte(p>>8), byte(p)
		w.n += 3
	}
	w.key(mpRHServer)
	w.mpOptStr(m.ServerName)
	w.key(mpRHProto)
	w.mpStr(m.Protocol)
	w.key(mpRHTLSVer)
	w.mpOptStr(m.TLSVersion)
	w.key(mpRHCipher)
	w.mpOptStr(m.TLSCipher)
	w.key(mpRHRoute)
	w.mpOptStr(m.RouteID)
	w.key(mpRHUpstream)
	w.mpOptStr(m.UpstreamID)
	w.key(mpRHTime)
	var ts [48]byte
	t := mpFormatTimestamp(ts[:0], m.Timestamp)
	w.b[w.n], w.b[w.n+1] = 0xd9, byte(len(t)) // written by the general path as str8 too when ≥ 32
	if len(t) <= 31 {
		w.b[w.n] = 0xa0 | byte(len(t))
		w.n++
	} else {
		w.n += 2
	}
	w.n += copy(w.b[w.n:], t)
	if m.Traceparent != "" {
		w.key(mpRHTrace)
		w.mpStr(m.Traceparent)
	}
	w.key(mpRHMethod)
	w.mpStr(e.Method)
	w.key(mpRHURI)
	w.mpStr(e.URI)
	w.key(mpRHHeaders)
	w.mpCount(0x80, len(e.Headers))
	for i := range e.Headers {
		h := &e.Headers[i]
		w.mpStr(h.Name)
		if nv := len(h.Values); nv <= 15 {
			w.byte1(0x90 | byte(nv)) // fixarray, without mpCount's call
		} else {
			w.mpCount(0x90, nv)
		}
		for _, v := range h.Values {
			w.mpStr(v)
		}
	}
	return w.done()
}

// general continues after a string that the general encoder rewrote: out
// is the whole output so far, plainEnd where the plain copy of the string
// would have ended. The room reserved past plainEnd is kept for what
// follows (out may have outgrown the buffer; then it is a new one).
func (w *fastBuf) general(plainEnd int, out []byte) {
	rest := len(w.b) - plainEnd
	w.n = len(out)
	w.b = slices.Grow(out, rest)[:len(out)+rest]
}

// jsonEscapeMask returns a word whose byte high bits are set where x holds
// a byte that a JSON string cannot carry as is: '"', '\', a control
// character or a non-ASCII byte (the condition jsonPlainWord tests).
func jsonEscapeMask(x uint64) uint64 {
	const lsb = 0x0101010101010101
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((x - lsb*0x20) & ^x) | ((q - lsb) & ^q) | ((b - lsb) & ^b) | x
}

// jsonEscapeAny returns a word with a byte's high bit set somewhere (at
// 0x8080808080808080) if and only if x holds a byte that a JSON string
// cannot carry as is ('"', '\', a control character, a non-ASCII byte).
// Unlike jsonEscapeMask it does not say where: a borrow, which only leaves
// a byte that needs escaping, may set the high bits of the bytes above
// it, which only matters for the position. Without borrow-in, a byte
// below 0x80 gets its high bit from x-0x20 only when it is below 0x20,
// and from (x^'"')-1 or (x^'\')-1 only when it is the quote or the
// backslash; the bytes at 0x80 and above set it through x itself. Three
// AND-NOTs fewer per word than jsonEscapeMask, and the results OR
// together across words (TestJSONEscapeAny checks it against the byte
// table).
func jsonEscapeAny(x uint64) uint64 {
	const lsb = 0x0101010101010101
	return (x - lsb*0x20) | ((x ^ (lsb * '"')) - lsb) | ((x ^ (lsb * '\\')) - lsb) | x
}

// jsonStrWordMax is the longest string jsonStrQ copies in its own word
// loop (longer ones are copied by memmove and then checked): header
// values such as user agents, cookies and bearer tokens run to 80-160
// bytes.
const jsonStrWordMax = 256

// jsonStrQ appends the body of s and its closing quote; the opening quote
// is already written (the last byte of the protocol run before it). One
// call per string: the copy in words (two a round, overlapping tail
// words, no call up to jsonStrWordMax bytes) and the escape check
// (jsonEscapeAny on every word) are one pass. A string with a byte that needs escaping or a UTF-8
// check is rewritten, quotes included, by jsonAppendString in place, so
// the bytes written are always the general encoder's.
func (w *fastBuf) jsonStrQ(s string) {
	start := w.n - 1 // the opening quote
	n := len(s)
	var acc uint64
	if n > jsonStrWordMax {
		w.n += copy(w.b[w.n:], s)
		if jsonPlainPrefix(s) != n {
			acc = 0x80
		}
	} else {
		_ = w.b[w.n : w.n+n+1] // the string and its closing quote are reserved (panics otherwise)
		d := unsafe.Pointer(unsafe.SliceData(w.b[w.n:]))
		p := unsafe.Pointer(unsafe.StringData(s))
		switch {
		case n >= 16:
			var acc1 uint64
			for i := 0; i+16 < n; i += 16 {
				x, y := *(*uint64)(unsafe.Add(p, i)), *(*uint64)(unsafe.Add(p, i+8))
				acc |= jsonEscapeAny(x)
				acc1 |= jsonEscapeAny(y)
				*(*uint64)(unsafe.Add(d, i)) = x
				*(*uint64)(unsafe.Add(d, i+8)) = y
			}
			x, y := *(*uint64)(unsafe.Add(p, n-16)), *(*uint64)(unsafe.Add(p, n-8))
			acc |= jsonEscapeAny(x) | acc1 | jsonEscapeAny(y)
			*(*uint64)(unsafe.Add(d, n-16)) = x
			*(*uint64)(unsafe.Add(d, n-8)) = y
		case n >= 8:
			x, y := *(*uint64)(p), *(*uint64)(unsafe.Add(p, n-8))
			acc = jsonEscapeAny(x) | jsonEscapeAny(y)
			*(*uint64)(d) = x
			*(*uint64)(unsafe.Add(d, n-8)) = y
		case n >= 4:
			x, y := *(*uint32)(p), *(*uint32)(unsafe.Add(p, n-4))
			acc = jsonEscapeAny(uint64(x) | uint64(y)<<32)
			*(*uint32)(d) = x
			*(*uint32)(unsafe.Add(d, n-4)) = y
		default:
			x := uint64(0x2020202020202020) // spaces need no escaping
			for i := 0; i < n; i++ {
				c := *(*byte)(unsafe.Add(p, i))
				x = x<<8 | uint64(c)
				*(*byte)(unsafe.Add(d, i)) = c
			}
			acc = jsonEscapeAny(x)
		}
		w.n += n
	}
	w.b[w.n] = '"'
	w.n++
	if acc&0x8080808080808080 != 0 {
		w.general(w.n, jsonAppendString(w.b[:start], s))
	}
}

// jsonOptStrV appends an optional string value: null, or the string with
// its quotes.
func (w *fastBuf) jsonOptStrV(o Opt[string]) {
	if !o.Valid {
		_ = w.b[w.n : w.n+4]
		*(*uint32)(unsafe.Pointer(&w.b[w.n])) = *(*uint32)(unsafe.Pointer(unsafe.StringData("null")))
		w.n += 4
		return
	}
	w.b[w.n] = '"'
	w.n++
	w.jsonStrQ(o.Value)
}

// key32 appends a protocol run of 16 to 32 bytes with four overlapping
// word moves, inlined (key copies 4 to 16; TestJSONRunLengths and
// TestMsgpackKeyLengths hold every run to its helper's range).
func (w *fastBuf) key32(k string) {
	n := len(k)
	_ = w.b[w.n : w.n+n] // reserved (panics otherwise)
	d := unsafe.Pointer(unsafe.SliceData(w.b[w.n:]))
	p := unsafe.Pointer(unsafe.StringData(k))
	*(*uint64)(d) = *(*uint64)(p)
	*(*uint64)(unsafe.Add(d, 8)) = *(*uint64)(unsafe.Add(p, 8))
	*(*uint64)(unsafe.Add(d, n-16)) = *(*uint64)(unsafe.Add(p, n-16))
	*(*uint64)(unsafe.Add(d, n-8)) = *(*uint64)(unsafe.Add(p, n-8))
	w.n += n
}

// Protocol runs of the JSON request-headers event: keys with the
// punctuation around them, ending with a string value's opening quote
// where the value is a plain string (jsonStrQ writes the rest).
const (
	jsRHHead     = `{"correlation_id":"`
	jsRHHeaders  = `,"headers":{`
	jsRHClientIP = `},"metadata":{"client_ip":"`
	jsRHPort     = `,"client_port":`
	jsRHCorrID   = `,"correlation_id":"`
	jsRHProto    = `,"protocol":"`
	jsRHReqID    = `,"request_id":"`
	jsRHRoute    = `,"route_id":`
	jsRHServer   = `,"server_name":`
	jsRHTime     = `,"timestamp":`
	jsRHCipher   = `,"tls_cipher":`
	jsRHTLSVer   = `,"tls_version":`
	jsRHTrace    = `,"traceparent":"`
	jsRHUpstream = `,"upstream_id":`
	jsRHMethod   = `},"method":"`
	jsRHURI      = `,"uri":"`
)

// jsonAppendRequestHeadersFast is AppendRequestHeadersJSON for events whose
// header names are distinct: names in strictly ascending order are
// written as they come, others in sorted order
// (jsonAppendRequestHeadersUnsorted). ok is false (and nothing is
// written) when the event is the general encoder's (a repeated name, or
// more than headerSortSmallMax headers out of order). Strings that need
// escaping or a UTF-8 check are rewritten by the general string encoder
// in place. The metadata's room and writing are shared with the
// unsorted writer (jsonRequestHeadersBound, jsonRequestHeadersTail).
func jsonAppendRequestHeadersFast(dst []byte, ev *RequestHeadersEvent) (out []byte, ok bool) {
	m := &ev.Metadata
	bound := jsonRequestHeadersBound(ev)
	// Strictly ascending names (one pass with the bound): most pairs are
	// decided by their first 8 bytes as a big-endian word (nameWord, each
	// loaded once), equal words by the names.
	var prevWord uint64
	for i := range ev.Headers {
		name := ev.Headers[i].Name
		word := nameWord(name)
		if i > 0 && (word < prevWord || word == prevWord && ev.Headers[i-1].Name >= name) {
			return jsonAppendRequestHeadersUnsorted(dst, ev)
		}
		prevWord = word
		bound += len(name) + 6
		if vs := ev.Headers[i].Values; len(vs) == 1 {
			bound += len(vs[0]) + 3 // the common case, without a loop
		} else {
			for _, v := range vs {
				bound += len(v) + 3
			}
		}
	}
	w := fastGrow(dst, bound)
	w.key32(jsRHHead)
	w.jsonStrQ(m.CorrelationID)
	w.key(jsRHHeaders)
	for i := range ev.Headers {
		h := &ev.Headers[i]
		if i > 0 {
			w.b[w.n] = ','
			w.n++
		}
		w.b[w.n] = '"'
		w.n++
		w.jsonStrQ(h.Name)
		// `:["` in one 4-byte store (the "x" is overwritten by what
		// follows); the quote is kept only before a value. With no
		// values the store reaches one byte past this header's share of
		// the bound, into the protocol text that always follows it.
		_ = w.b[w.n : w.n+4]
		*(*uint32)(unsafe.Pointer(&w.b[w.n])) = *(*uint32)(unsafe.Pointer(unsafe.StringData(`:["x`)))
		if len(h.Values) == 0 {
			w.b[w.n+2] = ']'
			w.n += 3
			continue
		}
		w.n += 3
		if vs := h.Values; len(vs) == 1 {
			// The common case, without the loop (whose exit the
			// branch predictor misses when counts vary).
			w.jsonStrQ(vs[0])
		} else {
			for j, v := range vs {
				if j > 0 {
					w.b[w.n], w.b[w.n+1] = ',', '"'
					w.n += 2
				}
				w.jsonStrQ(v)
			}
		}
		w.b[w.n] = ']'
		w.n++
	}
	w.jsonRequestHeadersTail(ev)
	return w.done(), true
}
