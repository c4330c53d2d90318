package payload

import (
	"encoding/json"
	"strconv"
)

// AppendAgentResponseJSON appends the 0x20 payload of r the way the Rust SDK
// agent writes it: all ten fields in declaration order, Version 2 when
// r.Version is 0, empty lists and maps as [] and {} (never null), None as
// null, and audit.custom.correlation_id = r.CorrelationID followed by the
// other Custom entries (a "correlation_id" key in Custom is ignored). Map
// contents are written in byte-wise key order. Custom values are written
// verbatim when they are valid JSON, otherwise as null. Body mutation data:
// null for MutationPass, "" for MutationDrop, base64 for MutationReplace,
// the raw text for MutationInvalid. An unknown Decision, HeaderOp or
// WebSocketDecision kind is written under the name "unknown", which every
// receiver rejects. ProcessingTimeMS is not part of the JSON form.
//
// It does not allocate when dst has room (maps of more than 16 keys borrow
// pooled scratch space). Safe for concurrent use with distinct dst.
func AppendAgentResponseJSON(dst []byte, r *AgentResponse) []byte {
	version := r.Version
	if version == 0 {
		version = ProtocolVersion
	}
	dst = append(dst, `{"version":`...)
	dst = strconv.AppendUint(dst, uint64(version), 10)
	dst = append(dst, `,"decision":`...)
	dst = jsonAppendDecision(dst, &r.Decision)
	dst = append(dst, `,"request_headers":`...)
	dst = jsonAppendHeaderOps(dst, r.RequestHeaders)
	dst = append(dst, `,"response_headers":`...)
	dst = jsonAppendHeaderOps(dst, r.ResponseHeaders)
	dst = append(dst, `,"routing_metadata":`...)
	dst = jsonAppendStringMap(dst, r.RoutingMetadata)
	a := &r.Audit
	dst = append(dst, `,"audit":{"tags":`...)
	dst = jsonAppendStrings(dst, a.Tags)
	dst = append(dst, `,"rule_ids":`...)
	dst = jsonAppendStrings(dst, a.RuleIDs)
	dst = append(dst, `,"confidence":`...)
	if a.Confidence.Valid {
		dst = jsonAppendFloat(dst, float64(a.Confidence.Value), 32)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"reason_codes":`...)
	dst = jsonAppendStrings(dst, a.ReasonCodes)
	dst = append(dst, `,"custom":{"correlation_id":`...)
	dst = jsonAppendString(dst, r.CorrelationID)
	dst = jsonAppendCustom(dst, a.Custom)
	dst = append(dst, `}},"needs_more":`...)
	dst = jsonAppendBool(dst, r.NeedsMore)
	dst = append(dst, `,"request_body_mutation":`...)
	dst = jsonAppendMutation(dst, r.RequestBodyMutation)
	dst = append(dst, `,"response_body_mutation":`...)
	dst = jsonAppendMutation(dst, r.ResponseBodyMutation)
	dst = append(dst, `,"websocket_decision":`...)
	if w := &r.WebSocketDecision; w.Valid {
		switch w.Value.Kind {
		case WebSocketAllow:
			dst = append(dst, `"allow"`...)
		case WebSocketDrop:
			dst = append(dst, `"drop"`...)
		case WebSocketClose:
			dst = append(dst, `{"close":{"code":`...)
			dst = strconv.AppendUint(dst, uint64(w.Value.Code), 10)
			dst = append(dst, `,"reason":`...)
			dst = jsonAppendString(dst, w.Value.Reason)
			dst = append(dst, `}}`...)
		default:
			dst = append(dst, `"unknown"`...)
		}
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, '}')
}

func jsonAppendDecision(dst []byte, dec *Decision) []byte {
	switch dec.Kind {
	case DecisionAllow:
		return append(dst, `"allow"`...)
	case DecisionBlock:
		dst = append(dst, `{"block":{"status":`...)
		dst = strconv.AppendUint(dst, uint64(dec.Status), 10)
		dst = append(dst, `,"body":`...)
		dst = jsonAppendOptString(dst, dec.Body)
		dst = append(dst, `,"headers":`...)
		if dec.BlockHeaders == nil {
			dst = append(dst, "null"...)
		} else {
			dst = jsonAppendStringMap(dst, dec.BlockHeaders)
		}
		return append(dst, `}}`...)
	case DecisionRedirect:
		dst = append(dst, `{"redirect":{"url":`...)
		dst = jsonAppendString(dst, dec.URL)
		dst = append(dst, `,"status":`...)
		dst = strconv.AppendUint(dst, uint64(dec.Status), 10)
		return append(dst, `}}`...)
	case DecisionChallenge:
		dst = append(dst, `{"challenge":{"challenge_type":`...)
		dst = jsonAppendString(dst, dec.ChallengeType)
		dst = append(dst, `,"params":`...)
		dst = jsonAppendStringMap(dst, dec.Params)
		return append(dst, `}}`...)
	}
	return append(dst, `"unknown"`...)
}

func jsonAppendHeaderOps(dst []byte, ops []HeaderOp) []byte {
	dst = append(dst, '[')
	for i := range ops {
		op := &ops[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		switch op.Kind {
		case HeaderSet:
			dst = append(dst, `{"set":{"name":`...)
		case HeaderAdd:
			dst = append(dst, `{"add":{"name":`...)
		case HeaderRemove:
			dst = append(dst, `{"remove":{"name":`...)
			dst = jsonAppendString(dst, op.Name)
			dst = append(dst, `}}`...)
			continue
		default:
			dst = append(dst, `{"unknown":{"name":`...)
		}
		dst = jsonAppendString(dst, op.Name)
		dst = append(dst, `,"value":`...)
		dst = jsonAppendString(dst, op.Value)
		dst = append(dst, `}}`...)
	}
	return append(dst, ']')
}

// jsonAppendCustom writes the Custom entries other than correlation_id,
// each preceded by a comma, in byte-wise key order.
func jsonAppendCustom(dst []byte, m map[string]json.RawMessage) []byte {
	if len(m) == 0 {
		return dst
	}
	if len(m) <= jsonKeysSmall {
		var buf [jsonKeysSmall]string
		return jsonWriteCustom(dst, m, jsonCollectKeys(m, buf[:0]))
	}
	p := jsonKeyScratch.Get().(*[]string)
	keys := jsonCollectKeys(m, (*p)[:0])
	dst = jsonWriteCustom(dst, m, keys)
	clear(keys)
	*p = keys[:0]
	jsonKeyScratch.Put(p)
	return dst
}

func jsonWriteCustom(dst []byte, m map[string]json.RawMessage, keys []string) []byte {
	for _, k := range keys {
		if k == "correlation_id" {
			continue
		}
		dst = append(dst, ',')
		dst = jsonAppendString(dst, k)
		dst = append(dst, ':')
		dst = jsonAppendRaw(dst, m[k])
	}
	return dst
}

func jsonAppendMutation(dst []byte, m Opt[BodyMutation]) []byte {
	if !m.Valid {
		return append(dst, "null"...)
	}
	dst = append(dst, `{"data":`...)
	switch m.Value.Action {
	case MutationDrop:
		dst = append(dst, `""`...)
	case MutationReplace:
		dst = jsonAppendBase64(dst, m.Value.Data)
	case MutationInvalid:
		dst = jsonAppendString(dst, jsonView(m.Value.Data))
	default:
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"chunk_index":`...)
	dst = strconv.AppendUint(dst, uint64(m.Value.ChunkIndex), 10)
	return append(dst, '}')
}

// ---------------------------------------------------------------------------
// Decoding

var (
	jsonAgentResponseFields = jsonFields{
		names: []string{"version", "decision", "request_headers", "response_headers",
			"routing_metadata", "audit", "needs_more", "request_body_mutation",
			"response_body_mutation", "websocket_decision"},
		reqMap: jsonMask(0, 1),
		reqSeq: jsonMask(0, 1),
	}
	jsonAuditFields = jsonFields{
		names:  []string{"tags", "rule_ids", "confidence", "reason_codes", "custom"},
		reqSeq: jsonMask(2),
	}
	jsonBlockFields = jsonFields{
		names:  []string{"status", "body", "headers"},
		reqMap: jsonMask(0),
		reqSeq: jsonAllFields(3),
	}
	jsonRedirectFields = jsonFields{
		names:  []string{"url", "status"},
		reqMap: jsonAllFields(2),
		reqSeq: jsonAllFields(2),
	}
	jsonChallengeFields = jsonFields{
		names:  []string{"challenge_type", "params"},
		reqMap: jsonAllFields(2),
		reqSeq: jsonAllFields(2),
	}
	jsonSetFields = jsonFields{
		names:  []string{"name", "value"},
		reqMap: jsonAllFields(2),
		reqSeq: jsonAllFields(2),
	}
	jsonRemoveFields = jsonFields{
		names:  []string{"name"},
		reqMap: jsonAllFields(1),
		reqSeq: jsonAllFields(1),
	}
	jsonMutationFields = jsonFields{
		names:  []string{"data", "chunk_index"},
		reqSeq: jsonMask(0),
	}
	jsonCloseFields = jsonFields{
		names:  []string{"code", "reason"},
		reqMap: jsonAllFields(2),
		reqSeq: jsonAllFields(2),
	}
)

// DecodeAgentResponseJSON decodes a 0x20 payload into r with the Rust
// proxy's rules: version and decision are required, every other field
// defaults when missing, null is rejected for non-Option fields, unknown
// keys are ignored, a repeated struct key is an error, and serde_json's
// array form of structs and {"variant":null} unit variants are accepted.
//
// audit.custom.correlation_id is moved into r.CorrelationID when it is a JSON
// string (any other type leaves CorrelationID "" — the Rust proxy cannot
// route such a reply either); the other custom values are kept as raw JSON.
// Body mutation data is decoded per MutationAction (null, "", strict base64,
// or MutationInvalid).
//
// r is overwritten completely; its slices, maps and mutation Data buffers
// are reused, so values taken from r before the call must not be retained
// across it (strings excepted). Decoded strings and raw values never alias
// data and stay valid forever; small ones share pooled 4 KiB chunks (which
// is why an allow reply decodes without an allocation of its own), so a
// string kept for a long time keeps its chunk alive — strings.Clone it.
// Safe for concurrent use with distinct r.
func DecodeAgentResponseJSON(data []byte, r *AgentResponse) error {
	d := jsonDecoder{data: data}
	d.agentResponse(r)
	return d.done()
}

// DecodeAgentResponseJSONNoCopy is DecodeAgentResponseJSON without copying:
// strings without escape sequences and raw custom values point into data,
// so the caller must keep data unmodified for as long as it uses r. A reply
// whose strings need no unescaping decodes with zero allocations into a
// reused r.
func DecodeAgentResponseJSONNoCopy(data []byte, r *AgentResponse) error {
	d := jsonDecoder{data: data, noCopy: true}
	d.agentResponse(r)
	return d.done()
}

// resetAgentResponse clears r for decoding while keeping reusable storage.
func jsonResetAgentResponse(r *AgentResponse) {
	routing, custom := r.RoutingMetadata, r.Audit.Custom
	clear(routing)
	clear(custom)
	reqMut, respMut := r.RequestBodyMutation.Value.Data, r.ResponseBodyMutation.Value.Data
	*r = AgentResponse{
		RequestHeaders:  r.RequestHeaders[:0],
		ResponseHeaders: r.ResponseHeaders[:0],
		RoutingMetadata: routing,
		Audit: AuditMetadata{
			Tags:        r.Audit.Tags[:0],
			RuleIDs:     r.Audit.RuleIDs[:0],
			ReasonCodes: r.Audit.ReasonCodes[:0],
			Custom:      custom,
		},
		Decision: Decision{
			BlockHeaders: r.Decision.BlockHeaders,
			Params:       r.Decision.Params,
		},
		RequestBodyMutation:  Opt[BodyMutation]{Value: BodyMutation{Data: reqMut[:0]}},
		ResponseBodyMutation: Opt[BodyMutation]{Value: BodyMutation{Data: respMut[:0]}},
	}
}

func (d *jsonDecoder) agentResponse(r *AgentResponse) bool {
	jsonResetAgentResponse(r)
	blockHeaders, params := r.Decision.BlockHeaders, r.Decision.Params
	r.Decision.BlockHeaders, r.Decision.Params = nil, nil
	var s jsonStruct
	if !d.structBegin(&s, &jsonAgentResponseFields, "struct AgentResponse") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readU32(&r.Version)
		case 1:
			d.decision(&r.Decision, blockHeaders, params)
		case 2:
			r.RequestHeaders = d.headerOps(r.RequestHeaders)
		case 3:
			r.ResponseHeaders = d.headerOps(r.ResponseHeaders)
		case 4:
			d.readStringMap(&r.RoutingMetadata, "a map")
		case 5:
			d.audit(r)
		case 6:
			d.readBool(&r.NeedsMore)
		case 7:
			d.mutation(&r.RequestBodyMutation)
		case 8:
			d.mutation(&r.ResponseBodyMutation)
		case 9:
			d.webSocketDecision(&r.WebSocketDecision)
		default:
			return d.err == nil
		}
	}
}

const jsonDecisionVariants = "one of `allow`, `block`, `redirect`, `challenge`"

// decision reads an externally tagged Decision. blockHeaders and params are
// maps from a previous decode that may be reused.
func (d *jsonDecoder) decision(dec *Decision, blockHeaders, params map[string]string) bool {
	name, unit, ok := d.enumBegin("enum Decision")
	if !ok {
		return false
	}
	kind := DecisionAllow
	switch string(name) {
	case "allow":
	case "block":
		kind = DecisionBlock
	case "redirect":
		kind = DecisionRedirect
	case "challenge":
		kind = DecisionChallenge
	default:
		return d.unknownVariant(name, jsonDecisionVariants)
	}
	*dec = Decision{Kind: kind}
	if unit {
		if kind != DecisionAllow {
			return d.fail("invalid type: unit variant, expected struct variant")
		}
		return true
	}
	var s jsonStruct
	switch kind {
	case DecisionAllow:
		d.unitVariant()
	case DecisionBlock:
		if !d.structBegin(&s, &jsonBlockFields, "struct variant Decision::Block") {
			return false
		}
		for done := false; !done; {
			switch d.structNext(&s) {
			case 0:
				d.readU16(&dec.Status)
			case 1:
				d.readOptString(&dec.Body)
			case 2:
				if d.null() {
					dec.BlockHeaders = nil
					continue
				}
				clear(blockHeaders)
				if blockHeaders == nil {
					blockHeaders = make(map[string]string)
				}
				dec.BlockHeaders = blockHeaders
				d.readStringMap(&dec.BlockHeaders, "a map")
			default:
				done = true
			}
		}
	case DecisionRedirect:
		if !d.structBegin(&s, &jsonRedirectFields, "struct variant Decision::Redirect") {
			return false
		}
		for done := false; !done; {
			switch d.structNext(&s) {
			case 0:
				d.readString(&dec.URL)
			case 1:
				d.readU16(&dec.Status)
			default:
				done = true
			}
		}
	case DecisionChallenge:
		if !d.structBegin(&s, &jsonChallengeFields, "struct variant Decision::Challenge") {
			return false
		}
		for done := false; !done; {
			switch d.structNext(&s) {
			case 0:
				d.readString(&dec.ChallengeType)
			case 1:
				clear(params)
				dec.Params = params
				d.readStringMap(&dec.Params, "a map")
			default:
				done = true
			}
		}
	}
	return d.enumEnd()
}

const jsonHeaderOpVariants = "one of `set`, `add`, `remove`"

// headerOps reads a list of externally tagged HeaderOps into ops[:0].
func (d *jsonDecoder) headerOps(ops []HeaderOp) []HeaderOp {
	ops = ops[:0]
	if !d.arrayBegin("a sequence") {
		return ops
	}
	var seq jsonSeq
	for d.arrayNext(&seq) {
		name, unit, ok := d.enumBegin("enum HeaderOp")
		if !ok {
			break
		}
		var op HeaderOp
		fields := &jsonSetFields
		switch string(name) {
		case "set":
			op.Kind = HeaderSet
		case "add":
			op.Kind = HeaderAdd
		case "remove":
			op.Kind = HeaderRemove
			fields = &jsonRemoveFields
		default:
			d.unknownVariant(name, jsonHeaderOpVariants)
			return ops
		}
		if unit {
			d.fail("invalid type: unit variant, expected struct variant")
			return ops
		}
		var s jsonStruct
		if !d.structBegin(&s, fields, "struct variant HeaderOp") {
			return ops
		}
		for done := false; !done; {
			switch d.structNext(&s) {
			case 0:
				d.readString(&op.Name)
			case 1:
				d.readString(&op.Value)
			default:
				done = true
			}
		}
		if !d.enumEnd() {
			return ops
		}
		ops = append(ops, op)
	}
	return ops
}

// audit reads AuditMetadata into r.Audit, routing custom.correlation_id to
// r.CorrelationID.
func (d *jsonDecoder) audit(r *AgentResponse) bool {
	a := &r.Audit
	var s jsonStruct
	if !d.structBegin(&s, &jsonAuditFields, "struct AuditMetadata") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			a.Tags, _ = d.readStringSlice(a.Tags, "a sequence")
		case 1:
			a.RuleIDs, _ = d.readStringSlice(a.RuleIDs, "a sequence")
		case 2:
			if d.null() {
				a.Confidence = Opt[float32]{}
			} else {
				a.Confidence.Valid = true
				d.readF32(&a.Confidence.Value)
			}
		case 3:
			a.ReasonCodes, _ = d.readStringSlice(a.ReasonCodes, "a sequence")
		case 4:
			d.custom(r)
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) custom(r *AgentResponse) bool {
	if !d.mapBegin("a map") {
		return false
	}
	m := r.Audit.Custom
	clear(m)
	r.CorrelationID = ""
	var seq jsonSeq
	for {
		k, ok := d.mapNext(&seq)
		if !ok {
			break
		}
		if string(k) == "correlation_id" {
			if d.ws() == '"' {
				d.readString(&r.CorrelationID)
			} else {
				r.CorrelationID = ""
				d.skip(true)
			}
			continue
		}
		key := d.keyString(k)
		raw, ok := d.capture()
		if !ok {
			break
		}
		if m == nil {
			m = make(map[string]json.RawMessage)
		}
		if d.noCopy {
			m[key] = raw[:len(raw):len(raw)]
		} else {
			m[key] = d.copyBytes(raw)
		}
	}
	r.Audit.Custom = m
	return d.err == nil
}

// mutation reads an Option<BodyMutation>.
func (d *jsonDecoder) mutation(m *Opt[BodyMutation]) bool {
	buf := m.Value.Data[:0]
	if d.null() {
		*m = Opt[BodyMutation]{Value: BodyMutation{Data: buf}}
		return true
	}
	*m = Opt[BodyMutation]{Valid: true, Value: BodyMutation{Data: buf}}
	v := &m.Value
	var s jsonStruct
	if !d.structBegin(&s, &jsonMutationFields, "struct BodyMutation") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			if d.null() {
				v.Action = MutationPass
				continue
			}
			text, ok := d.readStringBytes()
			if !ok {
				continue
			}
			switch decoded, valid := jsonDecodeBase64(v.Data, text); {
			case len(text) == 0:
				v.Action = MutationDrop
			case valid:
				v.Action, v.Data = MutationReplace, decoded
			default:
				v.Action = MutationInvalid
				v.Data = append(decoded[:0], text...)
			}
		case 1:
			d.readU32(&v.ChunkIndex)
		default:
			if d.err == nil && v.Action == MutationPass {
				v.Data = v.Data[:0]
			}
			return d.err == nil
		}
	}
}

