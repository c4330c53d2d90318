package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/agentwire/agentwire"

	"github.com/agentwire/agentwire/internal/payload"
	"github.com/tinylib/msgp/msgp"
)

// Correlation-id extraction for the Unix-socket transport.
//
// The payload decoders give every event its own correlation id, but the id
// a reply must carry is the routing id the proxy put at the top level of the
// event envelope (SPEC 5, 6.4). For every event except request headers the
// two are the same key (the envelope overwrites the event's own id in JSON;
// in MessagePack the first of the repeated keys is the routing id and the
// decoder keeps the first). Request headers carry their id in
// metadata.correlation_id and the envelope key is extra; routingIDJSON and
// routingIDMsgpack find it. bestEffortID recovers an id from a payload that
// did not decode, like the Rust SDK does for its fail-open reply: the
// top-level correlation_id when it is a non-empty string, otherwise
// metadata.correlation_id, otherwise "".

const cidKey = "correlation_id"

// jsonCIDPrefix is how every known proxy starts an event whose keys are
// sorted (the Rust proxy and agentwire's engine): the routing id first.
var jsonCIDPrefix = []byte(`{"correlation_id":"`)

// routingIDJSON returns the top-level correlation_id of a JSON event, or
// fallback when there is none. When the id equals fallback, fallback itself
// is returned (no allocation).
func routingIDJSON(p []byte, fallback string) string {
	if bytes.HasPrefix(p, jsonCIDPrefix) {
		rest := p[len(jsonCIDPrefix):]
		if end := bytes.IndexByte(rest, '"'); end >= 0 {
			raw := rest[:end]
			if bytes.IndexByte(raw, '\\') < 0 {
				if string(raw) == fallback {
					return fallback
				}
				return string(raw)
			}
		}
	}
	top, ok, _ := scanJSONIDs(p, false)
	if !ok {
		return fallback
	}
	if top == fallback {
		return fallback
	}
	return top
}

// routingIDMsgpack is routingIDJSON for a MessagePack envelope (a map; the
// first correlation_id key wins).
func routingIDMsgpack(p []byte, fallback string) string {
	sz, o, err := msgp.ReadMapHeaderBytes(p)
	if err != nil {
		return fallback
	}
	for range sz {
		var k []byte
		if k, o, err = readMsgpackKey(o); err != nil {
			return fallback
		}
		if string(k) == cidKey {
			v, _, err := readMsgpackStr(o)
			if err != nil {
				return fallback
			}
			if string(v) == fallback {
				return fallback
			}
			return string(v)
		}
		if o, err = msgp.Skip(o); err != nil {
			return fallback
		}
	}
	return fallback
}

// routedID is routingIDMsgpack(p, meta) given the envelope's first
// correlation_id when the decoder found it (topOK): meta itself when they
// are equal (no allocation).
func routedID(p, top []byte, topOK bool, meta string) string {
	switch {
	case !topOK:
		return routingIDMsgpack(p, meta)
	case string(top) == meta:
		return meta
	}
	return string(top)
}

// bestEffortID recovers a correlation id from an event payload that failed
// to decode (or from any payload): the top-level correlation_id if it is a
// non-empty string, else metadata.correlation_id, else "". It reads as far as
// the payload is well-formed.
func bestEffortID(p []byte, msgpack bool) string {
	if !msgpack || looksLikeJSON(p) {
		top, _, meta := scanJSONIDs(p, true)
		if top != "" {
			return top
		}
		return meta
	}
	top, meta := scanMsgpackIDs(p)
	if top != "" {
		return top
	}
	return meta
}

