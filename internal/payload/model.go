// Aliases of the agentwire data model under the names this package has always used.

package payload

import "github.com/agentwire/agentwire"

// The model's types, under the names this package's codecs use.
type (
	AgentResponse         = agentwire.AgentResponse
	AuditMetadata         = agentwire.AuditMetadata
	BodyChunk             = agentwire.BodyChunk
	BodyMutation          = agentwire.BodyMutation
	Cancel                = agentwire.Cancel
	CancelReason          = agentwire.CancelReason
	Capabilities          = agentwire.Capabilities
	ConfigUpdateKind      = agentwire.ConfigUpdateKind
	ConfigUpdateRequest   = agentwire.ConfigUpdateRequest
	ConfigUpdateResponse  = agentwire.ConfigUpdateResponse
	ConfigureEvent        = agentwire.ConfigureEvent
	CounterMetric         = agentwire.CounterMetric
	Decision              = agentwire.Decision
	DecisionKind          = agentwire.DecisionKind
	Features              = agentwire.Features
	FlowAction            = agentwire.FlowAction
	FlowControlSignal     = agentwire.FlowControlSignal
	GaugeMetric           = agentwire.GaugeMetric
	GuardrailInspectEvent = agentwire.GuardrailInspectEvent
	HandshakeRequest      = agentwire.HandshakeRequest
	HandshakeResponse     = agentwire.HandshakeResponse
	Header                = agentwire.Header
	HeaderOp              = agentwire.HeaderOp
	HeaderOpKind          = agentwire.HeaderOpKind
	Headers               = agentwire.Headers
	HealthConfig          = agentwire.HealthConfig
	HealthState           = agentwire.HealthState
	HealthStatus          = agentwire.HealthStatus
	HistogramBucket       = agentwire.HistogramBucket
	HistogramMetric       = agentwire.HistogramMetric
	Limits                = agentwire.Limits
	LogLevel              = agentwire.LogLevel
	LogMessage            = agentwire.LogMessage
	MetricsReport         = agentwire.MetricsReport
	MutationAction        = agentwire.MutationAction
	Ping                  = agentwire.Ping
	Pong                  = agentwire.Pong
	RegistrationRequest   = agentwire.RegistrationRequest
	RegistrationResponse  = agentwire.RegistrationResponse
	RequestCompleteEvent  = agentwire.RequestCompleteEvent
	RequestHeadersEvent   = agentwire.RequestHeadersEvent
	RequestMetadata       = agentwire.RequestMetadata
	ResponseHeadersEvent  = agentwire.ResponseHeadersEvent
	RuleDefinition        = agentwire.RuleDefinition
	WebSocketDecision     = agentwire.WebSocketDecision
	WebSocketDecisionKind = agentwire.WebSocketDecisionKind
	WebSocketFrameEvent   = agentwire.WebSocketFrameEvent
)

type Opt[T any] = agentwire.Opt[T]

const (
	CancelBlockedByAgent      = agentwire.CancelBlockedByAgent
	CancelClientDisconnect    = agentwire.CancelClientDisconnect
	CancelManual              = agentwire.CancelManual
	CancelProxyShutdown       = agentwire.CancelProxyShutdown
	CancelTimeout             = agentwire.CancelTimeout
	CancelUpstreamError       = agentwire.CancelUpstreamError
	ConfigError               = agentwire.ConfigError
	ConfigListUpdate          = agentwire.ConfigListUpdate
	ConfigRequestReload       = agentwire.ConfigRequestReload
	ConfigRestartRequired     = agentwire.ConfigRestartRequired
	ConfigRuleUpdate          = agentwire.ConfigRuleUpdate
	DecisionAllow             = agentwire.DecisionAllow
	DecisionBlock             = agentwire.DecisionBlock
	DecisionChallenge         = agentwire.DecisionChallenge
	DecisionRedirect          = agentwire.DecisionRedirect
	EncodingJSON              = agentwire.EncodingJSON
	EncodingMsgpack           = agentwire.EncodingMsgpack
	EventConfigureGRPC        = agentwire.EventConfigureGRPC
	EventConfigureUDS         = agentwire.EventConfigureUDS
	EventGuardrailInspect     = agentwire.EventGuardrailInspect
	EventRequestBodyChunk     = agentwire.EventRequestBodyChunk
	EventRequestComplete      = agentwire.EventRequestComplete
	EventRequestHeaders       = agentwire.EventRequestHeaders
	EventResponseBodyChunk    = agentwire.EventResponseBodyChunk
	EventResponseHeaders      = agentwire.EventResponseHeaders
	EventWebSocketFrame       = agentwire.EventWebSocketFrame
	FlowPause                 = agentwire.FlowPause
	FlowResume                = agentwire.FlowResume
	FlowUnspecified           = agentwire.FlowUnspecified
	FlowUpdateCapacity        = agentwire.FlowUpdateCapacity
	HeaderAdd                 = agentwire.HeaderAdd
	HeaderRemove              = agentwire.HeaderRemove
	HeaderSet                 = agentwire.HeaderSet
	HealthDegraded            = agentwire.HealthDegraded
	HealthDraining            = agentwire.HealthDraining
	HealthHealthy             = agentwire.HealthHealthy
	HealthUnhealthy           = agentwire.HealthUnhealthy
	HealthUnspecified         = agentwire.HealthUnspecified
	InspectionPIIDetection    = agentwire.InspectionPIIDetection
	InspectionPromptInjection = agentwire.InspectionPromptInjection
	LogDebug                  = agentwire.LogDebug
	LogError                  = agentwire.LogError
	LogInfo                   = agentwire.LogInfo
	LogUnspecified            = agentwire.LogUnspecified
	LogWarn                   = agentwire.LogWarn
	MutationDrop              = agentwire.MutationDrop
	MutationInvalid           = agentwire.MutationInvalid
	MutationPass              = agentwire.MutationPass
	MutationReplace           = agentwire.MutationReplace
	ProtocolVersion           = agentwire.ProtocolVersion
	WebSocketAllow            = agentwire.WebSocketAllow
	WebSocketClose            = agentwire.WebSocketClose
	WebSocketDrop             = agentwire.WebSocketDrop
)

// The model's constructors, for this package's codecs and tests.

func Some[T any](v T) Opt[T]                      { return agentwire.Some(v) }
func Allow() Decision                             { return agentwire.Allow() }
func Block(status uint16) Decision                { return agentwire.Block(status) }
func Redirect(url string, status uint16) Decision { return agentwire.Redirect(url, status) }
func Challenge(typ string, params map[string]string) Decision {
	return agentwire.Challenge(typ, params)
}
func FullFeatures() Features { return agentwire.FullFeatures() }
func DefaultLimits() Limits  { return agentwire.DefaultLimits() }
