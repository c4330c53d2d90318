package agentwire

import (
	"encoding/json"
	"time"
)

// Opt is an optional value: the Rust Option<T>. The zero value is None.
type Opt[T any] struct {
	Value T
	Valid bool
}

// Some returns a present Opt holding v.
func Some[T any](v T) Opt[T] { return Opt[T]{Value: v, Valid: true} }

// Get returns the value and whether it is present.
func (o Opt[T]) Get() (T, bool) { return o.Value, o.Valid }

// Header is one header name with all its values in arrival order.
// Names in events are lower-case: the Rust proxy sends them so, Headers.Add
// lowers them, and the codecs keep a name's bytes as they are.
type Header struct {
	Name   string
	Values []string
}

// Headers is an ordered header set, the JSON object name → [values].
// Encoders write names in byte-wise ascending order (as the Rust proxy does);
// decoders keep the order of the input. A repeated name in decoded input
// replaces the earlier entry (serde map semantics: last wins).
type Headers []Header

// Get returns the first value of name, or "". Names match without regard to
// ASCII case, so Get("Content-Type") finds "content-type" (the Rust proxy
// sends lower-case names, and so does every Go encoder of this module).
func (h Headers) Get(name string) string {
	if i := h.index(name); i >= 0 && len(h[i].Values) > 0 {
		return h[i].Values[0]
	}
	return ""
}

// Values returns all values of name (matched without regard to ASCII case),
// or nil.
func (h Headers) Values(name string) []string {
	if i := h.index(name); i >= 0 {
		return h[i].Values
	}
	return nil
}

// Add appends value to name's values, adding the name if needed. The name is
// stored in lower case, as HTTP/2 and the Rust proxy write header names, and
// matched without regard to ASCII case.
func (h *Headers) Add(name, value string) {
	if i := h.index(name); i >= 0 {
		(*h)[i].Values = append((*h)[i].Values, value)
		return
	}
	*h = append(*h, Header{Name: lowerASCII(name), Values: []string{value}})
}

// Del removes name (matched without regard to ASCII case) and its values.
func (h *Headers) Del(name string) {
	if i := h.index(name); i >= 0 {
		*h = append((*h)[:i], (*h)[i+1:]...)
	}
}

