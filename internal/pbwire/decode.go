package pbwire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
)

// AgentToProxy oneof field numbers.
const (
	A2PHandshake    = 1
	A2PResponse     = 2
	A2PHealth       = 3
	A2PMetrics      = 4
	A2PConfigUpdate = 5
	A2PFlowControl  = 6
	A2PPong         = 7
	A2PLog          = 8
)

// Decoding errors. They carry no position: callers only need to know that
// the message is malformed.
var (
	ErrTruncated     = errors.New("agentwire: protobuf: unexpected end of message")
	ErrVarint        = errors.New("agentwire: protobuf: varint overflow")
	ErrLength        = errors.New("agentwire: protobuf: invalid length")
	ErrTag           = errors.New("agentwire: protobuf: illegal tag")
	ErrWireType      = errors.New("agentwire: protobuf: wrong wire type")
	ErrGroup         = errors.New("agentwire: protobuf: unbalanced group")
	ErrStatusRange   = pbconv.ErrStatusRange
	errMultipleOneof = errors.New("agentwire: protobuf: oneof member repeated")
)

// ---------------------------------------------------------------------------
// primitives, following the generated vtprotobuf decoder's rules exactly

// varint reads a base-128 varint at b[i:]. Bits past 64 are dropped; more
// than ten bytes is an overflow.
func varint(b []byte, i int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, i, ErrVarint
		}
		if i >= len(b) {
			return 0, i, ErrTruncated
		}
		c := b[i]
		i++
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return v, i, nil
		}
	}
}

// tag reads a field tag: the field number is the low 32 bits of the
// shifted key (as int32), wire type 4 (end group) and numbers <= 0 are
// rejected.
func tag(b []byte, i int) (num int32, wt int, next int, err error) {
	v, next, err := varint(b, i)
	if err != nil {
		return 0, 0, next, err
	}
	num, wt = int32(v>>3), int(v&7)
	if wt == 4 || num <= 0 {
		return 0, 0, next, ErrTag
	}
	return num, wt, next, nil
}

// span reads a length prefix at b[i:] and returns the [start, end) of the
// bytes it announces, bounded by len(b).
func span(b []byte, i int) (int, int, error) {
	v, i, err := varint(b, i)
	if err != nil {
		return 0, 0, err
	}
	n := int(v)
	if n < 0 {
		return 0, 0, ErrLength
	}
	end := i + n
	if end < 0 {
		return 0, 0, ErrLength
	}
	if end > len(b) {
		return 0, 0, ErrTruncated
	}
	return i, end, nil
}

// skipLen returns the length of the field starting at b[0] (tag included),
// groups included, without bounds checks on fixed-size fields (the caller
// checks the total).
func skipLen(b []byte) (int, error) {
	i, depth := 0, 0
	for i < len(b) {
		key, next, err := varint(b, i)
		if err != nil {
			return 0, err
		}
		i = next
		switch key & 7 {
		case 0:
			for shift := uint(0); ; shift += 7 {
				if shift >= 64 {
					return 0, ErrVarint
				}
				if i >= len(b) {
					return 0, ErrTruncated
				}
				i++
				if b[i-1] < 0x80 {
					break
				}
			}
		case 1:
			i += 8
		case 2:
			v, next, err := varint(b, i)
			if err != nil {
				return 0, err
			}
			n := int(v)
			if n < 0 {
				return 0, ErrLength
			}
			i = next + n
		case 3:
			depth++
		case 4:
			if depth == 0 {
				return 0, ErrGroup
			}
			depth--
		case 5:
			i += 4
		default:
			return 0, ErrWireType
		}
		if i < 0 {
			return 0, ErrLength
		}
		if depth == 0 {
			return i, nil
		}
	}
	return 0, ErrTruncated
}

// skip steps over the unknown field whose tag starts at b[start] and must
// end by limit.
func skip(b []byte, start, limit int) (int, error) {
	n, err := skipLen(b[start:])
	if err != nil {
		return 0, err
	}
	end := start + n
	if n < 0 || end < 0 {
		return 0, ErrLength
	}
	if end > limit {
		return 0, ErrTruncated
	}
	return end, nil
}

// str reads a length-delimited field at b[i:] (wire type not checked here).
func str(b []byte, i int) ([]byte, int, error) {
	s, e, err := span(b, i)
	if err != nil {
		return nil, i, err
	}
	return b[s:e], e, nil
}

// ---------------------------------------------------------------------------
// envelope

