package payload

import (
	"unsafe"
)

// The request-headers event in the shapes proxies send, decoded without
// the general struct machinery (no per-field callback, no key lookup, no
// error paths kept alive).
//
// mpFastRequestHeaders accepts exactly these inputs:
//
//	map of 5: "correlation_id" → str (skipped), "metadata" → M,
//	          "method" → str, "uri" → str, "headers" → H
//	M: map of 11 or 12 with the keys in declaration order (ours: the 12th
//	   is traceparent), or an array of 11 or 12 (the Rust proxy's)
//	H: map of at most 32 names → array of at most 15 values
//
// with every string a fixstr, str8 or str16, client_port a positive fixint,
// uint8 or uint16 and the Option fields nil or such a string. It gives up
// (false) on anything else, at the first byte that differs, and the
// general decoder then decodes the whole input again: for any input this
// accepts the general decoder accepts it too and gives the same value
// (FuzzMsgpackRequestHeadersFast compares them), and every error comes
// from the general decoder (with its field path).

// mpFastStr reads a fixstr, str8 or str16 at b[p:]: its bytes and the
// offset after it; ok is false for another type or a short input. The
// bytes are not checked for UTF-8 (the caller checks what it keeps).
func mpFastStr(b []byte, p int) (s []byte, q int, ok bool) {
	if uint(p) >= uint(len(b)) {
		return nil, p, false
	}
	p, q, ok = mpFastStrHead(b, p)
	if !ok {
		return nil, p, false
	}
	return b[p:q:q], q, true
}

// mpFastStrHead reads the header of a fixstr, str8 or str16 at b[p] (p <
// len(b)): the string's bytes are b[start:end], end <= len(b). ok is false
// for another form or a string running past the input (start is p then).
// mpFastSame reads the same header with unchecked loads;
// TestMsgpackFastStrHeadAgree holds the three readers to one answer.
func mpFastStrHead(b []byte, p int) (start, end int, ok bool) {
	c := b[p]
	switch {
	case c&0xe0 == 0xa0:
		start = p + 1
		end = start + int(c&0x1f)
	case c == 0xd9 && p+1 < len(b):
		start = p + 2
		end = start + int(b[p+1])
	case c == 0xda && p+2 < len(b):
		start = p + 3
		end = start + (int(b[p+1])<<8 | int(b[p+2]))
	default:
		return p, p, false
	}
	if end > len(b) {
		return p, p, false
	}
	return start, end, true
}

// mpFastString reads a string (see mpFastStr) into *dst, keeping *dst when
// it is equal; ok is false for another form or invalid UTF-8 (nothing is
// stored then). It is mpFastSame, then mpFastStore when that says no; the
// hot call sites spell the two steps out (the pair is too large to be
// inlined).
func mpFastString(b []byte, p int, dst *string, ar *MsgpackArena) (int, bool) {
	if q, ok := mpFastSame(b, p, *dst); ok {
		return q, true
	}
	return mpFastStore(b, p, dst, ar)
}

// mpFastStore is mpFastString without mpFastSame first: mpFastStr, then
// mpStoreValidIn (which keeps an equal *dst, and checks it too: *dst may
// hold text no decoder checked, a handler's or a caller's; a new string
// goes into ar).
func mpFastStore(b []byte, p int, dst *string, ar *MsgpackArena) (int, bool) {
	if uint(p) >= uint(len(b)) {
		return p, false
	}
	p, q, ok := mpFastStrHead(b, p)
	if !ok {
		return p, false
	}
	if !mpStoreValidIn(dst, b[p:q:q], ar) {
		return p, false
	}
	return q, true
}