// index finds name: an exact match first (the common, lower-case case), then
// one without regard to ASCII case.
func (h Headers) index(name string) int {
	for i := range h {
		if h[i].Name == name {
			return i
		}
	}
	for i := range h {
		if equalFoldASCII(h[i].Name, name) {
			return i
		}
	}
	return -1
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// lowerASCII returns s with ASCII upper-case letters lowered; s itself when
// it has none (no allocation).
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Len returns the number of distinct names.
func (h Headers) Len() int { return len(h) }

// ---------------------------------------------------------------------------
// Events (proxy → agent)

// RequestMetadata describes the request an event belongs to (SPEC 2.1).
type RequestMetadata struct {
	CorrelationID string
	RequestID     string
	ClientIP      string
	ClientPort    uint16
	ServerName    Opt[string]
	Protocol      string
	TLSVersion    Opt[string]
	TLSCipher     Opt[string] // JSON only; not representable in protobuf
	RouteID       Opt[string]
	UpstreamID    Opt[string]
	// Timestamp is written as RFC 3339 UTC the way chrono's to_rfc3339 does
	// (fraction of 0, 3, 6 or 9 digits, offset +00:00). A timestamp that does
	// not parse as RFC 3339 or as decimal epoch milliseconds decodes as the
	// zero time (Rust accepts any string here).
	Timestamp time.Time
	// Traceparent is the W3C trace context; omitted from JSON when empty.
	Traceparent string
}

// RequestHeadersEvent is sent when a request's headers arrive (type 0x10).
// Its correlation id is Metadata.CorrelationID.
type RequestHeadersEvent struct {
	Metadata RequestMetadata
	Method   string
	URI      string // path and query
	Headers  Headers
}

// BodyChunk is one chunk of a request body (type 0x11) or response body
// (type 0x13). In JSON, BytesTransferred is written as bytes_received for
// request bodies and bytes_sent for response bodies, and Data as base64.
type BodyChunk struct {
	CorrelationID    string
	Data             []byte
	IsLast           bool
	TotalSize        Opt[uint64]
	ChunkIndex       uint32
	BytesTransferred uint64
}

// ResponseHeadersEvent is sent when the upstream response headers arrive
// (type 0x12).
type ResponseHeadersEvent struct {
	CorrelationID string
	Status        uint16
	Headers       Headers
}

// RequestCompleteEvent is sent after a request finished (type 0x14).
type RequestCompleteEvent struct {
	CorrelationID    string
	Status           uint16
	DurationMS       uint64
	RequestBodySize  uint64
	ResponseBodySize uint64
	UpstreamAttempts uint32
	Error            Opt[string]
}

// WebSocketFrameEvent carries one WebSocket frame (type 0x15).
type WebSocketFrameEvent struct {
	CorrelationID  string
	Opcode         string // text, binary, ping, pong, close, continuation
	Data           []byte
	ClientToServer bool
	FrameIndex     uint64
	Fin            bool
	RouteID        Opt[string]
	ClientIP       string
}

// Guardrail inspection types.
const (
	InspectionPromptInjection = "prompt_injection"
	InspectionPIIDetection    = "pii_detection"
)

// GuardrailInspectEvent asks an agent to inspect text (type 0x16).
type GuardrailInspectEvent struct {
	CorrelationID  string
	InspectionType string // InspectionPromptInjection or InspectionPIIDetection
	Content        string
	Model          Opt[string] // omitted from JSON when absent
	Categories     []string
	RouteID        Opt[string] // omitted from JSON when absent
	Metadata       map[string]string
}

// ConfigureEvent pushes configuration to an agent (type 0x17).
type ConfigureEvent struct {
	CorrelationID string
	Config        json.RawMessage // any JSON value; nil is written as null
	ConfigVersion Opt[string]
}

// ---------------------------------------------------------------------------
// Agent reply

// DecisionKind is the variant of a Decision.
type DecisionKind uint8

// Decision variants (serde externally tagged: "allow", {"block":{…}}, …).
const (
	DecisionAllow DecisionKind = iota
	DecisionBlock
	DecisionRedirect
	DecisionChallenge
)

// String returns the wire name of the variant.
func (k DecisionKind) String() string {
	switch k {
	case DecisionAllow:
		return "allow"
	case DecisionBlock:
		return "block"
	case DecisionRedirect:
		return "redirect"
	case DecisionChallenge:
		return "challenge"
	}
	return "unknown"
}

// Decision is the verdict of an agent. The zero value is Allow.
type Decision struct {
	Kind DecisionKind
	// Block and Redirect.
	Status uint16
	// Block: optional body and headers (nil Headers = null).
	Body         Opt[string]
	BlockHeaders map[string]string
	// Redirect.
	URL string
	// Challenge.
	ChallengeType string
	Params        map[string]string
}

// Allow returns the allow decision.
func Allow() Decision { return Decision{} }

// Block returns a block decision with the given HTTP status.
func Block(status uint16) Decision { return Decision{Kind: DecisionBlock, Status: status} }

// Redirect returns a redirect decision.
func Redirect(url string, status uint16) Decision {
	return Decision{Kind: DecisionRedirect, URL: url, Status: status}
}

// Challenge returns a challenge decision.
func Challenge(typ string, params map[string]string) Decision {
	return Decision{Kind: DecisionChallenge, ChallengeType: typ, Params: params}
}

// HeaderOpKind is the variant of a HeaderOp.
type HeaderOpKind uint8

// Header operation variants.
const (
	HeaderSet HeaderOpKind = iota
	HeaderAdd
	HeaderRemove
)

// String returns the wire name of the variant.
func (k HeaderOpKind) String() string {
	switch k {
	case HeaderSet:
		return "set"
	case HeaderAdd:
		return "add"
	case HeaderRemove:
		return "remove"
	}
	return "unknown"
}

// HeaderOp is one header mutation. Value is unused for HeaderRemove.
type HeaderOp struct {
	Kind  HeaderOpKind
	Name  string
	Value string
}

// AuditMetadata is attached to a reply for logging.
type AuditMetadata struct {
	Tags        []string
	RuleIDs     []string
	Confidence  Opt[float32]
	ReasonCodes []string
	// Custom holds arbitrary JSON values by key. The key "correlation_id" is
	// reserved for the transport (see AgentResponse.CorrelationID) and never
	// appears here after decoding.
	Custom map[string]json.RawMessage
}

// MutationAction says what a BodyMutation does.
type MutationAction uint8

// Body mutation actions: JSON data null (pass), "" (drop) or base64 (replace).
const (
	MutationPass MutationAction = iota
	MutationDrop
	MutationReplace
)

// BodyMutation replaces or drops a body chunk.
type BodyMutation struct {
	Action     MutationAction
	Data       []byte // MutationReplace only
	ChunkIndex uint32
}

// MutationInvalid marks a BodyMutation whose JSON data was a non-empty
// string that is not strict standard base64. Rust's serde accepts such a
// reply (data is just a string to it); the Rust proxy's response path then
// ignores the mutation and keeps the original body. The JSON decoder keeps
// the reply, sets this action and stores the text's bytes in Data, so a
// proxy can count the protocol error and must not apply the mutation. The
// JSON encoder writes Data back verbatim as the string.
const MutationInvalid MutationAction = 3

// WebSocketDecisionKind is the variant of a WebSocketDecision.
type WebSocketDecisionKind uint8

// WebSocket decision variants.
const (
	WebSocketAllow WebSocketDecisionKind = iota
	WebSocketDrop
	WebSocketClose
)

// WebSocketDecision is the verdict on one WebSocket frame.
type WebSocketDecision struct {
	Kind   WebSocketDecisionKind
	Code   uint16 // WebSocketClose
	Reason string // WebSocketClose
}

// ProtocolVersion is the version written in every AgentResponse.
const ProtocolVersion = 2

// AgentResponse is an agent's reply to one event (type 0x20).
type AgentResponse struct {
	// CorrelationID routes the reply. On the Unix-socket transport it travels
	// as audit.custom.correlation_id (a JSON string); on gRPC as
	// AgentResponse.correlation_id.
	CorrelationID        string
	Version              uint32 // encoders write ProtocolVersion when 0
	Decision             Decision
	RequestHeaders       []HeaderOp
	ResponseHeaders      []HeaderOp
	RoutingMetadata      map[string]string
	Audit                AuditMetadata
	NeedsMore            bool
	RequestBodyMutation  Opt[BodyMutation]
	ResponseBodyMutation Opt[BodyMutation]
	WebSocketDecision    Opt[WebSocketDecision]
	// ProcessingTimeMS is carried by gRPC only.
	ProcessingTimeMS Opt[uint64]
}

// Reset clears r for reuse, keeping slice capacity.
func (r *AgentResponse) Reset() {
	*r = AgentResponse{
		RequestHeaders:  r.RequestHeaders[:0],
		ResponseHeaders: r.ResponseHeaders[:0],
	}
}

// ---------------------------------------------------------------------------
// Handshake and capabilities

// Encoding names negotiated in the Unix-socket handshake.
const (
	EncodingJSON    = "json"
	EncodingMsgpack = "msgpack"
)

// Features are the agent's optional features (all nine keys are required on
// the Unix-socket wire).
type Features struct {
	StreamingBody      bool
	WebSocket          bool
	Guardrails         bool
	ConfigPush         bool
	MetricsExport      bool
	ConcurrentRequests uint32
	Cancellation       bool
	FlowControl        bool
	HealthReporting    bool
}

// FullFeatures returns every feature enabled and 100 concurrent requests.
func FullFeatures() Features {
	return Features{true, true, true, true, true, 100, true, true, true}
}

// Limits are the agent's resource limits. MaxMemory and
// MaxProcessingTimeMS exist on gRPC only.
type Limits struct {
	MaxBodySize         uint64
	MaxConcurrency      uint32
	PreferredChunkSize  uint64
	MaxMemory           Opt[uint64]
	MaxProcessingTimeMS Opt[uint64]
}

// DefaultLimits returns the reference defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxBodySize:         10 << 20,
		MaxConcurrency:      100,
		PreferredChunkSize:  64 << 10,
		MaxProcessingTimeMS: Some[uint64](5000),
	}
}

