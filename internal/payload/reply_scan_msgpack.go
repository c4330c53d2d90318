package payload

// The MessagePack side of ReplyScan (see reply_scan.go).

// replyMP is a cursor over a reply that ScanReplyMsgpack reads: p[i] is
// the next byte. Every method reports false when the bytes do not
// continue as expected.
type replyMP struct {
	p []byte
	i int
}

// byte1 consumes the byte b.
func (c *replyMP) byte1(b byte) bool {
	if c.i < len(c.p) && c.p[c.i] == b {
		c.i++
		return true
	}
	return false
}

// lit consumes s.
func (c *replyMP) lit(s string) bool {
	if len(c.p)-c.i < len(s) || string(c.p[c.i:c.i+len(s)]) != s {
		return false
	}
	c.i += len(s)
	return true
}

// fix consumes a fixmap (kind 0x80) or fixarray (kind 0x90) header and
// returns its count.
func (c *replyMP) fix(kind byte) (int, bool) {
	if c.i < len(c.p) && c.p[c.i]&0xf0 == kind {
		n := int(c.p[c.i] & 0x0f)
		c.i++
		return n, true
	}
	return 0, false
}

// str consumes a fixstr or str8 of valid UTF-8 and returns its span.
func (c *replyMP) str() (replySpan, bool) {
	if c.i >= len(c.p) {
		return replySpan{}, false
	}
	var start, n int
	switch b := c.p[c.i]; {
	case b&0xe0 == 0xa0:
		start, n = c.i+1, int(b&0x1f)
	case b == 0xd9 && c.i+1 < len(c.p):
		start, n = c.i+2, int(c.p[c.i+1])
	default:
		return replySpan{}, false
	}
	end := start + n
	if end > len(c.p) || !mpValidUTF8(c.p[start:end]) {
		return replySpan{}, false
	}
	c.i = end
	return replySpan{int32(start), int32(end)}, true
}

// uint consumes a positive fixint, uint8, uint16 or uint32 not above max.
func (c *replyMP) uint(max uint64) (uint64, bool) {
	p, i := c.p, c.i
	if i >= len(p) {
		return 0, false
	}
	var v uint64
	switch b := p[i]; {
	case b <= 0x7f:
		v, c.i = uint64(b), i+1
	case b == 0xcc && i+2 <= len(p):
		v, c.i = uint64(p[i+1]), i+2
	case b == 0xcd && i+3 <= len(p):
		v, c.i = uint64(p[i+1])<<8|uint64(p[i+2]), i+3
	case b == 0xce && i+5 <= len(p):
		v, c.i = uint64(p[i+1])<<24|uint64(p[i+2])<<16|uint64(p[i+3])<<8|uint64(p[i+4]), i+5
	default:
		return 0, false
	}
	return v, v <= max
}

// key consumes a fixstr map key and returns the index of the field it
// names among fields at or after from (declaration order, each once).
func (c *replyMP) key(fields []string, from int) (int, bool) {
	if c.i >= len(c.p) || c.p[c.i]&0xe0 != 0xa0 {
		return 0, false
	}
	n := int(c.p[c.i] & 0x1f)
	if c.i+1+n > len(c.p) {
		return 0, false
	}
	k := c.p[c.i+1 : c.i+1+n]
	for i := from; i < len(fields); i++ {
		if fields[i] == string(k) {
			c.i += 1 + n
			return i, true
		}
	}
	return 0, false
}

