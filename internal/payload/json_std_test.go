package payload

// encoding/json mirrors of the Rust serde shapes. They serve two purposes:
// an independent decoder that turns golden json_decoded_value text into the
// expected Go values (so encoder tests do not depend on our own decoder),
// and the encoding/json baseline of the benchmarks.

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"
)

type jsonStdMetadata struct {
	CorrelationID string  `json:"correlation_id"`
	RequestID     string  `json:"request_id"`
	ClientIP      string  `json:"client_ip"`
	ClientPort    uint16  `json:"client_port"`
	ServerName    *string `json:"server_name"`
	Protocol      string  `json:"protocol"`
	TLSVersion    *string `json:"tls_version"`
	TLSCipher     *string `json:"tls_cipher"`
	RouteID       *string `json:"route_id"`
	UpstreamID    *string `json:"upstream_id"`
	Timestamp     string  `json:"timestamp"`
	Traceparent   *string `json:"traceparent,omitempty"`
}

type jsonStdRequestHeaders struct {
	CorrelationID string              `json:"correlation_id,omitempty"`
	Metadata      jsonStdMetadata     `json:"metadata"`
	Method        string              `json:"method"`
	URI           string              `json:"uri"`
	Headers       map[string][]string `json:"headers"`
}

type jsonStdBodyChunk struct {
	CorrelationID string  `json:"correlation_id"`
	Data          string  `json:"data"`
	IsLast        bool    `json:"is_last"`
	TotalSize     *uint64 `json:"total_size"`
	ChunkIndex    uint32  `json:"chunk_index"`
	BytesReceived *uint64 `json:"bytes_received,omitempty"`
	BytesSent     *uint64 `json:"bytes_sent,omitempty"`
}

type jsonStdResponseHeaders struct {
	CorrelationID string              `json:"correlation_id"`
	Status        uint16              `json:"status"`
	Headers       map[string][]string `json:"headers"`
}

type jsonStdRequestComplete struct {
	CorrelationID    string  `json:"correlation_id"`
	Status           uint16  `json:"status"`
	DurationMS       uint64  `json:"duration_ms"`
	RequestBodySize  uint64  `json:"request_body_size"`
	ResponseBodySize uint64  `json:"response_body_size"`
	UpstreamAttempts uint32  `json:"upstream_attempts"`
	Error            *string `json:"error"`
}

type jsonStdWebSocketFrame struct {
	CorrelationID  string  `json:"correlation_id"`
	Opcode         string  `json:"opcode"`
	Data           string  `json:"data"`
	ClientToServer bool    `json:"client_to_server"`
	FrameIndex     uint64  `json:"frame_index"`
	Fin            bool    `json:"fin"`
	RouteID        *string `json:"route_id"`
	ClientIP       string  `json:"client_ip"`
}

type jsonStdGuardrailInspect struct {
	CorrelationID  string            `json:"correlation_id"`
	InspectionType string            `json:"inspection_type"`
	Content        string            `json:"content"`
	Model          *string           `json:"model,omitempty"`
	Categories     []string          `json:"categories"`
	RouteID        *string           `json:"route_id,omitempty"`
	Metadata       map[string]string `json:"metadata"`
}

type jsonStdConfigure struct {
	CorrelationID string          `json:"correlation_id"`
	Config        json.RawMessage `json:"config"`
	ConfigVersion *string         `json:"config_version"`
}

type jsonStdHeaderOpBody struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

type jsonStdAudit struct {
	Tags        []string                   `json:"tags"`
	RuleIDs     []string                   `json:"rule_ids"`
	Confidence  *float32                   `json:"confidence"`
	ReasonCodes []string                   `json:"reason_codes"`
	Custom      map[string]json.RawMessage `json:"custom"`
}

type jsonStdBodyMutation struct {
	Data       *string `json:"data"`
	ChunkIndex uint32  `json:"chunk_index"`
}

