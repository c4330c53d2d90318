package payload

import "strconv"

// JSON forms of the Unix-socket handshake (0x01/0x02) and of the reverse
// connection registration (0x01/0x02). These messages are always JSON and
// are written in struct declaration order, like the Rust peers do.

// AppendHandshakeRequestJSON appends the 0x01 UdsHandshakeRequest payload:
// supported_versions, proxy_id, proxy_version, config (nil = null; written
// verbatim when valid JSON, otherwise null) and supported_encodings (left out
// when empty). Encoding names are written as given.
func AppendHandshakeRequestJSON(dst []byte, h *HandshakeRequest) []byte {
	dst = append(dst, `{"supported_versions":[`...)
	for i, v := range h.SupportedVersions {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, uint64(v), 10)
	}
	dst = append(dst, `],"proxy_id":`...)
	dst = jsonAppendString(dst, h.ProxyID)
	dst = append(dst, `,"proxy_version":`...)
	dst = jsonAppendString(dst, h.ProxyVersion)
	dst = append(dst, `,"config":`...)
	dst = jsonAppendRaw(dst, h.Config)
	if len(h.SupportedEncodings) > 0 {
		dst = append(dst, `,"supported_encodings":`...)
		dst = jsonAppendStrings(dst, h.SupportedEncodings)
	}
	return append(dst, '}')
}

var jsonHandshakeRequestFields = jsonFields{
	names:  []string{"supported_versions", "proxy_id", "proxy_version", "config", "supported_encodings"},
	reqMap: jsonMask(0, 1, 2),
	reqSeq: jsonMask(0, 1, 2, 3),
}

// DecodeHandshakeRequestJSON decodes a 0x01 UdsHandshakeRequest into h. A
// missing supported_encodings is empty; null, or any name other than "json"
// and "msgpack", is rejected (as the Rust agent does). A null config is nil.
func DecodeHandshakeRequestJSON(data []byte, h *HandshakeRequest) error {
	d := jsonDecoder{data: data}
	d.handshakeRequest(h)
	return d.done()
}

func (d *jsonDecoder) handshakeRequest(h *HandshakeRequest) bool {
	*h = HandshakeRequest{
		SupportedVersions:  h.SupportedVersions[:0],
		SupportedEncodings: h.SupportedEncodings[:0],
	}
	var s jsonStruct
	if !d.structBegin(&s, &jsonHandshakeRequestFields, "struct UdsHandshakeRequest") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			h.SupportedVersions = d.u32Slice(h.SupportedVersions)
		case 1:
			d.readString(&h.ProxyID)
		case 2:
			d.readString(&h.ProxyVersion)
		case 3:
			d.readRaw((*[]byte)(&h.Config))
		case 4:
			h.SupportedEncodings = d.encodings(h.SupportedEncodings)
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) u32Slice(dst []uint32) []uint32 {
	dst = dst[:0]
	if !d.arrayBegin("a sequence") {
		return dst
	}
	var seq jsonSeq
	for d.arrayNext(&seq) {
		var v uint32
		if !d.readU32(&v) {
			break
		}
		dst = append(dst, v)
	}
	return dst
}

func (d *jsonDecoder) i32Slice(dst []int32) []int32 {
	dst = dst[:0]
	if !d.arrayBegin("a sequence") {
		return dst
	}
	var seq jsonSeq
	for d.arrayNext(&seq) {
		var v int32
		if !d.readI32(&v) {
			break
		}
		dst = append(dst, v)
	}
	return dst
}

// encodingName reads "json" or "msgpack" (as the package constants).
func (d *jsonDecoder) encodingName(v *string) bool {
	d.ws()
	at := d.pos
	b, ok := d.readStringBytes()
	if !ok {
		return false
	}
	switch string(b) {
	case EncodingJSON:
		*v = EncodingJSON
	case EncodingMsgpack:
		*v = EncodingMsgpack
	default:
		return d.failAt(at, "unknown variant `"+string(b)+"`, expected `json` or `msgpack`")
	}
	return true
}

func (d *jsonDecoder) encodings(dst []string) []string {
	dst = dst[:0]
	if !d.arrayBegin("a sequence") {
		return dst
	}
	var seq jsonSeq
	for d.arrayNext(&seq) {
		var v string
		if !d.encodingName(&v) {
			break
		}
		dst = append(dst, v)
	}
	return dst
}

// AppendHandshakeResponseJSON appends the 0x02 UdsHandshakeResponse payload.
// capabilities carries only the Unix-socket keys (agent_id, name, version,
// supported_events, all nine features, the three limits). encoding is left
// out when h.Encoding is empty (the receiver then assumes json).
func AppendHandshakeResponseJSON(dst []byte, h *HandshakeResponse) []byte {
	dst = append(dst, `{"protocol_version":`...)
	dst = strconv.AppendUint(dst, uint64(h.ProtocolVersion), 10)
	dst = append(dst, `,"capabilities":`...)
	dst = jsonAppendCapabilities(dst, &h.Capabilities)
	dst = append(dst, `,"success":`...)
	dst = jsonAppendBool(dst, h.Success)
	dst = append(dst, `,"error":`...)
	dst = jsonAppendOptString(dst, h.Error)
	if h.Encoding != "" {
		dst = append(dst, `,"encoding":`...)
		dst = jsonAppendString(dst, h.Encoding)
	}
	return append(dst, '}')
}