// ScanAgentToProxy walks an AgentToProxy message and returns the field
// number and body of its oneof member. It fails when the message is
// malformed or names more than one oneof member (callers fall back to the
// generated decoder for that unusual case, whose merge rules apply).
// kind is 0 when the message holds no member. body aliases b.
func ScanAgentToProxy(b []byte) (kind int, body []byte, err error) {
	i := 0
	for i < len(b) {
		start := i
		num, wt, next, err := tag(b, i)
		if err != nil {
			return 0, nil, err
		}
		i = next
		if num >= A2PHandshake && num <= A2PLog {
			if wt != 2 {
				return 0, nil, ErrWireType
			}
			s, e, err := span(b, i)
			if err != nil {
				return 0, nil, err
			}
			if kind != 0 {
				return 0, nil, errMultipleOneof
			}
			kind, body, i = int(num), b[s:e], e
			continue
		}
		if i, err = skip(b, start, len(b)); err != nil {
			return 0, nil, err
		}
	}
	return kind, body, nil
}

// IsMultipleOneof reports whether err came from ScanAgentToProxy finding
// more than one oneof member.
func IsMultipleOneof(err error) bool { return err == errMultipleOneof }

// ---------------------------------------------------------------------------
// AgentResponse

// ResponseCorrelationID returns the correlation_id of an AgentResponse body
// (the last one when repeated) as a view of body, after checking that the
// body's top-level structure is well formed.
func ResponseCorrelationID(body []byte) ([]byte, error) {
	var cid []byte
	i := 0
	for i < len(body) {
		start := i
		num, wt, next, err := tag(body, i)
		if err != nil {
			return nil, err
		}
		i = next
		switch {
		case num == 1:
			if wt != 2 {
				return nil, ErrWireType
			}
			if cid, i, err = str(body, i); err != nil {
				return nil, err
			}
		case num >= 2 && num <= 5, num >= 10 && num <= 12:
			if wt != 2 {
				return nil, ErrWireType
			}
			if _, i, err = str(body, i); err != nil {
				return nil, err
			}
		case num == 13 || num == 14:
			if wt != 0 {
				return nil, ErrWireType
			}
			if _, i, err = varint(body, i); err != nil {
				return nil, err
			}
		default:
			if i, err = skip(body, start, len(body)); err != nil {
				return nil, err
			}
		}
	}
	return cid, nil
}

// DecodeAgentResponse decodes an AgentResponse body into dst, which must be
// reset (see agentwire.AgentResponse.Reset). It sets everything except
// CorrelationID (read it with ResponseCorrelationID); Version is set to 2.
// The result equals pbconv.AgentResponseFromPB applied to the generated
// decoder's output, and errors are returned for the same inputs.
//
// The strings are copies of body's bytes, except that a header op's name
// or value equal to the one the op at the same position held before the
// Reset (still in the slice's capacity) is that old string itself: agents
// tend to answer every request with the same headers, which then cost no
// allocation. Those old strings must be immutable (as the ones this
// function made are; not views of a buffer that changes).
func DecodeAgentResponse(body []byte, dst *agentwire.AgentResponse) error {
	var status uint32
	dst.Version = agentwire.ProtocolVersion
	i := 0
	for i < len(body) {
		start := i
		num, wt, next, err := tag(body, i)
		if err != nil {
			return err
		}
		i = next
		switch num {
		case 1:
			if wt != 2 {
				return ErrWireType
			}
			if _, i, err = str(body, i); err != nil {
				return err
			}
		case 2, 3, 4, 5:
			if wt != 2 {
				return ErrWireType
			}
			var m []byte
			if m, i, err = str(body, i); err != nil {
				return err
			}
			if err = decodeDecision(m, num, &dst.Decision, &status); err != nil {
				return err
			}
		case 10, 11:
			if wt != 2 {
				return ErrWireType
			}
			var m []byte
			if m, i, err = str(body, i); err != nil {
				return err
			}
			ops := dst.RequestHeaders
			if num == 11 {
				ops = dst.ResponseHeaders
			}
			var prev agentwire.HeaderOp
			if n := len(ops); n < cap(ops) {
				prev = ops[:n+1][n]
			}
			var op agentwire.HeaderOp
			var ok bool
			if op, ok, err = decodeHeaderOp(m, &prev); err != nil {
				return err
			}
			if ok {
				if num == 10 {
					dst.RequestHeaders = append(dst.RequestHeaders, op)
				} else {
					dst.ResponseHeaders = append(dst.ResponseHeaders, op)
				}
			}
		case 12:
			if wt != 2 {
				return ErrWireType
			}
			var m []byte
			if m, i, err = str(body, i); err != nil {
				return err
			}
			if err = decodeAudit(m, &dst.Audit); err != nil {
				return err
			}
		case 13:
			if wt != 0 {
				return ErrWireType
			}
			var v uint64
			if v, i, err = varint(body, i); err != nil {
				return err
			}
			dst.ProcessingTimeMS = agentwire.Some(v)
		case 14:
			if wt != 0 {
				return ErrWireType
			}
			var v uint64
			if v, i, err = varint(body, i); err != nil {
				return err
			}
			dst.NeedsMore = v != 0
		default:
			if i, err = skip(body, start, len(body)); err != nil {
				return err
			}
		}
	}
	switch dst.Decision.Kind {
	case agentwire.DecisionBlock, agentwire.DecisionRedirect:
		if status > pbconv.MaxStatus {
			return ErrStatusRange
		}
		dst.Decision.Status = uint16(status)
	}
	return nil
}

