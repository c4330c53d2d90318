package engine

import (
	"context"
	"errors"
	"sync"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/tracectx"
)

// Tracing (OpenTelemetry).
//
// Trace context propagation needs no option: a request-headers event whose
// Metadata.Traceparent is empty is sent with the W3C traceparent of the
// span context in the call's context (trace.SpanContextFromContext: a span
// started by the caller, or a remote span context a gateway extracted from
// the incoming HTTP request, see ContextWithTraceparent). The caller's
// event is not modified: the Conn sends a copy (pooled, no allocation).
// An event that already carries a traceparent is sent as it is.
//
// Only the request-headers event has a traceparent field (SPEC 2.1, proto
// RequestMetadata field 11); body chunks, response headers, request
// complete, WebSocket frames and guardrail inspections carry only the
// correlation id, so the agent relates them to the request's trace through
// it. The W3C tracestate has no field in either schema (RequestMetadata
// stops at traceparent in the JSON/MessagePack model and in the proto) and
// is not sent: adding one would be a wire change that the Rust proxy and
// agents do not know (a MessagePack RequestMetadata is positional there,
// SPEC 6).
//
// WithTracerProvider adds a client span per request call. Without it a call
// costs one context lookup (trace.SpanContextFromContext) for a
// request-headers event without traceparent, and nothing else: no
// allocation (TestTraceOffAllocs); the lookup is what
// BenchmarkTraceparentLookup/off measures, BenchmarkTraceOff the whole
// round trip to compare before and after with benchstat.

// tracerName is the instrumentation scope of the engine's spans.
const tracerName = "github.com/agentwire/agentwire/engine"

// Span attribute keys of the client spans.
const (
	// AttrAgent is the agent's name (Conn.AgentName).
	AttrAgent = attribute.Key("agentwire.agent")
	// AttrEvent is the event kind: request_headers, request_body_chunk,
	// response_headers, response_body_chunk, request_complete,
	// websocket_frame or guardrail_inspect.
	AttrEvent = attribute.Key("agentwire.event")
	// AttrCorrelationID is the request's correlation id.
	AttrCorrelationID = attribute.Key("agentwire.correlation_id")
	// AttrDecision is the agent's decision (allow, block, redirect,
	// challenge); only set when the agent answered.
	AttrDecision = attribute.Key("agentwire.decision")
	// AttrOutcome is "ok" for an answered call, else the error's kind
	// (outcomeOf: timeout, canceled, connection_lost, ...).
	AttrOutcome = attribute.Key("agentwire.outcome")
)

// traceOptions is the tracing part of the options.
type traceOptions struct {
	set    bool // WithTracerProvider was given (nil is invalid)
	tracer trace.Tracer
}

// WithTracerProvider makes every request call (RequestHeaders,
// RequestHeadersInto, RequestBodyChunk, ..., GuardrailInspect) a client
// span of tp's tracer "github.com/agentwire/agentwire/engine", a child of
// the call context's span, with the attributes AttrAgent, AttrEvent,
// AttrCorrelationID, AttrOutcome and, when the agent answered, AttrDecision;
// a failed call sets the span's status to Error. The traceparent sent with
// a request-headers event is then the client span's. Default: no spans (the
// trace context is propagated all the same, see the package
// documentation). A nil tp is an ErrInvalidConfig error. Every transport.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(o *options) {
		o.tracing = traceOptions{set: true}
		if tp != nil {
			o.tracing.tracer = tp.Tracer(tracerName)
		}
	})
}

func (t *traceOptions) validate() error {
	if t.set && t.tracer == nil {
		return configErr("WithTracerProvider: nil tracer provider")
	}
	return nil
}

