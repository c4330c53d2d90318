package agent

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/agentwire/agentwire/internal/tracectx"
)

// Tracing (OpenTelemetry).
//
// The handler's context of a request-headers event whose
// metadata.traceparent is a valid W3C traceparent carries it as the remote
// span context: trace.SpanContextFromContext(ctx) returns it, with
// IsRemote true, on every transport. A missing or invalid traceparent
// leaves the context as it was. Neither costs an allocation on Unix-socket,
// reverse and ProcessStream connections (the request context itself
// answers trace.SpanFromContext); the unary ProcessEvent adds a context
// value.
//
// Only request-headers events carry a traceparent (SPEC 2.1); the proxy
// relates body chunks, response headers, request complete, WebSocket
// frames and guardrail inspections to the request by correlation id only.
// The server keeps no per-request state across events (each event is an
// exchange of its own, forgotten once answered), so the handler contexts
// of those events carry no span context; a handler that wants them in the
// request's trace keeps the span context of the request-headers event
// under the correlation id itself. The W3C tracestate has no field in the
// schema and never arrives.
//
// WithTracerProvider adds a server span per handled event. Without it
// nothing else is done: no allocation, no time (TestTraceOffDispatchAllocs).

// tracerName is the instrumentation scope of the server spans.
const tracerName = "github.com/agentwire/agentwire/agent"

// Span attribute keys of the server spans.
const (
	// AttrAgent is the agent id (WithAgentID).
	AttrAgent = attribute.Key("agentwire.agent")
	// AttrEvent is the event kind: request_headers, request_body_chunk,
	// response_headers, response_body_chunk, request_complete,
	// websocket_frame or guardrail_inspect.
	AttrEvent = attribute.Key("agentwire.event")
	// AttrCorrelationID is the event's correlation id.
	AttrCorrelationID = attribute.Key("agentwire.correlation_id")
	// AttrDecision is the decision answered (allow, block, redirect,
	// challenge), the error decision after a handler failure included.
	AttrDecision = attribute.Key("agentwire.decision")
	// AttrOutcome is "ok", "handler_error" or "handler_panic".
	AttrOutcome = attribute.Key("agentwire.outcome")
)

// traceConfig is the tracing part of the configuration.
type traceConfig struct {
	tracer trace.Tracer
}

// WithTracerProvider makes every handled event a server span of tp's
// tracer "github.com/agentwire/agentwire/agent", named after the Handler
// method (agentwire.OnRequestHeaders, ...), with the attributes AttrAgent,
// AttrEvent, AttrCorrelationID, AttrDecision and AttrOutcome; a handler
// error or panic sets the span's status to Error. The span of a
// request-headers event with a traceparent is a child of that remote span
// context; the spans of other events start traces of their own (see the
// package documentation, Tracing). The handler's context carries the
// server span. Default: no spans. A nil tp is an ErrInvalidConfig error.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) error {
		if tp == nil {
			return errors.New("agentwire: WithTracerProvider: nil tracer provider")
		}
		c.tracing.tracer = tp.Tracer(tracerName)
		return nil
	})
}

// remoteParent puts the remote span context of x's traceparent into the
// handler's context: into x's request context itself when it is a reqCtx
// (no allocation), else as a context value. An invalid traceparent is
// ignored.
//
// With a reqCtx the traceparent is kept as text and parsed only when the
// span is looked up (a handler or a tracer asking for it), at every
// lookup: a request whose handler never looks pays nothing for it.
func remoteParent(x *exchange) {
	if x.rc != nil && spanKey != nil {
		x.rc.remote.raw = x.reqHeaders.Metadata.Traceparent
		return
	}
	sc, ok := tracectx.Parse(x.reqHeaders.Metadata.Traceparent)
	if !ok {
		return
	}
	x.ctx = trace.ContextWithRemoteSpanContext(x.ctx, sc)
}

