package pbconv

// Proxy-side conversions: the events a proxy sends (payload → protobuf) and
// the messages an agent sends back (protobuf → payload).
//
// These functions allocate and are meant for cold paths, for tests and as
// the reference the engine's hand-written wire code (internal/pbwire) is
// checked against byte for byte.
//
// What gRPC cannot carry in the proxy → agent direction (SPEC 4.6), and
// what these functions therefore drop or synthesise:
//   - RequestMetadata.TLSCipher has no proto field. A zero Timestamp is
//     sent as the conversion time (the now argument), like the Rust proxy.
//   - RequestHeadersEvent http_version: Metadata.Protocol when it is set,
//     else "HTTP/1.1" (the Rust proxy always writes "HTTP/1.1").
//   - BodyChunkEvent proxy_buffer_available is 0 (the engine does not
//     buffer bodies); timestamp_ms is the conversion time.
//   - RequestCompleteEvent: UpstreamAttempts has no proto field; upstream
//     is absent and from_cache false. RequestBodySize and ResponseBodySize
//     travel as bytes_received and bytes_sent.
//   - WebSocketFrameEvent: FrameIndex, Fin, RouteID and ClientIP have no
//     proto field. Opcode names map to frame_type (continuation → 0).
//   - GuardrailInspectEvent: inspection_type, categories, route_id and
//     metadata travel in context_json (see GuardrailContextJSON);
//     content_type is PROMPT for prompt_injection and UNSPECIFIED
//     otherwise. The agent side (agent.go) reads them back.
//   - ConfigureEvent.CorrelationID is a Unix-socket notion and is dropped.
//
// And in the agent → proxy direction:
//   - AgentResponse: version is set to 2; routing_metadata, body mutations
//     and the WebSocket decision do not exist in proto and stay empty.
//     Block headers (a list) become a map (a repeated name keeps its last
//     value); an empty list gives nil. A HeaderOp without an operation is
//     dropped. Block and redirect status codes above 999 are rejected
//     (ErrStatusRange) instead of being truncated to 16 bits.
//   - audit.custom values are JSON text (SPEC 4.6): a value that parses as
//     JSON is kept as that JSON value, anything else becomes a JSON string
//     holding the text. The reserved key "correlation_id" is dropped.
//   - HealthStatus load and resources metrics have no payload field.

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/wiretext"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// DefaultHTTPVersion is the http_version sent when RequestMetadata.Protocol
// is empty (the value the Rust proxy always sends).
const DefaultHTTPVersion = "HTTP/1.1"

// MaxStatus is the largest HTTP status code accepted in a block or
// redirect decision.
const MaxStatus = 999

// ErrStatusRange is returned when an agent's block or redirect status is
// larger than MaxStatus.
var ErrStatusRange = errors.New("agentwire: decision status out of range (> 999)")

// ---------------------------------------------------------------------------
// payload → pb: events

