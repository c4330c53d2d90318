package payload

// # JSON codec
//
// The files json*.go implement the JSON forms of every message in types.go
// by hand, byte-compatible with serde_json 1.0 as the Rust reference uses
// it. There is one Append*JSON encoder and one Decode*JSON decoder per
// message (Request and Response body chunks have separate functions because
// their counter key differs).
//
// Encoders append to dst and do not allocate when dst has room. They write
// compact JSON with serde_json's string escaping (only '"', '\' and control
// characters; \u00XX in lower-case hex; everything else raw, including
// U+2028), serde_json's float spelling ("3.0", "1e+16"), chrono's RFC 3339
// timestamps and padded standard base64. Events use the Rust proxy's sorted
// key order; other messages use Rust struct declaration order. Empty lists
// and maps are written as [] and {}, never null.
//
// Decoders follow serde's rules as the Rust receivers apply them: fields
// without a default are required; missing defaulted keys take their
// default; explicit null is rejected except for Option fields; integers are
// range-checked and floats (even 2.0) and numeric strings are rejected for
// integer fields; unknown keys are skipped; a repeated struct key is an
// error (also the repeated "correlation_id" of the Rust proxy's
// flatten-fallback events, which serde rejects too; a Go agent never picks an
// encoding that was not offered, so it never receives them) while a repeated
// map key keeps the last value; structs may also be
// given as arrays in field order and unit variants as {"name":null}; unknown
// enum variants are rejected; one value per input, trailing whitespace
// allowed, no BOM. Nesting is limited to 128 levels. Decoders never panic
// and allocate at most in proportion to the input.
//
// Ownership: a decoder overwrites its destination completely and reuses the
// destination's slices, maps and byte buffers, so values taken out of the
// destination before a decode (other than strings) must not be kept across
// it. Decoded strings and raw JSON values never alias the input and never
// change afterwards (see json_arena.go); the explicitly named NoCopy
// decoders instead point strings into the input, which the caller must then
// keep unmodified. All functions are safe for concurrent use on distinct
// destinations.
//
// Errors are *JSONError values with the offset where decoding stopped.

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// JSONError describes why a JSON payload was rejected. Offset is the byte
// offset in the input where the problem was detected.
type JSONError struct {
	Offset int
	Msg    string
}

// Error implements error.
func (e *JSONError) Error() string {
	return "agentwire: json: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// jsonMaxDepth bounds nesting like serde_json's recursion limit.
const jsonMaxDepth = 128

// jsonDecoder is a small single-pass JSON scanner with typed readers that
// follow serde_json's acceptance rules. It lives on the caller's stack; only
// its arena is pooled.
type jsonDecoder struct {
	data   []byte
	pos    int
	depth  int
	err    error
	ar     *jsonArena
	noCopy bool
	// rawView is true when the last readStringBytes result is a view of
	// data (no escapes) rather than of scratch space.
	rawView bool
}

// fail records the first error. It always returns false so that callers can
// write `return d.fail(...)`.
func (d *jsonDecoder) fail(msg string) bool {
	if d.err == nil {
		d.err = &JSONError{Offset: d.pos, Msg: msg}
	}
	return false
}

func (d *jsonDecoder) failAt(at int, msg string) bool {
	if d.err == nil {
		d.err = &JSONError{Offset: at, Msg: msg}
	}
	return false
}

// ws skips whitespace and returns the next byte (0 at end of input).
func (d *jsonDecoder) ws() byte {
	if d.pos < len(d.data) {
		// Every whitespace byte is at most ' ': one comparison settles the
		// common case, compact input.
		if c := d.data[d.pos]; c > ' ' {
			return c
		}
	}
	return d.wsSlow()
}

func (d *jsonDecoder) wsSlow() byte {
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			return c
		}
		d.pos++
	}
	return 0
}

// finish checks that only whitespace follows the value.
func (d *jsonDecoder) finish() error {
	if d.err == nil {
		d.ws()
		if d.pos != len(d.data) {
			d.fail("trailing characters")
		}
	}
	return d.err
}

// done finishes a decode: it checks for trailing data, releases the arena
// and returns the first error.
func (d *jsonDecoder) done() error {
	err := d.finish()
	d.releaseArena()
	return err
}

// describe returns serde-like wording for the value starting at the current
// position, for "invalid type" errors.
func (d *jsonDecoder) describe(c byte) string {
	switch c {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '[':
		return "sequence"
	case '{':
		return "map"
	case 0:
		return "end of input"
	}
	if c == '-' || (c >= '0' && c <= '9') {
		return "number"
	}
	return "character"
}

func (d *jsonDecoder) typeErr(c byte, want string) bool {
	if c == 0 {
		return d.fail("EOF while parsing a value")
	}
	if d.describe(c) == "character" {
		return d.fail("expected value")
	}
	return d.fail("invalid type: " + d.describe(c) + ", expected " + want)
}