type jsonStdAgentResponse struct {
	Version              uint32                           `json:"version"`
	Decision             json.RawMessage                  `json:"decision"`
	RequestHeaders       []map[string]jsonStdHeaderOpBody `json:"request_headers"`
	ResponseHeaders      []map[string]jsonStdHeaderOpBody `json:"response_headers"`
	RoutingMetadata      map[string]string                `json:"routing_metadata"`
	Audit                jsonStdAudit                     `json:"audit"`
	NeedsMore            bool                             `json:"needs_more"`
	RequestBodyMutation  *jsonStdBodyMutation             `json:"request_body_mutation"`
	ResponseBodyMutation *jsonStdBodyMutation             `json:"response_body_mutation"`
	WebSocketDecision    json.RawMessage                  `json:"websocket_decision"`
}

type jsonStdFeatures struct {
	StreamingBody      bool   `json:"streaming_body"`
	WebSocket          bool   `json:"websocket"`
	Guardrails         bool   `json:"guardrails"`
	ConfigPush         bool   `json:"config_push"`
	MetricsExport      bool   `json:"metrics_export"`
	ConcurrentRequests uint32 `json:"concurrent_requests"`
	Cancellation       bool   `json:"cancellation"`
	FlowControl        bool   `json:"flow_control"`
	HealthReporting    bool   `json:"health_reporting"`
}

type jsonStdLimits struct {
	MaxBodySize        uint64 `json:"max_body_size"`
	MaxConcurrency     uint32 `json:"max_concurrency"`
	PreferredChunkSize uint64 `json:"preferred_chunk_size"`
}

type jsonStdCapabilities struct {
	AgentID         string          `json:"agent_id"`
	Name            string          `json:"name"`
	Version         string          `json:"version"`
	SupportedEvents []int32         `json:"supported_events"`
	Features        jsonStdFeatures `json:"features"`
	Limits          jsonStdLimits   `json:"limits"`
}

type jsonStdHandshakeRequest struct {
	SupportedVersions  []uint32        `json:"supported_versions"`
	ProxyID            string          `json:"proxy_id"`
	ProxyVersion       string          `json:"proxy_version"`
	Config             json.RawMessage `json:"config"`
	SupportedEncodings []string        `json:"supported_encodings,omitempty"`
}

type jsonStdHandshakeResponse struct {
	ProtocolVersion uint32              `json:"protocol_version"`
	Capabilities    jsonStdCapabilities `json:"capabilities"`
	Success         bool                `json:"success"`
	Error           *string             `json:"error"`
	Encoding        *string             `json:"encoding,omitempty"`
}

type jsonStdRegistrationRequest struct {
	ProtocolVersion uint32              `json:"protocol_version"`
	AgentID         string              `json:"agent_id"`
	Capabilities    jsonStdCapabilities `json:"capabilities"`
	AuthToken       *string             `json:"auth_token"`
	Metadata        json.RawMessage     `json:"metadata"`
}

type jsonStdRegistrationResponse struct {
	Success      bool    `json:"success"`
	Error        *string `json:"error"`
	ProxyID      string  `json:"proxy_id"`
	ProxyVersion string  `json:"proxy_version"`
	ConnectionID string  `json:"connection_id"`
}

type jsonStdBucket struct {
	Le    json.RawMessage `json:"le"`
	Count uint64          `json:"count"`
}

type jsonStdMetric struct {
	Name    string            `json:"name"`
	Help    *string           `json:"help,omitempty"`
	Labels  map[string]string `json:"labels"`
	Value   json.RawMessage   `json:"value,omitempty"`
	Sum     float64           `json:"sum"`
	Count   uint64            `json:"count"`
	Buckets []jsonStdBucket   `json:"buckets"`
}

type jsonStdMetrics struct {
	AgentID     string          `json:"agent_id"`
	TimestampMS uint64          `json:"timestamp_ms"`
	IntervalMS  uint64          `json:"interval_ms"`
	Counters    []jsonStdMetric `json:"counters"`
	Gauges      []jsonStdMetric `json:"gauges"`
	Histograms  []jsonStdMetric `json:"histograms"`
}

type jsonStdRule struct {
	ID          string          `json:"id"`
	Priority    int32           `json:"priority"`
	Definition  json.RawMessage `json:"definition"`
	Enabled     bool            `json:"enabled"`
	Description *string         `json:"description"`
	Tags        []string        `json:"tags"`
}

