package payload

import (
	"encoding/json"

	"github.com/tinylib/msgp/msgp"
)

// AgentResponse encoder and decoder (agent → proxy, frame type 0x20).

var (
	mpDecisionNames  = []string{"allow", "block", "redirect", "challenge"}
	mpHeaderOpNames  = []string{"set", "add", "remove"}
	mpWSDecisionName = []string{"allow", "drop", "close"}

	mpAgentResponse = mpNewStruct("agent_response", 2, "version!", "decision!",
		"request_headers", "response_headers", "routing_metadata", "audit", "needs_more",
		"request_body_mutation", "response_body_mutation", "websocket_decision")
	mpBlock     = mpNewStruct("block", 3, "status!", "body", "headers")
	mpRedirect  = mpNewStruct("redirect", 2, "url!", "status!")
	mpChallenge = mpNewStruct("challenge", 2, "challenge_type!", "params!")
	mpSetOp     = mpNewStruct("header_op", 2, "name!", "value!")
	mpRemoveOp  = mpNewStruct("header_op", 1, "name!")
	mpAudit     = mpNewStruct("audit", 3, "tags", "rule_ids", "confidence", "reason_codes", "custom")
	mpMutation  = mpNewStruct("body_mutation", 1, "data", "chunk_index")
	mpWSClose   = mpNewStruct("close", 2, "code!", "reason!")
)

// AppendAgentResponseMsgpack appends r as a MessagePack map with field
// names: version (ProtocolVersion when r.Version is 0), decision, the
// non-default optional fields, and audit with custom.correlation_id =
// r.CorrelationID (any "correlation_id" key in r.Audit.Custom is replaced).
// Body mutation data is a base64 str, the form a Rust proxy reads.
// ProcessingTimeMS is not carried (gRPC only). It fails if an audit.custom
// value is not valid JSON or an enum kind is out of range; b is then
// returned unchanged.
func AppendAgentResponseMsgpack(b []byte, r *AgentResponse) ([]byte, error) {
	return mpAppendAgentResponse(b, r, false)
}

// AppendAgentResponseMsgpackRaw is AppendAgentResponseMsgpack with body
// mutation data as a bin of raw bytes (agentwire peers only).
func AppendAgentResponseMsgpackRaw(b []byte, r *AgentResponse) ([]byte, error) {
	return mpAppendAgentResponse(b, r, true)
}