// HealthConfig says how often the agent reports health (gRPC only).
type HealthConfig struct {
	ReportIntervalMS       uint32
	IncludeLoadMetrics     bool
	IncludeResourceMetrics bool
}

// Event type codes as used in supported_events. The Unix-socket transport
// numbers Configure 0; gRPC numbers it 8.
const (
	EventConfigureUDS      int32 = 0
	EventRequestHeaders    int32 = 1
	EventRequestBodyChunk  int32 = 2
	EventResponseHeaders   int32 = 3
	EventResponseBodyChunk int32 = 4
	EventRequestComplete   int32 = 5
	EventWebSocketFrame    int32 = 6
	EventGuardrailInspect  int32 = 7
	EventConfigureGRPC     int32 = 8
)

// Capabilities are announced by the agent during the handshake.
type Capabilities struct {
	ProtocolVersion uint32 // gRPC only
	AgentID         string
	Name            string
	Version         string
	SupportedEvents []int32
	Features        Features
	Limits          Limits
	Health          HealthConfig // gRPC only
}

// HandshakeRequest is the proxy's first Unix-socket frame (type 0x01).
type HandshakeRequest struct {
	SupportedVersions  []uint32
	ProxyID            string
	ProxyVersion       string
	Config             json.RawMessage // nil = null
	SupportedEncodings []string        // omitted from JSON when empty
}