// TimestampMS returns t as epoch milliseconds, or nowMS when t is zero.
func TimestampMS(t time.Time, nowMS uint64) uint64 {
	if t.IsZero() {
		return nowMS
	}
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

// HTTPVersion returns the http_version sent for metadata m.
func HTTPVersion(m *agentwire.RequestMetadata) string {
	if m.Protocol != "" {
		return m.Protocol
	}
	return DefaultHTTPVersion
}

func optStringToPB(o agentwire.Opt[string]) *string {
	if !o.Valid {
		return nil
	}
	v := o.Value
	return &v
}

// RequestMetadataToPB converts request metadata. A zero Timestamp becomes
// nowMS.
func RequestMetadataToPB(src *agentwire.RequestMetadata, nowMS uint64) *pb.RequestMetadata {
	m := &pb.RequestMetadata{
		CorrelationId: src.CorrelationID,
		RequestId:     src.RequestID,
		ClientIp:      src.ClientIP,
		ClientPort:    uint32(src.ClientPort),
		ServerName:    optStringToPB(src.ServerName),
		Protocol:      src.Protocol,
		TlsVersion:    optStringToPB(src.TLSVersion),
		RouteId:       optStringToPB(src.RouteID),
		UpstreamId:    optStringToPB(src.UpstreamID),
		TimestampMs:   TimestampMS(src.Timestamp, nowMS),
	}
	if src.Traceparent != "" {
		tp := src.Traceparent
		m.Traceparent = &tp
	}
	return validPB(m)
}

// HeadersToPB flattens headers into one pb.Header per value, names in the
// order of h and values in their order (SPEC 4.6).
func HeadersToPB(h agentwire.Headers) []*pb.Header {
	var out []*pb.Header
	for i := range h {
		for _, v := range h[i].Values {
			out = append(out, &pb.Header{Name: wiretext.Valid(h[i].Name), Value: wiretext.Valid(v)})
		}
	}
	return out
}

// RequestHeadersEventToPB converts a request-headers event.
func RequestHeadersEventToPB(src *agentwire.RequestHeadersEvent, nowMS uint64) *pb.RequestHeadersEvent {
	return validPB(&pb.RequestHeadersEvent{
		Metadata:    RequestMetadataToPB(&src.Metadata, nowMS),
		Method:      src.Method,
		Uri:         src.URI,
		HttpVersion: HTTPVersion(&src.Metadata),
		Headers:     HeadersToPB(src.Headers),
	})
}

// BodyChunkToPB converts a request or response body chunk. Data is
// referenced, not copied.
func BodyChunkToPB(src *agentwire.BodyChunk, nowMS uint64) *pb.BodyChunkEvent {
	m := &pb.BodyChunkEvent{
		CorrelationId:    src.CorrelationID,
		ChunkIndex:       src.ChunkIndex,
		Data:             src.Data,
		IsLast:           src.IsLast,
		BytesTransferred: src.BytesTransferred,
		TimestampMs:      nowMS,
	}
	if src.TotalSize.Valid {
		v := src.TotalSize.Value
		m.TotalSize = &v
	}
	return validPB(m)
}

// ResponseHeadersEventToPB converts a response-headers event.
func ResponseHeadersEventToPB(src *agentwire.ResponseHeadersEvent) *pb.ResponseHeadersEvent {
	return validPB(&pb.ResponseHeadersEvent{
		CorrelationId: src.CorrelationID,
		StatusCode:    uint32(src.Status),
		Headers:       HeadersToPB(src.Headers),
	})
}

// RequestCompleteEventToPB converts a request-complete event.
func RequestCompleteEventToPB(src *agentwire.RequestCompleteEvent) *pb.RequestCompleteEvent {
	return validPB(&pb.RequestCompleteEvent{
		CorrelationId: src.CorrelationID,
		StatusCode:    uint32(src.Status),
		DurationMs:    src.DurationMS,
		BytesReceived: src.RequestBodySize,
		BytesSent:     src.ResponseBodySize,
		Error:         optStringToPB(src.Error),
	})
}

// FrameTypeFromOpcode maps a payload opcode name to the proto frame_type:
// text 1, binary 2, ping 3, pong 4, close 5; continuation and unknown
// names 0. The decimal form the Rust SDK agent produces ("1" … "5") is
// accepted as well. It is the inverse of OpcodeFromFrameType.
func FrameTypeFromOpcode(op string) int32 {
	switch op {
	case OpcodeText:
		return int32(pb.WebSocketFrameEvent_FRAME_TYPE_TEXT)
	case OpcodeBinary:
		return int32(pb.WebSocketFrameEvent_FRAME_TYPE_BINARY)
	case OpcodePing:
		return int32(pb.WebSocketFrameEvent_FRAME_TYPE_PING)
	case OpcodePong:
		return int32(pb.WebSocketFrameEvent_FRAME_TYPE_PONG)
	case OpcodeClose:
		return int32(pb.WebSocketFrameEvent_FRAME_TYPE_CLOSE)
	}
	if n, err := strconv.ParseInt(op, 10, 32); err == nil && n >= 1 && n <= 5 {
		return int32(n)
	}
	return int32(pb.WebSocketFrameEvent_FRAME_TYPE_UNSPECIFIED)
}

// WebSocketFrameEventToPB converts a WebSocket frame event. Data is
// referenced, not copied.
func WebSocketFrameEventToPB(src *agentwire.WebSocketFrameEvent) *pb.WebSocketFrameEvent {
	return validPB(&pb.WebSocketFrameEvent{
		CorrelationId:  src.CorrelationID,
		ClientToServer: src.ClientToServer,
		FrameType:      FrameTypeFromOpcode(src.Opcode),
		Payload:        src.Data,
	})
}

// GuardrailContentType returns the proto content_type sent for an
// inspection type: PROMPT (1) for prompt_injection, UNSPECIFIED (0) for
// anything else (PII may be found in prompts and responses alike).
func GuardrailContentType(inspectionType string) int32 {
	if inspectionType == agentwire.InspectionPromptInjection {
		return int32(pb.GuardrailContentType_GUARDRAIL_CONTENT_TYPE_PROMPT)
	}
	return int32(pb.GuardrailContentType_GUARDRAIL_CONTENT_TYPE_UNSPECIFIED)
}

// GuardrailContextJSON returns the context_json text carrying the guardrail
// fields the proto lacks, as one compact JSON object with sorted keys:
// {"categories":[…],"inspection_type":"…","metadata":{…},"route_id":…}.
// categories and metadata are [] and {} when empty; route_id is null when
// absent.
func GuardrailContextJSON(src *agentwire.GuardrailInspectEvent) string {
	return string(AppendGuardrailContextJSON(nil, src))
}

// AppendGuardrailContextJSON appends the GuardrailContextJSON text to dst.
func AppendGuardrailContextJSON(dst []byte, src *agentwire.GuardrailInspectEvent) []byte {
	dst = append(dst, `{"categories":[`...)
	for i, c := range src.Categories {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, c)
	}
	dst = append(dst, `],"inspection_type":`...)
	dst = appendJSONString(dst, src.InspectionType)
	dst = append(dst, `,"metadata":{`...)
	keys := make([]string, 0, len(src.Metadata))
	for k := range src.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, src.Metadata[k])
	}
	dst = append(dst, `},"route_id":`...)
	if src.RouteID.Valid {
		dst = appendJSONString(dst, src.RouteID.Value)
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, '}')
}