func mpAppendAgentResponse(b []byte, r *AgentResponse, raw bool) ([]byte, error) {
	start := len(b)
	n := uint32(3) // version, decision, audit
	if len(r.RequestHeaders) > 0 {
		n++
	}
	if len(r.ResponseHeaders) > 0 {
		n++
	}
	if len(r.RoutingMetadata) > 0 {
		n++
	}
	if r.NeedsMore {
		n++
	}
	if r.RequestBodyMutation.Valid {
		n++
	}
	if r.ResponseBodyMutation.Valid {
		n++
	}
	if r.WebSocketDecision.Valid {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	b = mpAppendKey(b, "version")
	v := r.Version
	if v == 0 {
		v = ProtocolVersion
	}
	b = msgp.AppendUint32(b, v)
	if r.Decision.Kind > DecisionChallenge {
		return b[:start], mpWrap("decision", errMpKind)
	}
	b = mpAppendKey(b, "decision")
	b = mpAppendDecision(b, &r.Decision)
	if len(r.RequestHeaders) > 0 {
		b = mpAppendKey(b, "request_headers")
		var ok bool
		if b, ok = mpAppendHeaderOps(b, r.RequestHeaders); !ok {
			return b[:start], mpWrap("request_headers", errMpKind)
		}
	}
	if len(r.ResponseHeaders) > 0 {
		b = mpAppendKey(b, "response_headers")
		var ok bool
		if b, ok = mpAppendHeaderOps(b, r.ResponseHeaders); !ok {
			return b[:start], mpWrap("response_headers", errMpKind)
		}
	}
	if len(r.RoutingMetadata) > 0 {
		b = mpAppendKey(b, "routing_metadata")
		b = mpAppendStringMap(b, r.RoutingMetadata)
	}
	b = mpAppendKey(b, "audit")
	b, err := mpAppendAudit(b, &r.Audit, r.CorrelationID)
	if err != nil {
		return b[:start], err
	}
	if r.NeedsMore {
		b = mpAppendKey(b, "needs_more")
		b = msgp.AppendBool(b, true)
	}
	if r.RequestBodyMutation.Valid {
		if r.RequestBodyMutation.Value.Action > MutationReplace {
			return b[:start], mpWrap("request_body_mutation", errMpKind)
		}
		b = mpAppendKey(b, "request_body_mutation")
		b = mpAppendMutation(b, &r.RequestBodyMutation.Value, raw)
	}
	if r.ResponseBodyMutation.Valid {
		if r.ResponseBodyMutation.Value.Action > MutationReplace {
			return b[:start], mpWrap("response_body_mutation", errMpKind)
		}
		b = mpAppendKey(b, "response_body_mutation")
		b = mpAppendMutation(b, &r.ResponseBodyMutation.Value, raw)
	}
	if r.WebSocketDecision.Valid {
		if r.WebSocketDecision.Value.Kind > WebSocketClose {
			return b[:start], mpWrap("websocket_decision", errMpKind)
		}
		b = mpAppendKey(b, "websocket_decision")
		b = mpAppendWSDecision(b, &r.WebSocketDecision.Value)
	}
	return b, nil
}

func mpAppendDecision(b []byte, d *Decision) []byte {
	switch d.Kind {
	case DecisionBlock:
		b = msgp.AppendMapHeader(b, 1)
		b = mpAppendKey(b, "block")
		n := uint32(1)
		if d.Body.Valid {
			n++
		}
		if d.BlockHeaders != nil {
			n++
		}
		b = msgp.AppendMapHeader(b, n)
		b = mpAppendKey(b, "status")
		b = msgp.AppendUint16(b, d.Status)
		if d.Body.Valid {
			b = mpAppendKey(b, "body")
			b = mpAppendStr(b, d.Body.Value)
		}
		if d.BlockHeaders != nil {
			b = mpAppendKey(b, "headers")
			b = mpAppendStringMap(b, d.BlockHeaders)
		}
		return b
	case DecisionRedirect:
		b = msgp.AppendMapHeader(b, 1)
		b = mpAppendKey(b, "redirect")
		b = msgp.AppendMapHeader(b, 2)
		b = mpAppendKey(b, "url")
		b = mpAppendStr(b, d.URL)
		b = mpAppendKey(b, "status")
		return msgp.AppendUint16(b, d.Status)
	case DecisionChallenge:
		b = msgp.AppendMapHeader(b, 1)
		b = mpAppendKey(b, "challenge")
		b = msgp.AppendMapHeader(b, 2)
		b = mpAppendKey(b, "challenge_type")
		b = mpAppendStr(b, d.ChallengeType)
		b = mpAppendKey(b, "params")
		return mpAppendStringMap(b, d.Params)
	}
	return mpAppendKey(b, "allow")
}

// mpAppendHeaderOps appends ops; ok is false if an op has an unknown kind.
func mpAppendHeaderOps(b []byte, ops []HeaderOp) (_ []byte, ok bool) {
	b = msgp.AppendArrayHeader(b, uint32(len(ops)))
	for i := range ops {
		op := &ops[i]
		if op.Kind > HeaderRemove {
			return b, false
		}
		b = msgp.AppendMapHeader(b, 1)
		switch op.Kind {
		case HeaderRemove:
			b = mpAppendKey(b, "remove")
			b = msgp.AppendMapHeader(b, 1)
			b = mpAppendKey(b, "name")
			b = mpAppendStr(b, op.Name)
			continue
		case HeaderAdd:
			b = mpAppendKey(b, "add")
		default:
			b = mpAppendKey(b, "set")
		}
		b = msgp.AppendMapHeader(b, 2)
		b = mpAppendKey(b, "name")
		b = mpAppendStr(b, op.Name)
		b = mpAppendKey(b, "value")
		b = mpAppendStr(b, op.Value)
	}
	return b, true
}

func mpAppendAudit(b []byte, a *AuditMetadata, correlationID string) ([]byte, error) {
	n := uint32(1) // custom
	if len(a.Tags) > 0 {
		n++
	}
	if len(a.RuleIDs) > 0 {
		n++
	}
	if a.Confidence.Valid {
		n++
	}
	if len(a.ReasonCodes) > 0 {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	if len(a.Tags) > 0 {
		b = mpAppendKey(b, "tags")
		b = mpAppendStringList(b, a.Tags)
	}
	if len(a.RuleIDs) > 0 {
		b = mpAppendKey(b, "rule_ids")
		b = mpAppendStringList(b, a.RuleIDs)
	}
	if a.Confidence.Valid {
		b = mpAppendKey(b, "confidence")
		b = msgp.AppendFloat32(b, a.Confidence.Value)
	}
	if len(a.ReasonCodes) > 0 {
		b = mpAppendKey(b, "reason_codes")
		b = mpAppendStringList(b, a.ReasonCodes)
	}
	b = mpAppendKey(b, "custom")
	entries := len(a.Custom) + 1
	if _, ok := a.Custom["correlation_id"]; ok {
		entries--
	}
	b = msgp.AppendMapHeader(b, uint32(entries))
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, correlationID)
	for k, v := range a.Custom {
		if k == "correlation_id" {
			continue
		}
		b = mpAppendStr(b, k)
		var err error
		if b, err = mpAppendJSON(b, v); err != nil {
			return b, mpWrap("audit.custom."+k, err)
		}
	}
	return b, nil
}

func mpAppendMutation(b []byte, m *BodyMutation, raw bool) []byte {
	b = msgp.AppendMapHeader(b, 2)
	b = mpAppendKey(b, "data")
	switch m.Action {
	case MutationPass:
		b = msgp.AppendNil(b)
	case MutationDrop:
		if raw {
			b = msgp.AppendBytes(b, nil)
		} else {
			b = mpAppendKey(b, "")
		}
	default:
		b = mpAppendData(b, m.Data, raw)
	}
	b = mpAppendKey(b, "chunk_index")
	return msgp.AppendUint32(b, m.ChunkIndex)
}

func mpAppendWSDecision(b []byte, d *WebSocketDecision) []byte {
	switch d.Kind {
	case WebSocketDrop:
		return mpAppendKey(b, "drop")
	case WebSocketClose:
		b = msgp.AppendMapHeader(b, 1)
		b = mpAppendKey(b, "close")
		b = msgp.AppendMapHeader(b, 2)
		b = mpAppendKey(b, "code")
		b = msgp.AppendUint16(b, d.Code)
		b = mpAppendKey(b, "reason")
		return mpAppendStr(b, d.Reason)
	}
	return mpAppendKey(b, "allow")
}

// DecodeAgentResponseMsgpack decodes an AgentResponse into r, reusing r's
// header-op slices. It accepts the map form and the Rust SDK agent's
// positional form [version, decision, request_headers, response_headers,
// routing_metadata, audit, needs_more, request_body_mutation,
// response_body_mutation, websocket_decision] (trailing defaulted fields may
// be missing), decisions as "allow", {"block": [status, body, headers]} or
// maps, header ops as {"set": [name, value]} or maps. audit.custom's
// correlation_id goes to r.CorrelationID when it is a string ("" otherwise)
// and is removed from r.Audit.Custom; other custom values become JSON text.
// Body mutation data: nil = pass, empty str or bin = drop, otherwise
// replace with the strict-base64-decoded str or the raw bin.
func DecodeAgentResponseMsgpack(data []byte, r *AgentResponse) error {
	// r.CorrelationID is kept until the end so an equal id is not
	// reallocated.
	idFound := false
	r.Version = 0
	r.RequestHeaders = r.RequestHeaders[:0]
	r.ResponseHeaders = r.ResponseHeaders[:0]
	clear(r.RoutingMetadata)
	mpResetAudit(&r.Audit)
	r.NeedsMore = false
	r.RequestBodyMutation = Opt[BodyMutation]{Value: BodyMutation{Data: r.RequestBodyMutation.Value.Data[:0]}}
	r.ResponseBodyMutation = Opt[BodyMutation]{Value: BodyMutation{Data: r.ResponseBodyMutation.Value.Data[:0]}}
	r.WebSocketDecision = Opt[WebSocketDecision]{}
	r.ProcessingTimeMS = Opt[uint64]{}
	o, err := mpAgentResponse.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadU32(b, &r.Version)
		case 1:
			return mpReadDecision(b, &r.Decision)
		case 2:
			return mpReadHeaderOps(b, &r.RequestHeaders)
		case 3:
			return mpReadHeaderOps(b, &r.ResponseHeaders)
		case 4:
			return mpReadStringMap(b, &r.RoutingMetadata)
		case 5:
			return mpReadAudit(b, &r.Audit, &r.CorrelationID, &idFound)
		case 6:
			return mpReadBool(b, &r.NeedsMore)
		case 7:
			return mpReadOptMutation(b, &r.RequestBodyMutation)
		case 8:
			return mpReadOptMutation(b, &r.ResponseBodyMutation)
		default:
			if mpIsNil(b) {
				r.WebSocketDecision = Opt[WebSocketDecision]{}
				return b[1:], nil
			}
			r.WebSocketDecision.Valid = true
			return mpReadWSDecision(b, &r.WebSocketDecision.Value)
		}
	})
	if !idFound {
		r.CorrelationID = ""
	}
	return mpDone(o, err)
}