// literal consumes the literal lit (null, true, false) at d.pos.
func (d *jsonDecoder) literal(lit string) bool {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return d.fail("expected ident")
	}
	d.pos += len(lit)
	return true
}

// null consumes a null if one is next and reports whether it did.
func (d *jsonDecoder) null() bool {
	if d.ws() == 'n' {
		return d.literal("null")
	}
	return false
}

// ---------------------------------------------------------------------------
// Strings

// jsonStrPlain marks bytes that can appear in a JSON string body without
// special handling (printable ASCII except '"' and '\').
var jsonStrPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString scans a string whose opening quote is at d.pos. It checks the
// escape syntax and rejects control characters, and returns the raw body
// (between the quotes). UTF-8 validity is not checked here.
func (d *jsonDecoder) scanString() (body []byte, escaped, nonASCII, ok bool) {
	i := d.pos + 1
	start := i
	data := d.data
	for {
		// Skip 8 plain bytes at a time; in the word that is not plain,
		// jump straight to the first flagged byte (the lowest flag of the
		// SWAR mask is never a false positive: borrows only move up).
		for i+8 <= len(data) {
			if m := jsonEscapeMask(binary.LittleEndian.Uint64(data[i:])) & 0x8080808080808080; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(data) && jsonStrPlain[data[i]] {
			i++
		}
		if i >= len(data) {
			d.pos = i
			return nil, false, false, d.fail("EOF while parsing a string")
		}
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return data[start:i], escaped, nonASCII, true
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				d.pos = i + 1
				return nil, false, false, d.fail("EOF while parsing a string")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) {
					d.pos = len(data)
					return nil, false, false, d.fail("EOF while parsing a string")
				}
				for k := i + 2; k < i+6; k++ {
					if jsonHexVal(data[k]) < 0 {
						d.pos = k
						return nil, false, false, d.fail("invalid escape")
					}
				}
				i += 6
			default:
				d.pos = i + 1
				return nil, false, false, d.fail("invalid escape")
			}
		case c >= 0x80:
			nonASCII = true
			i++
		default:
			d.pos = i
			return nil, false, false, d.fail("control character (\\u0000-\\u001F) found while parsing a string")
		}
	}
}

// jsonPlainWord reports whether none of the 8 bytes in x is a control
// character, '"', '\\' or a non-ASCII byte (SWAR: a byte b < n is flagged
// by (x - n*lsb) & ^x & msb, a zero byte of x^c by the same with n = 1).
func jsonPlainWord(x uint64) bool {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	m := ((x - lsb*0x20) & ^x) | ((q - lsb) & ^q) | ((b - lsb) & ^b) | x
	return m&msb == 0
}

func jsonHexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func jsonHex4(b []byte) rune {
	return rune(jsonHexVal(b[0])<<12 | jsonHexVal(b[1])<<8 | jsonHexVal(b[2])<<4 | jsonHexVal(b[3]))
}

// unescape appends the unescaped form of a string body (already checked by
// scanString) to dst, rejecting lone surrogates and invalid UTF-8 the way
// serde_json does when it produces a String. at is the body's offset in the
// input, for error positions.
func (d *jsonDecoder) unescape(dst, raw []byte, at int) ([]byte, bool) {
	start := len(dst)
	i := 0
	for i < len(raw) {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		e := raw[i+1]
		switch e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := jsonHex4(raw[i+2 : i+6])
			i += 6
			if r >= 0xDC00 && r <= 0xDFFF {
				return dst, d.failAt(at+i, "lone leading surrogate in hex escape")
			}
			if r >= 0xD800 && r <= 0xDBFF {
				if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
					return dst, d.failAt(at+i, "unexpected end of hex escape")
				}
				r2 := jsonHex4(raw[i+2 : i+6])
				if r2 < 0xDC00 || r2 > 0xDFFF {
					return dst, d.failAt(at+i, "lone leading surrogate in hex escape")
				}
				i += 6
				r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
			}
			dst = utf8.AppendRune(dst, r)
			continue
		}
		i += 2
	}
	if !jsonValidUTF8(dst[start:]) {
		return dst, d.failAt(at, "invalid unicode code point")
	}
	return dst, true
}

// readString reads a string value into a Go string (arena copy, or a view of
// the input in NoCopy mode when it has no escapes).
func (d *jsonDecoder) readString(v *string) bool {
	c := d.ws()
	if c != '"' {
		return d.typeErr(c, "a string")
	}
	at := d.pos + 1
	body, escaped, nonASCII, ok := d.scanString()
	if !ok {
		return false
	}
	if escaped {
		s, ok := d.makeEscapedString(body, at)
		*v = s
		return ok
	}
	if nonASCII && !utf8.Valid(body) {
		return d.failAt(at, "invalid unicode code point")
	}
	*v = d.makeString(body)
	return true
}