// GuardrailInspectEventToPB converts a guardrail inspection event.
func GuardrailInspectEventToPB(src *agentwire.GuardrailInspectEvent) *pb.GuardrailInspectEvent {
	return validPB(&pb.GuardrailInspectEvent{
		CorrelationId: src.CorrelationID,
		Content:       src.Content,
		ContentType:   GuardrailContentType(src.InspectionType),
		Model:         optStringToPB(src.Model),
		ContextJson:   GuardrailContextJSON(src),
	})
}

// ConfigJSON returns the config_json text for a configuration value:
// the JSON text itself, or "null" when it is empty.
func ConfigJSON(cfg json.RawMessage) string {
	if len(cfg) == 0 {
		return "null"
	}
	return string(cfg)
}

// ConfigureEventToPB converts a configure event.
func ConfigureEventToPB(src *agentwire.ConfigureEvent, isInitial bool, nowMS uint64) *pb.ConfigureEvent {
	return validPB(&pb.ConfigureEvent{
		ConfigJson:    ConfigJSON(src.Config),
		ConfigVersion: optStringToPB(src.ConfigVersion),
		IsInitial:     isInitial,
		TimestampMs:   nowMS,
	})
}

// CancelToPB converts a cancel notice (reason 1…6, gRPC numbering).
func CancelToPB(src agentwire.Cancel) *pb.CancelRequest {
	return validPB(&pb.CancelRequest{
		CorrelationId: src.CorrelationID,
		Reason:        int32(src.Reason),
		TimestampMs:   src.TimestampMS,
	})
}

