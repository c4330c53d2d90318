package pbconv

// Agent-side conversions: ProxyToAgent events (protobuf) → payload, and the
// agent's replies and control messages (payload) → protobuf.
//
// Aliasing rules for the pb → payload direction: strings are shared (they
// are immutable); byte slices (body data, WebSocket payload, handshake
// versions) alias the source message, so the payload value is valid only as
// long as the source message is not reused or returned to its pool.
//
// What gRPC cannot carry (SPEC 4.6) and these functions therefore drop or
// synthesise:
//   - RequestMetadata.TLSCipher (absent in proto), RequestHeadersEvent
//     http_version (no payload field; Metadata.Protocol carries the protocol).
//   - BodyChunkEvent proxy_buffer_available and timestamp_ms.
//   - RequestCompleteEvent upstream, from_cache: no payload field;
//     UpstreamAttempts is not on the wire and is synthesised as 1 (0 when the
//     response came from cache).
//   - WebSocketFrameEvent frame_index, fin, route_id and client_ip are not on
//     the wire: FrameIndex 0, Fin true, RouteID absent, ClientIP "".
//   - AgentResponse routing_metadata, body mutations and the WebSocket
//     decision have no proto field and are not sent.

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/headerset"
	"github.com/agentwire/agentwire/internal/wiretext"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// ---------------------------------------------------------------------------
// pb → payload: events

// RequestMetadataFromPB fills dst from src (nil src gives the zero value).
// The timestamp becomes a UTC time from timestamp_ms (zero time when 0).
func RequestMetadataFromPB(dst *agentwire.RequestMetadata, src *pb.RequestMetadata) {
	if src == nil {
		*dst = agentwire.RequestMetadata{}
		return
	}
	*dst = agentwire.RequestMetadata{
		CorrelationID: src.CorrelationId,
		RequestID:     src.RequestId,
		ClientIP:      src.ClientIp,
		ClientPort:    uint16(src.ClientPort), // truncating, like Rust's `as u16`
		ServerName:    optStringFromPB(src.ServerName),
		Protocol:      src.Protocol,
		TLSVersion:    optStringFromPB(src.TlsVersion),
		RouteID:       optStringFromPB(src.RouteId),
		UpstreamID:    optStringFromPB(src.UpstreamId),
		Timestamp:     timeFromMS(src.TimestampMs),
	}
	if src.Traceparent != nil {
		dst.Traceparent = *src.Traceparent
	}
}

// HeadersFromPB groups the proto headers (one per value) into dst by name,
// keeping the order in which names first appear and the order of each
// name's values. dst's storage (including each entry's Values capacity) is
// reused; the result is returned.
func HeadersFromPB(dst agentwire.Headers, src []*pb.Header) agentwire.Headers {
	dst = dst[:0]
	var g headerset.Grouper
	for _, h := range src {
		if h != nil {
			dst = g.Add(dst, h.Name, h.Value)
		}
	}
	return dst
}

// RequestHeadersEventFromPB fills dst from src, reusing dst.Headers.
func RequestHeadersEventFromPB(dst *agentwire.RequestHeadersEvent, src *pb.RequestHeadersEvent) {
	RequestMetadataFromPB(&dst.Metadata, src.GetMetadata())
	dst.Method = src.GetMethod()
	dst.URI = src.GetUri()
	dst.Headers = HeadersFromPB(dst.Headers, src.GetHeaders())
}

// BodyChunkFromPB fills dst from src. dst.Data aliases src.Data.
func BodyChunkFromPB(dst *agentwire.BodyChunk, src *pb.BodyChunkEvent) {
	*dst = agentwire.BodyChunk{
		CorrelationID:    src.GetCorrelationId(),
		Data:             src.GetData(),
		IsLast:           src.GetIsLast(),
		ChunkIndex:       src.GetChunkIndex(),
		BytesTransferred: src.GetBytesTransferred(),
	}
	if src != nil && src.TotalSize != nil {
		dst.TotalSize = agentwire.Some(*src.TotalSize)
	}
}