const jsonWebSocketVariants = "one of `allow`, `drop`, `close`"

func (d *jsonDecoder) webSocketDecision(w *Opt[WebSocketDecision]) bool {
	*w = Opt[WebSocketDecision]{}
	if d.null() {
		return true
	}
	name, unit, ok := d.enumBegin("enum WebSocketDecision")
	if !ok {
		return false
	}
	var v WebSocketDecision
	switch string(name) {
	case "allow":
		v.Kind = WebSocketAllow
	case "drop":
		v.Kind = WebSocketDrop
	case "close":
		v.Kind = WebSocketClose
	default:
		return d.unknownVariant(name, jsonWebSocketVariants)
	}
	if unit {
		if v.Kind == WebSocketClose {
			return d.fail("invalid type: unit variant, expected struct variant")
		}
		*w = Some(v)
		return true
	}
	if v.Kind != WebSocketClose {
		if !d.unitVariant() {
			return false
		}
	} else {
		var s jsonStruct
		if !d.structBegin(&s, &jsonCloseFields, "struct variant WebSocketDecision::Close") {
			return false
		}
		for done := false; !done; {
			switch d.structNext(&s) {
			case 0:
				d.readU16(&v.Code)
			case 1:
				d.readString(&v.Reason)
			default:
				done = true
			}
		}
	}
	if !d.enumEnd() {
		return false
	}
	*w = Some(v)
	return true
}
