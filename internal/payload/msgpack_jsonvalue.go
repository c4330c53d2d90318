package payload

// Conversion between JSON text (json.RawMessage fields: ConfigureEvent.Config,
// AuditMetadata.Custom values, RuleDefinition.Definition) and the native
// MessagePack value a Rust peer writes for a serde_json::Value.
//
// JSON → MessagePack: objects become maps (key order kept), arrays arrays,
// strings str, true/false/null bool/nil, integers that fit int64/uint64 the
// smallest int, every other number an f64 (serde_json's own split).
//
// MessagePack → JSON: the inverse. Like serde_json's Value visitor it
// rejects bin, extension types and non-string map keys; an f32 is widened
// to f64; NaN and infinities become null (serde_json cannot hold them).
// Integral floats keep a ".0" so that a float stays a float when the text
// is converted back.

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

var (
	errMpJSON      = errors.New("agentwire: msgpack: invalid JSON value")
	errMpJSONValue = errors.New("agentwire: msgpack: value has no JSON form")
)

// mpAppendJSON appends the JSON text js as a MessagePack value. Empty text
// is written as nil (like a nil json.RawMessage in encoding/json).
func mpAppendJSON(b []byte, js []byte) ([]byte, error) {
	i := mpJSONSpace(js, 0)
	if i == len(js) {
		return msgp.AppendNil(b), nil
	}
	start := len(b)
	b, i, err := mpJSONValue(b, js, i, 0)
	if err != nil {
		return b[:start], err
	}
	if mpJSONSpace(js, i) != len(js) {
		return b[:start], errMpJSON
	}
	return b, nil
}

