// Package agent is the agent side of the Zentinel agent protocol v2: a
// server that answers a proxy's events with decisions computed by a
// Handler.
//
// # Quick start
//
//	waf := agent.Funcs{
//		RequestHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
//			if strings.HasPrefix(ev.URI, "/admin") {
//				r.Decision = agentwire.Block(403)
//			}
//			return nil
//		},
//	}
//
//	srv := agent.NewServer(waf, agent.WithAgentID("waf-1"))
//	ln, _ := net.Listen("tcp", "127.0.0.1:50051")
//	go srv.ServeGRPC(ln)
//	...
//	srv.Shutdown(ctx)
//
// # Handler
//
// A Handler has one method per event kind. Each call gets the event and a
// reply that is already initialised to allow with the event's correlation
// id; the method edits the reply. Every accepted event is answered exactly
// once, including guardrail inspections (which the Rust SDK leaves
// unanswered), so a proxy never waits for a timeout. A handler error or
// panic is logged, counted (Stats.HandlerErrors, Stats.HandlerPanics) and
// answered with a reply reset to the error decision and tagged
// TagHandlerError or TagHandlerPanic in its audit tags, on every transport.
// The error decision (WithErrorDecision) is allow by default, as in the
// Rust SDK: the proxy's per-agent failure mode is the operator's switch
// between failing open and closed, and an agent that blocked on its own
// bugs would override it; the tag keeps such an allow from passing for a
// real one. Events that cannot be decoded are different (the handler never
// saw them) and are blocked by default (WithDecodeErrorDecision). Optional
// hooks (Handshaker, Configurer, Canceller, Drainer, Shutdowner) are found
// by type assertion.
//
// A type that embeds BaseHandler compiles with a misspelt method
// (OnRequestHeader) and silently allows that event. Funcs avoids this: a
// struct with one function field per event and hook, where a misspelt field
// does not compile, an unset event allows and an unset hook does not exist
// (WithSupportedEvents(f.Events()...) also announces only the set events).
// Wrap puts Middleware around any Handler's event methods and keeps exactly
// the hooks of the handler it wraps.
//
// Events of one connection are handled concurrently (WithMaxConcurrency,
// default 100; the Rust SDK handles them one at a time) and answered in
// completion order; proxies route replies by correlation id.
//
// # gRPC: ProcessStream
//
// The server implements zentinel.agent.v2.AgentServiceV2. On ProcessStream it
// sends the response headers before reading anything (the Rust proxy waits
// for them before it sends its handshake). The first message must be a
// handshake offering version 2; the answer carries success, protocol version
// 2 and the capabilities, or success=false and an error when 2 is not
// offered or a hook rejects the proxy. Then:
//
//   - request_headers, request/response body chunks, response_headers,
//     request_complete, websocket_frame, guardrail → one response each,
//     correlation_id = the event's (metadata.correlation_id for request
//     headers), processing_time_ms set, audit always present, audit.custom
//     values as JSON text (SPEC 4.6). Routing metadata, body mutations and
//     WebSocket decisions cannot be carried by the proto and are dropped.
//   - ping → pong {sequence, ping_timestamp_ms, timestamp_ms}.
//   - cancel → the request's context is cancelled and Canceller.OnCancel
//     called; never answered.
//   - configure → Configurer.OnConfigure; never answered (the proto gives a
//     configure no correlation id to answer with). Events after it wait for
//     the hook.
//
// Protocol errors: an event or configure before a successful handshake ends
// the stream with FAILED_PRECONDITION (the Rust SDK silently drops such
// events, which leaves the proxy waiting). Pings, cancels and repeated
// handshakes are allowed at any time. Unknown message kinds are ignored.
//
// ProcessEvent (unary) needs no handshake: handshake → handshake answer,
// any event → response, ping → pong; cancel, configure and empty messages →
// INVALID_ARGUMENT.
//
// # gRPC: the agentwire control plane
//
// This is an agentwire extension. The response headers of ProcessStream
// carry the metadata "agentwire-control: 1". An agentwire proxy that sees it
// may open ControlStream with the request metadata "agentwire-control: 1";
// on such a stream the message names give the direction: the proxy sends
// ProxyControl (configure push → Configurer, drain → Drainer, shutdown →
// Shutdowner, config_response → the waiting RequestConfigUpdate), and the
// agent sends AgentControl (config_update from RequestConfigUpdate).
//
// Without that request metadata ControlStream behaves like the Rust SDK
// server's (SPEC 4.8), whose directions are inverted relative to the names:
// it reads AgentControl, answers each config_update with an accepting
// config_response, and sends a ProxyControl.configure keep-alive ("{}")
// at once and then every health report interval (none when the interval is
// 0, where the Rust SDK panics).
//
// Health reports, metrics, flow-control signals and log lines pushed by the
// agent (ReportHealth, ReportMetrics, SendFlowControl, Log) travel on every
// established ProcessStream (AgentToProxy.health/metrics/flow_control/log),
// where both the Rust proxy and an agentwire proxy read them (the Rust proxy
// ignores health and flow control, SPEC 8.4 and 8.5). The last health report
// is repeated to every proxy right after its handshake. A config-update
// request needs an answer, which only an agentwire proxy gives; it travels
// on that proxy's ControlStream.
//
// # Unix socket
//
// ServeUDS (or ListenAndServeUDS, which also manages the socket file: mode
// 0600 by default, WithSocketMode; a stale socket nobody listens on is
// replaced, a live one or a non-socket file is never touched; removed at
// the end) serves the binary transport of SPEC 6. ListenUDS does the
// binding part alone, so a caller can signal readiness once the socket
// accepts connections and then call ServeUDS. Frames are a 4-byte big-endian length, a type
// byte and the payload, at most WithMaxFrameSize (16 MiB); a larger or zero
// length closes the connection, an unknown type byte is skipped and counted
// (Stats.IgnoredFrames). A write that does not complete within
// WithWriteTimeout (10 s: the proxy stopped reading) closes the connection
// too. A connection's reader retries its non-blocking read for up to
// WithReadSpin (DefaultReadSpin, 50 µs) before it parks, so that at low
// load the next event does not have to wake a sleeping thread; a spin that
// does not pay makes the next reads park at once, for longer and longer
// (an idle connection costs no CPU; see uds_spin.go).
//
// The first frame must be the proxy's 0x01 handshake (always JSON), within
// WithHandshakeTimeout (10 s). The answer, 0x02, carries protocol version
// 2, the capabilities with all nine feature and three limit keys,
// supported_events in the Unix-socket numbering (Configure = 0) and the
// encoding: the first entry of the proxy's supported_encodings that the
// server supports (json always, msgpack unless WithEncodings("json")), json
// when the list is absent. An encoding that was not offered is never
// answered. A failed handshake (no 0x01 first, bad JSON, version 2 not
// offered, no common encoding, a Handshaker rejection, a draining server)
// is answered with success=false and the connection is closed.
//
// Then, per frame:
//
//   - events 0x10–0x16 are decoded in the negotiated encoding (any JSON key
//     order; MessagePack maps or positional arrays, including the Rust
//     proxy's repeated correlation_id key and 11-element metadata) and
//     handled concurrently; each is answered with a 0x20 AgentResponse in
//     the same encoding, version 2, audit.custom.correlation_id = the
//     envelope's top-level correlation_id (for request headers without one,
//     metadata.correlation_id). Guardrail events are answered too (the Rust
//     SDK leaves them unanswered). Replies leave in completion order.
//   - an event that cannot be decoded is answered with the decode-error
//     decision (WithDecodeErrorDecision: block 503 by default, where the
//     Rust SDK answers allow; a WebSocket frame also gets close 1011) and
//     the correlation id recovered best-effort from the payload, and
//     counted (Stats.DecodeErrors).
//   - 0x17 Configure runs the Configurer on the reader (later events wait)
//     and is answered with allow, or block 500 "Configuration rejected".
//   - 0x40 Cancel (JSON, 0-based reason; a MessagePack payload is also
//     accepted) cancels the request's context and runs the Canceller; it is
//     never answered.
//   - 0x41 Ping is answered with 0x42 echoing the payload bytes.
//   - other valid types (which proxies do not send) are ignored and counted.
//
// ReportHealth (0x30, {"state": <int>, …}), ReportMetrics (0x31),
// SendFlowControl (0x33) and RequestConfigUpdate (0x32; the Unix socket has
// no frame for the proxy's answer, so only a ControlStream can answer it)
// reach every established Unix-socket and reverse connection, encoded in
// its encoding.
//
// MessagePack replies carry body-mutation data as a base64 str, which every
// peer reads; WithRawMsgpackBodies switches to bin (agentwire proxies only:
// nothing on the wire identifies one).
//
// # Reverse connections
//
// ServeReverse dials a proxy's reverse-connection listener (Unix socket or
// TCP, optionally TLS), registers (0x01 RegistrationRequest JSON: protocol
// version 2, agent id, capabilities, WithAuthToken, WithRegistrationMetadata;
// the proxy answers 0x02), then serves the connection exactly like an
// accepted Unix-socket connection, without a handshake and in JSON. It
// reconnects after failures, rejections and disconnects with a capped,
// jittered exponential backoff until its context ends or the server shuts
// down; WithStopOnRejection returns a *RegistrationRejectedError instead of
// retrying a rejection.
//
// # Tracing
//
// The handler's context of a request-headers event carries the remote
// OpenTelemetry span context of its metadata.traceparent (W3C):
// trace.SpanContextFromContext(ctx) returns it, with IsRemote true, on
// every transport, at no allocation on streams and Unix-socket
// connections. Other events carry no traceparent (SPEC 2.1) and the server
// keeps no state between the events of a request, so their contexts carry
// no span context; the W3C tracestate has no field in the schema.
// WithTracerProvider adds a server span per event (a child of the remote
// span context for request headers) with the agent id, event kind,
// correlation id, decision and outcome as attributes. See trace.go.
//
// # Lifecycle
//
// Drain announces HealthDraining, refuses new streams and waits for quiet;
// Shutdown stops reading events, answers those already received, then ends
// every stream; Close ends everything at once (request contexts cancelled).
// All three wait for the server's goroutines and are idempotent.
//
// # Performance
//
// ServeGRPC uses codec/grpccodec, with the ProcessStream's events and
// replies handled by the agent itself (grpc_codec.go). Request headers,
// response headers, request complete and guardrail events are decoded by
// a hand-written decoder straight into the payload event: the message
// bytes become one string, without a copy when grpc-go holds them in one
// unpooled buffer (every DATA frame of at most 1 KiB), else copied once,
// and every string field is a substring of it (at most one allocation per
// event instead of one per field; differential fuzzing holds it to the
// generated decoder). Body chunks and WebSocket frames are decoded into
// pooled protobuf messages. Replies are built in per-event storage that
// is reused, and encoded into pooled buffers. Outside grpc-go an event
// costs one allocation (the message copy; a hot event grpc-go hands over in
// one unpooled buffer is kept without it, grpc_codec.go) plus a request
// context slab every 73 events; see TestDispatchAllocs and
// BenchmarkDispatch.
//
// On the Unix socket an event costs no allocation of its own (the decoded
// strings share arena chunks: pooled ones in JSON, the connection's in
// MessagePack; the request context comes from a per-connection slab):
// TestUDSDispatchAllocs counts them exactly. A string kept from an event
// keeps its 4 KiB chunk reachable. The reader decodes straight from its 64 KiB buffer;
// replies collect in one buffer written with a single system call (by the
// reader itself with inline handlers, else by the writer once its queue is
// empty). See BenchmarkUDSPipelined.
//
// # Concurrency
//
// A Server is safe for concurrent use. Per ProcessStream there is one
// reader goroutine, one writer goroutine (with inline handlers the reader
// also calls SendMsg, never at the same time; both are gone before the
// RPC handler returns, as grpc-go requires) and
// a pool of worker goroutines that run the handler, started on demand up to
// the concurrency bound and kept until the stream ends (so their grown
// stacks are reused). Unix-socket and reverse connections have the same
// shape (reader, writer, workers; Shutdown and Close reach them through
// context.AfterFunc hooks, not a goroutine); the reader decodes each event
// before handing it to a worker, so a cancel that follows an event always
// finds it. With WithInlineHandlers there are no workers: the reader of a
// ProcessStream or connection runs the handler itself, one event at a
// time, and a Unix-socket or reverse connection's reader also writes the
// replies, so such a connection holds one goroutine while it idles (a
// push starts a writer that exits once the push is written). Handler
// methods and hooks must be safe for concurrent use.
package agent
