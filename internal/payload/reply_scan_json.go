package payload

import "encoding/binary"

// The JSON side of ReplyScan (see reply_scan.go).

// replyJSON is a cursor over a reply that ScanReplyJSON reads: p[i] is the
// next byte. Every method reports false when the bytes do not continue as
// expected.
type replyJSON struct {
	p []byte
	i int
}

// lit consumes s.
func (c *replyJSON) lit(s string) bool {
	if len(c.p)-c.i < len(s) || string(c.p[c.i:c.i+len(s)]) != s {
		return false
	}
	c.i += len(s)
	return true
}

// str consumes a string of plain text (replyPlain) and returns its span.
// Eight bytes at a time, then byte by byte up to the closing quote.
func (c *replyJSON) str() (replySpan, bool) {
	p := c.p
	if c.i >= len(p) || p[c.i] != '"' {
		return replySpan{}, false
	}
	start := c.i + 1
	j := start
	for j+8 <= len(p) && jsonPlainWord(binary.LittleEndian.Uint64(p[j:])) {
		j += 8
	}
	for ; j < len(p); j++ {
		if b := p[j]; !jsonStrPlain[b] {
			if b != '"' {
				return replySpan{}, false
			}
			c.i = j + 1
			return replySpan{int32(start), int32(j)}, true
		}
	}
	return replySpan{}, false
}

// uint consumes an unsigned integer of at most digits digits without a
// leading zero, not above max.
func (c *replyJSON) uint(digits int, max uint64) (uint64, bool) {
	var v uint64
	n := 0
	for c.i < len(c.p) {
		b := c.p[c.i]
		if b < '0' || b > '9' {
			break
		}
		if n == digits || (n == 1 && v == 0) {
			return 0, false
		}
		v = v*10 + uint64(b-'0')
		n++
		c.i++
	}
	return v, n > 0 && v <= max
}

// key consumes `"name":` and returns the index of name among the fields
// whose keys (quoted, with the colon) are keys, at or after from (the
// fields must come in declaration order, each at most once).
func (c *replyJSON) key(keys []string, from int) (int, bool) {
	for i := from; i < len(keys); i++ {
		if c.lit(keys[i]) {
			return i, true
		}
	}
	return 0, false
}

// replyJSONKeys returns the fields' keys as written before their values.
func replyJSONKeys(f *jsonFields) []string {
	keys := make([]string, len(f.names))
	for i, n := range f.names {
		keys[i] = `"` + n + `":`
	}
	return keys
}

// The audit and the fields after it in the full form of a reply that
// has no tags, rule ids, confidence, reason codes, other custom values,
// body mutations or WebSocket decision (AppendAgentResponseJSON's and
// serde_json's).
const (
	replyAuditFull   = `{"tags":[],"rule_ids":[],"confidence":null,"reason_codes":[],"custom":{"correlation_id":`
	replyTailDefault = `,"needs_more":false,"request_body_mutation":null,"response_body_mutation":null,"websocket_decision":null}`
)

// The canonical allow reply: the bytes every conforming agent writes for
// "allow" and nothing else, the correlation id apart (the Rust SDK's
// AgentResponse::default_allow() through serde_json, golden vector
// allow_default, and AppendAgentResponseJSON). ScanReplyJSON recognises it
// by comparing the two fixed parts before reading fields one by one.
const (
	allowJSONHead = `{"version":2,"decision":"allow","request_headers":[],"response_headers":[],"routing_metadata":{},"audit":` + replyAuditFull + `"`
	allowJSONTail = `"}}` + replyTailDefault
)

// scanAllowJSON reports whether p is the canonical allow reply with a
// plain, non-empty id, and returns the id's span.
func scanAllowJSON(p []byte) (replySpan, bool) {
	if len(p) <= len(allowJSONHead)+len(allowJSONTail) ||
		string(p[:len(allowJSONHead)]) != allowJSONHead ||
		string(p[len(p)-len(allowJSONTail):]) != allowJSONTail {
		return replySpan{}, false
	}
	id := replySpan{int32(len(allowJSONHead)), int32(len(p) - len(allowJSONTail))}
	return id, replyPlain(id.of(p))
}