// HandshakeResponse is the agent's first Unix-socket frame (type 0x02).
type HandshakeResponse struct {
	ProtocolVersion uint32
	Capabilities    Capabilities
	Success         bool
	Error           Opt[string]
	// Encoding is "json" or "msgpack"; empty means the key is absent (= json).
	Encoding string
}

// RegistrationRequest is what a reverse-connecting agent sends first (0x01).
type RegistrationRequest struct {
	ProtocolVersion uint32
	AgentID         string
	Capabilities    Capabilities
	AuthToken       Opt[string]
	Metadata        json.RawMessage // nil = null
}

// RegistrationResponse is the proxy's answer to a registration (0x02).
type RegistrationResponse struct {
	Success      bool
	Error        Opt[string]
	ProxyID      string
	ProxyVersion string
	ConnectionID string
}

// ---------------------------------------------------------------------------
// Control messages

// HealthState is the agent's reported state (integer form on the wire).
type HealthState int32

// Health states.
const (
	HealthUnspecified HealthState = 0
	HealthHealthy     HealthState = 1
	HealthDegraded    HealthState = 2
	HealthDraining    HealthState = 3
	HealthUnhealthy   HealthState = 4
)

// HealthStatus is an agent health report (type 0x30, gRPC health). On the
// Unix socket it is written as an object with an integer "state" — the only
// key the Rust proxy reads — plus the other fields under their proto names.
type HealthStatus struct {
	AgentID           string
	State             HealthState
	Message           Opt[string]
	DisabledFeatures  []string
	TimeoutMultiplier float32
	DrainETAMS        Opt[uint64]
	UnhealthyReason   Opt[string]
	Recoverable       bool
	ValidUntilMS      Opt[uint64]
	TimestampMS       uint64
}

// FlowAction is a flow-control action (integer form on the wire).
type FlowAction int32