// readStringReuse is readString, except that a string equal to old yields
// old itself instead of a new copy: a plain (ASCII) one compared as it is,
// one with escape sequences once unescaped (into scratch space, checked as
// readString checks it). old must be an immutable string (never a view of
// a mutable buffer).
func (d *jsonDecoder) readStringReuse(v *string, old string) bool {
	c := d.ws()
	if c != '"' {
		return d.typeErr(c, "a string")
	}
	if q, same := jsonSameString(d.data, d.pos, old); same {
		// What the scan below would conclude for a plain string equal
		// to old, in one pass (json_same.go).
		d.pos = q
		*v = old
		return true
	}
	at := d.pos + 1
	body, escaped, nonASCII, ok := d.scanString()
	if !ok {
		return false
	}
	if escaped {
		if old == "" || len(old) > len(body) {
			// Unescaped text is never longer than the raw text: it
			// cannot be old.
			s, ok := d.makeEscapedString(body, at)
			*v = s
			return ok
		}
		if jsonEscapedSame(body, old) {
			*v = old
			return true
		}
		b, ok := d.scratchUnescape(body, at)
		if !ok {
			return false
		}
		if string(b) == old {
			*v = old
			return true
		}
		*v = jsonView(d.copyBytes(b)) // b is scratch: copied even in NoCopy mode
		return true
	}
	if !nonASCII && len(body) == len(old) && string(body) == old {
		*v = old
		return true
	}
	if nonASCII && !utf8.Valid(body) {
		return d.failAt(at, "invalid unicode code point")
	}
	*v = d.makeString(body)
	return true
}

// readStringBytes reads a string value and returns its unescaped bytes
// without keeping them: a view of the input or of scratch space that is
// valid until the next scratch use.
func (d *jsonDecoder) readStringBytes() ([]byte, bool) {
	c := d.ws()
	if c != '"' {
		return nil, d.typeErr(c, "a string")
	}
	at := d.pos + 1
	body, escaped, nonASCII, ok := d.scanString()
	d.rawView = false
	if !ok {
		return nil, false
	}
	if escaped {
		return d.scratchUnescape(body, at)
	}
	if nonASCII && !utf8.Valid(body) {
		return nil, d.failAt(at, "invalid unicode code point")
	}
	d.rawView = true
	return body, true
}

// readKey reads an object key and the following colon, scanning the key
// once. The returned bytes are a view of the input (d.rawView set) when
// the key has no escapes, else of scratch space; either is only valid
// until the next key or scratch use. The common form, a string without
// escapes or non-ASCII bytes with the colon right after it, is settled
// here; keyRest finishes the others from the same scan.
func (d *jsonDecoder) readKey() ([]byte, bool) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		if d.ws() != '"' {
			if d.pos >= len(d.data) {
				return nil, d.fail("EOF while parsing an object")
			}
			return nil, d.fail("key must be a string")
		}
	}
	at := d.pos + 1
	k, escaped, nonASCII, ok := d.scanString()
	if !ok {
		d.rawView = false
		return nil, false
	}
	if !escaped && !nonASCII && d.pos < len(d.data) && d.data[d.pos] == ':' {
		d.pos++
		d.rawView = true
		return k, true
	}
	return d.keyRest(k, at, escaped, nonASCII)
}

// keyRest finishes readKey for a key body k (at its offset at) that has
// escapes or non-ASCII bytes, or whose colon does not follow at once.
func (d *jsonDecoder) keyRest(k []byte, at int, escaped, nonASCII bool) ([]byte, bool) {
	d.rawView = false
	if escaped {
		var ok bool
		if k, ok = d.scratchUnescape(k, at); !ok {
			return nil, false
		}
	} else {
		if nonASCII && !utf8.Valid(k) {
			return nil, d.failAt(at, "invalid unicode code point")
		}
		d.rawView = true
	}
	if d.ws() != ':' {
		if d.pos >= len(d.data) {
			return nil, d.fail("EOF while parsing an object")
		}
		return nil, d.fail("expected `:`")
	}
	d.pos++
	return k, true
}

// readOptString reads a string or null into an Opt.
func (d *jsonDecoder) readOptString(v *Opt[string]) bool {
	if d.null() {
		*v = Opt[string]{}
		return true
	}
	v.Valid = true
	return d.readString(&v.Value)
}

// ---------------------------------------------------------------------------
// Numbers and booleans