// ResponseHeadersEventFromPB fills dst from src, reusing dst.Headers.
func ResponseHeadersEventFromPB(dst *agentwire.ResponseHeadersEvent, src *pb.ResponseHeadersEvent) {
	dst.CorrelationID = src.GetCorrelationId()
	dst.Status = uint16(src.GetStatusCode())
	dst.Headers = HeadersFromPB(dst.Headers, src.GetHeaders())
}

// RequestCompleteEventFromPB fills dst from src. bytes_received and
// bytes_sent become the request and response body sizes; UpstreamAttempts
// is synthesised (1, or 0 for a response served from cache).
func RequestCompleteEventFromPB(dst *agentwire.RequestCompleteEvent, src *pb.RequestCompleteEvent) {
	*dst = agentwire.RequestCompleteEvent{
		CorrelationID:    src.GetCorrelationId(),
		Status:           uint16(src.GetStatusCode()),
		DurationMS:       src.GetDurationMs(),
		RequestBodySize:  src.GetBytesReceived(),
		ResponseBodySize: src.GetBytesSent(),
		UpstreamAttempts: 1,
	}
	if src.GetFromCache() {
		dst.UpstreamAttempts = 0
	}
	if src != nil && src.Error != nil {
		dst.Error = agentwire.Some(*src.Error)
	}
}

// WebSocket opcode names (agentwire.WebSocketFrameEvent.Opcode).
const (
	OpcodeContinuation = "continuation"
	OpcodeText         = "text"
	OpcodeBinary       = "binary"
	OpcodeClose        = "close"
	OpcodePing         = "ping"
	OpcodePong         = "pong"
)

// OpcodeFromFrameType maps a proto frame_type to the payload opcode name:
// 1 text, 2 binary, 3 ping, 4 pong, 5 close, 0 (unspecified) continuation.
// Any other value is returned as its decimal text.
func OpcodeFromFrameType(ft int32) string {
	switch ft {
	case int32(pb.WebSocketFrameEvent_FRAME_TYPE_UNSPECIFIED):
		return OpcodeContinuation
	case int32(pb.WebSocketFrameEvent_FRAME_TYPE_TEXT):
		return OpcodeText
	case int32(pb.WebSocketFrameEvent_FRAME_TYPE_BINARY):
		return OpcodeBinary
	case int32(pb.WebSocketFrameEvent_FRAME_TYPE_PING):
		return OpcodePing
	case int32(pb.WebSocketFrameEvent_FRAME_TYPE_PONG):
		return OpcodePong
	case int32(pb.WebSocketFrameEvent_FRAME_TYPE_CLOSE):
		return OpcodeClose
	}
	return strconv.FormatInt(int64(ft), 10)
}

// WebSocketFrameEventFromPB fills dst from src. dst.Data aliases
// src.Payload. Fields absent from the proto get FrameIndex 0, Fin true,
// no RouteID and an empty ClientIP.
func WebSocketFrameEventFromPB(dst *agentwire.WebSocketFrameEvent, src *pb.WebSocketFrameEvent) {
	*dst = agentwire.WebSocketFrameEvent{
		CorrelationID:  src.GetCorrelationId(),
		Opcode:         OpcodeFromFrameType(src.GetFrameType()),
		Data:           src.GetPayload(),
		ClientToServer: src.GetClientToServer(),
		Fin:            true,
	}
}

// guardrailContext is the JSON object carried in
// GuardrailInspectEvent.context_json: the payload fields that the proto
// message has no field for.
type guardrailContext struct {
	InspectionType string            `json:"inspection_type"`
	Categories     []string          `json:"categories"`
	RouteID        *string           `json:"route_id"`
	Metadata       map[string]string `json:"metadata"`
}

