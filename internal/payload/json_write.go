package payload

import (
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Low-level JSON writers shared by the Append*JSON encoders. They append to
// dst and never allocate when dst has room, and they write exactly what
// serde_json writes for the same value.

const jsonHexDigits = "0123456789abcdef"

// jsonAppendString writes s as a JSON string the way serde_json does: only
// '"', '\' and control characters are escaped (\b \t \n \f \r, the others as
// \u00XX with lower-case hex); everything else, including '/', '<', '>', '&',
// U+2028 and U+2029, is written raw. Invalid UTF-8 (possible in a Go string,
// impossible in a Rust one) is replaced by U+FFFD so the output is always
// valid JSON for a Rust peer.
func jsonAppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	i := jsonPlainPrefix(s)
	if i == len(s) {
		return append(append(dst, s...), '"')
	}
	start := 0
	for i < len(s) {
		if i+8 <= len(s) && jsonPlainWord(uint64(s[i])|uint64(s[i+1])<<8|uint64(s[i+2])<<16|uint64(s[i+3])<<24|
			uint64(s[i+4])<<32|uint64(s[i+5])<<40|uint64(s[i+6])<<48|uint64(s[i+7])<<56) {
			i += 8
			continue
		}
		c := s[i]
		if jsonStrPlain[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
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
			dst = append(dst, '\\', 'u', '0', '0', jsonHexDigits[c>>4], jsonHexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func jsonAppendOptString(dst []byte, v Opt[string]) []byte {
	if !v.Valid {
		return append(dst, "null"...)
	}
	return jsonAppendString(dst, v.Value)
}

func jsonAppendOptU64(dst []byte, v Opt[uint64]) []byte {
	if !v.Valid {
		return append(dst, "null"...)
	}
	return strconv.AppendUint(dst, v.Value, 10)
}

func jsonAppendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

// jsonAppendFloat writes a finite float in serde_json's format (zmij, the
// shortest representation that round-trips): plain decimal with at least one
// fractional digit ("3.0", "0.005", "12.5") when the decimal exponent is in
// -5..15 (f64) or -6..12 (f32), otherwise scientific with a signed, minimal
// exponent ("1e+16", "1.5e-7"). Non-finite values are written as null, as
// serde_json does. bits is 32 or 64.
func jsonAppendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], f, 'e', -1, bits)
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	// b is d[.ddd]e±XX
	e := 0
	for e < len(b) && b[e] != 'e' {
		e++
	}
	mant := b[:e]
	exp := 0
	expNeg := b[e+1] == '-'
	for _, c := range b[e+2:] {
		exp = exp*10 + int(c-'0')
	}
	if expNeg {
		exp = -exp
	}
	var digs [24]byte
	nd := 0
	for _, c := range mant {
		if c != '.' {
			digs[nd] = c
			nd++
		}
	}
	digits := digs[:nd]
	lo, hi := -5, 15
	if bits == 32 {
		lo, hi = -6, 12
	}
	if exp >= lo && exp <= hi {
		switch {
		case nd-1 <= exp: // 1234e7 -> 12340000000.0
			dst = append(dst, digits...)
			for i := nd; i <= exp; i++ {
				dst = append(dst, '0')
			}
			return append(dst, '.', '0')
		case exp >= 0: // 1234e-2 -> 12.34
			dst = append(dst, digits[:exp+1]...)
			dst = append(dst, '.')
			return append(dst, digits[exp+1:]...)
		default: // 1234e-6 -> 0.001234
			dst = append(dst, '0', '.')
			for i := -1; i > exp; i-- {
				dst = append(dst, '0')
			}
			return append(dst, digits...)
		}
	}
	dst = append(dst, digits[0])
	if nd > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	dst = append(dst, 'e')
	if exp < 0 {
		dst = append(dst, '-')
		exp = -exp
	} else {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, int64(exp), 10)
}

// jsonAppendTimestamp writes t in UTC exactly like chrono's to_rfc3339:
// YYYY-MM-DDTHH:MM:SS, a fraction of 3, 6 or 9 digits only when needed
// (none for whole seconds), and the offset "+00:00". Years outside 0..9999
// carry an explicit sign and at least four digits ("+10000", "-0001").
func jsonAppendTimestamp(dst []byte, t time.Time) []byte {
	ns := t.Nanosecond()
	dst = append(dst, '"')
	var ok bool
	if dst, ok = appendDateTime(dst, t); !ok {
		t = t.UTC()
		year, month, day := t.Date()
		hour, minute, sec := t.Clock()
		if year < 0 {
			dst = append(dst, '-')
			year = -year
		} else {
			dst = append(dst, '+')
		}
		dst = appendYMDHMS(dst, year, int(month), day, hour, minute, sec)
	}
	switch {
	case ns == 0:
	case ns%1_000_000 == 0:
		dst = append(dst, '.')
		dst = jsonAppendPadded(dst, ns/1_000_000, 3)
	case ns%1_000 == 0:
		dst = append(dst, '.')
		dst = jsonAppendPadded(dst, ns/1_000, 6)
	default:
		dst = append(dst, '.')
		dst = jsonAppendPadded(dst, ns, 9)
	}
	return append(dst, "+00:00\""...)
}

// jsonAppendPadded writes a non-negative v with at least width digits.
func jsonAppendPadded(dst []byte, v, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	buf[i] = byte('0' + v)
	for len(buf)-i < width {
		i--
		buf[i] = '0'
	}
	return append(dst, buf[i:]...)
}

// jsonAppendBase64 writes data as a standard, padded base64 JSON string.
func jsonAppendBase64(dst, data []byte) []byte {
	dst = append(dst, '"')
	dst = b64AppendEncode(dst, data)
	return append(dst, '"')
}

// jsonAppendRaw writes a raw JSON value. nil or empty is written as null, and
// so is anything that is not exactly one valid JSON value: a Rust peer would
// reject the whole message otherwise.
func jsonAppendRaw(dst, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	v, ok := jsonValidRaw(raw)
	if !ok {
		return append(dst, "null"...)
	}
	return append(dst, v...)
}

func jsonAppendStrings(dst []byte, list []string) []byte {
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonAppendString(dst, s)
	}
	return append(dst, ']')
}