// mpFastSame reports whether the string at b[p:] (a fixstr, str8 or
// str16) is ASCII and equal to s, the string a destination holds, and
// returns the offset after it. It is the common case of mpFastString (a
// reused destination holding the last event's value) in a function that
// calls nothing: no stack check, nothing spilled. On false the caller
// runs mpFastString, which stores, checks UTF-8 and rejects.
func mpFastSame(b []byte, p int, s string) (q int, same bool) {
	if uint(p) >= uint(len(b)) {
		return p, false
	}
	base := unsafe.Pointer(unsafe.SliceData(b))
	c := *(*byte)(unsafe.Add(base, p))
	var n int
	switch {
	case c&0xe0 == 0xa0:
		n, p = int(c&0x1f), p+1
	case c == 0xd9 && p+1 < len(b):
		n, p = int(*(*byte)(unsafe.Add(base, p+1))), p+2
	case c == 0xda && p+2 < len(b):
		n, p = int(*(*byte)(unsafe.Add(base, p+1)))<<8|int(*(*byte)(unsafe.Add(base, p+2))), p+3
	default:
		return p, false
	}
	if n != len(s) || n > len(b)-p {
		return p, false
	}
	if n == 0 {
		return p, true
	}
	// Every load below is within the n bytes at b[p:] and the n of s.
	pv, ps := unsafe.Add(base, p), unsafe.Pointer(unsafe.StringData(s))
	var acc, diff uint64
	switch {
	case n > 16:
		i := 0
		for ; i+16 <= n; i += 16 {
			x, y := *(*uint64)(unsafe.Add(pv, i)), *(*uint64)(unsafe.Add(pv, i+8))
			acc |= x | y
			diff |= (x ^ *(*uint64)(unsafe.Add(ps, i))) | (y ^ *(*uint64)(unsafe.Add(ps, i+8)))
		}
		if i+8 <= n {
			x := *(*uint64)(unsafe.Add(pv, i))
			acc |= x
			diff |= x ^ *(*uint64)(unsafe.Add(ps, i))
			i += 8
		}
		if i < n {
			x := *(*uint64)(unsafe.Add(pv, n-8))
			acc |= x
			diff |= x ^ *(*uint64)(unsafe.Add(ps, n-8))
		}
	case n >= 8:
		x, y := *(*uint64)(pv), *(*uint64)(unsafe.Add(pv, n-8))
		acc = x | y
		diff = (x ^ *(*uint64)(ps)) | (y ^ *(*uint64)(unsafe.Add(ps, n-8)))
	case n >= 4:
		x, y := *(*uint32)(pv), *(*uint32)(unsafe.Add(pv, n-4))
		acc = uint64(x | y)
		diff = uint64((x ^ *(*uint32)(ps)) | (y ^ *(*uint32)(unsafe.Add(ps, n-4))))
	default: // 1 to 3 bytes: positions 0, n/2 and n-1 cover them all
		x := uint64(*(*byte)(pv)) | uint64(*(*byte)(unsafe.Add(pv, n/2)))<<8 | uint64(*(*byte)(unsafe.Add(pv, n-1)))<<16
		acc = x
		diff = x ^ (uint64(*(*byte)(ps)) | uint64(*(*byte)(unsafe.Add(ps, n/2)))<<8 | uint64(*(*byte)(unsafe.Add(ps, n-1)))<<16)
	}
	return p + n, diff|acc&0x8080808080808080 == 0
}

// mpFastOptString reads nil (None) or a string (mpFastString) into *dst.
func mpFastOptString(b []byte, p int, dst *Opt[string], ar *MsgpackArena) (q int, ok bool) {
	if uint(p) < uint(len(b)) && b[p] == 0xc0 {
		*dst = Opt[string]{}
		return p + 1, true
	}
	dst.Valid = true
	if q, same := mpFastSame(b, p, dst.Value); same {
		return q, true
	}
	return mpFastStore(b, p, &dst.Value, ar)
}

// DecodeRequestHeadersMsgpackRoutedIn is DecodeRequestHeadersMsgpack that
// also returns the envelope's top-level correlation_id, the routing id a
// reply carries, when the event came in a shape whose first key it is (the
// shapes of every known proxy): top is then a view of data (no UTF-8
// check, as a routing id gets none) and topOK is true; with topOK false
// the caller finds the routing id itself. In those shapes the strings it
// stores are made in ar (see MsgpackArena; nil: an allocation each); the
// general decoder, for other shapes, allocates them. Safe for concurrent
// use on distinct destinations and arenas.
func DecodeRequestHeadersMsgpackRoutedIn(data []byte, v *RequestHeadersEvent, ar *MsgpackArena) (top []byte, topOK bool, err error) {
	if top, ok := mpFastRequestHeadersIn(data, v, ar); ok {
		return top, true, nil
	}
	return nil, false, mpDecodeRequestHeadersGeneral(data, v)
}