// PingToPB converts a ping.
func PingToPB(src agentwire.Ping) *pb.Ping {
	return &pb.Ping{Sequence: src.Sequence, TimestampMs: src.TimestampMS}
}

// HandshakeRequestToPB converts a handshake request. An empty Config is sent
// as "{}" (what the Rust proxy sends); SupportedEncodings is a Unix-socket
// notion and is dropped.
func HandshakeRequestToPB(src *agentwire.HandshakeRequest) *pb.HandshakeRequest {
	cj := "{}"
	if len(src.Config) > 0 {
		cj = string(src.Config)
	}
	return validPB(&pb.HandshakeRequest{
		SupportedVersions: append([]uint32(nil), src.SupportedVersions...),
		ProxyId:           src.ProxyID,
		ProxyVersion:      src.ProxyVersion,
		ConfigJson:        cj,
	})
}

// ConfigUpdateResponseToPB converts the proxy's answer to a config update
// (sent as ProxyControl.config_response).
func ConfigUpdateResponseToPB(src *agentwire.ConfigUpdateResponse) *pb.ConfigUpdateResponse {
	return validPB(&pb.ConfigUpdateResponse{
		RequestId:   src.RequestID,
		Accepted:    src.Accepted,
		Error:       optStringToPB(src.Error),
		TimestampMs: src.TimestampMS,
	})
}

// ---------------------------------------------------------------------------
// pb → payload: agent messages

// CustomValue converts one audit.custom value from its gRPC text form:
// text that is valid JSON is kept as that JSON value; anything else becomes
// a JSON string holding the text (B-C14: the Rust SDK writes JSON text, a
// plain proto client may write raw text).
func CustomValue(text string) json.RawMessage {
	if json.Valid([]byte(text)) {
		return json.RawMessage(text)
	}
	return appendJSONString(make([]byte, 0, len(text)+2), text)
}

// CorrelationIDKey is the audit.custom key reserved for the Unix-socket
// transport's correlation id; it never appears in a decoded reply.
const CorrelationIDKey = "correlation_id"

// AgentResponseFromPB fills dst (which should be reset) from src.
// It fails with ErrStatusRange when a block or redirect status exceeds
// MaxStatus.
func AgentResponseFromPB(dst *agentwire.AgentResponse, src *pb.AgentResponse) error {
	dst.CorrelationID = src.GetCorrelationId()
	dst.Version = agentwire.ProtocolVersion
	dst.NeedsMore = src.GetNeedsMore()
	if src.ProcessingTimeMs != nil {
		dst.ProcessingTimeMS = agentwire.Some(*src.ProcessingTimeMs)
	}
	switch d := src.GetDecision().(type) {
	case *pb.AgentResponse_Block:
		b := d.Block
		if b.GetStatus() > MaxStatus {
			return ErrStatusRange
		}
		dst.Decision = agentwire.Decision{Kind: agentwire.DecisionBlock, Status: uint16(b.GetStatus())}
		if b != nil && b.Body != nil {
			dst.Decision.Body = agentwire.Some(b.GetBody())
		}
		for _, h := range b.GetHeaders() {
			if dst.Decision.BlockHeaders == nil {
				dst.Decision.BlockHeaders = make(map[string]string)
			}
			dst.Decision.BlockHeaders[h.GetName()] = h.GetValue()
		}
	case *pb.AgentResponse_Redirect:
		r := d.Redirect
		if r.GetStatus() > MaxStatus {
			return ErrStatusRange
		}
		dst.Decision = agentwire.Decision{Kind: agentwire.DecisionRedirect, URL: r.GetUrl(), Status: uint16(r.GetStatus())}
	case *pb.AgentResponse_Challenge:
		c := d.Challenge
		dst.Decision = agentwire.Decision{Kind: agentwire.DecisionChallenge, ChallengeType: c.GetChallengeType()}
		if len(c.GetParams()) > 0 {
			dst.Decision.Params = make(map[string]string, len(c.GetParams()))
			for k, v := range c.GetParams() {
				dst.Decision.Params[k] = v
			}
		}
	default:
		dst.Decision = agentwire.Decision{}
	}
	dst.RequestHeaders = headerOpsFromPB(dst.RequestHeaders, src.GetRequestHeaders())
	dst.ResponseHeaders = headerOpsFromPB(dst.ResponseHeaders, src.GetResponseHeaders())
	if a := src.GetAudit(); a != nil {
		dst.Audit.Tags = append(dst.Audit.Tags, a.Tags...)
		dst.Audit.RuleIDs = append(dst.Audit.RuleIDs, a.RuleIds...)
		dst.Audit.ReasonCodes = append(dst.Audit.ReasonCodes, a.ReasonCodes...)
		if a.Confidence != nil {
			dst.Audit.Confidence = agentwire.Some(*a.Confidence)
		}
		for k, v := range a.Custom {
			if k == CorrelationIDKey {
				continue
			}
			if dst.Audit.Custom == nil {
				dst.Audit.Custom = make(map[string]json.RawMessage, len(a.Custom))
			}
			dst.Audit.Custom[k] = CustomValue(v)
		}
	}
	return nil
}