func mpResetAudit(a *AuditMetadata) {
	a.Tags = a.Tags[:0]
	a.RuleIDs = a.RuleIDs[:0]
	a.Confidence = Opt[float32]{}
	a.ReasonCodes = a.ReasonCodes[:0]
	clear(a.Custom)
}

func mpReadDecision(b []byte, d *Decision) ([]byte, error) {
	idx, hasPayload, o, err := mpReadVariant(b, mpDecisionNames)
	if err != nil {
		return b, err
	}
	old := *d
	*d = Decision{Kind: DecisionKind(idx)}
	switch d.Kind {
	case DecisionAllow:
		return mpUnitPayload(hasPayload, o)
	case DecisionBlock:
		if !hasPayload {
			return b, errMpEnum
		}
		// Keep the old body string and headers map for reuse.
		d.Body.Value = old.Body.Value
		d.BlockHeaders = old.BlockHeaders
		o, seen, err := mpBlock.decodeSeen(o, func(i int, b []byte) ([]byte, error) {
			switch i {
			case 0:
				return mpReadU16(b, &d.Status)
			case 1:
				return mpReadOptString(b, &d.Body)
			default:
				return mpReadOptStringMap(b, &d.BlockHeaders)
			}
		})
		if err != nil {
			return b, err
		}
		mpClearIfAbsent(&d.Body, seen, 1)
		if seen&(1<<2) == 0 {
			d.BlockHeaders = nil
		}
		return o, nil
	case DecisionRedirect:
		if !hasPayload {
			return b, errMpEnum
		}
		d.URL = old.URL
		return mpRedirect.decode(o, func(i int, b []byte) ([]byte, error) {
			if i == 0 {
				return mpReadString(b, &d.URL)
			}
			return mpReadU16(b, &d.Status)
		})
	default:
		if !hasPayload {
			return b, errMpEnum
		}
		d.ChallengeType, d.Params = old.ChallengeType, old.Params
		return mpChallenge.decode(o, func(i int, b []byte) ([]byte, error) {
			if i == 0 {
				return mpReadString(b, &d.ChallengeType)
			}
			if d.Params == nil {
				d.Params = map[string]string{}
			}
			return mpReadStringMap(b, &d.Params)
		})
	}
}

