package payload

import "math"

// Best-effort routing-id extraction for messages that cannot (or need not)
// be decoded in full, e.g. to answer an undecodable event fail-open with
// the right id, or to fail the one request whose reply is malformed
// instead of letting it time out (SPEC 6.5).

// EventCorrelationIDMsgpack returns the correlation id of a MessagePack
// event without decoding it: the first top-level correlation_id string, else
// metadata.correlation_id (metadata as a map or positional array); for a
// positional event, its first element (or the first element of the
// metadata array it starts with). The result aliases data. ok is false if
// no id string was found. It never fails on malformed input and does not
// allocate. Safe for concurrent use.
func EventCorrelationIDMsgpack(data []byte) (id []byte, ok bool) {
	if len(data) == 0 {
		return nil, false
	}
	if mpIsArray(data[0]) {
		n, o, err := mpReadArrayHeader(data)
		if err != nil || n == 0 {
			return nil, false
		}
		if len(o) > 0 && (mpIsStr(o[0]) || mpIsBin(o[0])) {
			v, _, err := mpReadStrBytes(o)
			return v, err == nil
		}
		return mpPeekField(o, "correlation_id", 0)
	}
	// Field 0 is correlation_id in every event but request headers, where
	// it is metadata: an integer key 0 counts as whichever fits its value.
	if id, ok := mpPeekField(data, "correlation_id", 0); ok {
		return id, true
	}
	meta, ok := mpPeekValue(data, "metadata", 0)
	if !ok || !(mpIsMap(meta[0]) || mpIsArray(meta[0])) {
		meta, ok = mpPeekValue(data, "metadata", -1)
		if !ok {
			return nil, false
		}
	}
	return mpPeekField(meta, "correlation_id", 0)
}

// ResponseCorrelationIDMsgpack returns audit.custom.correlation_id of a
// MessagePack AgentResponse (map or positional form) without decoding the
// rest; a repeated key counts by its last value, as in a Rust HashMap. The
// result aliases data. ok is false when the id is missing or not a string
// (the Rust proxy then routes the reply to ""). It never fails on malformed
// input and does not allocate. Safe for concurrent use.
func ResponseCorrelationIDMsgpack(data []byte) (id []byte, ok bool) {
	audit, ok := mpPeekValue(data, "audit", 5)
	if !ok {
		return nil, false
	}
	custom, ok := mpPeekValue(audit, "custom", 4)
	if !ok {
		return nil, false
	}
	n, o, err := mpReadMapHeader(custom)
	if err != nil {
		return nil, false
	}
	for k := 0; k < n; k++ {
		var key []byte
		if key, o, err = mpReadStrBytes(o); err != nil {
			return nil, false
		}
		if string(key) == "correlation_id" {
			if len(o) > 0 && (mpIsStr(o[0]) || mpIsBin(o[0])) {
				id, ok = nil, false
				if v, _, err := mpReadStrBytes(o); err == nil {
					id, ok = v, true
				}
			} else {
				id, ok = nil, false
			}
		}
		if o, err = mpSkip(o); err != nil {
			return nil, false
		}
	}
	return id, ok
}

// mpPeekValue returns the input positioned at the value of field name (or
// of the integer key pos, serde's field index) in the map at b, first
// occurrence, or at element pos of the array at b. pos < 0 matches names
// only.
func mpPeekValue(b []byte, name string, pos int) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	if mpIsArray(b[0]) {
		n, o, err := mpReadArrayHeader(b)
		if err != nil || pos < 0 || pos >= n {
			return nil, false
		}
		for i := 0; i < pos; i++ {
			if o, err = mpSkip(o); err != nil {
				return nil, false
			}
		}
		return o, len(o) > 0
	}
	n, o, err := mpReadMapHeader(b)
	if err != nil {
		return nil, false
	}
	for k := 0; k < n; k++ {
		var key []byte
		match := false
		switch {
		case len(o) > 0 && (mpIsStr(o[0]) || mpIsBin(o[0])):
			if key, o, err = mpReadKeyBytes(o); err != nil {
				return nil, false
			}
			match = string(key) == name
		case len(o) > 0 && mpIsInt(o[0]):
			var u uint64
			if u, o, err = mpReadUint(o, math.MaxUint32); err != nil {
				return nil, false
			}
			match = pos >= 0 && u == uint64(pos)
		default:
			if o, err = mpSkip(o); err != nil {
				return nil, false
			}
		}
		if match {
			return o, len(o) > 0
		}
		if o, err = mpSkip(o); err != nil {
			return nil, false
		}
	}
	return nil, false
}

// mpPeekField returns the string value of field name (or field index
// pos) of the struct at b.
func mpPeekField(b []byte, name string, pos int) ([]byte, bool) {
	v, ok := mpPeekValue(b, name, pos)
	if !ok || !(mpIsStr(v[0]) || mpIsBin(v[0])) {
		return nil, false
	}
	s, _, err := mpReadStrBytes(v)
	return s, err == nil
}