// Flow-control actions.
const (
	FlowUnspecified    FlowAction = 0
	FlowPause          FlowAction = 1
	FlowResume         FlowAction = 2
	FlowUpdateCapacity FlowAction = 3
)

// FlowControlSignal asks the proxy to pause, resume or resize (type 0x33).
// Written as an object with an integer "action" plus the proto-named fields.
type FlowControlSignal struct {
	CorrelationID   Opt[string] // absent = the whole connection
	Action          FlowAction
	BufferAvailable Opt[uint64]
	TimestampMS     uint64
}

// CancelReason values. The Unix socket numbers them from 0 (UDS value =
// CancelReason-1); gRPC from 1.
type CancelReason uint8

// Cancel reasons (gRPC numbering).
const (
	CancelClientDisconnect CancelReason = 1
	CancelTimeout          CancelReason = 2
	CancelBlockedByAgent   CancelReason = 3
	CancelUpstreamError    CancelReason = 4
	CancelProxyShutdown    CancelReason = 5
	CancelManual           CancelReason = 6
)

// Cancel is the proxy's cancel notice (type 0x40, always JSON). Reason uses
// the gRPC numbering in memory; the JSON form writes Reason-1.
type Cancel struct {
	CorrelationID string
	Reason        CancelReason
	TimestampMS   uint64
}

// Ping is a liveness probe (type 0x41, always JSON).
type Ping struct {
	Sequence    uint64
	TimestampMS uint64
}

// Pong answers a Ping (type 0x42). Decoders accept both the echoed Ping
// payload and the Pong shape.
type Pong struct {
	Sequence        uint64
	PingTimestampMS uint64
	TimestampMS     uint64
}

// MetricsReport is a batch of agent metrics (type 0x31).
type MetricsReport struct {
	AgentID     string
	TimestampMS uint64
	IntervalMS  uint64
	Counters    []CounterMetric
	Gauges      []GaugeMetric
	Histograms  []HistogramMetric
}

// CounterMetric is a monotonically increasing value.
type CounterMetric struct {
	Name   string
	Help   string // omitted when empty
	Labels map[string]string
	Value  uint64
}

// GaugeMetric is a value that goes up and down.
type GaugeMetric struct {
	Name   string
	Help   string
	Labels map[string]string
	Value  float64
}

// HistogramMetric is a bucketed distribution.
type HistogramMetric struct {
	Name    string
	Help    string
	Labels  map[string]string
	Sum     float64
	Count   uint64
	Buckets []HistogramBucket
}

// HistogramBucket is one bucket; Le may be +Inf (written as "+Inf").
type HistogramBucket struct {
	Le    float64
	Count uint64
}

// ConfigUpdateKind is the variant of a ConfigUpdateRequest (JSON "type").
type ConfigUpdateKind uint8

// Config update variants.
const (
	ConfigRequestReload ConfigUpdateKind = iota
	ConfigRuleUpdate
	ConfigListUpdate
	ConfigRestartRequired
	ConfigError
)

// RuleDefinition is one rule in a rule update.
type RuleDefinition struct {
	ID          string
	Priority    int32
	Definition  json.RawMessage
	Enabled     bool
	Description Opt[string]
	Tags        []string
}

// ConfigUpdateRequest is sent by an agent that wants the proxy to act
// (type 0x32, gRPC config_update). The fields used depend on Kind.
type ConfigUpdateRequest struct {
	Kind        ConfigUpdateKind
	RequestID   string
	TimestampMS uint64
	// ConfigRuleUpdate.
	RuleSet     string
	Rules       []RuleDefinition
	RemoveRules []string
	// ConfigListUpdate.
	ListID string
	Add    []string
	Remove []string
	// ConfigRestartRequired.
	Reason        string
	GracePeriodMS uint64
	// ConfigError.
	Error string
	Field Opt[string]
}

// ConfigUpdateResponse is the proxy's answer to a ConfigUpdateRequest.
type ConfigUpdateResponse struct {
	RequestID   string
	Accepted    bool
	Error       Opt[string]
	TimestampMS uint64
}