// mpFastRequestHeadersIn decodes b into v if b has the shape described
// above, and reports whether it did; top is the envelope's correlation_id
// (skipped by the decoder: not a field of the event). The strings it
// stores are made in ar (nil: an allocation each). When it did not, v
// holds a mix of old and new values (valid strings and slices) for the
// general decoder to overwrite.
func mpFastRequestHeadersIn(b []byte, v *RequestHeadersEvent, ar *MsgpackArena) (top []byte, ok bool) {
	const head = "\x85\xaecorrelation_id"
	if len(b) < len(head)+1 || string(b[:len(head)]) != head {
		return nil, false
	}
	top, p, ok := mpFastStr(b, len(head))
	if !ok || len(b)-p < 9 || string(b[p:p+9]) != "\xa8metadata" {
		return nil, false
	}
	if p, ok = mpFastMetadata(b, p+9, &v.Metadata, ar); !ok {
		return nil, false
	}
	if len(b)-p < 7 || string(b[p:p+7]) != "\xa6method" {
		return nil, false
	}
	if q, same := mpFastSame(b, p+7, v.Method); same {
		p = q
	} else if p, ok = mpFastStore(b, p+7, &v.Method, ar); !ok {
		return nil, false
	}
	if len(b)-p < 4 || string(b[p:p+4]) != "\xa3uri" {
		return nil, false
	}
	if q, same := mpFastSame(b, p+4, v.URI); same {
		p = q
	} else if p, ok = mpFastStore(b, p+4, &v.URI, ar); !ok {
		return nil, false
	}
	if len(b)-p < 8 || string(b[p:p+8]) != "\xa7headers" {
		return nil, false
	}
	if p, ok = mpFastHeaders(b, p+8, &v.Headers, ar); !ok || p != len(b) {
		return nil, false
	}
	return top, true
}

// mpFastMetadata reads RequestMetadata as a map of its fields in
// declaration order or as a positional array, of 11 fields or 12 (with
// traceparent).
func mpFastMetadata(b []byte, p int, m *RequestMetadata, ar *MsgpackArena) (int, bool) {
	if uint(p) >= uint(len(b)) {
		return p, false
	}
	keyed := false
	switch b[p] {
	case 0x8b, 0x8c:
		keyed = true
	case 0x9b, 0x9c:
	default:
		return p, false
	}
	twelve := b[p]&0x0f == 12
	p++
	ok := true
	if keyed {
		if len(b)-p < 15 || string(b[p:p+15]) != "\xaecorrelation_id" {
			return p, false
		}
		p += 15
	}
	if q, same := mpFastSame(b, p, m.CorrelationID); same {
		p = q
	} else if p, ok = mpFastStore(b, p, &m.CorrelationID, ar); !ok {
		return p, false
	}
	if keyed {
		if len(b)-p < 11 || string(b[p:p+11]) != "\xaarequest_id" {
			return p, false
		}
		p += 11
	}
	// The request id is often the correlation id: then it shares that
	// string (validated just above) instead of keeping a copy.
	s, q, ok := mpFastStr(b, p)
	if !ok {
		return p, false
	}
	if string(s) == m.CorrelationID {
		m.RequestID = m.CorrelationID
	} else if !mpStoreValidIn(&m.RequestID, s, ar) {
		return p, false
	}
	p = q
	if keyed {
		if len(b)-p < 10 || string(b[p:p+10]) != "\xa9client_ip" {
			return p, false
		}
		p += 10
	}
	if q, same := mpFastSame(b, p, m.ClientIP); same {
		p = q
	} else if p, ok = mpFastStore(b, p, &m.ClientIP, ar); !ok {
		return p, false
	}
	if keyed {
		if len(b)-p < 12 || string(b[p:p+12]) != "\xabclient_port" {
			return p, false
		}
		p += 12
	}
	if len(b)-p < 3 { // a port and at least two more fields follow
		return p, false
	}
	switch c := b[p]; {
	case c < 0x80:
		m.ClientPort = uint16(c)
		p++
	case c == 0xcc:
		m.ClientPort = uint16(b[p+1])
		p += 2
	case c == 0xcd:
		m.ClientPort = uint16(b[p+1])<<8 | uint16(b[p+2])
		p += 3
	default:
		return p, false
	}
	if keyed {
		if len(b)-p < 12 || string(b[p:p+12]) != "\xabserver_name" {
			return p, false
		}
		p += 12
	}
	if p, ok = mpFastOptString(b, p, &m.ServerName, ar); !ok {
		return p, false
	}
	if keyed {
		if len(b)-p < 9 || string(b[p:p+9]) != "\xa8protocol" {
			return p, false
		}
		p += 9
	}
	if q, same := mpFastSame(b, p, m.Protocol); same {
		p = q
	} else if p, ok = mpFastStore(b, p, &m.Protocol, ar); !ok {
		return p, false
	}
	if keyed {
		if len(b)-p < 12 || string(b[p:p+12]) != "\xabtls_version" {
			return p, false
		}
		p += 12
	}
	if p, ok = mpFastOptString(b, p, &m.TLSVersion, ar); !ok {
		return p, false
	}
	if keyed {
		if len(b)-p < 11 || string(b[p:p+11]) != "\xaatls_cipher" {
			return p, false
		}
		p += 11
	}
	if p, ok = mpFastOptString(b, p, &m.TLSCipher, ar); !ok {
		return p, false
	}
	if keyed {
		if len(b)-p < 9 || string(b[p:p+9]) != "\xa8route_id" {
			return p, false
		}
		p += 9
	}
	if p, ok = mpFastOptString(b, p, &m.RouteID, ar); !ok {
		return p, false
	}
	if keyed {
		if len(b)-p < 12 || string(b[p:p+12]) != "\xabupstream_id" {
			return p, false
		}
		p += 12
	}
	if p, ok = mpFastOptString(b, p, &m.UpstreamID, ar); !ok {
		return p, false
	}
	if keyed {
		if len(b)-p < 10 || string(b[p:p+10]) != "\xa9timestamp" {
			return p, false
		}
		p += 10
	}
	if s, p, ok = mpFastStr(b, p); !ok {
		return p, false
	}
	if t, ok := mpParseRFC3339(s); ok {
		m.Timestamp = t // only ASCII parses
	} else if mpValidUTF8(s) {
		m.Timestamp = mpParseTimestamp(s)
	} else {
		return p, false
	}
	if !twelve {
		m.Traceparent = ""
		return p, true
	}
	if keyed {
		if len(b)-p < 12 || string(b[p:p+12]) != "\xabtraceparent" {
			return p, false
		}
		p += 12
	}
	if uint(p) < uint(len(b)) && b[p] == 0xc0 {
		m.Traceparent = ""
		return p + 1, true
	}
	return mpFastString(b, p, &m.Traceparent, ar)
}

