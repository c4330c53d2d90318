package agent

import (
	"context"
	"encoding/json"

	"github.com/agentwire/agentwire"
)

// Handler is the decision logic of an agent. A server calls one method per
// event it receives and sends exactly one reply per call, on every
// transport (gRPC and Unix socket).
//
// # The reply
//
// Before a method is called, resp has been reset and pre-initialised to an
// allow decision carrying the event's correlation id and the protocol
// version. The method fills in what it wants (Decision, header operations,
// audit data, NeedsMore, …) and returns. It must not change
// resp.CorrelationID.
//
// If the method returns an error (or panics), whatever it wrote into resp is
// discarded: the server answers with a fresh reply holding only its error
// decision (allow by default, like the Rust SDK; see WithErrorDecision for
// why) and one audit tag, TagHandlerError for a returned error or
// TagHandlerPanic for a panic, so the reply cannot be mistaken for a real
// allow. The failure is logged and counted (Stats.HandlerErrors,
// Stats.HandlerPanics). A reply is sent in every case: a proxy never waits
// for a timeout because of an agent-side failure.
//
// # Lifetimes
//
// ev and resp are owned by the server and are reused for later events as soon
// as the method returns. A method MUST NOT retain ev, resp, or anything they
// point to (header slices, body bytes) after it returns; copy what it needs.
// Strings may be kept: they are immutable. A kept string may keep more
// memory alive than its own bytes: on the gRPC fast path the strings of an
// event share one allocation holding the message text, and on the Unix
// socket decoded strings (JSON, and MessagePack request headers) share
// chunks of 4 KiB with other events' strings. strings.Clone what you keep
// for long (a rate limiter's map of client addresses, a cache of header
// values).
//
// # Context
//
// ctx is the request's context. It is cancelled when the proxy sends a cancel
// for the event's correlation id (gRPC CancelRequest, Unix-socket 0x40), when
// the connection or stream ends, or when the server is closed. A cancelled
// request is still answered (the proxy discards late replies).
//
// # Concurrency
//
// Methods are called concurrently, from many goroutines, for different
// events of the same connection and of different connections (bounded by
// WithMaxConcurrency per connection). Implementations must be safe for
// concurrent use. Replies may leave in any order; the proxy routes them by
// correlation id.
//
// Embed BaseHandler to get an allow answer for every method you do not
// implement (a misspelt method name then compiles and is never called), or
// build the handler from functions with Funcs, where a misspelt field name
// does not compile. Wrap adds Middleware around a Handler.
type Handler interface {
	// OnRequestHeaders is called when a request's headers arrive. The reply's
	// RequestHeaders operations are applied to the upstream request.
	OnRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, resp *agentwire.AgentResponse) error
	// OnRequestBodyChunk is called for each request body chunk.
	OnRequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, resp *agentwire.AgentResponse) error
	// OnResponseHeaders is called when the upstream response headers arrive.
	// The reply's ResponseHeaders operations are applied to the client
	// response.
	OnResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent, resp *agentwire.AgentResponse) error
	// OnResponseBodyChunk is called for each response body chunk.
	OnResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, resp *agentwire.AgentResponse) error
	// OnRequestComplete is called after a request finished; the decision is
	// informational.
	OnRequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent, resp *agentwire.AgentResponse) error
	// OnWebSocketFrame is called for each WebSocket frame. Over gRPC the
	// reply's WebSocketDecision cannot be transmitted (SPEC 4.6).
	OnWebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent, resp *agentwire.AgentResponse) error
	// OnGuardrailInspect is called for a guardrail inspection request. Over
	// the Unix socket a detailed result travels in
	// resp.RoutingMetadata["guardrail_response"]; over gRPC only the decision
	// and audit data do.
	OnGuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent, resp *agentwire.AgentResponse) error
}

// BaseHandler implements every Handler method by leaving the pre-initialised
// allow reply unchanged. Embed it in a handler and override what you need.
// The zero value is ready to use and safe for concurrent use.
type BaseHandler struct{}