func jsonAppendCapabilities(dst []byte, c *Capabilities) []byte {
	dst = append(dst, `{"agent_id":`...)
	dst = jsonAppendString(dst, c.AgentID)
	dst = append(dst, `,"name":`...)
	dst = jsonAppendString(dst, c.Name)
	dst = append(dst, `,"version":`...)
	dst = jsonAppendString(dst, c.Version)
	dst = append(dst, `,"supported_events":[`...)
	for i, e := range c.SupportedEvents {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, int64(e), 10)
	}
	f := &c.Features
	dst = append(dst, `],"features":{"streaming_body":`...)
	dst = jsonAppendBool(dst, f.StreamingBody)
	dst = append(dst, `,"websocket":`...)
	dst = jsonAppendBool(dst, f.WebSocket)
	dst = append(dst, `,"guardrails":`...)
	dst = jsonAppendBool(dst, f.Guardrails)
	dst = append(dst, `,"config_push":`...)
	dst = jsonAppendBool(dst, f.ConfigPush)
	dst = append(dst, `,"metrics_export":`...)
	dst = jsonAppendBool(dst, f.MetricsExport)
	dst = append(dst, `,"concurrent_requests":`...)
	dst = strconv.AppendUint(dst, uint64(f.ConcurrentRequests), 10)
	dst = append(dst, `,"cancellation":`...)
	dst = jsonAppendBool(dst, f.Cancellation)
	dst = append(dst, `,"flow_control":`...)
	dst = jsonAppendBool(dst, f.FlowControl)
	dst = append(dst, `,"health_reporting":`...)
	dst = jsonAppendBool(dst, f.HealthReporting)
	l := &c.Limits
	dst = append(dst, `},"limits":{"max_body_size":`...)
	dst = strconv.AppendUint(dst, l.MaxBodySize, 10)
	dst = append(dst, `,"max_concurrency":`...)
	dst = strconv.AppendUint(dst, uint64(l.MaxConcurrency), 10)
	dst = append(dst, `,"preferred_chunk_size":`...)
	dst = strconv.AppendUint(dst, l.PreferredChunkSize, 10)
	return append(dst, `}}`...)
}

var (
	jsonHandshakeResponseFields = jsonFields{
		names:  []string{"protocol_version", "capabilities", "success", "error", "encoding"},
		reqMap: jsonMask(0, 1, 2),
		reqSeq: jsonMask(0, 1, 2, 3),
	}
	jsonCapabilitiesFields = jsonFields{
		names:  []string{"agent_id", "name", "version", "supported_events", "features", "limits"},
		reqMap: jsonAllFields(6),
		reqSeq: jsonAllFields(6),
	}
	jsonFeaturesFields = jsonFields{
		names: []string{"streaming_body", "websocket", "guardrails", "config_push", "metrics_export",
			"concurrent_requests", "cancellation", "flow_control", "health_reporting"},
		reqMap: jsonAllFields(9),
		reqSeq: jsonAllFields(9),
	}
	jsonLimitsFields = jsonFields{
		names:  []string{"max_body_size", "max_concurrency", "preferred_chunk_size"},
		reqMap: jsonAllFields(3),
		reqSeq: jsonAllFields(3),
	}
)

// DecodeHandshakeResponseJSON decodes a 0x02 UdsHandshakeResponse into h.
// Every capability, feature and limit key is required, as in the Rust
// proxy. A missing encoding leaves h.Encoding empty (meaning json); null or
// any name other than "json"/"msgpack" is rejected. Capability fields that
// do not exist on the Unix socket (ProtocolVersion, Health, MaxMemory,
// MaxProcessingTimeMS) are left zero.
func DecodeHandshakeResponseJSON(data []byte, h *HandshakeResponse) error {
	d := jsonDecoder{data: data}
	d.handshakeResponse(h)
	return d.done()
}