// scanNumber checks the JSON number grammar at d.pos and returns the number's
// text and whether it is an integer literal (no fraction, no exponent).
func (d *jsonDecoder) scanNumber() (num []byte, isInt bool, ok bool) {
	data := d.data
	start := d.pos
	i := start
	if i < len(data) && data[i] == '-' {
		i++
	}
	if i >= len(data) {
		d.pos = i
		return nil, false, d.fail("EOF while parsing a value")
	}
	switch c := data[i]; {
	case c == '0':
		i++
		if i < len(data) && data[i] >= '0' && data[i] <= '9' {
			d.pos = i
			return nil, false, d.fail("invalid number")
		}
	case c >= '1' && c <= '9':
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		return nil, false, d.fail("invalid number")
	}
	isInt = true
	if i < len(data) && data[i] == '.' {
		isInt = false
		i++
		j := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == j {
			d.pos = i
			return nil, false, d.fail("invalid number")
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		isInt = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		if i == j {
			d.pos = i
			return nil, false, d.fail("invalid number")
		}
	}
	d.pos = i
	return data[start:i], isInt, true
}

// readUint reads an unsigned integer no larger than max. Floats (even
// integral ones), strings and negative numbers are rejected.
func (d *jsonDecoder) readUint(max uint64, what string) (uint64, bool) {
	c := d.ws()
	if c != '-' && (c < '0' || c > '9') {
		return 0, d.typeErr(c, what)
	}
	at := d.pos
	num, isInt, ok := d.scanNumber()
	if !ok {
		return 0, false
	}
	if !isInt || string(num) == "-0" {
		return 0, d.failAt(at, "invalid type: floating point `"+string(num)+"`, expected "+what)
	}
	if num[0] == '-' {
		return 0, d.failAt(at, "invalid value: integer `"+string(num)+"`, expected "+what)
	}
	var v uint64
	for _, b := range num {
		x := uint64(b - '0')
		if v > (math.MaxUint64-x)/10 {
			return 0, d.failAt(at, "invalid type: floating point, expected "+what)
		}
		v = v*10 + x
	}
	if v > max {
		return 0, d.failAt(at, "invalid value: integer `"+string(num)+"`, expected "+what)
	}
	return v, true
}

// readInt reads a signed integer in [min, max].
func (d *jsonDecoder) readInt(min, max int64, what string) (int64, bool) {
	c := d.ws()
	if c != '-' && (c < '0' || c > '9') {
		return 0, d.typeErr(c, what)
	}
	at := d.pos
	num, isInt, ok := d.scanNumber()
	if !ok {
		return 0, false
	}
	if !isInt || string(num) == "-0" {
		return 0, d.failAt(at, "invalid type: floating point `"+string(num)+"`, expected "+what)
	}
	neg := num[0] == '-'
	digits := num
	if neg {
		digits = num[1:]
	}
	var u uint64
	for _, b := range digits {
		x := uint64(b - '0')
		if u > (math.MaxUint64-x)/10 {
			return 0, d.failAt(at, "invalid type: floating point, expected "+what)
		}
		u = u*10 + x
	}
	var v int64
	if neg {
		if u > 1<<63 {
			return 0, d.failAt(at, "invalid type: floating point, expected "+what)
		}
		v = int64(-u)
	} else {
		if u > math.MaxInt64 {
			return 0, d.failAt(at, "invalid value: integer `"+string(num)+"`, expected "+what)
		}
		v = int64(u)
	}
	if v < min || v > max {
		return 0, d.failAt(at, "invalid value: integer `"+string(num)+"`, expected "+what)
	}
	return v, true
}

func (d *jsonDecoder) readU64(v *uint64) bool {
	x, ok := d.readUint(math.MaxUint64, "u64")
	*v = x
	return ok
}

func (d *jsonDecoder) readU32(v *uint32) bool {
	x, ok := d.readUint(math.MaxUint32, "u32")
	*v = uint32(x)
	return ok
}

func (d *jsonDecoder) readU16(v *uint16) bool {
	x, ok := d.readUint(math.MaxUint16, "u16")
	*v = uint16(x)
	return ok
}

func (d *jsonDecoder) readI32(v *int32) bool {
	x, ok := d.readInt(math.MinInt32, math.MaxInt32, "i32")
	*v = int32(x)
	return ok
}

func (d *jsonDecoder) readOptU64(v *Opt[uint64]) bool {
	if d.null() {
		*v = Opt[uint64]{}
		return true
	}
	v.Valid = true
	return d.readU64(&v.Value)
}

// readFloat reads a number as f64 (integers are accepted). Out-of-range
// values are rejected like serde_json's "number out of range".
func (d *jsonDecoder) readFloat(what string) (float64, bool) {
	c := d.ws()
	if c != '-' && (c < '0' || c > '9') {
		return 0, d.typeErr(c, what)
	}
	at := d.pos
	num, _, ok := d.scanNumber()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(jsonView(num), 64)
	if err != nil {
		return 0, d.failAt(at, "number out of range")
	}
	return f, true
}

func (d *jsonDecoder) readF64(v *float64) bool {
	f, ok := d.readFloat("f64")
	*v = f
	return ok
}

// readF32 reads a number the way serde_json produces an f32: parsed as f64,
// then converted (values beyond the f32 range become infinities).
func (d *jsonDecoder) readF32(v *float32) bool {
	f, ok := d.readFloat("f32")
	*v = jsonF64ToF32(f)
	return ok
}

func jsonF64ToF32(f float64) float32 {
	switch {
	case f > math.MaxFloat32:
		return float32(math.Inf(1))
	case f < -math.MaxFloat32:
		return float32(math.Inf(-1))
	}
	return float32(f)
}

func (d *jsonDecoder) readBool(v *bool) bool {
	switch c := d.ws(); c {
	case 't':
		*v = true
		return d.literal("true")
	case 'f':
		*v = false
		return d.literal("false")
	default:
		return d.typeErr(c, "a boolean")
	}
}

// ---------------------------------------------------------------------------
// Skipping and capturing values

// skip skips one JSON value. In strict mode strings must be valid UTF-8
// without lone surrogates and numbers must fit an f64 (what serde_json
// requires to build a serde_json::Value); otherwise only the syntax is
// checked (what serde_json does for ignored fields).
func (d *jsonDecoder) skip(strict bool) bool {
	switch c := d.ws(); c {
	case '"':
		at := d.pos + 1
		body, escaped, nonASCII, ok := d.scanString()
		if !ok || !strict {
			return ok
		}
		if escaped {
			_, ok = d.scratchUnescape(body, at)
			return ok
		}
		if nonASCII && !utf8.Valid(body) {
			return d.failAt(at, "invalid unicode code point")
		}
		return true
	case 'n':
		return d.literal("null")
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case '[':
		if d.depth++; d.depth > jsonMaxDepth {
			return d.fail("recursion limit exceeded")
		}
		d.pos++
		if d.ws() == ']' {
			d.pos++
			d.depth--
			return true
		}
		for {
			if !d.skip(strict) {
				return false
			}
			switch d.ws() {
			case ',':
				d.pos++
			case ']':
				d.pos++
				d.depth--
				return true
			case 0:
				return d.fail("EOF while parsing a list")
			default:
				return d.fail("expected `,` or `]`")
			}
		}
	case '{':
		if d.depth++; d.depth > jsonMaxDepth {
			return d.fail("recursion limit exceeded")
		}
		d.pos++
		if d.ws() == '}' {
			d.pos++
			d.depth--
			return true
		}
		for {
			if _, ok := d.readKey(); !ok {
				return false
			}
			if !d.skip(strict) {
				return false
			}
			switch d.ws() {
			case ',':
				d.pos++
			case '}':
				d.pos++
				d.depth--
				return true
			case 0:
				return d.fail("EOF while parsing an object")
			default:
				return d.fail("expected `,` or `}`")
			}
		}
	case 0:
		return d.fail("EOF while parsing a value")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			at := d.pos
			num, isInt, ok := d.scanNumber()
			if ok && strict && !isInt {
				if _, err := strconv.ParseFloat(jsonView(num), 64); err != nil {
					return d.failAt(at, "number out of range")
				}
			}
			return ok
		}
		return d.fail("expected value")
	}
}