type jsonStdConfigUpdate struct {
	UpdateType struct {
		Type          string        `json:"type"`
		RuleSet       string        `json:"rule_set"`
		Rules         []jsonStdRule `json:"rules"`
		RemoveRules   []string      `json:"remove_rules"`
		ListID        string        `json:"list_id"`
		Add           []string      `json:"add"`
		Remove        []string      `json:"remove"`
		Reason        string        `json:"reason"`
		GracePeriodMS uint64        `json:"grace_period_ms"`
		Error         string        `json:"error"`
		Field         *string       `json:"field"`
	} `json:"update_type"`
	RequestID   string `json:"request_id"`
	TimestampMS uint64 `json:"timestamp_ms"`
}

// ---------------------------------------------------------------------------
// Conversions from the mirrors to the payload model.

func jsonStdOpt(p *string) Opt[string] {
	if p == nil {
		return Opt[string]{}
	}
	return Some(*p)
}

func jsonStdHeaders(m map[string][]string) Headers {
	var h Headers
	for k, v := range m {
		h = append(h, Header{Name: k, Values: v})
	}
	return h
}

func jsonStdB64(s string) []byte {
	b, err := DecodeBase64Strict(nil, []byte(s))
	if err != nil {
		panic(err)
	}
	return b
}

func jsonStdUnmarshal(text string, v any) {
	if err := json.Unmarshal([]byte(text), v); err != nil {
		panic(fmt.Sprintf("encoding/json: %v on %s", err, text))
	}
}

func jsonStdToRequestHeaders(text string) RequestHeadersEvent {
	var s jsonStdRequestHeaders
	jsonStdUnmarshal(text, &s)
	m := s.Metadata
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		ts = time.Time{}
	}
	tp := ""
	if m.Traceparent != nil {
		tp = *m.Traceparent
	}
	return RequestHeadersEvent{
		Metadata: RequestMetadata{
			CorrelationID: m.CorrelationID, RequestID: m.RequestID, ClientIP: m.ClientIP,
			ClientPort: m.ClientPort, ServerName: jsonStdOpt(m.ServerName), Protocol: m.Protocol,
			TLSVersion: jsonStdOpt(m.TLSVersion), TLSCipher: jsonStdOpt(m.TLSCipher),
			RouteID: jsonStdOpt(m.RouteID), UpstreamID: jsonStdOpt(m.UpstreamID),
			Timestamp: ts.UTC(), Traceparent: tp,
		},
		Method:  s.Method,
		URI:     s.URI,
		Headers: jsonStdHeaders(s.Headers),
	}
}

func jsonStdToBodyChunk(text string) BodyChunk {
	var s jsonStdBodyChunk
	jsonStdUnmarshal(text, &s)
	c := BodyChunk{CorrelationID: s.CorrelationID, Data: jsonStdB64(s.Data), IsLast: s.IsLast, ChunkIndex: s.ChunkIndex}
	if s.TotalSize != nil {
		c.TotalSize = Some(*s.TotalSize)
	}
	if s.BytesReceived != nil {
		c.BytesTransferred = *s.BytesReceived
	}
	if s.BytesSent != nil {
		c.BytesTransferred = *s.BytesSent
	}
	return c
}

func jsonStdToResponseHeaders(text string) ResponseHeadersEvent {
	var s jsonStdResponseHeaders
	jsonStdUnmarshal(text, &s)
	return ResponseHeadersEvent{CorrelationID: s.CorrelationID, Status: s.Status, Headers: jsonStdHeaders(s.Headers)}
}

func jsonStdToRequestComplete(text string) RequestCompleteEvent {
	var s jsonStdRequestComplete
	jsonStdUnmarshal(text, &s)
	return RequestCompleteEvent{CorrelationID: s.CorrelationID, Status: s.Status, DurationMS: s.DurationMS,
		RequestBodySize: s.RequestBodySize, ResponseBodySize: s.ResponseBodySize,
		UpstreamAttempts: s.UpstreamAttempts, Error: jsonStdOpt(s.Error)}
}