// GuardrailInspectEventFromPB fills dst from src.
//
// The proto has no inspection_type, categories, route_id or metadata
// fields. They are read from context_json when it is a JSON object with
// those keys ({"inspection_type":…,"categories":[…],"route_id":…,
// "metadata":{…}}; unknown keys ignored, an unparsable text ignored).
// Without an inspection_type there, content_type PROMPT (1) and SYSTEM (3)
// map to prompt_injection and every other value to pii_detection.
// Categories and Metadata are never nil.
func GuardrailInspectEventFromPB(dst *agentwire.GuardrailInspectEvent, src *pb.GuardrailInspectEvent) {
	*dst = agentwire.GuardrailInspectEvent{
		CorrelationID: src.GetCorrelationId(),
		Content:       src.GetContent(),
	}
	if src != nil && src.Model != nil {
		dst.Model = agentwire.Some(*src.Model)
	}
	if cj := src.GetContextJson(); cj != "" {
		var gc guardrailContext
		if json.Unmarshal([]byte(cj), &gc) == nil {
			dst.InspectionType = gc.InspectionType
			dst.Categories = gc.Categories
			dst.Metadata = gc.Metadata
			if gc.RouteID != nil {
				dst.RouteID = agentwire.Some(*gc.RouteID)
			}
		}
	}
	if dst.InspectionType == "" {
		switch src.GetContentType() {
		case int32(pb.GuardrailContentType_GUARDRAIL_CONTENT_TYPE_PROMPT),
			int32(pb.GuardrailContentType_GUARDRAIL_CONTENT_TYPE_SYSTEM):
			dst.InspectionType = agentwire.InspectionPromptInjection
		default:
			dst.InspectionType = agentwire.InspectionPIIDetection
		}
	}
	if dst.Categories == nil {
		dst.Categories = []string{}
	}
	if dst.Metadata == nil {
		dst.Metadata = map[string]string{}
	}
}

// ConfigureEventFromPB fills dst from src. Config holds the config_json
// text (nil when empty); gRPC configure events carry no correlation id.
func ConfigureEventFromPB(dst *agentwire.ConfigureEvent, src *pb.ConfigureEvent) {
	*dst = agentwire.ConfigureEvent{}
	if cj := src.GetConfigJson(); cj != "" {
		dst.Config = json.RawMessage(cj)
	}
	if src != nil && src.ConfigVersion != nil {
		dst.ConfigVersion = agentwire.Some(*src.ConfigVersion)
	}
}

// CancelFromPB converts a CancelRequest. A reason outside 1…6 becomes 0
// (unknown); blocking_agent_id and manual_reason have no payload field.
func CancelFromPB(src *pb.CancelRequest) agentwire.Cancel {
	c := agentwire.Cancel{CorrelationID: src.GetCorrelationId(), TimestampMS: src.GetTimestampMs()}
	if r := src.GetReason(); r >= int32(agentwire.CancelClientDisconnect) && r <= int32(agentwire.CancelManual) {
		c.Reason = agentwire.CancelReason(r)
	}
	return c
}

// PingFromPB converts a Ping.
func PingFromPB(src *pb.Ping) agentwire.Ping {
	return agentwire.Ping{Sequence: src.GetSequence(), TimestampMS: src.GetTimestampMs()}
}

// PongToPB converts a Pong.
func PongToPB(src agentwire.Pong) *pb.Pong {
	return &pb.Pong{Sequence: src.Sequence, PingTimestampMs: src.PingTimestampMS, TimestampMs: src.TimestampMS}
}

// HandshakeRequestFromPB fills dst from src. Config holds config_json
// (nil when empty); SupportedVersions aliases src. SupportedEncodings is a
// Unix-socket notion and stays nil.
func HandshakeRequestFromPB(dst *agentwire.HandshakeRequest, src *pb.HandshakeRequest) {
	*dst = agentwire.HandshakeRequest{
		SupportedVersions: src.GetSupportedVersions(),
		ProxyID:           src.GetProxyId(),
		ProxyVersion:      src.GetProxyVersion(),
	}
	if cj := src.GetConfigJson(); cj != "" {
		dst.Config = json.RawMessage(cj)
	}
}