// capture skips one value strictly and returns its text (no surrounding
// whitespace), a view of the input.
func (d *jsonDecoder) capture() ([]byte, bool) {
	d.ws()
	start := d.pos
	if !d.skip(true) {
		return nil, false
	}
	return d.data[start:d.pos], true
}

// readRaw reads any JSON value into a RawMessage; null becomes nil.
func (d *jsonDecoder) readRaw(v *[]byte) bool {
	if d.null() {
		*v = nil
		return true
	}
	raw, ok := d.capture()
	if !ok {
		return false
	}
	if d.noCopy {
		*v = raw[:len(raw):len(raw)]
	} else {
		*v = d.copyBytes(raw)
	}
	return true
}

// jsonValidRaw reports whether raw holds exactly one JSON value (surrounding
// whitespace allowed) that serde_json would accept as a serde_json::Value,
// and returns the value without the whitespace.
func jsonValidRaw(raw []byte) ([]byte, bool) {
	d := jsonDecoder{data: raw}
	d.ws()
	start := d.pos
	if !d.skip(true) {
		d.releaseArena()
		return nil, false
	}
	end := d.pos
	err := d.finish()
	d.releaseArena()
	return raw[start:end], err == nil
}

// ---------------------------------------------------------------------------
// Containers

// jsonFields describes a Rust struct: its field names in declaration order
// and which fields must be present. reqMap lists the fields without a serde
// default (required in the object form); reqSeq additionally lists Option
// fields without #[serde(default)] (required in the array form, where serde
// needs every non-defaulted element).
type jsonFields struct {
	names  []string
	reqMap uint64
	reqSeq uint64
	// maxSeq, when non-zero, caps the array form at fewer elements than
	// there are names (for Go-side extra fields the Rust struct lacks).
	maxSeq int
	// strictSkip validates ignored values fully (serde buffers the content
	// of internally tagged enums, which parses every value).
	strictSkip bool
	// slots maps jsonFieldHash(name) to the field index (-1 none, -2 more
	// than one); built by init, so a lookup costs one comparison.
	slots   [64]int8
	indexed bool
	// sorted marks a struct whose encoders write its keys in name order
	// (the event payloads, which the Rust proxy serializes through a
	// serde_json Value, a sorted map) rather than declaration order.
	sorted bool
	// keys holds each name as a compact encoder writes it as a key,
	// quoted and followed by the colon; first and after give the order
	// encoders write the fields in (after[i] follows field i, len(names)
	// for none). structNext matches the expected next key with one
	// comparison (built by buildIndex).
	keys  []string
	first int
	after []int
}