func jsonStdToWebSocketFrame(text string) WebSocketFrameEvent {
	var s jsonStdWebSocketFrame
	jsonStdUnmarshal(text, &s)
	return WebSocketFrameEvent{CorrelationID: s.CorrelationID, Opcode: s.Opcode, Data: jsonStdB64(s.Data),
		ClientToServer: s.ClientToServer, FrameIndex: s.FrameIndex, Fin: s.Fin,
		RouteID: jsonStdOpt(s.RouteID), ClientIP: s.ClientIP}
}

func jsonStdToGuardrailInspect(text string) GuardrailInspectEvent {
	var s jsonStdGuardrailInspect
	jsonStdUnmarshal(text, &s)
	return GuardrailInspectEvent{CorrelationID: s.CorrelationID, InspectionType: s.InspectionType,
		Content: s.Content, Model: jsonStdOpt(s.Model), Categories: s.Categories,
		RouteID: jsonStdOpt(s.RouteID), Metadata: s.Metadata}
}

func jsonStdToConfigure(text string) ConfigureEvent {
	var s jsonStdConfigure
	jsonStdUnmarshal(text, &s)
	ev := ConfigureEvent{CorrelationID: s.CorrelationID, ConfigVersion: jsonStdOpt(s.ConfigVersion)}
	if string(s.Config) != "null" {
		ev.Config = s.Config
	}
	return ev
}

func jsonStdHeaderOps(list []map[string]jsonStdHeaderOpBody) []HeaderOp {
	var ops []HeaderOp
	for _, m := range list {
		for k, v := range m {
			op := HeaderOp{Name: v.Name}
			switch k {
			case "set":
				op.Kind = HeaderSet
			case "add":
				op.Kind = HeaderAdd
			case "remove":
				op.Kind = HeaderRemove
			default:
				panic("unknown op " + k)
			}
			if v.Value != nil {
				op.Value = *v.Value
			}
			ops = append(ops, op)
		}
	}
	return ops
}

func jsonStdMutation(m *jsonStdBodyMutation) Opt[BodyMutation] {
	if m == nil {
		return Opt[BodyMutation]{}
	}
	v := BodyMutation{ChunkIndex: m.ChunkIndex}
	switch {
	case m.Data == nil:
		v.Action = MutationPass
	case *m.Data == "":
		v.Action = MutationDrop
	default:
		b, err := DecodeBase64Strict(nil, []byte(*m.Data))
		if err != nil {
			v.Action, v.Data = MutationInvalid, []byte(*m.Data)
		} else {
			v.Action, v.Data = MutationReplace, b
		}
	}
	return Some(v)
}

func jsonStdToAgentResponse(text string) AgentResponse {
	var s jsonStdAgentResponse
	jsonStdUnmarshal(text, &s)
	r := AgentResponse{
		Version:              s.Version,
		RequestHeaders:       jsonStdHeaderOps(s.RequestHeaders),
		ResponseHeaders:      jsonStdHeaderOps(s.ResponseHeaders),
		RoutingMetadata:      s.RoutingMetadata,
		NeedsMore:            s.NeedsMore,
		RequestBodyMutation:  jsonStdMutation(s.RequestBodyMutation),
		ResponseBodyMutation: jsonStdMutation(s.ResponseBodyMutation),
		Audit: AuditMetadata{Tags: s.Audit.Tags, RuleIDs: s.Audit.RuleIDs,
			ReasonCodes: s.Audit.ReasonCodes},
	}
	if s.Audit.Confidence != nil {
		r.Audit.Confidence = Some(*s.Audit.Confidence)
	}
	for k, v := range s.Audit.Custom {
		if k == "correlation_id" {
			_ = json.Unmarshal(v, &r.CorrelationID) // non-strings leave ""
			continue
		}
		if r.Audit.Custom == nil {
			r.Audit.Custom = map[string]json.RawMessage{}
		}
		r.Audit.Custom[k] = v
	}
	var name string
	if json.Unmarshal(s.Decision, &name) == nil {
		if name != "allow" {
			panic("unit decision " + name)
		}
	} else {
		var m map[string]json.RawMessage
		jsonStdUnmarshal(string(s.Decision), &m)
		for k, v := range m {
			switch k {
			case "allow":
			case "block":
				var b struct {
					Status  uint16            `json:"status"`
					Body    *string           `json:"body"`
					Headers map[string]string `json:"headers"`
				}
				jsonStdUnmarshal(string(v), &b)
				r.Decision = Decision{Kind: DecisionBlock, Status: b.Status, Body: jsonStdOpt(b.Body), BlockHeaders: b.Headers}
			case "redirect":
				var b struct {
					URL    string `json:"url"`
					Status uint16 `json:"status"`
				}
				jsonStdUnmarshal(string(v), &b)
				r.Decision = Redirect(b.URL, b.Status)
			case "challenge":
				var b struct {
					Type   string            `json:"challenge_type"`
					Params map[string]string `json:"params"`
				}
				jsonStdUnmarshal(string(v), &b)
				r.Decision = Challenge(b.Type, b.Params)
			}
		}
	}
	if len(s.WebSocketDecision) > 0 && string(s.WebSocketDecision) != "null" {
		var w string
		if json.Unmarshal(s.WebSocketDecision, &w) == nil {
			switch w {
			case "allow":
				r.WebSocketDecision = Some(WebSocketDecision{Kind: WebSocketAllow})
			case "drop":
				r.WebSocketDecision = Some(WebSocketDecision{Kind: WebSocketDrop})
			}
		} else {
			var m struct {
				Close struct {
					Code   uint16 `json:"code"`
					Reason string `json:"reason"`
				} `json:"close"`
			}
			jsonStdUnmarshal(string(s.WebSocketDecision), &m)
			r.WebSocketDecision = Some(WebSocketDecision{Kind: WebSocketClose, Code: m.Close.Code, Reason: m.Close.Reason})
		}
	}
	return r
}