// ConfigUpdateResponseFromPB converts a ControlStream config_response.
func ConfigUpdateResponseFromPB(src *pb.ConfigUpdateResponse) agentwire.ConfigUpdateResponse {
	r := agentwire.ConfigUpdateResponse{
		RequestID:   src.GetRequestId(),
		Accepted:    src.GetAccepted(),
		TimestampMS: src.GetTimestampMs(),
	}
	if src != nil && src.Error != nil {
		r.Error = agentwire.Some(*src.Error)
	}
	return r
}

// ---------------------------------------------------------------------------
// payload → pb: the agent reply

// ResponseEncoder converts agentwire.AgentResponse values into a
// pb.AgentResponse whose sub-messages (decision, header operations, audit)
// are owned by the encoder and reused by the next Encode. After warm-up an
// Encode of a reply without audit.custom entries allocates nothing.
//
// The zero value is ready to use. Not safe for concurrent use; the message
// returned by Encode is valid until the next Encode.
type ResponseEncoder struct {
	msg   pb.AgentResponse
	audit pb.AuditMetadata
	ptime uint64
	conf  float32
	body  string

	allow     pb.AgentResponse_Allow
	allowMsg  pb.AllowDecision
	block     pb.AgentResponse_Block
	blockMsg  pb.BlockDecision
	redirect  pb.AgentResponse_Redirect
	redirMsg  pb.RedirectDecision
	challenge pb.AgentResponse_Challenge
	chalMsg   pb.ChallengeDecision

	custom map[string]string
	keys   []string

	// Reusable storage for header operations and headers; grown on demand.
	ops     []*pb.HeaderOp
	sets    []*pb.HeaderOp_Set
	adds    []*pb.HeaderOp_Add
	removes []*pb.HeaderOp_Remove
	hdrs    []*pb.Header
	nOps    int
	nSets   int
	nAdds   int
	nRem    int
	nHdrs   int
	reqOps  []*pb.HeaderOp
	respOps []*pb.HeaderOp
	blkHdrs []*pb.Header
}

// Encode converts src into the encoder's message and returns it.
// correlation_id, the decision, header operations, audit (always present),
// needs_more and processing_time_ms (when valid) are set; JSON-only fields
// are dropped. Audit custom values are sent as their JSON text
// (SPEC 4.6): a string value "abc" travels as `"abc"` with the quotes.
// Block headers are written sorted by name. Slices and maps of src (audit
// lists, challenge params) are referenced, not copied: src must not change
// until the message has been marshalled.
func (e *ResponseEncoder) Encode(src *agentwire.AgentResponse) *pb.AgentResponse {
	e.nOps, e.nSets, e.nAdds, e.nRem, e.nHdrs = 0, 0, 0, 0, 0
	m := &e.msg
	m.CorrelationId = wiretext.Valid(src.CorrelationID)
	m.NeedsMore = src.NeedsMore
	m.ProcessingTimeMs = nil
	if src.ProcessingTimeMS.Valid {
		e.ptime = src.ProcessingTimeMS.Value
		m.ProcessingTimeMs = &e.ptime
	}

	switch src.Decision.Kind {
	case agentwire.DecisionBlock:
		d := &e.blockMsg
		d.Status = uint32(src.Decision.Status)
		d.Body = nil
		if src.Decision.Body.Valid {
			e.body = wiretext.Valid(src.Decision.Body.Value)
			d.Body = &e.body
		}
		d.Headers = e.blockHeaders(src.Decision.BlockHeaders)
		e.block.Block = d
		m.Decision = &e.block
	case agentwire.DecisionRedirect:
		e.redirMsg.Url = wiretext.Valid(src.Decision.URL)
		e.redirMsg.Status = uint32(src.Decision.Status)
		e.redirect.Redirect = &e.redirMsg
		m.Decision = &e.redirect
	case agentwire.DecisionChallenge:
		e.chalMsg.ChallengeType = wiretext.Valid(src.Decision.ChallengeType)
		e.chalMsg.Params = validMap(src.Decision.Params)
		e.challenge.Challenge = &e.chalMsg
		m.Decision = &e.challenge
	default:
		e.allow.Allow = &e.allowMsg
		m.Decision = &e.allow
	}

	e.reqOps = e.headerOps(e.reqOps[:0], src.RequestHeaders)
	m.RequestHeaders = e.reqOps
	if len(m.RequestHeaders) == 0 {
		m.RequestHeaders = nil
	}
	e.respOps = e.headerOps(e.respOps[:0], src.ResponseHeaders)
	m.ResponseHeaders = e.respOps
	if len(m.ResponseHeaders) == 0 {
		m.ResponseHeaders = nil
	}

	a := &e.audit
	a.Tags = validStrings(src.Audit.Tags)
	a.RuleIds = validStrings(src.Audit.RuleIDs)
	a.ReasonCodes = validStrings(src.Audit.ReasonCodes)
	a.Confidence = nil
	if src.Audit.Confidence.Valid {
		e.conf = src.Audit.Confidence.Value
		a.Confidence = &e.conf
	}
	a.Custom = nil
	if len(src.Audit.Custom) > 0 {
		if e.custom == nil {
			e.custom = make(map[string]string, len(src.Audit.Custom))
		} else {
			clear(e.custom)
		}
		for k, v := range src.Audit.Custom {
			k = wiretext.Valid(k)
			if len(v) == 0 {
				e.custom[k] = "null"
				continue
			}
			e.custom[k] = wiretext.Valid(string(v))
		}
		a.Custom = e.custom
	}
	m.Audit = a
	return m
}