// spanKey is the context key under which package trace keeps the current
// span (unexported there), learned once by letting trace.SpanFromContext
// look it up in a context that records the key it is asked for. A reqCtx
// answers that key itself (see reqCtx.Value), so that a remote span
// context costs no allocation. Should package trace ever stop looking the
// span up this way, spanKey is nil and remoteParent falls back to
// trace.ContextWithRemoteSpanContext (TestTraceparentReachesAgent in
// package engine checks what a handler sees, whichever way).
var spanKey = func() any {
	var p keyProbe
	_ = trace.SpanFromContext(&p)
	return p.key
}()

// keyProbe is a context that records the first key looked up in it.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(k any) any {
	if p.key == nil {
		p.key = k
	}
	return nil
}

// remoteSpan is the non-recording span that carries a remote span context
// in a reqCtx (what trace.ContextWithRemoteSpanContext wraps it in). It
// keeps the traceparent text only and parses it at every lookup
// (tracectx.Parse: no allocation, a few dozen nanoseconds), so that it
// costs a request context 24 bytes instead of a parsed SpanContext and a
// sync.Once: every request context is allocated (in slabs), and its size
// is most of the agent's allocated bytes per event, hence of its garbage
// collection work. The embedded pointer is the request context's lazily
// made part (reqctx.go); it makes remoteSpan a trace.Span (package
// embedded's unexported method, promoted through it, which nothing calls).
type remoteSpan struct {
	*ctxWait
	raw string // the traceparent; "" when the request carries none
}

// valid reports whether raw is a valid traceparent.
func (s *remoteSpan) valid() bool {
	if s.raw == "" {
		return false
	}
	_, ok := tracectx.Parse(s.raw)
	return ok
}

var _ trace.Span = (*remoteSpan)(nil)

// SpanContext returns the remote span context.
func (s *remoteSpan) SpanContext() trace.SpanContext {
	sc, _ := tracectx.Parse(s.raw)
	return sc
}

// IsRecording returns false: nothing is recorded.
func (*remoteSpan) IsRecording() bool { return false }

// End does nothing.
func (*remoteSpan) End(...trace.SpanEndOption) {}

// AddEvent does nothing.
func (*remoteSpan) AddEvent(string, ...trace.EventOption) {}

// AddLink does nothing.
func (*remoteSpan) AddLink(trace.Link) {}

// RecordError does nothing.
func (*remoteSpan) RecordError(error, ...trace.EventOption) {}

// SetStatus does nothing.
func (*remoteSpan) SetStatus(codes.Code, string) {}

// SetName does nothing.
func (*remoteSpan) SetName(string) {}

// SetAttributes does nothing.
func (*remoteSpan) SetAttributes(...attribute.KeyValue) {}

// TracerProvider returns a no-op provider.
func (*remoteSpan) TracerProvider() trace.TracerProvider { return noop.NewTracerProvider() }

// spanNames are the server spans' names by event kind (Handler methods).
var spanNames = [...]string{
	kindNone:              "agentwire.Unknown",
	kindRequestHeaders:    "agentwire.OnRequestHeaders",
	kindRequestBodyChunk:  "agentwire.OnRequestBodyChunk",
	kindResponseHeaders:   "agentwire.OnResponseHeaders",
	kindResponseBodyChunk: "agentwire.OnResponseBodyChunk",
	kindRequestComplete:   "agentwire.OnRequestComplete",
	kindWebSocketFrame:    "agentwire.OnWebSocketFrame",
	kindGuardrailInspect:  "agentwire.OnGuardrailInspect",
}

// tracedInvoke is invoke within a server span (WithTracerProvider).
func (s *Server) tracedInvoke(tr trace.Tracer, x *exchange) {
	name := spanNames[kindNone]
	if int(x.kind) < len(spanNames) {
		name = spanNames[x.kind]
	}
	ctx, span := tr.Start(x.ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(AttrAgent.String(s.caps.AgentID), AttrEvent.String(x.kind.String()), AttrCorrelationID.String(x.cid)))
	x.ctx = ctx
	outcome := "ok"
	switch failed, panicked := s.invokeHandler(x); {
	case panicked:
		outcome = "handler_panic"
	case failed:
		outcome = "handler_error"
	}
	if outcome != "ok" {
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(AttrDecision.String(x.resp.Decision.Kind.String()), AttrOutcome.String(outcome))
	span.End()
}