var (
	replyResponseKeys = replyJSONKeys(&jsonAgentResponseFields)
	replyAuditKeys    = replyJSONKeys(&jsonAuditFields)
)

// ScanReplyJSON reads the JSON 0x20 payload p into s when it has one of
// the common shapes (see reply_scan.go: an object whose keys come in
// declaration order without whitespace; decision "allow" or a block with
// headers null; header operations with plain strings; routing_metadata
// {}; audit with empty lists, confidence null and custom holding only a
// plain correlation_id; body mutations and websocket_decision null) and
// returns the correlation id, a view of p's bytes, never empty. ok false
// means p is for DecodeAgentResponseJSON. When ok is true,
// DecodeAgentResponseJSON accepts p. It does not allocate. Safe for
// concurrent use with distinct s.
func ScanReplyJSON(p []byte, s *ReplyScan) (id []byte, ok bool) {
	c := replyJSON{p: p}
	s.version, s.decision, s.status, s.bodyValid, s.needsMore = 0, DecisionAllow, 0, false, false
	s.nReq, s.nOps = 0, 0
	s.id = replySpan{}
	if id, ok := scanAllowJSON(p); ok {
		s.version, s.id = ProtocolVersion, id
		return id.of(p), true
	}
	if !c.lit("{") {
		return nil, false
	}
	seen := uint32(0)
	next := 0
	for {
		f, ok := c.key(replyResponseKeys, next)
		if !ok {
			return nil, false
		}
		next = f + 1
		seen |= 1 << f
		switch f {
		case 0:
			v, ok := c.uint(10, 1<<32-1)
			if !ok {
				return nil, false
			}
			s.version = uint32(v)
		case 1:
			ok = c.decision(s)
		case 2:
			ok = c.headerOps(s)
			s.nReq = s.nOps
		case 3:
			ok = c.headerOps(s)
		case 4:
			ok = c.lit("{}")
		case 5:
			ok = c.audit(s)
		case 6:
			switch {
			case c.lit("true"):
				s.needsMore = true
			case c.lit("false"):
			default:
				ok = false
			}
		default: // body mutations, websocket_decision
			ok = c.lit("null")
		}
		if !ok {
			return nil, false
		}
		// After the audit, the rest all defaults and the closing brace
		// are one comparison.
		if f != 5 || !c.lit(replyTailDefault) {
			if c.lit(",") {
				continue
			}
			if !c.lit("}") {
				return nil, false
			}
		}
		if c.i != len(p) || seen&3 != 3 || s.id.end == 0 {
			return nil, false
		}
		return s.id.of(p), true
	}
}

// decision reads "allow" or {"block":{"status":N[,"body":null|"text"][,"headers":null]}}.
func (c *replyJSON) decision(s *ReplyScan) bool {
	if c.lit(`"allow"`) {
		s.decision = DecisionAllow
		return true
	}
	if !c.lit(`{"block":{"status":`) {
		return false
	}
	s.decision = DecisionBlock
	v, ok := c.uint(5, 1<<16-1)
	if !ok {
		return false
	}
	s.status = uint16(v)
	if c.lit(`,"body":`) && !c.lit("null") {
		if s.body, ok = c.str(); !ok {
			return false
		}
		s.bodyValid = true
	}
	if c.lit(`,"headers":`) && !c.lit("null") {
		return false
	}
	return c.lit("}}")
}