func (e *ResponseEncoder) header(name, value string) *pb.Header {
	if e.nHdrs == len(e.hdrs) {
		e.hdrs = append(e.hdrs, &pb.Header{})
	}
	h := e.hdrs[e.nHdrs]
	e.nHdrs++
	h.Name, h.Value = wiretext.Valid(name), wiretext.Valid(value)
	return h
}

func (e *ResponseEncoder) headerOps(dst []*pb.HeaderOp, ops []agentwire.HeaderOp) []*pb.HeaderOp {
	for i := range ops {
		op := &ops[i]
		if e.nOps == len(e.ops) {
			e.ops = append(e.ops, &pb.HeaderOp{})
		}
		o := e.ops[e.nOps]
		e.nOps++
		switch op.Kind {
		case agentwire.HeaderAdd:
			if e.nAdds == len(e.adds) {
				e.adds = append(e.adds, &pb.HeaderOp_Add{})
			}
			w := e.adds[e.nAdds]
			e.nAdds++
			w.Add = e.header(op.Name, op.Value)
			o.Operation = w
		case agentwire.HeaderRemove:
			if e.nRem == len(e.removes) {
				e.removes = append(e.removes, &pb.HeaderOp_Remove{})
			}
			w := e.removes[e.nRem]
			e.nRem++
			w.Remove = wiretext.Valid(op.Name)
			o.Operation = w
		default:
			if e.nSets == len(e.sets) {
				e.sets = append(e.sets, &pb.HeaderOp_Set{})
			}
			w := e.sets[e.nSets]
			e.nSets++
			w.Set = e.header(op.Name, op.Value)
			o.Operation = w
		}
		dst = append(dst, o)
	}
	return dst
}

func (e *ResponseEncoder) blockHeaders(h map[string]string) []*pb.Header {
	if len(h) == 0 {
		return nil
	}
	e.keys = e.keys[:0]
	for k := range h {
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys)
	e.blkHdrs = e.blkHdrs[:0]
	for _, k := range e.keys {
		e.blkHdrs = append(e.blkHdrs, e.header(k, h[k]))
	}
	return e.blkHdrs
}

// AgentResponseToPB converts src into a freshly allocated pb.AgentResponse
// (convenience for cold paths; hot paths use a ResponseEncoder).
func AgentResponseToPB(src *agentwire.AgentResponse) *pb.AgentResponse {
	var e ResponseEncoder
	return e.Encode(src)
}

// ---------------------------------------------------------------------------
// payload → pb: handshake and control messages (cold paths, allocate)