// OnRequestHeaders allows.
func (BaseHandler) OnRequestHeaders(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error {
	return nil
}

// OnRequestBodyChunk allows.
func (BaseHandler) OnRequestBodyChunk(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error {
	return nil
}

// OnResponseHeaders allows.
func (BaseHandler) OnResponseHeaders(context.Context, *agentwire.ResponseHeadersEvent, *agentwire.AgentResponse) error {
	return nil
}

// OnResponseBodyChunk allows.
func (BaseHandler) OnResponseBodyChunk(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error {
	return nil
}

// OnRequestComplete allows.
func (BaseHandler) OnRequestComplete(context.Context, *agentwire.RequestCompleteEvent, *agentwire.AgentResponse) error {
	return nil
}

// OnWebSocketFrame allows.
func (BaseHandler) OnWebSocketFrame(context.Context, *agentwire.WebSocketFrameEvent, *agentwire.AgentResponse) error {
	return nil
}

// OnGuardrailInspect allows (nothing detected).
func (BaseHandler) OnGuardrailInspect(context.Context, *agentwire.GuardrailInspectEvent, *agentwire.AgentResponse) error {
	return nil
}

var _ Handler = BaseHandler{}

// Optional hooks. A server detects them with a type assertion on the Handler
// it was given; for a Funcs it uses the hook fields that are set, and for a
// handler returned by Wrap the hooks of the wrapped handler.

// Handshaker is implemented by handlers that want to validate a proxy's
// handshake or read the configuration it carries.
//
// OnHandshake runs on the connection's reader before any event of that
// connection is dispatched. resp is pre-filled with the server's answer
// (Success true, ProtocolVersion 2, the configured capabilities; on the Unix
// socket the negotiated Encoding). The hook may reject the proxy by setting
// resp.Success = false and resp.Error, or by returning an error (which
// becomes resp.Error). It must not retain req or resp.
type Handshaker interface {
	OnHandshake(ctx context.Context, req *agentwire.HandshakeRequest, resp *agentwire.HandshakeResponse) error
}

// Configurer is implemented by handlers that accept configuration from the
// proxy.
//
// OnConfigure is called, on the connection's reader and in arrival order, for
//   - the configuration carried by the handshake (gRPC config_json, Unix
//     socket "config") when it is present and not the empty object {} or
//     null that the Rust proxy always sends; version is "". An error fails
//     the handshake (Success false, Error set).
//   - every Configure event (gRPC ProxyToAgent.configure, Unix-socket 0x17);
//     version is the event's config_version or "". An initial configure
//     event (is_initial) whose text equals the configuration the handshake
//     carried is skipped: an agentwire proxy sends both after connecting,
//     and the hook already ran for the handshake (on the Unix socket, which
//     has no is_initial flag, the first 0x17 of a connection is skipped the
//     same way). Over the Unix socket the event is answered with an
//     AgentResponse (allow, or block 500 with body "Configuration
//     rejected" when the hook fails, as the Rust SDK answers); over gRPC no
//     reply exists (the proto has no correlation id for it), so an error is
//     only logged.
//   - configure pushes on an agentwire ControlStream.
//
// Events received after a Configure event are dispatched only after
// OnConfigure returned, so they see the new configuration. config must not
// be retained after return (copy it).
type Configurer interface {
	OnConfigure(ctx context.Context, config json.RawMessage, version string) error
}

// Canceller is implemented by handlers that want to be told about cancels.
// The request's context is cancelled before OnCancel is called. OnCancel runs
// on the connection's reader: it must return quickly. A cancel is never
// answered.
type Canceller interface {
	OnCancel(ctx context.Context, c agentwire.Cancel)
}

// DrainReason says why a proxy drains an agent (proto DrainRequest.Reason).
type DrainReason int32

// Drain reasons.
const (
	DrainUnspecified       DrainReason = 0
	DrainConfigReload      DrainReason = 1
	DrainMaintenance       DrainReason = 2
	DrainHealthCheckFailed DrainReason = 3
	DrainManual            DrainReason = 4
)

// DrainNotice is a proxy's announcement that it stops sending new requests
// to this agent for Duration (ms).
type DrainNotice struct {
	DurationMS  uint64
	Reason      DrainReason
	TimestampMS uint64
}

// ShutdownReason says why a proxy shuts an agent connection down (proto
// ShutdownRequest.Reason).
type ShutdownReason int32

// Shutdown reasons.
const (
	ShutdownUnspecified  ShutdownReason = 0
	ShutdownGraceful     ShutdownReason = 1
	ShutdownImmediate    ShutdownReason = 2
	ShutdownConfigReload ShutdownReason = 3
	ShutdownUpgrade      ShutdownReason = 4
)

// ShutdownNotice is a proxy's announcement that it will close its connection
// after GracePeriodMS.
type ShutdownNotice struct {
	Reason        ShutdownReason
	GracePeriodMS uint64
	TimestampMS   uint64
}

// Drainer is implemented by handlers that want to know when a proxy drains
// them. Only an agentwire proxy sends drain notices (on the gRPC
// ControlStream); the Rust proxy never does. Calling Server.Drain does not
// invoke the hook.
type Drainer interface {
	OnDrain(ctx context.Context, n DrainNotice)
}

// Shutdowner is implemented by handlers that want to know when a proxy
// announces a shutdown. Only an agentwire proxy sends it (gRPC
// ControlStream). Calling Server.Shutdown does not invoke the hook.
type Shutdowner interface {
	OnShutdown(ctx context.Context, n ShutdownNotice)
}