// ScanReplyMsgpack reads the MessagePack 0x20 payload p into s when it has
// one of the common shapes (see reply_scan.go) in agentwire's map form
// (fixmap, fixstr keys in declaration order) or the Rust SDK's positional
// form (a fixarray of at least the six fields up to audit), with every
// string a fixstr or str8 of valid UTF-8: decision "allow" or a block with
// headers nil or absent; set/add/remove header operations; routing_metadata
// empty; audit with empty lists, confidence nil and custom holding only a
// correlation_id string; body mutations and websocket_decision nil. It
// returns the correlation id, a view of p's bytes, never empty. ok false
// means p is for DecodeAgentResponseMsgpack. When ok is true,
// DecodeAgentResponseMsgpack accepts p. It does not allocate. Safe for
// concurrent use with distinct s.
func ScanReplyMsgpack(p []byte, s *ReplyScan) (id []byte, ok bool) {
	c := replyMP{p: p}
	s.version, s.decision, s.status, s.bodyValid, s.needsMore = 0, DecisionAllow, 0, false, false
	s.nReq, s.nOps = 0, 0
	s.id = replySpan{}
	if n, ok := c.fix(0x80); ok {
		seen, next := uint32(0), 0
		for range n {
			f, ok := c.key(mpAgentResponse.fields, next)
			if !ok || !c.field(s, f) {
				return nil, false
			}
			seen |= 1 << f
			next = f + 1
		}
		if seen&3 != 3 {
			return nil, false
		}
	} else if n, ok := c.fix(0x90); ok && n >= 6 && n <= len(mpAgentResponse.fields) {
		for f := range n {
			if !c.field(s, f) {
				return nil, false
			}
		}
	} else {
		return nil, false
	}
	if c.i != len(p) || s.id.end == 0 {
		return nil, false
	}
	return s.id.of(p), true
}

// field reads the value of AgentResponse field f.
func (c *replyMP) field(s *ReplyScan, f int) bool {
	switch f {
	case 0:
		v, ok := c.uint(1<<32 - 1)
		s.version = uint32(v)
		return ok
	case 1:
		return c.decision(s)
	case 2:
		ok := c.headerOps(s)
		s.nReq = s.nOps
		return ok
	case 3:
		return c.headerOps(s)
	case 4:
		return c.byte1(0x80)
	case 5:
		return c.audit(s)
	case 6:
		if c.byte1(0xc3) {
			s.needsMore = true
			return true
		}
		return c.byte1(0xc2)
	default:
		return c.byte1(0xc0)
	}
}

// decision reads "allow", or {"block": {status[, body][, headers]}} or
// {"block": [status, body, headers]} with headers nil.
func (c *replyMP) decision(s *ReplyScan) bool {
	if c.lit("\xa5allow") {
		s.decision = DecisionAllow
		return true
	}
	if !c.lit("\x81\xa5block") {
		return false
	}
	s.decision = DecisionBlock
	field := func(f int) bool {
		switch f {
		case 0:
			v, ok := c.uint(1<<16 - 1)
			s.status = uint16(v)
			return ok
		case 1:
			if c.byte1(0xc0) {
				return true
			}
			var ok bool
			s.body, ok = c.str()
			s.bodyValid = ok
			return ok
		default:
			return c.byte1(0xc0)
		}
	}
	if n, ok := c.fix(0x80); ok {
		next := 0
		for k := range n {
			f, ok := c.key(mpBlock.fields, next)
			if !ok || (k == 0 && f != 0) || !field(f) {
				return false
			}
			next = f + 1
		}
		return n > 0
	}
	if n, ok := c.fix(0x90); ok && n == 3 {
		return field(0) && field(1) && field(2)
	}
	return false
}

// headerOps reads a list of set, add and remove operations into s.ops,
// each in map form ({"set": {"name": n, "value": v}}) or positional
// ({"set": [n, v]}).
func (c *replyMP) headerOps(s *ReplyScan) bool {
	n, ok := c.fix(0x90)
	if !ok || s.nOps+n > len(s.ops) {
		return false
	}
	for range n {
		op := &s.ops[s.nOps]
		switch {
		case c.lit("\x81\xa3set"):
			op.kind = HeaderSet
		case c.lit("\x81\xa3add"):
			op.kind = HeaderAdd
		case c.lit("\x81\xa6remove"):
			op.kind = HeaderRemove
		default:
			return false
		}
		op.value = replySpan{}
		var ok bool
		if op.kind == HeaderRemove {
			if !c.lit("\x81\xa4name") && !c.lit("\x91") {
				return false
			}
			if op.name, ok = c.str(); !ok {
				return false
			}
		} else {
			positional := c.lit("\x92")
			if !positional && !c.lit("\x82\xa4name") {
				return false
			}
			if op.name, ok = c.str(); !ok {
				return false
			}
			if !positional && !c.lit("\xa5value") {
				return false
			}
			if op.value, ok = c.str(); !ok {
				return false
			}
		}
		s.nOps++
	}
	return true
}