// looksLikeJSON reports whether p starts (after JSON white space) with '{'.
// A MessagePack payload never does: 0x7b would be the positive fixint 123,
// which is not an event or a cancel.
func looksLikeJSON(p []byte) bool {
	for _, c := range p {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// JSON

// cidScanner is a minimal JSON reader: just enough to walk an object's keys
// and skip values. It never allocates except for a returned string.
type cidScanner struct {
	b []byte
	i int
}

func (s *cidScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (s *cidScanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a string at the current position and returns its raw content
// (quotes excluded) and whether it contains escapes.
func (s *cidScanner) str() (raw []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], escaped, true
		case c == '\\':
			escaped = true
			j++ // skip the escaped byte (\" in particular)
		case c < 0x20:
			return nil, false, false
		}
	}
	return nil, false, false
}

// text converts a raw string body to a Go string, unescaping if needed.
func (s *cidScanner) text(raw []byte, escaped bool) (string, bool) {
	if !escaped {
		return string(raw), true
	}
	// Rare: let encoding/json do the unescaping (quotes included).
	start := len(raw) + 1
	quoted := s.b[s.i-start-1 : s.i]
	var out string
	if json.Unmarshal(quoted, &out) != nil {
		return "", false
	}
	return out, true
}

// lit consumes a literal such as true, false, null or a number.
func (s *cidScanner) lit() bool {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		s.i++
	}
	return s.i > start
}