func mpJSONSpace(js []byte, i int) int {
	for i < len(js) {
		switch js[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// mpFixHeader rewrites the one-byte placeholder at b[h] as the header of a
// map, array or str (kind 'm', 'a', 's') with n entries or bytes, moving the
// following bytes when the header needs more room.
func mpFixHeader(b []byte, h int, n int, kind byte) []byte {
	var hdr [5]byte
	var size int
	switch kind {
	case 'm', 'a':
		fix, c16, c32 := byte(0x80), byte(0xde), byte(0xdf)
		if kind == 'a' {
			fix, c16, c32 = 0x90, 0xdc, 0xdd
		}
		switch {
		case n <= 15:
			hdr[0], size = fix|byte(n), 1
		case n <= math.MaxUint16:
			hdr[0], hdr[1], hdr[2], size = c16, byte(n>>8), byte(n), 3
		default:
			hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], size = c32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 5
		}
	default:
		size = len(mpAppendStrHeader(hdr[:0], n))
	}
	if size > 1 {
		old := len(b)
		b = append(b, hdr[:size-1]...) // grow
		copy(b[h+size:], b[h+1:old])
	}
	copy(b[h:], hdr[:size])
	return b
}

func mpJSONValue(b []byte, js []byte, i int, depth int) ([]byte, int, error) {
	if depth > mpMaxDepth {
		return b, i, errMpDepth
	}
	if i >= len(js) {
		return b, i, errMpJSON
	}
	switch c := js[i]; {
	case c == '{':
		h := len(b)
		b = append(b, 0)
		n := 0
		i = mpJSONSpace(js, i+1)
		if i < len(js) && js[i] == '}' {
			return mpFixHeader(b, h, 0, 'm'), i + 1, nil
		}
		for {
			if i >= len(js) || js[i] != '"' {
				return b, i, errMpJSON
			}
			var err error
			if b, i, err = mpJSONString(b, js, i); err != nil {
				return b, i, err
			}
			i = mpJSONSpace(js, i)
			if i >= len(js) || js[i] != ':' {
				return b, i, errMpJSON
			}
			i = mpJSONSpace(js, i+1)
			if b, i, err = mpJSONValue(b, js, i, depth+1); err != nil {
				return b, i, err
			}
			n++
			i = mpJSONSpace(js, i)
			if i >= len(js) {
				return b, i, errMpJSON
			}
			if js[i] == '}' {
				return mpFixHeader(b, h, n, 'm'), i + 1, nil
			}
			if js[i] != ',' {
				return b, i, errMpJSON
			}
			i = mpJSONSpace(js, i+1)
		}
	case c == '[':
		h := len(b)
		b = append(b, 0)
		n := 0
		i = mpJSONSpace(js, i+1)
		if i < len(js) && js[i] == ']' {
			return mpFixHeader(b, h, 0, 'a'), i + 1, nil
		}
		for {
			var err error
			if b, i, err = mpJSONValue(b, js, i, depth+1); err != nil {
				return b, i, err
			}
			n++
			i = mpJSONSpace(js, i)
			if i >= len(js) {
				return b, i, errMpJSON
			}
			if js[i] == ']' {
				return mpFixHeader(b, h, n, 'a'), i + 1, nil
			}
			if js[i] != ',' {
				return b, i, errMpJSON
			}
			i = mpJSONSpace(js, i+1)
		}
	case c == '"':
		return mpJSONString(b, js, i)
	case c == 't':
		if len(js)-i >= 4 && string(js[i:i+4]) == "true" {
			return msgp.AppendBool(b, true), i + 4, nil
		}
	case c == 'f':
		if len(js)-i >= 5 && string(js[i:i+5]) == "false" {
			return msgp.AppendBool(b, false), i + 5, nil
		}
	case c == 'n':
		if len(js)-i >= 4 && string(js[i:i+4]) == "null" {
			return msgp.AppendNil(b), i + 4, nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return mpJSONNumber(b, js, i)
	}
	return b, i, errMpJSON
}

// mpJSONString converts the JSON string starting at js[i] (the quote).
func mpJSONString(b []byte, js []byte, i int) ([]byte, int, error) {
	h := len(b)
	b = append(b, 0)
	start := len(b)
	i++
	for {
		// Copy the run of plain bytes.
		j := i
		for j < len(js) && js[j] != '"' && js[j] != '\\' && js[j] >= 0x20 {
			j++
		}
		b = append(b, js[i:j]...)
		i = j
		if i >= len(js) || js[i] < 0x20 {
			return b, i, errMpJSON
		}
		if js[i] == '"' {
			i++
			break
		}
		// Escape.
		if i+1 >= len(js) {
			return b, i, errMpJSON
		}
		switch e := js[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
			i += 2
		case 'b':
			b, i = append(b, '\b'), i+2
		case 'f':
			b, i = append(b, '\f'), i+2
		case 'n':
			b, i = append(b, '\n'), i+2
		case 'r':
			b, i = append(b, '\r'), i+2
		case 't':
			b, i = append(b, '\t'), i+2
		case 'u':
			r, ok := mpJSONHex4(js, i+2)
			if !ok {
				return b, i, errMpJSON
			}
			i += 6
			if utf16IsSurrogate(r) {
				r2 := rune(-1)
				if i+1 < len(js) && js[i] == '\\' && js[i+1] == 'u' {
					if v, ok := mpJSONHex4(js, i+2); ok {
						r2 = v
					}
				}
				if r >= 0xd800 && r < 0xdc00 && r2 >= 0xdc00 && r2 < 0xe000 {
					r = (r-0xd800)<<10 + (r2 - 0xdc00) + 0x10000
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			return b, i, errMpJSON
		}
	}
	if !utf8.Valid(b[start:]) {
		return b, i, errMpUTF8
	}
	return mpFixHeader(b, h, len(b)-start, 's'), i, nil
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r < 0xe000 }

func mpJSONHex4(js []byte, i int) (rune, bool) {
	if i+4 > len(js) {
		return 0, false
	}
	var r rune
	for _, c := range js[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// mpJSONNumber converts the JSON number starting at js[i].
func mpJSONNumber(b []byte, js []byte, i int) ([]byte, int, error) {
	start := i
	neg := false
	if js[i] == '-' {
		neg = true
		i++
	}
	if i >= len(js) {
		return b, i, errMpJSON
	}
	intStart := i
	if js[i] == '0' {
		i++
	} else if js[i] >= '1' && js[i] <= '9' {
		for i < len(js) && js[i] >= '0' && js[i] <= '9' {
			i++
		}
	} else {
		return b, i, errMpJSON
	}
	intEnd := i
	isFloat := false
	if i < len(js) && js[i] == '.' {
		isFloat = true
		i++
		d := i
		for i < len(js) && js[i] >= '0' && js[i] <= '9' {
			i++
		}
		if i == d {
			return b, i, errMpJSON
		}
	}
	if i < len(js) && (js[i] == 'e' || js[i] == 'E') {
		isFloat = true
		i++
		if i < len(js) && (js[i] == '+' || js[i] == '-') {
			i++
		}
		d := i
		for i < len(js) && js[i] >= '0' && js[i] <= '9' {
			i++
		}
		if i == d {
			return b, i, errMpJSON
		}
	}
	if !isFloat {
		var u uint64
		overflow := false
		for _, c := range js[intStart:intEnd] {
			d := uint64(c - '0')
			if u > (math.MaxUint64-d)/10 {
				overflow = true
				break
			}
			u = u*10 + d
		}
		if !overflow {
			if !neg {
				return msgp.AppendUint64(b, u), i, nil
			}
			if u <= 1<<63 {
				return msgp.AppendInt64(b, int64(-u)), i, nil
			}
		}
	}
	f, err := strconv.ParseFloat(string(js[start:i]), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return b, i, errMpJSON
	}
	return msgp.AppendFloat64(b, f), i, nil
}

// mpReadJSON converts one MessagePack value at b to JSON text appended to
// dst.
func mpReadJSON(dst []byte, b []byte, depth int) ([]byte, []byte, error) {
	if depth > mpMaxDepth {
		return dst, b, errMpDepth
	}
	if len(b) == 0 {
		return dst, b, errMpShort
	}
	c := b[0]
	switch {
	case c == 0xc0:
		return append(dst, "null"...), b[1:], nil
	case c == 0xc2:
		return append(dst, "false"...), b[1:], nil
	case c == 0xc3:
		return append(dst, "true"...), b[1:], nil
	case c == 0xcf:
		u, o, err := msgp.ReadUint64Bytes(b)
		if err != nil {
			return dst, b, errMpShort
		}
		return strconv.AppendUint(dst, u, 10), o, nil
	case mpIsInt(c):
		v, o, err := msgp.ReadInt64Bytes(b)
		if err != nil {
			return dst, b, errMpShort
		}
		return strconv.AppendInt(dst, v, 10), o, nil
	case mpIsFloat(c):
		f, o, err := msgp.ReadFloat64Bytes(b)
		if err != nil {
			return dst, b, errMpShort
		}
		return mpAppendJSONFloat(dst, f), o, nil
	case mpIsStr(c):
		v, o, err := msgp.ReadStringZC(b)
		if err != nil {
			return dst, b, errMpShort
		}
		if !utf8.Valid(v) {
			return dst, b, errMpUTF8
		}
		return mpAppendJSONString(dst, v), o, nil
	case mpIsArray(c):
		n, o, err := mpReadArrayHeader(b)
		if err != nil {
			return dst, b, err
		}
		dst = append(dst, '[')
		for k := 0; k < n; k++ {
			if k > 0 {
				dst = append(dst, ',')
			}
			if dst, o, err = mpReadJSON(dst, o, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, ']'), o, nil
	case mpIsMap(c):
		n, o, err := mpReadMapHeader(b)
		if err != nil {
			return dst, b, err
		}
		dst = append(dst, '{')
		for k := 0; k < n; k++ {
			if k > 0 {
				dst = append(dst, ',')
			}
			if len(o) == 0 || !mpIsStr(o[0]) {
				return dst, b, errMpJSONValue
			}
			var key []byte
			if key, o, err = msgp.ReadStringZC(o); err != nil {
				return dst, b, errMpShort
			}
			if !utf8.Valid(key) {
				return dst, b, errMpUTF8
			}
			dst = mpAppendJSONString(dst, key)
			dst = append(dst, ':')
			if dst, o, err = mpReadJSON(dst, o, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, '}'), o, nil
	}
	return dst, b, errMpJSONValue
}

// mpAppendJSONFloat writes f the way serde_json writes an f64 Value:
// shortest round-trip digits, ".0" kept on integral values; NaN and
// infinities as null.
func mpAppendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	for _, c := range dst[start:] {
		if c == '.' || c == 'e' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

const mpHexDigits = "0123456789abcdef"

// mpAppendJSONString writes s (valid UTF-8) as a JSON string, escaping
// like serde_json: only '"', '\\' and control characters.
func mpAppendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', mpHexDigits[c>>4], mpHexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