// headerOps reads a list of set, add and remove operations into s.ops.
func (c *replyJSON) headerOps(s *ReplyScan) bool {
	if !c.lit("[") {
		return false
	}
	if c.lit("]") {
		return true
	}
	for {
		if s.nOps == len(s.ops) {
			return false
		}
		op := &s.ops[s.nOps]
		var ok bool
		switch {
		case c.lit(`{"set":{"name":`):
			op.kind = HeaderSet
		case c.lit(`{"add":{"name":`):
			op.kind = HeaderAdd
		case c.lit(`{"remove":{"name":`):
			op.kind = HeaderRemove
			if op.name, ok = c.str(); !ok || !c.lit("}}") {
				return false
			}
			op.value = replySpan{}
		default:
			return false
		}
		if op.kind != HeaderRemove {
			if op.name, ok = c.str(); !ok || !c.lit(`,"value":`) {
				return false
			}
			if op.value, ok = c.str(); !ok || !c.lit("}}") {
				return false
			}
		}
		s.nOps++
		if c.lit("]") {
			return true
		}
		if !c.lit(",") {
			return false
		}
	}
}

// audit reads {"tags":[],"rule_ids":[],"confidence":null,"reason_codes":[],
// "custom":{"correlation_id":"id"}}, each field optional but in that order.
func (c *replyJSON) audit(s *ReplyScan) bool {
	// All five fields, as every full-form writer puts them: one comparison.
	if c.lit(replyAuditFull) {
		var ok bool
		s.id, ok = c.str()
		return ok && s.id.end > s.id.start && c.lit("}}")
	}
	if !c.lit("{") {
		return false
	}
	if c.lit("}") {
		return true
	}
	next := 0
	for {
		f, ok := c.key(replyAuditKeys, next)
		if !ok {
			return false
		}
		next = f + 1
		switch f {
		case 2:
			ok = c.lit("null")
		case 4:
			if !c.lit(`{"correlation_id":`) {
				return false
			}
			if s.id, ok = c.str(); !ok || s.id.end == s.id.start {
				return false
			}
			ok = c.lit("}")
		default:
			ok = c.lit("[]")
		}
		if !ok {
			return false
		}
		if c.lit("}") {
			return true
		}
		if !c.lit(",") {
			return false
		}
	}
}

// DecodeJSON writes the reply that ScanReplyJSON recorded of p into r,
// as DecodeAgentResponseJSON would decode p, reusing r's storage as that
// decoder does, except CorrelationID, which is left empty for the caller
// to set (the id is s's ok result). A header name or value equal to the
// one in the same position of r's header slices (their spare capacity
// included) keeps that string instead of a new copy; r's strings must
// therefore be immutable, as decoded strings are. p must be the bytes
// that were scanned. Safe for concurrent use with distinct s and r.
func (s *ReplyScan) DecodeJSON(p []byte, r *AgentResponse) {
	jsonResetAgentResponse(r)
	r.Decision.BlockHeaders, r.Decision.Params = nil, nil
	r.Version = s.version
	r.NeedsMore = s.needsMore
	d := jsonDecoder{data: p}
	if s.decision == DecisionBlock {
		r.Decision.Kind = DecisionBlock
		r.Decision.Status = s.status
		if s.bodyValid {
			r.Decision.Body = Opt[string]{Valid: true, Value: d.makeString(s.body.of(p))}
		}
	}
	r.RequestHeaders = d.replyOps(r.RequestHeaders, s.ops[:s.nReq], p)
	r.ResponseHeaders = d.replyOps(r.ResponseHeaders, s.ops[s.nReq:s.nOps], p)
	d.releaseArena()
}

// replyOps writes src into dst[:0] (see DecodeJSON).
func (d *jsonDecoder) replyOps(dst []HeaderOp, src []replyOp, p []byte) []HeaderOp {
	ops := dst[:0]
	for i := range src {
		o := &src[i]
		var old HeaderOp
		if i < cap(ops) {
			old = ops[:i+1][i]
		}
		op := HeaderOp{Kind: o.kind, Name: d.reuseString(o.name.of(p), old.Name)}
		if o.kind != HeaderRemove {
			op.Value = d.reuseString(o.value.of(p), old.Value)
		}
		ops = append(ops, op)
	}
	return ops
}

// reuseString returns old when it equals b, otherwise a copy of b.
func (d *jsonDecoder) reuseString(b []byte, old string) string {
	if string(b) == old {
		return old
	}
	return d.makeString(b)
}