// skip skips one value of any kind, nested up to a fixed depth.
func (s *cidScanner) skip(depth int) bool {
	if depth > 128 {
		return false
	}
	switch s.peek() {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{':
		s.i++
		if s.peek() == '}' {
			s.i++
			return true
		}
		for {
			if _, _, ok := s.str(); !ok {
				return false
			}
			if s.peek() != ':' {
				return false
			}
			s.i++
			if !s.skip(depth + 1) {
				return false
			}
			switch s.peek() {
			case ',':
				s.i++
			case '}':
				s.i++
				return true
			default:
				return false
			}
		}
	case '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case 0:
		return false
	default:
		return s.lit()
	}
}

// objectIDs walks the object at the current position. It returns its first
// string-valued correlation_id (found reports presence), when withMeta is
// set the correlation_id of its "metadata" object, and whether the object
// was well-formed up to its closing brace (which it consumes). On malformed
// input it returns what it found before the fault.
func (s *cidScanner) objectIDs(withMeta bool) (top string, found bool, meta string, ok bool) {
	if s.peek() != '{' {
		return
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return top, found, meta, true
	}
	for {
		raw, esc, good := s.str()
		if !good {
			return
		}
		key, good := s.text(raw, esc)
		if !good || s.peek() != ':' {
			return
		}
		s.i++
		switch {
		case key == cidKey && !found && s.peek() == '"':
			raw, esc, good := s.str()
			if !good {
				return
			}
			if top, good = s.text(raw, esc); !good {
				return
			}
			found = true
		case key == "metadata" && withMeta && meta == "" && s.peek() == '{':
			m, _, _, good := s.objectIDs(false)
			meta = m
			if !good {
				return
			}
		default:
			if !s.skip(0) {
				return
			}
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return top, found, meta, true
		default:
			return
		}
	}
}

// scanJSONIDs returns the top-level correlation_id of a JSON object (found
// reports whether the key was present with a string value) and, with
// withMeta, metadata.correlation_id.
func scanJSONIDs(p []byte, withMeta bool) (top string, found bool, meta string) {
	s := cidScanner{b: p}
	top, found, meta, _ = s.objectIDs(withMeta)
	return top, found, meta
}

// ---------------------------------------------------------------------------
// MessagePack

var errNotStr = errors.New("agentwire: msgpack: expected a string")

// readMsgpackStr reads a str (or a bin, which serde accepts for strings) and
// returns its bytes without copying.
func readMsgpackStr(b []byte) (v, o []byte, err error) {
	if len(b) == 0 {
		return nil, b, msgp.ErrShortBytes
	}
	switch t := msgp.NextType(b); t {
	case msgp.StrType:
		return msgp.ReadStringZC(b)
	case msgp.BinType:
		return msgp.ReadBytesZC(b)
	}
	return nil, b, errNotStr
}

// readMsgpackKey reads a map key; non-string keys come back empty (they
// never match a field name) and are skipped.
func readMsgpackKey(b []byte) (k, o []byte, err error) {
	k, o, err = readMsgpackStr(b)
	if err == errNotStr {
		o, err = msgp.Skip(b)
		return nil, o, err
	}
	return k, o, err
}

// scanMsgpackIDs is scanJSONIDs for MessagePack. It accepts the envelope as
// a map and, for positional forms, takes the first element (a string: the
// event's correlation_id; a map or array: the request metadata).
func scanMsgpackIDs(p []byte) (top, meta string) {
	if len(p) == 0 {
		return "", ""
	}
	switch msgp.NextType(p) {
	case msgp.MapType:
		sz, o, err := msgp.ReadMapHeaderBytes(p)
		if err != nil {
			return "", ""
		}
		for range sz {
			var k []byte
			if k, o, err = readMsgpackKey(o); err != nil {
				return top, meta
			}
			switch {
			case string(k) == cidKey && top == "":
				if v, _, err := readMsgpackStr(o); err == nil {
					top = string(v)
				}
			case string(k) == "metadata" && meta == "":
				meta, _ = scanMsgpackIDs(o)
			}
			if o, err = msgp.Skip(o); err != nil {
				return top, meta
			}
		}
		return top, meta
	case msgp.ArrayType:
		sz, o, err := msgp.ReadArrayHeaderBytes(p)
		if err != nil || sz == 0 {
			return "", ""
		}
		switch msgp.NextType(o) {
		case msgp.StrType, msgp.BinType:
			v, _, err := readMsgpackStr(o)
			if err == nil {
				top = string(v)
			}
			return top, ""
		case msgp.MapType, msgp.ArrayType:
			m, _ := scanMsgpackIDs(o)
			return "", m
		}
	}
	return "", ""
}

// ---------------------------------------------------------------------------
// Cancel (0x40)

var errCancelShape = errors.New("agentwire: msgpack cancel: expected a map or an array")

// decodeCancel decodes a 0x40 payload: JSON (what every proxy sends, even
// after MessagePack was negotiated) or, when it does not look like JSON, a
// MessagePack map {correlation_id, reason, timestamp_ms} or array of the
// same three fields. The wire reason is 0-based in both forms.
func decodeCancel(p []byte, c *agentwire.Cancel) error {
	if looksLikeJSON(p) {
		return payload.DecodeCancelJSON(p, c)
	}
	return decodeCancelMsgpack(p, c)
}

func decodeCancelMsgpack(p []byte, c *agentwire.Cancel) error {
	*c = agentwire.Cancel{}
	if len(p) == 0 {
		return msgp.ErrShortBytes
	}
	field := func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			v, o, err := readMsgpackStr(b)
			if err != nil {
				return b, err
			}
			if !utf8.Valid(v) {
				return b, errors.New("agentwire: msgpack cancel: correlation_id is not valid UTF-8")
			}
			c.CorrelationID = string(v)
			return o, nil
		case 1:
			r, o, err := msgp.ReadUint8Bytes(b)
			if err != nil {
				return b, err
			}
			if r == 255 {
				return b, errors.New("agentwire: msgpack cancel: reason out of range")
			}
			c.Reason = agentwire.CancelReason(r + 1)
			return o, nil
		case 2:
			v, o, err := msgp.ReadUint64Bytes(b)
			c.TimestampMS = v
			return o, err
		}
		return msgp.Skip(b)
	}
	var seen [3]bool
	var o []byte
	switch msgp.NextType(p) {
	case msgp.MapType:
		sz, rest, err := msgp.ReadMapHeaderBytes(p)
		if err != nil {
			return err
		}
		o = rest
		for range sz {
			var k []byte
			if k, o, err = readMsgpackKey(o); err != nil {
				return err
			}
			idx := -1
			switch string(k) {
			case cidKey:
				idx = 0
			case "reason":
				idx = 1
			case "timestamp_ms":
				idx = 2
			}
			if idx >= 0 {
				seen[idx] = true
			}
			if o, err = field(idx, o); err != nil {
				return err
			}
		}
	case msgp.ArrayType:
		sz, rest, err := msgp.ReadArrayHeaderBytes(p)
		if err != nil {
			return err
		}
		if sz != 3 {
			return errors.New("agentwire: msgpack cancel: want 3 elements")
		}
		o = rest
		for i := range 3 {
			seen[i] = true
			if o, err = field(i, o); err != nil {
				return err
			}
		}
	default:
		return errCancelShape
	}
	if len(o) != 0 {
		return errors.New("agentwire: msgpack cancel: trailing bytes")
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return errors.New("agentwire: msgpack cancel: missing field")
	}
	return nil
}