func (d *jsonDecoder) handshakeResponse(h *HandshakeResponse) bool {
	events := h.Capabilities.SupportedEvents[:0]
	*h = HandshakeResponse{Capabilities: Capabilities{SupportedEvents: events}}
	var s jsonStruct
	if !d.structBegin(&s, &jsonHandshakeResponseFields, "struct UdsHandshakeResponse") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readU32(&h.ProtocolVersion)
		case 1:
			d.capabilities(&h.Capabilities)
		case 2:
			d.readBool(&h.Success)
		case 3:
			d.readOptString(&h.Error)
		case 4:
			d.encodingName(&h.Encoding)
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) capabilities(c *Capabilities) bool {
	*c = Capabilities{SupportedEvents: c.SupportedEvents[:0]}
	var s jsonStruct
	if !d.structBegin(&s, &jsonCapabilitiesFields, "struct UdsCapabilities") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&c.AgentID)
		case 1:
			d.readString(&c.Name)
		case 2:
			d.readString(&c.Version)
		case 3:
			c.SupportedEvents = d.i32Slice(c.SupportedEvents)
		case 4:
			d.features(&c.Features)
		case 5:
			d.limits(&c.Limits)
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) features(f *Features) bool {
	var s jsonStruct
	if !d.structBegin(&s, &jsonFeaturesFields, "struct UdsFeatures") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readBool(&f.StreamingBody)
		case 1:
			d.readBool(&f.WebSocket)
		case 2:
			d.readBool(&f.Guardrails)
		case 3:
			d.readBool(&f.ConfigPush)
		case 4:
			d.readBool(&f.MetricsExport)
		case 5:
			d.readU32(&f.ConcurrentRequests)
		case 6:
			d.readBool(&f.Cancellation)
		case 7:
			d.readBool(&f.FlowControl)
		case 8:
			d.readBool(&f.HealthReporting)
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) limits(l *Limits) bool {
	var s jsonStruct
	if !d.structBegin(&s, &jsonLimitsFields, "struct UdsLimits") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readU64(&l.MaxBodySize)
		case 1:
			d.readU32(&l.MaxConcurrency)
		case 2:
			d.readU64(&l.PreferredChunkSize)
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// Reverse connections

// AppendRegistrationRequestJSON appends the reverse-connection 0x01
// RegistrationRequest payload (metadata nil = null).
func AppendRegistrationRequestJSON(dst []byte, r *RegistrationRequest) []byte {
	dst = append(dst, `{"protocol_version":`...)
	dst = strconv.AppendUint(dst, uint64(r.ProtocolVersion), 10)
	dst = append(dst, `,"agent_id":`...)
	dst = jsonAppendString(dst, r.AgentID)
	dst = append(dst, `,"capabilities":`...)
	dst = jsonAppendCapabilities(dst, &r.Capabilities)
	dst = append(dst, `,"auth_token":`...)
	dst = jsonAppendOptString(dst, r.AuthToken)
	dst = append(dst, `,"metadata":`...)
	dst = jsonAppendRaw(dst, r.Metadata)
	return append(dst, '}')
}

var jsonRegistrationRequestFields = jsonFields{
	names:  []string{"protocol_version", "agent_id", "capabilities", "auth_token", "metadata"},
	reqMap: jsonMask(0, 1, 2),
	reqSeq: jsonAllFields(5),
}

// DecodeRegistrationRequestJSON decodes a reverse-connection 0x01 payload.
func DecodeRegistrationRequestJSON(data []byte, r *RegistrationRequest) error {
	d := jsonDecoder{data: data}
	d.registrationRequest(r)
	return d.done()
}

func (d *jsonDecoder) registrationRequest(r *RegistrationRequest) bool {
	*r = RegistrationRequest{Capabilities: Capabilities{SupportedEvents: r.Capabilities.SupportedEvents[:0]}}
	var s jsonStruct
	if !d.structBegin(&s, &jsonRegistrationRequestFields, "struct RegistrationRequest") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readU32(&r.ProtocolVersion)
		case 1:
			d.readString(&r.AgentID)
		case 2:
			d.capabilities(&r.Capabilities)
		case 3:
			d.readOptString(&r.AuthToken)
		case 4:
			d.readRaw((*[]byte)(&r.Metadata))
		default:
			return d.err == nil
		}
	}
}

// AppendRegistrationResponseJSON appends the reverse-connection 0x02
// RegistrationResponse payload.
func AppendRegistrationResponseJSON(dst []byte, r *RegistrationResponse) []byte {
	dst = append(dst, `{"success":`...)
	dst = jsonAppendBool(dst, r.Success)
	dst = append(dst, `,"error":`...)
	dst = jsonAppendOptString(dst, r.Error)
	dst = append(dst, `,"proxy_id":`...)
	dst = jsonAppendString(dst, r.ProxyID)
	dst = append(dst, `,"proxy_version":`...)
	dst = jsonAppendString(dst, r.ProxyVersion)
	dst = append(dst, `,"connection_id":`...)
	dst = jsonAppendString(dst, r.ConnectionID)
	return append(dst, '}')
}

var jsonRegistrationResponseFields = jsonFields{
	names:  []string{"success", "error", "proxy_id", "proxy_version", "connection_id"},
	reqMap: jsonMask(0, 2, 3, 4),
	reqSeq: jsonAllFields(5),
}

// DecodeRegistrationResponseJSON decodes a reverse-connection 0x02 payload.
func DecodeRegistrationResponseJSON(data []byte, r *RegistrationResponse) error {
	d := jsonDecoder{data: data}
	d.registrationResponse(r)
	return d.done()
}

func (d *jsonDecoder) registrationResponse(r *RegistrationResponse) bool {
	*r = RegistrationResponse{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonRegistrationResponseFields, "struct RegistrationResponse") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readBool(&r.Success)
		case 1:
			d.readOptString(&r.Error)
		case 2:
			d.readString(&r.ProxyID)
		case 3:
			d.readString(&r.ProxyVersion)
		case 4:
			d.readString(&r.ConnectionID)
		default:
			return d.err == nil
		}
	}
}