func jsonFieldHash(k []byte) int {
	n := len(k)
	if n == 0 {
		return 0
	}
	return (n*31 + int(k[0])*7 + int(k[n-1])) & 63
}

func (f *jsonFields) buildIndex() {
	for i := range f.slots {
		f.slots[i] = -1
	}
	for i, n := range f.names {
		h := jsonFieldHash([]byte(n))
		if f.slots[h] == -1 {
			f.slots[h] = int8(i)
		} else {
			f.slots[h] = -2
		}
	}
	f.indexed = true
	f.keys = make([]string, len(f.names))
	for i, n := range f.names {
		if slices.Contains(f.names[:i], n) {
			// structNext's expected-key match and index must agree.
			panic("agentwire: payload: field " + n + " named twice")
		}
		f.keys[i] = `"` + n + `":`
	}
	order := make([]int, len(f.names))
	for i := range order {
		order[i] = i
	}
	if f.sorted {
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(f.names[a], f.names[b]) })
	}
	f.after = make([]int, len(f.names))
	for k, i := range order {
		f.after[i] = len(f.names)
		if k+1 < len(order) {
			f.after[i] = order[k+1]
		}
	}
	if len(order) > 0 {
		f.first = order[0]
	}
}

func (f *jsonFields) index(key []byte) int {
	if f.indexed {
		switch e := f.slots[jsonFieldHash(key)]; {
		case e >= 0:
			if string(key) == f.names[e] {
				return int(e)
			}
			return -1
		case e == -1:
			return -1
		}
	}
	for i, n := range f.names {
		if string(key) == n {
			return i
		}
	}
	return -1
}

// Build the lookup tables of every struct description. A table missing from
// this list still works (linear search).
func init() {
	all := []*jsonFields{
		&jsonCancelFields, &jsonPingFields, &jsonPongFields, &jsonHealthFields, &jsonFlowFields,
		&jsonMetricsFields, &jsonCounterFields, &jsonHistogramFields, &jsonBucketFields,
		&jsonConfigUpdateFields, &jsonRuleFields, &jsonConfigUpdateResponseFields,
		&jsonRequestHeadersFields, &jsonMetadataFields, &jsonRequestChunkFields, &jsonResponseChunkFields,
		&jsonResponseHeadersFields, &jsonRequestCompleteFields, &jsonWebSocketFrameFields,
		&jsonGuardrailInspectFields, &jsonConfigureFields,
		&jsonHandshakeRequestFields, &jsonHandshakeResponseFields, &jsonCapabilitiesFields,
		&jsonFeaturesFields, &jsonLimitsFields, &jsonRegistrationRequestFields, &jsonRegistrationResponseFields,
		&jsonAgentResponseFields, &jsonAuditFields, &jsonBlockFields, &jsonRedirectFields,
		&jsonChallengeFields, &jsonSetFields, &jsonRemoveFields, &jsonMutationFields, &jsonCloseFields,
	}
	for i := range jsonConfigVariantFields {
		all = append(all, &jsonConfigVariantFields[i])
	}
	for _, f := range all {
		f.buildIndex()
	}
}

// jsonStruct is the state of one struct being decoded.
type jsonStruct struct {
	f    *jsonFields
	seen uint64
	n    int
	arr  bool
	next int // the field expected next (see jsonFields.after)
}

// structBegin starts a struct: an object, or (as serde_json allows) an array
// of the fields in declaration order.
func (d *jsonDecoder) structBegin(s *jsonStruct, f *jsonFields, what string) bool {
	*s = jsonStruct{f: f, next: f.first}
	switch c := d.ws(); c {
	case '{':
	case '[':
		s.arr = true
	default:
		return d.typeErr(c, what)
	}
	if d.depth++; d.depth > jsonMaxDepth {
		return d.fail("recursion limit exceeded")
	}
	d.pos++
	return true
}