// ContextWithTraceparent returns a copy of ctx carrying the W3C
// traceparent tp as a remote span context (IsRemote true), as the
// OpenTelemetry W3C propagator would extract it from an incoming HTTP
// request's "traceparent" header; ctx itself when tp is empty or not a
// valid traceparent. A request-headers event sent with the returned
// context carries tp (or, with WithTracerProvider, a child client span of
// it). A gateway can so continue the incoming trace without the
// OpenTelemetry propagation API:
//
//	ctx := engine.ContextWithTraceparent(r.Context(), r.Header.Get("traceparent"))
//
// Safe for concurrent use.
func ContextWithTraceparent(ctx context.Context, tp string) context.Context {
	sc, ok := tracectx.Parse(tp)
	if !ok {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// tracedEvent is a request-headers event sent with the traceparent of the
// call's context: a copy of the caller's event, whose Traceparent points
// into tp. It lives from the copy until the call returns (when the
// session's writer is done with the event, see pending) and is then
// recycled.
type tracedEvent struct {
	ev agentwire.RequestHeadersEvent
	tp [tracectx.Len]byte
}

var tracedPool = sync.Pool{New: func() any { return new(tracedEvent) }}

// withTraceparent returns a copy of ev carrying the traceparent of ctx's
// span context, or nil when ctx has none (then it costs one context
// lookup). Release the copy with release once the call returned.
func withTraceparent(ctx context.Context, ev *agentwire.RequestHeadersEvent) *tracedEvent {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	te := tracedPool.Get().(*tracedEvent)
	te.ev = *ev
	b := tracectx.Append(te.tp[:0], sc)
	te.ev.Metadata.Traceparent = unsafe.String(&b[0], len(b))
	return te
}

// release recycles te; nothing may read te.ev afterwards.
func (te *tracedEvent) release() {
	te.ev = agentwire.RequestHeadersEvent{}
	tracedPool.Put(te)
}

// spanNames are the client spans' names by event kind (the Conn methods).
var spanNames = [...]string{
	agentwire.EventRequestHeaders:    "agentwire.RequestHeaders",
	agentwire.EventRequestBodyChunk:  "agentwire.RequestBodyChunk",
	agentwire.EventResponseHeaders:   "agentwire.ResponseHeaders",
	agentwire.EventResponseBodyChunk: "agentwire.ResponseBodyChunk",
	agentwire.EventRequestComplete:   "agentwire.RequestComplete",
	agentwire.EventWebSocketFrame:    "agentwire.WebSocketFrame",
	agentwire.EventGuardrailInspect:  "agentwire.GuardrailInspect",
}

// eventNames are the AttrEvent values by event kind.
var eventNames = [...]string{
	agentwire.EventRequestHeaders:    "request_headers",
	agentwire.EventRequestBodyChunk:  "request_body_chunk",
	agentwire.EventResponseHeaders:   "response_headers",
	agentwire.EventResponseBodyChunk: "response_body_chunk",
	agentwire.EventRequestComplete:   "request_complete",
	agentwire.EventWebSocketFrame:    "websocket_frame",
	agentwire.EventGuardrailInspect:  "guardrail_inspect",
}

// tracedCall is call within a client span (WithTracerProvider).
func (c *Conn) tracedCall(ctx context.Context, tracer trace.Tracer, cid string, ev event, dst *agentwire.AgentResponse) error {
	kind := ev.kind
	if ev.response {
		kind = agentwire.EventResponseBodyChunk
	}
	ctx, span := tracer.Start(ctx, spanNames[kind], trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(AttrAgent.String(c.AgentName()), AttrEvent.String(eventNames[kind]), AttrCorrelationID.String(cid)))
	defer span.End()
	err := c.roundTrip(ctx, cid, ev, dst)
	if err != nil {
		err = withCID(err, cid)
		span.SetAttributes(AttrOutcome.String(outcomeOf(err)))
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	span.SetAttributes(AttrOutcome.String("ok"), AttrDecision.String(dst.Decision.Kind.String()))
	return nil
}

// outcomes names the error kinds for AttrOutcome.
var outcomes = []struct {
	kind error
	name string
}{
	{ErrTimeout, "timeout"},
	{ErrCanceled, "canceled"},
	{ErrConnectionLost, "connection_lost"},
	{ErrNotConnected, "not_connected"},
	{ErrClosed, "closed"},
	{ErrDraining, "draining"},
	{ErrAgentUnhealthy, "agent_unhealthy"},
	{ErrFlowPaused, "flow_paused"},
	{ErrSaturated, "saturated"},
	{ErrNotSubscribed, "not_subscribed"},
	{ErrMessageTooLarge, "message_too_large"},
	{ErrProtocol, "protocol"},
	{ErrInvalidEvent, "invalid_event"},
	{ErrDuplicateCorrelationID, "duplicate_correlation_id"},
	{ErrConnectFailed, "connect_failed"},
	{ErrHandshakeRejected, "handshake_rejected"},
	{ErrInvalidConfig, "invalid_config"},
}

// outcomeOf names the outcome of a request call for AttrOutcome: "ok" for a nil error, else the kind of the package's error
// ("timeout", "canceled", "connection_lost", "not_connected", "closed",
// "draining", "agent_unhealthy", "flow_paused", "saturated",
// "not_subscribed", "message_too_large", "protocol", "invalid_event",
// "duplicate_correlation_id", "connect_failed", "handshake_rejected",
// "invalid_config"), or "error" for an error of no such kind. An error
// whose kind is ErrTimeout or ErrCanceled while it wraps ErrSaturated or
// ErrFlowPaused is a timeout or a cancellation.
func outcomeOf(err error) string {
	if err == nil {
		return "ok"
	}
	var e *Error
	if errors.As(err, &e) {
		for _, o := range outcomes {
			if e.Kind == o.kind {
				return o.name
			}
		}
	}
	for _, o := range outcomes {
		if errors.Is(err, o.kind) {
			return o.name
		}
	}
	return "error"
}