// ---------------------------------------------------------------------------
// Sorted map keys without allocation

// jsonKeyScratch pools key slices for maps too large for the stack buffer.
var jsonKeyScratch = sync.Pool{New: func() any { s := make([]string, 0, 64); return &s }}

// jsonCollectKeys appends m's keys to keys and sorts them byte-wise.
func jsonCollectKeys[V any](m map[string]V, keys []string) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// jsonKeysSmall is the map size up to which sorted keys live on the stack;
// larger maps borrow a pooled slice. Either way no allocation.
const jsonKeysSmall = 16

// jsonAppendStringMap writes a string map as an object with its keys in
// byte-wise order (deterministic output; Rust writes HashMaps in random
// order and BTreeMaps sorted). A nil map is written as {}.
func jsonAppendStringMap(dst []byte, m map[string]string) []byte {
	if len(m) == 0 {
		return append(dst, '{', '}')
	}
	if len(m) <= jsonKeysSmall {
		var buf [jsonKeysSmall]string
		return jsonWriteStringMap(dst, m, jsonCollectKeys(m, buf[:0]))
	}
	p := jsonKeyScratch.Get().(*[]string)
	keys := jsonCollectKeys(m, (*p)[:0])
	dst = jsonWriteStringMap(dst, m, keys)
	clear(keys)
	*p = keys[:0]
	jsonKeyScratch.Put(p)
	return dst
}

func jsonWriteStringMap(dst []byte, m map[string]string, keys []string) []byte {
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonAppendString(dst, k)
		dst = append(dst, ':')
		dst = jsonAppendString(dst, m[k])
	}
	return append(dst, '}')
}

// jsonHeaderScratch pools index slices for header sets too large for the
// stack buffer.
var jsonHeaderScratch = sync.Pool{New: func() any { s := make([]int32, 0, 256); return &s }}

// jsonAppendHeaders writes headers as {"name":["v1","v2"],...} with names in
// byte-wise order, as the Rust proxy does. Entries that share a name (only
// possible in a hand-built Headers value) are merged in order, so the
// object never repeats a key.
func jsonAppendHeaders(dst []byte, h Headers) []byte {
	n := len(h)
	if n == 0 {
		return append(dst, '{', '}')
	}
	if n <= 64 {
		var stack [64]int32
		return jsonWriteHeaders(dst, h, headerSortIndex(h, stack[:n]))
	}
	p := jsonHeaderScratch.Get().(*[]int32)
	idx := headerSortIndex(h, slices.Grow((*p)[:0], n)[:n])
	dst = jsonWriteHeaders(dst, h, idx)
	*p = idx[:0]
	jsonHeaderScratch.Put(p)
	return dst
}

// jsonWriteHeaders writes h in the order given by idx, merging entries that
// share a name.
func jsonWriteHeaders(dst []byte, h Headers, idx []int32) []byte {
	n := len(idx)
	dst = append(dst, '{')
	for i := 0; i < n; {
		name := h[idx[i]].Name
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonAppendString(dst, name)
		dst = append(dst, ':', '[')
		first := true
		for ; i < n && h[idx[i]].Name == name; i++ {
			for _, v := range h[idx[i]].Values {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = jsonAppendString(dst, v)
			}
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}