// structNext returns the index of the next field to decode, or -1 at the end
// of the struct or on error. Unknown object keys are skipped; a repeated
// field is an error.
func (d *jsonDecoder) structNext(s *jsonStruct) int {
	for d.err == nil {
		c := d.ws()
		closing := byte('}')
		if s.arr {
			closing = ']'
		}
		if s.n > 0 {
			switch c {
			case ',':
				d.pos++
				c = d.ws()
				if c == closing {
					return d.failIdx("trailing comma")
				}
			case closing:
				d.pos++
				d.depth--
				return d.structEnd(s)
			case 0:
				return d.failIdx("EOF while parsing a value")
			default:
				if s.arr {
					return d.failIdx("expected `,` or `]`")
				}
				return d.failIdx("expected `,` or `}`")
			}
		} else if c == closing {
			d.pos++
			d.depth--
			return d.structEnd(s)
		}
		s.n++
		if s.arr {
			idx := s.n - 1
			if idx >= len(s.f.names) || (s.f.maxSeq > 0 && idx >= s.f.maxSeq) {
				return d.failIdx("invalid length: trailing elements")
			}
			s.seen |= 1 << idx
			return idx
		}
		// Encoders (ours, serde_json) write the fields in declaration
		// order without whitespace: the expected key, quote to colon, is
		// usually next, and matching it whole means the same as reading
		// the key, looking it up and reading the colon.
		idx := -1
		if s.next < len(s.f.keys) {
			if k := s.f.keys[s.next]; len(d.data)-d.pos >= len(k) && string(d.data[d.pos:d.pos+len(k)]) == k {
				d.pos += len(k)
				idx = s.next
			}
		}
		if idx < 0 {
			key, ok := d.readKey()
			if !ok {
				return -1
			}
			if idx = s.f.index(key); idx < 0 {
				d.skip(s.f.strictSkip)
				continue
			}
		}
		if s.seen&(1<<idx) != 0 {
			return d.failIdx("duplicate field `" + s.f.names[idx] + "`")
		}
		s.seen |= 1 << idx
		if idx < len(s.f.after) {
			s.next = s.f.after[idx]
		}
		return idx
	}
	return -1
}

func (d *jsonDecoder) failIdx(msg string) int {
	d.fail(msg)
	return -1
}

// structEnd checks the required fields once the struct is closed.
func (d *jsonDecoder) structEnd(s *jsonStruct) int {
	req := s.f.reqMap
	if s.arr {
		req = s.f.reqSeq
	}
	if missing := req &^ s.seen; missing != 0 {
		for i := range s.f.names {
			if missing&(1<<i) != 0 {
				if s.arr {
					return d.failIdx("invalid length " + strconv.Itoa(s.n) + ", expected struct with more elements")
				}
				return d.failIdx("missing field `" + s.f.names[i] + "`")
			}
		}
	}
	return -1
}

// has reports whether field i was present.
func (s *jsonStruct) has(i int) bool { return s.seen&(1<<i) != 0 }

// jsonSeq is the state of an array or map being decoded.
type jsonSeq struct{ n int }

// arrayBegin starts a JSON array (null is rejected).
func (d *jsonDecoder) arrayBegin(what string) bool {
	if c := d.ws(); c != '[' {
		return d.typeErr(c, what)
	}
	if d.depth++; d.depth > jsonMaxDepth {
		return d.fail("recursion limit exceeded")
	}
	d.pos++
	return true
}

// arrayNext reports whether another element follows.
func (d *jsonDecoder) arrayNext(s *jsonSeq) bool {
	if d.err != nil {
		return false
	}
	c := d.ws()
	if s.n > 0 {
		switch c {
		case ',':
			d.pos++
			if d.ws() == ']' {
				return d.fail("trailing comma")
			}
		case ']':
			d.pos++
			d.depth--
			return false
		case 0:
			return d.fail("EOF while parsing a list")
		default:
			return d.fail("expected `,` or `]`")
		}
	} else if c == ']' {
		d.pos++
		d.depth--
		return false
	}
	s.n++
	return true
}

// mapBegin starts a JSON object used as a map (null is rejected).
func (d *jsonDecoder) mapBegin(what string) bool {
	if c := d.ws(); c != '{' {
		return d.typeErr(c, what)
	}
	if d.depth++; d.depth > jsonMaxDepth {
		return d.fail("recursion limit exceeded")
	}
	d.pos++
	return true
}

// mapNext reads what separates a map's entries and the next key (valid
// until the next key or scratch use; see readKey), or returns ok=false at
// the end of the map or on error.
func (d *jsonDecoder) mapNext(s *jsonSeq) ([]byte, bool) {
	if !d.mapSep(s) {
		return nil, false
	}
	return d.readKey()
}