func jsonStdCaps(c jsonStdCapabilities) Capabilities {
	f := c.Features
	return Capabilities{
		AgentID: c.AgentID, Name: c.Name, Version: c.Version, SupportedEvents: c.SupportedEvents,
		Features: Features(f),
		Limits: Limits{MaxBodySize: c.Limits.MaxBodySize, MaxConcurrency: c.Limits.MaxConcurrency,
			PreferredChunkSize: c.Limits.PreferredChunkSize},
	}
}

func jsonStdRaw(r json.RawMessage) json.RawMessage {
	if len(r) == 0 || string(r) == "null" {
		return nil
	}
	return r
}

func jsonStdToHandshakeRequest(text string) HandshakeRequest {
	var s jsonStdHandshakeRequest
	jsonStdUnmarshal(text, &s)
	return HandshakeRequest{SupportedVersions: s.SupportedVersions, ProxyID: s.ProxyID,
		ProxyVersion: s.ProxyVersion, Config: jsonStdRaw(s.Config), SupportedEncodings: s.SupportedEncodings}
}

func jsonStdToHandshakeResponse(text string) HandshakeResponse {
	var s jsonStdHandshakeResponse
	jsonStdUnmarshal(text, &s)
	h := HandshakeResponse{ProtocolVersion: s.ProtocolVersion, Capabilities: jsonStdCaps(s.Capabilities),
		Success: s.Success, Error: jsonStdOpt(s.Error)}
	if s.Encoding != nil {
		h.Encoding = *s.Encoding
	}
	return h
}

func jsonStdToRegistrationRequest(text string) RegistrationRequest {
	var s jsonStdRegistrationRequest
	jsonStdUnmarshal(text, &s)
	return RegistrationRequest{ProtocolVersion: s.ProtocolVersion, AgentID: s.AgentID,
		Capabilities: jsonStdCaps(s.Capabilities), AuthToken: jsonStdOpt(s.AuthToken), Metadata: jsonStdRaw(s.Metadata)}
}

func jsonStdToRegistrationResponse(text string) RegistrationResponse {
	var s jsonStdRegistrationResponse
	jsonStdUnmarshal(text, &s)
	return RegistrationResponse{Success: s.Success, Error: jsonStdOpt(s.Error), ProxyID: s.ProxyID,
		ProxyVersion: s.ProxyVersion, ConnectionID: s.ConnectionID}
}