func headerOpsFromPB(dst []agentwire.HeaderOp, src []*pb.HeaderOp) []agentwire.HeaderOp {
	for _, op := range src {
		switch o := op.GetOperation().(type) {
		case *pb.HeaderOp_Set:
			dst = append(dst, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: o.Set.GetName(), Value: o.Set.GetValue()})
		case *pb.HeaderOp_Add:
			dst = append(dst, agentwire.HeaderOp{Kind: agentwire.HeaderAdd, Name: o.Add.GetName(), Value: o.Add.GetValue()})
		case *pb.HeaderOp_Remove:
			dst = append(dst, agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: o.Remove})
		}
	}
	return dst
}

// HealthStatusFromPB converts a health report.
func HealthStatusFromPB(src *pb.HealthStatus) agentwire.HealthStatus {
	h := agentwire.HealthStatus{
		AgentID:           src.GetAgentId(),
		State:             agentwire.HealthState(src.GetState()),
		Message:           optStringFromPB(src.Message),
		DisabledFeatures:  append([]string(nil), src.GetDisabledFeatures()...),
		TimeoutMultiplier: src.GetTimeoutMultiplier(),
		UnhealthyReason:   optStringFromPB(src.UnhealthyReason),
		Recoverable:       src.GetRecoverable(),
		TimestampMS:       src.GetTimestampMs(),
	}
	if src.ValidUntilMs != nil {
		h.ValidUntilMS = agentwire.Some(*src.ValidUntilMs)
	}
	if src.DrainEtaMs != nil {
		h.DrainETAMS = agentwire.Some(*src.DrainEtaMs)
	}
	return h
}

// FlowControlSignalFromPB converts a flow-control signal.
func FlowControlSignalFromPB(src *pb.FlowControlSignal) agentwire.FlowControlSignal {
	f := agentwire.FlowControlSignal{
		CorrelationID: optStringFromPB(src.CorrelationId),
		Action:        agentwire.FlowAction(src.GetAction()),
		TimestampMS:   src.GetTimestampMs(),
	}
	if src.BufferAvailable != nil {
		f.BufferAvailable = agentwire.Some(*src.BufferAvailable)
	}
	return f
}

// PongFromPB converts a pong.
func PongFromPB(src *pb.Pong) agentwire.Pong {
	return agentwire.Pong{Sequence: src.GetSequence(), PingTimestampMS: src.GetPingTimestampMs(), TimestampMS: src.GetTimestampMs()}
}