// mapSep is mapNext up to the next key: it reads what separates a map's
// entries and reports whether a key follows (false at the end of the map
// or on error).
func (d *jsonDecoder) mapSep(s *jsonSeq) bool {
	if d.err != nil {
		return false
	}
	c := d.ws()
	if s.n > 0 {
		switch c {
		case ',':
			d.pos++
			if d.ws() == '}' {
				return d.fail("trailing comma")
			}
		case '}':
			d.pos++
			d.depth--
			return false
		case 0:
			return d.fail("EOF while parsing an object")
		default:
			return d.fail("expected `,` or `}`")
		}
	} else if c == '}' {
		d.pos++
		d.depth--
		return false
	}
	s.n++
	return true
}

// keyString turns a key just returned by mapNext into a kept string (a view
// of the input in NoCopy mode when the key had no escapes).
func (d *jsonDecoder) keyString(k []byte) string {
	if d.noCopy && d.rawView {
		return jsonView(k)
	}
	return jsonView(d.copyBytes(k))
}

// readStringMap reads a map of string to string into *m, reusing the map
// (cleared) when it exists. A repeated key keeps the last value.
func (d *jsonDecoder) readStringMap(m *map[string]string, what string) bool {
	if !d.mapBegin(what) {
		return false
	}
	mm := *m
	clear(mm)
	var s jsonSeq
	for {
		k, ok := d.mapNext(&s)
		if !ok {
			break
		}
		if mm == nil {
			mm = make(map[string]string)
		}
		key := d.keyString(k)
		var val string
		if !d.readString(&val) {
			break
		}
		mm[key] = val
	}
	*m = mm
	return d.err == nil
}

// readStringSlice reads an array of strings, reusing dst's backing array.
func (d *jsonDecoder) readStringSlice(dst []string, what string) ([]string, bool) {
	dst = dst[:0]
	if !d.arrayBegin(what) {
		return dst, false
	}
	var s jsonSeq
	for d.arrayNext(&s) {
		var v string
		if !d.readString(&v) {
			break
		}
		dst = append(dst, v)
	}
	return dst, d.err == nil
}

// readHeaderValues is readStringSlice for header values: in a copying
// decoder a value equal to the one the destination held at the same
// position is kept instead of copied again (headers repeat from request to
// request; the destination's old strings are immutable there).
func (d *jsonDecoder) readHeaderValues(dst []string, what string) ([]string, bool) {
	if d.noCopy {
		return d.readStringSlice(dst, what)
	}
	old := dst[:cap(dst)]
	dst = dst[:0]
	var s jsonSeq
	if p := d.pos; p+1 < len(d.data) && d.data[p] == '[' && d.data[p+1] == '"' && d.depth < jsonMaxDepth {
		// A compact array starting with a string (nearly every header
		// has one value): its first element is read without the
		// general walk, and a ']' right after it ends the array.
		d.pos++
		var v, prev string
		if len(old) > 0 {
			prev = old[0]
		}
		if !d.readStringReuse(&v, prev) {
			return dst, false
		}
		dst = append(dst, v)
		if d.pos < len(d.data) && d.data[d.pos] == ']' {
			d.pos++
			return dst, true
		}
		d.depth++ // as arrayBegin would have; arrayNext takes it back at ']'
		s.n = 1
	} else if !d.arrayBegin(what) {
		return dst, false
	}
	for d.arrayNext(&s) {
		var v, prev string
		if i := len(dst); i < len(old) {
			prev = old[i]
		}
		if !d.readStringReuse(&v, prev) {
			break
		}
		dst = append(dst, v)
	}
	return dst, d.err == nil
}

// ---------------------------------------------------------------------------
// Externally tagged enums

// enumBegin reads the variant name of an externally tagged enum. For the
// string form unit is true. For the object form the decoder is left at the
// variant's value; the caller decodes it and then calls enumEnd.
func (d *jsonDecoder) enumBegin(what string) (name []byte, unit bool, ok bool) {
	switch c := d.ws(); c {
	case '"':
		b, ok := d.readStringBytes()
		return b, true, ok
	case '{':
		if d.depth++; d.depth > jsonMaxDepth {
			return nil, false, d.fail("recursion limit exceeded")
		}
		d.pos++
		if d.ws() == '}' {
			return nil, false, d.fail("expected value")
		}
		k, ok := d.readKey()
		return k, false, ok
	default:
		return nil, false, d.typeErr(c, what)
	}
}

// enumEnd closes the object form of an enum; a second key is an error.
func (d *jsonDecoder) enumEnd() bool {
	if d.err != nil {
		return false
	}
	if d.ws() != '}' {
		return d.fail("expected value")
	}
	d.pos++
	d.depth--
	return true
}

// unitVariant checks the value of a unit variant written as an object
// (`{"allow":null}`): only null is accepted.
func (d *jsonDecoder) unitVariant() bool {
	if c := d.ws(); c != 'n' {
		return d.typeErr(c, "unit")
	}
	return d.literal("null")
}

// unknownVariant reports an unknown enum variant.
func (d *jsonDecoder) unknownVariant(name []byte, what string) bool {
	return d.fail("unknown variant `" + string(name) + "`, expected " + what)
}