// CapabilitiesToPB converts agent capabilities.
func CapabilitiesToPB(c *agentwire.Capabilities) *pb.AgentCapabilities {
	out := &pb.AgentCapabilities{
		ProtocolVersion: c.ProtocolVersion,
		AgentId:         c.AgentID,
		Name:            c.Name,
		Version:         c.Version,
		SupportedEvents: slices.Clone(c.SupportedEvents),
		Features: &pb.AgentFeatures{
			StreamingBody:      c.Features.StreamingBody,
			Websocket:          c.Features.WebSocket,
			Guardrails:         c.Features.Guardrails,
			ConfigPush:         c.Features.ConfigPush,
			MetricsExport:      c.Features.MetricsExport,
			ConcurrentRequests: c.Features.ConcurrentRequests,
			Cancellation:       c.Features.Cancellation,
			FlowControl:        c.Features.FlowControl,
			HealthReporting:    c.Features.HealthReporting,
		},
		Limits: &pb.AgentLimits{
			MaxBodySize:        c.Limits.MaxBodySize,
			MaxConcurrency:     c.Limits.MaxConcurrency,
			PreferredChunkSize: c.Limits.PreferredChunkSize,
		},
		HealthConfig: &pb.HealthConfig{
			ReportIntervalMs:       c.Health.ReportIntervalMS,
			IncludeLoadMetrics:     c.Health.IncludeLoadMetrics,
			IncludeResourceMetrics: c.Health.IncludeResourceMetrics,
		},
	}
	if v, ok := c.Limits.MaxMemory.Get(); ok {
		out.Limits.MaxMemory = &v
	}
	if v, ok := c.Limits.MaxProcessingTimeMS.Get(); ok {
		out.Limits.MaxProcessingTimeMs = &v
	}
	return validPB(out)
}

// HandshakeResponseToPB converts a handshake answer. The Unix-socket
// Encoding has no proto field and is dropped.
func HandshakeResponseToPB(r *agentwire.HandshakeResponse) *pb.HandshakeResponse {
	out := &pb.HandshakeResponse{
		ProtocolVersion: r.ProtocolVersion,
		Capabilities:    CapabilitiesToPB(&r.Capabilities),
		Success:         r.Success,
	}
	if v, ok := r.Error.Get(); ok {
		out.Error = &v
	}
	return validPB(out)
}

// HealthStatusToPB converts a health report.
func HealthStatusToPB(h *agentwire.HealthStatus) *pb.HealthStatus {
	out := &pb.HealthStatus{
		AgentId:           h.AgentID,
		State:             int32(h.State),
		TimestampMs:       h.TimestampMS,
		DisabledFeatures:  slices.Clone(h.DisabledFeatures),
		TimeoutMultiplier: h.TimeoutMultiplier,
		Recoverable:       h.Recoverable,
	}
	if v, ok := h.Message.Get(); ok {
		out.Message = &v
	}
	if v, ok := h.ValidUntilMS.Get(); ok {
		out.ValidUntilMs = &v
	}
	if v, ok := h.DrainETAMS.Get(); ok {
		out.DrainEtaMs = &v
	}
	if v, ok := h.UnhealthyReason.Get(); ok {
		out.UnhealthyReason = &v
	}
	return validPB(out)
}

// FlowControlSignalToPB converts a flow-control signal.
func FlowControlSignalToPB(f *agentwire.FlowControlSignal) *pb.FlowControlSignal {
	out := &pb.FlowControlSignal{Action: int32(f.Action), TimestampMs: f.TimestampMS}
	if v, ok := f.CorrelationID.Get(); ok {
		out.CorrelationId = &v
	}
	if v, ok := f.BufferAvailable.Get(); ok {
		out.BufferAvailable = &v
	}
	return validPB(out)
}