// mpNameBitString is mpNameBit of a string.
func mpNameBitString(name string) uint64 {
	k := uint(len(name))
	if len(name) > 0 {
		k = k*7 + uint(name[0])*3 + uint(name[len(name)-1])
	}
	return 1 << (k & 63)
}

// mpFastHeaders reads the header map (mpReadHeaders' rules, for at most 32
// names, each with a fixarray of values).
func mpFastHeaders(b []byte, p int, dst *Headers, ar *MsgpackArena) (int, bool) {
	if uint(p) >= uint(len(b)) {
		return p, false
	}
	var n int
	switch c := b[p]; {
	case c&0xf0 == 0x80:
		n = int(c & 0x0f)
		p++
	case c == 0xde && p+2 < len(b):
		n = int(b[p+1])<<8 | int(b[p+2])
		p += 3
	default:
		return p, false
	}
	if n > 32 || 2*n > len(b)-p {
		return p, false
	}
	h := *dst
	if cap(h) < n {
		h = mpPrealloc(h, n, len(b)-p)
	}
	h = h[:0]
	var seen uint64 // mpNameBit of every name so far
	for k := 0; k < n; k++ {
		// The name goes into the slot after the last one before it is
		// known to be new (an old equal name there is kept); a repeated
		// name leaves that spare slot holding it, which changes no value.
		if len(h) == cap(h) {
			h = append(h, Header{})[:len(h)]
		}
		spare := &h[:len(h)+1][len(h)]
		var ok bool
		if q, same := mpFastSame(b, p, spare.Name); same {
			p = q
		} else if p, ok = mpFastStore(b, p, &spare.Name, ar); !ok {
			return p, false
		}
		hv := spare
		if bit := mpNameBitString(spare.Name); seen&bit == 0 {
			seen |= bit // no earlier name has this bit: new
			h = h[:len(h)+1]
		} else {
			name, at := spare.Name, -1
			for i := range h {
				if h[i].Name == name {
					at = i
					break
				}
			}
			if at < 0 {
				h = h[:len(h)+1]
			} else {
				hv = &h[at] // last wins: its values are replaced
			}
		}
		if uint(p) >= uint(len(b)) || b[p]&0xf0 != 0x90 {
			return p, false
		}
		cnt := int(b[p] & 0x0f)
		p++
		vs := hv.Values
		if cap(vs) < cnt {
			if cnt > len(b)-p {
				return p, false
			}
			vs = mpPrealloc(vs, cnt, len(b)-p)
			hv.Values = vs[:cnt]
		} else if len(vs) != cnt {
			hv.Values = vs[:cnt]
		}
		vs = vs[:cnt]
		for i := range vs {
			if q, same := mpFastSame(b, p, vs[i]); same {
				p = q
			} else if p, ok = mpFastStore(b, p, &vs[i], ar); !ok {
				return p, false
			}
		}
	}
	if d := *dst; len(h) != len(d) || unsafe.SliceData(h) != unsafe.SliceData(d) {
		*dst = h // unchanged, it is not written (no write barrier)
	}
	return p, true
}
