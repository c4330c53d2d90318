package payload

import (
	"slices"
	"strconv"
	"unsafe"

	"github.com/agentwire/agentwire/internal/wiretext"
)

// The request-headers fast writers for events whose header names are not
// in ascending order (Go callers build them from http.Header maps): the
// positions are sorted on the stack and the headers written in that
// order by the same helpers as sorted events (mpPut, jsonStrQ), so the
// bytes are the general encoders' (which sort the same way). A repeated
// name, which the general encoders merge into one entry, or more than
// headerSortSmallMax headers leave the event to them. (In a file of its
// own, after the sorted writers: added to their files, the sorted paths'
// code moved and BenchmarkWorkloadEncode/msgpack measured 10% slower
// with its hot code unchanged.)

// mpAppendRequestHeadersResorted writes e, which mpAppendRequestHeadersFast
// found out of order while writing it, into dst (with the room that it
// reserved): in sorted order, or by the general encoder.
func mpAppendRequestHeadersResorted(dst []byte, e *RequestHeadersEvent) []byte {
	if out, ok := mpAppendRequestHeadersUnsorted(dst, e); ok {
		return out
	}
	return mpAppendRequestHeadersGeneral(dst, e)
}

// mpAppendRequestHeadersUnsorted is mpAppendRequestHeadersFast for
// events whose names are not in ascending order: their positions are
// sorted on the stack (headerSortSmall) and the headers written in that
// order by the same helpers. Events that the general encoder writes
// otherwise or that would need a heap index (a repeated name, which it
// merges into one entry, or more than headerSortSmallMax headers) are
// refused untouched (ok false).
func mpAppendRequestHeadersUnsorted(dst []byte, e *RequestHeadersEvent) (out []byte, ok bool) {
	hs := e.Headers
	var stack [headerSortSmallMax]int32
	idx, ok := headerSortSmall(hs, &stack)
	if !ok {
		return dst, false
	}
	bound := mpRequestHeadersBound(e)
	n0 := len(dst)
	dst = slices.Grow(dst, bound)
	base := unsafe.Pointer(unsafe.SliceData(dst))
	d, acc := mpPutRequestHeadersHead(unsafe.Add(base, n0), e)
	var a uint64
	bad := false // a header string that is not valid UTF-8
	for _, j := range idx {
		h := &hs[j]
		d, a = mpPut(d, h.Name)
		ha := a
		if vs := h.Values; len(vs) == 1 {
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
		// Not valid UTF-8 (rare): the general encoder writes the event
		// into the room reserved here.
		return mpAppendRequestHeadersGeneral(dst[:n0], e), true
	}
	return out, true
}

// mpRequestHeadersBound returns the room that mpAppendRequestHeadersFast
// reserves for e: every string takes at most 5 header bytes (perStr:
// 13 outside the headers, the correlation id twice); the constant runs
// (180 bytes), the port (3), the counts (5) and the timestamp (at most 44
// bytes of text and its header) fit in the 320, and so does the
// timestamp's scratch room (2 + 64 bytes from where it starts:
// mpPutTimestamp). The lengths are summed in an int, which cannot wrap
// with 64 bits (fastpath_on.go).
func mpRequestHeadersBound(e *RequestHeadersEvent) int {
	m := &e.Metadata
	const perStr = 5
	bound := 320 + 2*len(m.CorrelationID) + len(m.RequestID) + len(m.ClientIP) + len(m.Protocol) +
		len(m.ServerName.Value) + len(m.TLSVersion.Value) + len(m.TLSCipher.Value) + len(m.RouteID.Value) +
		len(m.UpstreamID.Value) + len(m.Traceparent) + len(e.Method) + len(e.URI) + 13*perStr
	hs := e.Headers
	for i := range hs {
		h := &hs[i]
		bound += len(h.Name) + 2*perStr
		if vs := h.Values; len(vs) == 1 {
			bound += len(vs[0]) + perStr // the common case, without a loop
		} else {
			for _, v := range vs {
				bound += len(v) + perStr
			}
		}
	}
	return bound
}

// mpPutRequestHeadersHead writes e up to its headers' entries (the
// envelope, the metadata, the method, the URI, the headers key and the
// map header) at d and returns the end and the OR of the strings' bytes
// (mpPut's acc).
func mpPutRequestHeadersHead(d unsafe.Pointer, e *RequestHeadersEvent) (unsafe.Pointer, uint64) {
	m := &e.Metadata
	hs := e.Headers
	var a uint64
	d = putRun(d, mpRHHead)
	d, a = mpPut(d, m.CorrelationID)
	acc := a
	if m.Traceparent != "" {
		d = putRun32(d, mpRHMeta12)
	} else {
		d = putRun32(d, mpRHMeta11)
	}
	d, a = mpPut(d, m.CorrelationID)
	acc |= a
	d = putRun(d, mpRHReqID)
	d, a = mpPut(d, m.RequestID)
	acc |= a
	d = putRun(d, mpRHClientIP)
	d, a = mpPut(d, m.ClientIP)
	acc |= a
	d = putRun(d, mpRHPort)
	switch p := m.ClientPort; {
	case p < 0x80:
		*(*byte)(d) = byte(p)
		d = unsafe.Add(d, 1)
	case p <= 0xff:
		*(*byte)(d) = 0xcc
		*(*byte)(unsafe.Add(d, 1)) = byte(p)
		d = unsafe.Add(d, 2)
	default:
		*(*byte)(d) = 0xcd
		*(*byte)(unsafe.Add(d, 1)) = byte(p >> 8)
		*(*byte)(unsafe.Add(d, 2)) = byte(p)
		d = unsafe.Add(d, 3)
	}
	d = putRun(d, mpRHServer)
	d, a = mpPutOpt(d, m.ServerName)
	acc |= a
	d = putRun(d, mpRHProto)
	d, a = mpPut(d, m.Protocol)
	acc |= a
	d = putRun(d, mpRHTLSVer)
	d, a = mpPutOpt(d, m.TLSVersion)
	acc |= a
	d = putRun(d, mpRHCipher)
	d, a = mpPutOpt(d, m.TLSCipher)
	acc |= a
	d = putRun(d, mpRHRoute)
	d, a = mpPutOpt(d, m.RouteID)
	acc |= a
	d = putRun(d, mpRHUpstream)
	d, a = mpPutOpt(d, m.UpstreamID)
	acc |= a
	d = putRun(d, mpRHTime)
	d = mpPutTimestamp(d, m.Timestamp)
	if m.Traceparent != "" {
		d = putRun(d, mpRHTrace)
		d, a = mpPut(d, m.Traceparent)
		acc |= a
	}
	d = putRun(d, mpRHMethod)
	d, a = mpPut(d, e.Method)
	acc |= a
	d = putRun(d, mpRHURI)
	d, a = mpPut(d, e.URI)
	acc |= a
	d = putRun(d, mpRHHeaders)
	d = mpPutCount(d, 0x80, len(hs))
	return d, acc
}

// mpPutEnd returns dst up to d, the end of what was written from base
// (dst's array) after its first n0 bytes within bound bytes.
func mpPutEnd(dst []byte, base, d unsafe.Pointer, n0, bound int) []byte {
	n := int(uintptr(d) - uintptr(base))
	if n > n0+bound {
		// Unreachable: the bound covers every byte written. Were it
		// wrong, this stops before the overrun goes further.
		panic("agentwire: payload: request-headers bound exceeded")
	}
	return dst[:n]
}

// jsonAppendRequestHeadersUnsorted is jsonAppendRequestHeadersFast for
// events whose names are not in strictly ascending order: their
// positions are sorted on the stack (headerSortSmall) and the headers
// written in that order (jsonHeaderEntry, the same bytes as the sorted
// loop). Events with a repeated name (which the general encoder merges
// into one entry) or more than headerSortSmallMax headers are refused
// untouched (ok false).
func jsonAppendRequestHeadersUnsorted(dst []byte, ev *RequestHeadersEvent) (out []byte, ok bool) {
	hs := ev.Headers
	var stack [headerSortSmallMax]int32
	idx, ok := headerSortSmall(hs, &stack)
	if !ok {
		return dst, false
	}
	bound := jsonRequestHeadersBound(ev)
	for i := range hs {
		bound += len(hs[i].Name) + 6
		for _, v := range hs[i].Values {
			bound += len(v) + 3
		}
	}
	w := fastGrow(dst, bound)
	w.key32(jsRHHead)
	w.jsonStrQ(ev.Metadata.CorrelationID)
	w.key(jsRHHeaders)
	for i, j := range idx {
		if i > 0 {
			w.b[w.n] = ','
			w.n++
		}
		w.jsonHeaderEntry(&hs[j])
	}
	w.jsonRequestHeadersTail(ev)
	return w.done(), true
}

// jsonHeaderEntry writes h as a header map entry, "name":["value",...],
// as jsonAppendRequestHeadersFast's loop does.
func (w *fastBuf) jsonHeaderEntry(h *Header) {
	w.b[w.n] = '"'
	w.n++
	w.jsonStrQ(h.Name)
	// `:["` in one 4-byte store, as in jsonAppendRequestHeadersFast.
	_ = w.b[w.n : w.n+4]
	*(*uint32)(unsafe.Pointer(&w.b[w.n])) = *(*uint32)(unsafe.Pointer(unsafe.StringData(`:["x`)))
	if len(h.Values) == 0 {
		w.b[w.n+2] = ']'
		w.n += 3
		return
	}
	w.n += 3
	for j, v := range h.Values {
		if j > 0 {
			w.b[w.n], w.b[w.n+1] = ',', '"'
			w.n += 2
		}
		w.jsonStrQ(v)
	}
	w.b[w.n] = ']'
	w.n++
}

// jsonRequestHeadersBound returns the room the JSON request-headers
// writers reserve for ev's strings outside its headers and the protocol
// text (the caller adds each header's share).
func jsonRequestHeadersBound(ev *RequestHeadersEvent) int {
	m := &ev.Metadata
	return 336 + 2*len(m.CorrelationID) + len(m.RequestID) + len(m.ClientIP) + len(m.Protocol) +
		len(m.ServerName.Value) + len(m.TLSVersion.Value) + len(m.TLSCipher.Value) + len(m.RouteID.Value) +
		len(m.UpstreamID.Value) + len(m.Traceparent) + len(ev.Method) + len(ev.URI)
}

// jsonRequestHeadersTail writes what follows ev's headers map: the
// metadata, the method and the URI, and the closing brace.
func (w *fastBuf) jsonRequestHeadersTail(ev *RequestHeadersEvent) {
	m := &ev.Metadata
	w.key32(jsRHClientIP)
	w.jsonStrQ(m.ClientIP)
	w.key(jsRHPort)
	w.n += len(strconv.AppendUint(w.b[w.n:w.n], uint64(m.ClientPort), 10))
	w.key32(jsRHCorrID)
	w.jsonStrQ(m.CorrelationID)
	w.key(jsRHProto)
	w.jsonStrQ(m.Protocol)
	w.key(jsRHReqID)
	w.jsonStrQ(m.RequestID)
	w.key(jsRHRoute)
	w.jsonOptStrV(m.RouteID)
	w.key(jsRHServer)
	w.jsonOptStrV(m.ServerName)
	w.key(jsRHTime)
	// The timestamp is appended in place (the bound covers the longest);
	// were it ever to outgrow the buffer's length (into its capacity, or
	// into a grown array), the rest is rebuilt around it.
	if t := jsonAppendTimestamp(w.b[:w.n], m.Timestamp); unsafe.SliceData(t) == unsafe.SliceData(w.b) && len(t) <= len(w.b) {
		w.n = len(t)
	} else {
		w.general(w.n, t)
	}
	w.key(jsRHCipher)
	w.jsonOptStrV(m.TLSCipher)
	w.key(jsRHTLSVer)
	w.jsonOptStrV(m.TLSVersion)
	if m.Traceparent != "" {
		w.key32(jsRHTrace)
		w.jsonStrQ(m.Traceparent)
	}
	w.key(jsRHUpstream)
	w.jsonOptStrV(m.UpstreamID)
	w.key(jsRHMethod)
	w.jsonStrQ(ev.Method)
	w.key(jsRHURI)
	w.jsonStrQ(ev.URI)
	w.b[w.n] = '}'
	w.n++
}

// headerSortSmallMax is the most headers headerSortSmall sorts (its keys
// and the encoders' index live on the stack).
const headerSortSmallMax = 32

// headerSortSmall returns the positions of h in byte-wise name order, in
// stack (no allocation), sorted by insertion on each name's first 8 bytes
// as a big-endian word (nameWord) kept next to its position, so most
// comparisons are one integer comparison without an indirection; equal
// words fall back to comparing the names. ok is false, and the event the
// general encoders', when h has more than headerSortSmallMax headers or a
// name that occurs more than once (they merge such entries).
func headerSortSmall(h Headers, stack *[headerSortSmallMax]int32) (idx []int32, ok bool) {
	n := len(h)
	if n > headerSortSmallMax {
		return nil, false
	}
	idx = stack[:n]
	var keys [headerSortSmallMax]uint64
	for i := range n {
		keys[i] = nameWord(h[i].Name)
		idx[i] = int32(i)
	}
	for i := 1; i < n; i++ {
		k, x := keys[i], idx[i]
		j := i
		for ; j > 0; j-- {
			kj := keys[j-1]
			if kj < k || kj == k && h[idx[j-1]].Name <= h[x].Name {
				break
			}
			keys[j], idx[j] = kj, idx[j-1]
		}
		keys[j], idx[j] = k, x
	}
	for i := 1; i < n; i++ {
		if keys[i] == keys[i-1] && h[idx[i]].Name == h[idx[i-1]].Name {
			return idx, false
		}
	}
	return idx, true
}