func mpReadHeaderOps(b []byte, dst *[]HeaderOp) ([]byte, error) {
	n, o, err := mpReadArrayHeader(b)
	if err != nil {
		return b, err
	}
	ops := mpPrealloc(*dst, n, len(o))
	for k := 0; k < n; k++ {
		if len(ops) < cap(ops) {
			ops = ops[:len(ops)+1]
		} else {
			ops = append(ops, HeaderOp{})
		}
		op := &ops[len(ops)-1]
		idx, hasPayload, p, err := mpReadVariant(o, mpHeaderOpNames)
		if err != nil {
			*dst = ops[:0]
			return b, err
		}
		if !hasPayload {
			*dst = ops[:0]
			return b, errMpEnum
		}
		op.Kind = HeaderOpKind(idx)
		if op.Kind == HeaderRemove {
			op.Value = ""
			o, err = mpRemoveOp.decode(p, func(_ int, b []byte) ([]byte, error) {
				return mpReadString(b, &op.Name)
			})
		} else {
			o, err = mpSetOp.decode(p, func(i int, b []byte) ([]byte, error) {
				if i == 0 {
					return mpReadString(b, &op.Name)
				}
				return mpReadString(b, &op.Value)
			})
		}
		if err != nil {
			*dst = ops[:0]
			return b, err
		}
	}
	*dst = ops
	return o, nil
}