func optHelp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// MetricsReportToPB converts a metrics report. An empty help text is left
// out (the Rust proxy reads an absent help as empty anyway). Label maps are
// referenced, not copied.
func MetricsReportToPB(r *agentwire.MetricsReport) *pb.MetricsReport {
	out := &pb.MetricsReport{AgentId: r.AgentID, TimestampMs: r.TimestampMS, IntervalMs: r.IntervalMS}
	for _, c := range r.Counters {
		out.Counters = append(out.Counters, &pb.CounterMetric{Name: c.Name, Help: optHelp(c.Help), Labels: c.Labels, Value: c.Value})
	}
	for _, g := range r.Gauges {
		out.Gauges = append(out.Gauges, &pb.GaugeMetric{Name: g.Name, Help: optHelp(g.Help), Labels: g.Labels, Value: g.Value})
	}
	for _, h := range r.Histograms {
		ph := &pb.HistogramMetric{Name: h.Name, Help: optHelp(h.Help), Labels: h.Labels, Sum: h.Sum, Count: h.Count}
		for _, b := range h.Buckets {
			ph.Buckets = append(ph.Buckets, &pb.HistogramBucket{Le: b.Le, Count: b.Count})
		}
		out.Histograms = append(out.Histograms, ph)
	}
	return validPB(out)
}

// ConfigUpdateRequestToPB converts a config-update request. A rule's
// Definition travels as definition_json text ("null" when empty).
func ConfigUpdateRequestToPB(r *agentwire.ConfigUpdateRequest) *pb.ConfigUpdateRequest {
	out := &pb.ConfigUpdateRequest{RequestId: r.RequestID, TimestampMs: r.TimestampMS}
	switch r.Kind {
	case agentwire.ConfigRuleUpdate:
		ru := &pb.RuleUpdate{RuleSet: r.RuleSet, RemoveRules: slices.Clone(r.RemoveRules)}
		for i := range r.Rules {
			d := &r.Rules[i]
			def := "null"
			if len(d.Definition) > 0 {
				def = string(d.Definition)
			}
			rd := &pb.RuleDefinition{Id: d.ID, Priority: d.Priority, DefinitionJson: def, Enabled: d.Enabled, Tags: slices.Clone(d.Tags)}
			if v, ok := d.Description.Get(); ok {
				rd.Description = &v
			}
			ru.Rules = append(ru.Rules, rd)
		}
		out.UpdateType = &pb.ConfigUpdateRequest_RuleUpdate{RuleUpdate: ru}
	case agentwire.ConfigListUpdate:
		out.UpdateType = &pb.ConfigUpdateRequest_ListUpdate{ListUpdate: &pb.ListUpdate{
			ListId: r.ListID, Add: slices.Clone(r.Add), Remove: slices.Clone(r.Remove),
		}}
	case agentwire.ConfigRestartRequired:
		out.UpdateType = &pb.ConfigUpdateRequest_RestartRequired{RestartRequired: &pb.RestartRequired{
			Reason: r.Reason, GracePeriodMs: r.GracePeriodMS,
		}}
	case agentwire.ConfigError:
		ce := &pb.ConfigError{Error: r.Error}
		if v, ok := r.Field.Get(); ok {
			ce.Field = &v
		}
		out.UpdateType = &pb.ConfigUpdateRequest_ConfigError{ConfigError: ce}
	default:
		out.UpdateType = &pb.ConfigUpdateRequest_RequestReload{RequestReload: &pb.RequestReload{}}
	}
	return validPB(out)
}

// ---------------------------------------------------------------------------
// helpers

func optStringFromPB(p *string) agentwire.Opt[string] {
	if p == nil {
		return agentwire.Opt[string]{}
	}
	return agentwire.Some(*p)
}

// timeFromMS converts epoch milliseconds to a UTC time; 0 gives the zero
// time.
func timeFromMS(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

// LogMessageToPB converts a forwarded log line. The fields map is
// referenced, not copied.
func LogMessageToPB(m *agentwire.LogMessage) *pb.LogMessage {
	out := &pb.LogMessage{Level: int32(m.Level), Message: m.Message, Fields: m.Fields, TimestampMs: m.TimestampMS}
	if v, ok := m.CorrelationID.Get(); ok {
		out.CorrelationId = &v
	}
	return validPB(out)
}