// audit reads {tags: [], rule_ids: [], confidence: nil, reason_codes: [],
// custom: {correlation_id: id}} with each field optional but in that
// order, or the same five fields positionally.
func (c *replyMP) audit(s *ReplyScan) bool {
	field := func(f int) bool {
		switch f {
		case 2:
			return c.byte1(0xc0)
		case 4:
			if !c.lit("\x81\xaecorrelation_id") {
				return false
			}
			var ok bool
			s.id, ok = c.str()
			return ok && s.id.end > s.id.start
		default:
			return c.byte1(0x90)
		}
	}
	if n, ok := c.fix(0x80); ok {
		next := 0
		for range n {
			f, ok := c.key(mpAudit.fields, next)
			if !ok || !field(f) {
				return false
			}
			next = f + 1
		}
		return true
	}
	if n, ok := c.fix(0x90); ok && n == len(mpAudit.fields) {
		for f := range n {
			if !field(f) {
				return false
			}
		}
		return true
	}
	return false
}

// DecodeMsgpack writes the reply that ScanReplyMsgpack recorded of p into
// r, as DecodeAgentResponseMsgpack would decode p, reusing r's storage as
// that decoder does (equal strings included), except CorrelationID, which
// is left for the caller to set (the id is s's ok result). p must be the
// bytes that were scanned. Safe for concurrent use with distinct s and r.
func (s *ReplyScan) DecodeMsgpack(p []byte, r *AgentResponse) {
	r.Version = s.version
	if s.decision == DecisionBlock {
		body := r.Decision.Body.Value
		r.Decision = Decision{Kind: DecisionBlock, Status: s.status}
		if s.bodyValid {
			mpSetString(&body, s.body.of(p))
			r.Decision.Body = Opt[string]{Valid: true, Value: body}
		}
	} else {
		r.Decision = Decision{Kind: DecisionAllow}
	}
	r.RequestHeaders = mpReplyOps(r.RequestHeaders, s.ops[:s.nReq], p)
	r.ResponseHeaders = mpReplyOps(r.ResponseHeaders, s.ops[s.nReq:s.nOps], p)
	clear(r.RoutingMetadata)
	mpResetAudit(&r.Audit)
	r.NeedsMore = s.needsMore
	r.RequestBodyMutation = Opt[BodyMutation]{Value: BodyMutation{Data: r.RequestBodyMutation.Value.Data[:0]}}
	r.ResponseBodyMutation = Opt[BodyMutation]{Value: BodyMutation{Data: r.ResponseBodyMutation.Value.Data[:0]}}
	r.WebSocketDecision = Opt[WebSocketDecision]{}
	r.ProcessingTimeMS = Opt[uint64]{}
}

// mpReplyOps writes src into dst[:0], keeping the strings of the elements
// it overwrites (spare capacity included) when they are equal.
func mpReplyOps(dst []HeaderOp, src []replyOp, p []byte) []HeaderOp {
	ops := dst[:0]
	for i := range src {
		o := &src[i]
		if len(ops) < cap(ops) {
			ops = ops[:len(ops)+1]
		} else {
			ops = append(ops, HeaderOp{})
		}
		op := &ops[len(ops)-1]
		op.Kind = o.kind
		mpSetString(&op.Name, o.name.of(p))
		if o.kind == HeaderRemove {
			op.Value = ""
		} else {
			mpSetString(&op.Value, o.value.of(p))
		}
	}
	return ops
}