func mpReadAudit(b []byte, a *AuditMetadata, correlationID *string, idFound *bool) ([]byte, error) {
	return mpAudit.decode(b, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadStringList(b, &a.Tags)
		case 1:
			return mpReadStringList(b, &a.RuleIDs)
		case 2:
			if mpIsNil(b) {
				a.Confidence = Opt[float32]{}
				return b[1:], nil
			}
			f, o, err := mpReadFloat(b)
			if err != nil {
				return b, err
			}
			a.Confidence = Some(float32(f))
			return o, nil
		case 3:
			return mpReadStringList(b, &a.ReasonCodes)
		default:
			return mpReadCustom(b, a, correlationID, idFound)
		}
	})
}

// mpReadCustom reads audit.custom: string → any JSON value. The values
// share one backing array. A string correlation_id goes to *correlationID
// (*idFound set); any other value routes as "".
func mpReadCustom(b []byte, a *AuditMetadata, correlationID *string, idFound *bool) ([]byte, error) {
	n, o, err := mpReadMapHeader(b)
	if err != nil {
		return b, err
	}
	var buf []byte
	for k := 0; k < n; k++ {
		var key []byte
		if key, o, err = mpReadStrBytes(o); err != nil {
			return b, err
		}
		if string(key) == "correlation_id" {
			// Routing id: a string, anything else routes as "" (SPEC 6.5).
			if len(o) > 0 && (mpIsStr(o[0]) || mpIsBin(o[0])) {
				if o, err = mpReadString(o, correlationID); err != nil {
					return b, err
				}
				*idFound = true
				continue
			}
			*correlationID = ""
			*idFound = true
			if _, o, err = mpReadJSON(nil, o, 0); err != nil { // still must be a JSON value
				return b, err
			}
			continue
		}
		start := len(buf)
		if buf, o, err = mpReadJSON(buf, o, 0); err != nil {
			return b, mpWrap(string(key), err)
		}
		if a.Custom == nil {
			a.Custom = make(map[string]json.RawMessage, min(n, len(o)/2+1))
		}
		a.Custom[string(key)] = json.RawMessage(buf[start:len(buf):len(buf)])
	}
	return o, nil
}

func mpReadOptMutation(b []byte, dst *Opt[BodyMutation]) ([]byte, error) {
	if mpIsNil(b) {
		dst.Valid = false
		dst.Value = BodyMutation{Data: dst.Value.Data[:0]}
		return b[1:], nil
	}
	dst.Valid = true
	m := &dst.Value
	m.Action = MutationPass
	m.Data = m.Data[:0]
	m.ChunkIndex = 0
	return mpMutation.decode(b, func(i int, b []byte) ([]byte, error) {
		if i == 1 {
			return mpReadU32(b, &m.ChunkIndex)
		}
		if mpIsNil(b) {
			m.Action = MutationPass
			m.Data = m.Data[:0]
			return b[1:], nil
		}
		o, err := mpReadData(b, &m.Data)
		if err != nil {
			return b, err
		}
		if len(m.Data) == 0 {
			m.Action = MutationDrop
		} else {
			m.Action = MutationReplace
		}
		return o, nil
	})
}

func mpReadWSDecision(b []byte, d *WebSocketDecision) ([]byte, error) {
	idx, hasPayload, o, err := mpReadVariant(b, mpWSDecisionName)
	if err != nil {
		return b, err
	}
	*d = WebSocketDecision{Kind: WebSocketDecisionKind(idx)}
	if d.Kind != WebSocketClose {
		return mpUnitPayload(hasPayload, o)
	}
	if !hasPayload {
		return b, errMpEnum
	}
	return mpWSClose.decode(o, func(i int, b []byte) ([]byte, error) {
		if i == 0 {
			return mpReadU16(b, &d.Code)
		}
		return mpReadString(b, &d.Reason)
	})
}