func helpFromPB(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func labelsFromPB(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// MetricsReportFromPB converts a metrics report. Label maps are copied and
// never nil; an absent help text is "".
func MetricsReportFromPB(src *pb.MetricsReport) *agentwire.MetricsReport {
	r := &agentwire.MetricsReport{
		AgentID:     src.GetAgentId(),
		TimestampMS: src.GetTimestampMs(),
		IntervalMS:  src.GetIntervalMs(),
		Counters:    []agentwire.CounterMetric{},
		Gauges:      []agentwire.GaugeMetric{},
		Histograms:  []agentwire.HistogramMetric{},
	}
	for _, c := range src.GetCounters() {
		r.Counters = append(r.Counters, agentwire.CounterMetric{
			Name: c.GetName(), Help: helpFromPB(c.Help), Labels: labelsFromPB(c.GetLabels()), Value: c.GetValue(),
		})
	}
	for _, g := range src.GetGauges() {
		r.Gauges = append(r.Gauges, agentwire.GaugeMetric{
			Name: g.GetName(), Help: helpFromPB(g.Help), Labels: labelsFromPB(g.GetLabels()), Value: g.GetValue(),
		})
	}
	for _, h := range src.GetHistograms() {
		ph := agentwire.HistogramMetric{
			Name: h.GetName(), Help: helpFromPB(h.Help), Labels: labelsFromPB(h.GetLabels()),
			Sum: h.GetSum(), Count: h.GetCount(), Buckets: []agentwire.HistogramBucket{},
		}
		for _, b := range h.GetBuckets() {
			ph.Buckets = append(ph.Buckets, agentwire.HistogramBucket{Le: b.GetLe(), Count: b.GetCount()})
		}
		r.Histograms = append(r.Histograms, ph)
	}
	return r
}

// ConfigUpdateRequestFromPB converts a config-update request. A missing
// update_type is read as request_reload (as the Rust client does); a rule
// definition_json that is not valid JSON becomes JSON null.
func ConfigUpdateRequestFromPB(src *pb.ConfigUpdateRequest) *agentwire.ConfigUpdateRequest {
	r := &agentwire.ConfigUpdateRequest{RequestID: src.GetRequestId(), TimestampMS: src.GetTimestampMs()}
	switch u := src.GetUpdateType().(type) {
	case *pb.ConfigUpdateRequest_RuleUpdate:
		r.Kind = agentwire.ConfigRuleUpdate
		r.RuleSet = u.RuleUpdate.GetRuleSet()
		r.RemoveRules = append([]string{}, u.RuleUpdate.GetRemoveRules()...)
		r.Rules = []agentwire.RuleDefinition{}
		for _, d := range u.RuleUpdate.GetRules() {
			def := json.RawMessage("null")
			if dj := d.GetDefinitionJson(); json.Valid([]byte(dj)) {
				def = json.RawMessage(dj)
			}
			r.Rules = append(r.Rules, agentwire.RuleDefinition{
				ID: d.GetId(), Priority: d.GetPriority(), Definition: def, Enabled: d.GetEnabled(),
				Description: optStringFromPB(d.Description), Tags: append([]string{}, d.GetTags()...),
			})
		}
	case *pb.ConfigUpdateRequest_ListUpdate:
		r.Kind = agentwire.ConfigListUpdate
		r.ListID = u.ListUpdate.GetListId()
		r.Add = append([]string{}, u.ListUpdate.GetAdd()...)
		r.Remove = append([]string{}, u.ListUpdate.GetRemove()...)
	case *pb.ConfigUpdateRequest_RestartRequired:
		r.Kind = agentwire.ConfigRestartRequired
		r.Reason = u.RestartRequired.GetReason()
		r.GracePeriodMS = u.RestartRequired.GetGracePeriodMs()
	case *pb.ConfigUpdateRequest_ConfigError:
		r.Kind = agentwire.ConfigError
		r.Error = u.ConfigError.GetError()
		r.Field = optStringFromPB(u.ConfigError.Field)
	default:
		r.Kind = agentwire.ConfigRequestReload
	}
	return r
}

// LogMessageFromPB converts a forwarded log line; Fields is copied and never
// nil.
func LogMessageFromPB(src *pb.LogMessage) *agentwire.LogMessage {
	return &agentwire.LogMessage{
		Level:         agentwire.LogLevel(src.GetLevel()),
		Message:       src.GetMessage(),
		CorrelationID: optStringFromPB(src.CorrelationId),
		Fields:        labelsFromPB(src.GetFields()),
		TimestampMS:   src.GetTimestampMs(),
	}
}

// CapabilitiesFromPB converts the agent's capabilities. SupportedEvents is
// copied as is, unknown codes included. Missing limits and health_config
// (also for a nil src) read as the reference's defaults, as its proxy reads
// them; missing features as all off.
func CapabilitiesFromPB(src *pb.AgentCapabilities) agentwire.Capabilities {
	c := agentwire.Capabilities{
		ProtocolVersion: src.GetProtocolVersion(),
		AgentID:         src.GetAgentId(),
		Name:            src.GetName(),
		Version:         src.GetVersion(),
		SupportedEvents: append([]int32(nil), src.GetSupportedEvents()...),
	}
	if f := src.GetFeatures(); f != nil {
		c.Features = agentwire.Features{
			StreamingBody:      f.StreamingBody,
			WebSocket:          f.Websocket,
			Guardrails:         f.Guardrails,
			ConfigPush:         f.ConfigPush,
			MetricsExport:      f.MetricsExport,
			ConcurrentRequests: f.ConcurrentRequests,
			Cancellation:       f.Cancellation,
			FlowControl:        f.FlowControl,
			HealthReporting:    f.HealthReporting,
		}
	}
	// A missing limits or health_config message reads as the reference's
	// defaults (its proxy does the same); missing features read as all off.
	c.Limits = agentwire.DefaultLimits()
	c.Health = agentwire.HealthConfig{ReportIntervalMS: 10000, IncludeLoadMetrics: true}
	if l := src.GetLimits(); l != nil {
		c.Limits = agentwire.Limits{
			MaxBodySize:        l.MaxBodySize,
			MaxConcurrency:     l.MaxConcurrency,
			PreferredChunkSize: l.PreferredChunkSize,
		}
		if l.MaxMemory != nil {
			c.Limits.MaxMemory = agentwire.Some(*l.MaxMemory)
		}
		if l.MaxProcessingTimeMs != nil {
			c.Limits.MaxProcessingTimeMS = agentwire.Some(*l.MaxProcessingTimeMs)
		}
	}
	if h := src.GetHealthConfig(); h != nil {
		c.Health = agentwire.HealthConfig{
			ReportIntervalMS:       h.ReportIntervalMs,
			IncludeLoadMetrics:     h.IncludeLoadMetrics,
			IncludeResourceMetrics: h.IncludeResourceMetrics,
		}
	}
	return c
}

// HandshakeResponseFromPB converts the agent's handshake answer.
func HandshakeResponseFromPB(src *pb.HandshakeResponse) agentwire.HandshakeResponse {
	return agentwire.HandshakeResponse{
		ProtocolVersion: src.GetProtocolVersion(),
		Capabilities:    CapabilitiesFromPB(src.GetCapabilities()),
		Success:         src.GetSuccess(),
		Error:           optStringFromPB(src.Error),
	}
}

// ---------------------------------------------------------------------------
// helpers

// appendJSONString appends s as a JSON string the way serde_json writes it:
// only '"', '\\' and control characters are escaped; invalid UTF-8 is
// replaced by U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			switch {
			case c == '"':
				dst = append(dst, '\\', '"')
			case c == '\\':
				dst = append(dst, '\\', '\\')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