func jsonStdToMetrics(text string) MetricsReport {
	var s jsonStdMetrics
	jsonStdUnmarshal(text, &s)
	m := MetricsReport{AgentID: s.AgentID, TimestampMS: s.TimestampMS, IntervalMS: s.IntervalMS}
	help := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for _, c := range s.Counters {
		var v uint64
		jsonStdUnmarshal(string(c.Value), &v)
		m.Counters = append(m.Counters, CounterMetric{Name: c.Name, Help: help(c.Help), Labels: c.Labels, Value: v})
	}
	for _, g := range s.Gauges {
		var v float64
		jsonStdUnmarshal(string(g.Value), &v)
		m.Gauges = append(m.Gauges, GaugeMetric{Name: g.Name, Help: help(g.Help), Labels: g.Labels, Value: v})
	}
	for _, h := range s.Histograms {
		hm := HistogramMetric{Name: h.Name, Help: help(h.Help), Labels: h.Labels, Sum: h.Sum, Count: h.Count}
		for _, b := range h.Buckets {
			var le float64
			if string(b.Le) == `"+Inf"` {
				le = math.Inf(1)
			} else {
				jsonStdUnmarshal(string(b.Le), &le)
			}
			hm.Buckets = append(hm.Buckets, HistogramBucket{Le: le, Count: b.Count})
		}
		m.Histograms = append(m.Histograms, hm)
	}
	return m
}

func jsonStdToConfigUpdate(text string) ConfigUpdateRequest {
	var s jsonStdConfigUpdate
	jsonStdUnmarshal(text, &s)
	u := s.UpdateType
	c := ConfigUpdateRequest{RequestID: s.RequestID, TimestampMS: s.TimestampMS}
	switch u.Type {
	case "request_reload":
		c.Kind = ConfigRequestReload
	case "rule_update":
		c.Kind, c.RuleSet, c.RemoveRules = ConfigRuleUpdate, u.RuleSet, u.RemoveRules
		for _, r := range u.Rules {
			c.Rules = append(c.Rules, RuleDefinition{ID: r.ID, Priority: r.Priority, Definition: jsonStdRaw(r.Definition),
				Enabled: r.Enabled, Description: jsonStdOpt(r.Description), Tags: r.Tags})
		}
	case "list_update":
		c.Kind, c.ListID, c.Add, c.Remove = ConfigListUpdate, u.ListID, u.Add, u.Remove
	case "restart_required":
		c.Kind, c.Reason, c.GracePeriodMS = ConfigRestartRequired, u.Reason, u.GracePeriodMS
	case "config_error":
		c.Kind, c.Error, c.Field = ConfigError, u.Error, jsonStdOpt(u.Field)
	default:
		panic("unknown config update " + u.Type)
	}
	return c
}

// ---------------------------------------------------------------------------
// Comparison

// jsonEqual reports whether a and b hold the same value, treating nil and
// empty slices and maps as equal, comparing times with Equal and floats
// bit-for-bit (so NaN equals NaN). json.RawMessage values are compared as
// parsed JSON.
func jsonEqual(a, b any) bool {
	return jsonEqualValue(reflect.ValueOf(a), reflect.ValueOf(b))
}

var (
	jsonTimeType = reflect.TypeOf(time.Time{})
	jsonRawType  = reflect.TypeOf(json.RawMessage(nil))
)

func jsonEqualValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	if a.Type() == jsonTimeType {
		return a.Interface().(time.Time).Equal(b.Interface().(time.Time))
	}
	if a.Type() == jsonRawType {
		return jsonSameJSON(a.Bytes(), b.Bytes())
	}
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !jsonEqualValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !jsonEqualValue(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !jsonEqualValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Float32, reflect.Float64:
		x, y := a.Float(), b.Float()
		return x == y || (math.IsNaN(x) && math.IsNaN(y))
	default:
		return a.Interface() == b.Interface()
	}
}

// jsonSameJSON compares two JSON texts by value (empty = null).
func jsonSameJSON(a, b []byte) bool {
	if len(a) == 0 {
		a = []byte("null")
	}
	if len(b) == 0 {
		b = []byte("null")
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// jsonSortHeaders returns h with its entries sorted by name, for comparing a
// decoded Headers (input order) with one built from a Go map.
func jsonSortHeaders(h Headers) Headers {
	out := append(Headers(nil), h...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Name < out[j-1].Name; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