// decisionKind maps an AgentResponse oneof field number to the payload kind.
func decisionKind(num int32) agentwire.DecisionKind {
	switch num {
	case 3:
		return agentwire.DecisionBlock
	case 4:
		return agentwire.DecisionRedirect
	case 5:
		return agentwire.DecisionChallenge
	}
	return agentwire.DecisionAllow
}

// decodeDecision merges one decision message into d: the same variant as
// before merges field by field, another variant replaces it.
func decodeDecision(m []byte, num int32, d *agentwire.Decision, status *uint32) error {
	kind := decisionKind(num)
	if d.Kind != kind {
		*d = agentwire.Decision{Kind: kind}
		*status = 0
	}
	i := 0
	for i < len(m) {
		start := i
		fnum, wt, next, err := tag(m, i)
		if err != nil {
			return err
		}
		i = next
		switch {
		case kind == agentwire.DecisionBlock && fnum == 1,
			kind == agentwire.DecisionRedirect && fnum == 2:
			if wt != 0 {
				return ErrWireType
			}
			var v uint64
			if v, i, err = varint(m, i); err != nil {
				return err
			}
			*status = uint32(v)
		case kind == agentwire.DecisionBlock && fnum == 2:
			if wt != 2 {
				return ErrWireType
			}
			var s []byte
			if s, i, err = str(m, i); err != nil {
				return err
			}
			d.Body = agentwire.Some(string(s))
		case kind == agentwire.DecisionBlock && fnum == 3:
			if wt != 2 {
				return ErrWireType
			}
			var h []byte
			if h, i, err = str(m, i); err != nil {
				return err
			}
			var name, value string
			if name, value, err = decodeHeader(h); err != nil {
				return err
			}
			if d.BlockHeaders == nil {
				d.BlockHeaders = make(map[string]string)
			}
			d.BlockHeaders[name] = value
		case kind == agentwire.DecisionRedirect && fnum == 1:
			if wt != 2 {
				return ErrWireType
			}
			var s []byte
			if s, i, err = str(m, i); err != nil {
				return err
			}
			d.URL = string(s)
		case kind == agentwire.DecisionChallenge && fnum == 1:
			if wt != 2 {
				return ErrWireType
			}
			var s []byte
			if s, i, err = str(m, i); err != nil {
				return err
			}
			d.ChallengeType = string(s)
		case kind == agentwire.DecisionChallenge && fnum == 2:
			if wt != 2 {
				return ErrWireType
			}
			var k, v string
			if k, v, i, err = mapEntry(m, i); err != nil {
				return err
			}
			if d.Params == nil {
				d.Params = make(map[string]string)
			}
			d.Params[k] = v
		default:
			if i, err = skip(m, start, len(m)); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeHeader decodes a Header message.
func decodeHeader(m []byte) (name, value string, err error) {
	i := 0
	for i < len(m) {
		start := i
		num, wt, next, err := tag(m, i)
		if err != nil {
			return "", "", err
		}
		i = next
		switch num {
		case 1, 2:
			if wt != 2 {
				return "", "", ErrWireType
			}
			var s []byte
			if s, i, err = str(m, i); err != nil {
				return "", "", err
			}
			if num == 1 {
				name = string(s)
			} else {
				value = string(s)
			}
		default:
			if i, err = skip(m, start, len(m)); err != nil {
				return "", "", err
			}
		}
	}
	return name, value, nil
}

// decodeHeaderOp decodes a HeaderOp message; ok is false when no operation
// is set (such an op is dropped).
//
// Strings equal to prev's name or value are prev's (see DecodeAgentResponse).
func decodeHeaderOp(m []byte, prev *agentwire.HeaderOp) (op agentwire.HeaderOp, ok bool, err error) {
	i := 0
	for i < len(m) {
		start := i
		num, wt, next, err := tag(m, i)
		if err != nil {
			return op, false, err
		}
		i = next
		switch num {
		case 1, 2:
			if wt != 2 {
				return op, false, ErrWireType
			}
			var h []byte
			if h, i, err = str(m, i); err != nil {
				return op, false, err
			}
			kind := agentwire.HeaderSet
			if num == 2 {
				kind = agentwire.HeaderAdd
			}
			if !ok || op.Kind != kind {
				op = agentwire.HeaderOp{Kind: kind}
			}
			ok = true
			if err = mergeHeader(h, &op.Name, &op.Value, prev); err != nil {
				return op, false, err
			}
		case 3:
			if wt != 2 {
				return op, false, ErrWireType
			}
			var s []byte
			if s, i, err = str(m, i); err != nil {
				return op, false, err
			}
			op, ok = agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: reuseString(s, prev.Name)}, true
		default:
			if i, err = skip(m, start, len(m)); err != nil {
				return op, false, err
			}
		}
	}
	return op, ok, nil
}

// mergeHeader decodes a Header message over name and value (fields absent
// from m keep their values: protobuf merge semantics), reusing prev's
// strings where equal.
func mergeHeader(m []byte, name, value *string, prev *agentwire.HeaderOp) error {
	i := 0
	for i < len(m) {
		start := i
		num, wt, next, err := tag(m, i)
		if err != nil {
			return err
		}
		i = next
		switch num {
		case 1, 2:
			if wt != 2 {
				return ErrWireType
			}
			var s []byte
			if s, i, err = str(m, i); err != nil {
				return err
			}
			if num == 1 {
				*name = reuseString(s, prev.Name)
			} else {
				*value = reuseString(s, prev.Value)
			}
		default:
			if i, err = skip(m, start, len(m)); err != nil {
				return err
			}
		}
	}
	return nil
}

// reuseString returns old when b holds the same bytes, else a copy of b.
func reuseString(b []byte, old string) string {
	if string(b) == old {
		return old
	}
	return string(b)
}

// mapEntry decodes a map<string,string> entry whose length prefix starts at
// m[i]. As in the generated decoder, key and value fields are read by
// number alone, their bounds are checked against the enclosing message
// (not the entry), and the entry's own length decides where decoding goes
// on.
func mapEntry(m []byte, i int) (key, value string, next int, err error) {
	s, end, err := span(m, i)
	if err != nil {
		return "", "", i, err
	}
	j := s
	for j < end {
		entryStart := j
		v, n, err := varint(m, j)
		if err != nil {
			return "", "", i, err
		}
		j = n
		switch int32(v >> 3) {
		case 1, 2:
			var b []byte
			if b, j, err = str(m, j); err != nil {
				return "", "", i, err
			}
			if int32(v>>3) == 1 {
				key = string(b)
			} else {
				value = string(b)
			}
		default:
			if j, err = skip(m, entryStart, end); err != nil {
				return "", "", i, err
			}
		}
	}
	return key, value, end, nil
}

// decodeAudit merges an AuditMetadata message into a.
func decodeAudit(m []byte, a *agentwire.AuditMetadata) error {
	i := 0
	for i < len(m) {
		start := i
		num, wt, next, err := tag(m, i)
		if err != nil {
			return err
		}
		i = next
		switch num {
		case 1, 2, 4:
			if wt != 2 {
				return ErrWireType
			}
			var s []byte
			if s, i, err = str(m, i); err != nil {
				return err
			}
			switch num {
			case 1:
				a.Tags = append(a.Tags, string(s))
			case 2:
				a.RuleIDs = append(a.RuleIDs, string(s))
			default:
				a.ReasonCodes = append(a.ReasonCodes, string(s))
			}
		case 3:
			if wt != 5 {
				return ErrWireType
			}
			if i+4 > len(m) {
				return ErrTruncated
			}
			a.Confidence = agentwire.Some(math.Float32frombits(binary.LittleEndian.Uint32(m[i:])))
			i += 4
		case 5:
			if wt != 2 {
				return ErrWireType
			}
			var k, v string
			if k, v, i, err = mapEntry(m, i); err != nil {
				return err
			}
			if k == pbconv.CorrelationIDKey {
				if a.Custom != nil {
					delete(a.Custom, k)
				}
				continue
			}
			if a.Custom == nil {
				a.Custom = make(map[string]json.RawMessage)
			}
			a.Custom[k] = pbconv.CustomValue(v)
		default:
			if i, err = skip(m, start, len(m)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Pong

// DecodePong decodes a Pong body.
func DecodePong(body []byte) (agentwire.Pong, error) {
	var p agentwire.Pong
	i := 0
	for i < len(body) {
		start := i
		num, wt, next, err := tag(body, i)
		if err != nil {
			return p, err
		}
		i = next
		switch num {
		case 1, 2, 3:
			if wt != 0 {
				return p, ErrWireType
			}
			var v uint64
			if v, i, err = varint(body, i); err != nil {
				return p, err
			}
			switch num {
			case 1:
				p.Sequence = v
			case 2:
				p.PingTimestampMS = v
			default:
				p.TimestampMS = v
			}
		default:
			if i, err = skip(body, start, len(body)); err != nil {
				return p, err
			}
		}
	}
	return p, nil
}
