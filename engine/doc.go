// Package engine is the proxy side of the Zentinel agent protocol v2: a Conn
// is one multiplexed connection to one agent, over gRPC
// (zentinel.agent.v2.AgentServiceV2/ProcessStream), over the binary
// Unix-socket protocol, or over a reverse connection the agent opened
// (ListenReverse).
//
// # Quick start
//
//	c, err := engine.Dial(ctx, "grpc://127.0.0.1:50051", engine.WithInsecure(),
//		engine.WithAgentConfig(json.RawMessage(`{"mode":"block"}`)))
//	if err != nil { ... }
//	defer c.Close()
//
//	resp, err := c.RequestHeaders(ctx, &payload.RequestHeadersEvent{...})
//	switch {
//	case errors.Is(err, context.DeadlineExceeded): // the agent was too slow (a cancel was sent)
//	case errors.Is(err, engine.ErrConnectionLost):  // the agent died while we waited
//	case err != nil:                                // see the Err* kinds
//	case resp.Decision.Kind == payload.DecisionBlock: ...
//	}
//
// # Concurrency design
//
// A Conn runs one session at a time: one ProcessStream from a successful
// handshake until the stream dies. Each session has exactly one reader
// goroutine and exactly one writer goroutine (plus one reader for the
// optional control stream, below); a supervisor goroutine replaces dead
// sessions and a dispatcher goroutine runs user callbacks. Every goroutine
// is owned by the Conn and has exited when Close returns, unless a user
// callback is running at that moment (see Callbacks).
//
// Callers never touch the stream. A request:
//
//  1. is admitted: Conn open, session up, event kind subscribed by the
//     agent, agent health and flow control permitting (counted in flight);
//  2. is encoded on the caller's goroutine, by hand-written protobuf code
//     (internal/pbwire), straight into a pooled buffer (grpc mem.Buffer);
//  3. registers a pending entry (pooled) in the session's xsync map under
//     its correlation id — before anything is sent; a second in-flight
//     request with the same id is refused with ErrDuplicateCorrelationID;
//  4. hands the encoded buffer to the session's lock-free MPSC ring; the
//     writer drains the ring in batches and passes each buffer to gRPC as
//     is (the engine's codec neither copies nor re-encodes);
//  5. waits on its entry's one-slot channel and its context. When the
//     context has no deadline, the default request timeout is enforced
//     by the session's expirer (one sweep of the pending map every 32nd
//     of the timeout, at least 1ms: a timeout fires at most about 3%
//     late, never early), not by a timer per request; a failing session
//     completes every waiting entry itself.
//
// The reader decodes each AgentToProxy message in place from gRPC's receive
// buffer: the reply's correlation id is looked up without allocating, the
// entry removed from the map, the reply decoded into the caller's
// AgentResponse and the caller woken by a non-blocking send. The reader
// never waits for a caller, a callback or the writer.
//
// A pending entry is removed from the map exactly once — by the reader
// (reply), by the caller itself (context ended, deadline, session lost) or
// by Cancel — and only the remover completes it. A request that allocates
// nothing else costs one allocation per round trip (the map's entry) with
// RequestHeadersInto and two with RequestHeaders (plus the returned reply);
// TestAllocsPerRoundTrip holds these numbers.
//
// # Deadlines and cancellation
//
// Every call has exactly one deadline: its context's, or — when the context
// has none — WithRequestTimeout (stretched by the timeout multiplier of a
// DEGRADED agent; a context deadline is never extended). When it passes,
// or the context is cancelled, the entry is freed at once, a CancelRequest
// goes to the agent (reason TIMEOUT or CLIENT_DISCONNECT) and the call
// returns an error satisfying errors.Is with context.DeadlineExceeded /
// context.Canceled and ErrTimeout / ErrCanceled. Conn.Cancel does the same
// for a correlation id on demand. Cancellations and timeouts are counted
// apart from errors and never count against the agent's health.
//
// A reply that arrives after its caller gave up is discarded (counted in
// Stats.Orphans). The wire has no per-request sequence number: if the same
// correlation id has meanwhile been reused for a new request, such a late
// reply is delivered to the new request. Proxies that reuse ids across the
// phases of one request (as the Rust proxy does) should not continue a
// request whose previous phase timed out.
//
// # Connection loss and reconnection
//
// When the stream ends or errors, every pending call fails at once with
// ErrConnectionLost (not at its deadline), queued messages are dropped and
// the supervisor reconnects with capped, jittered exponential backoff for
// as long as the Conn is open (WithReconnectBackoff). Meanwhile new calls
// fail fast with ErrNotConnected or wait for the connection within their
// deadline (WithFailFastWhileReconnecting). Health and flow-control state
// belong to a session and start fresh after a reconnect; the latest agent
// configuration is sent again. A connection that goes bad without
// closing is detected three ways. WithKeepalive (gRPC, off by default)
// sends HTTP/2 pings, which the agent's HTTP/2 transport answers by
// itself: it detects a dead peer or network path, not a hung handler nor
// an agent that stopped reading. WithLivenessPing (off by default) sends
// protocol pings on the event stream, which the agent's own code answers:
// it detects an agent whose stream reader stopped or hung. WithWriteTimeout
// (10 s by default, every transport) detects an agent that stopped
// reading: on Unix-socket and reverse connections when it accepts no byte
// of a write for that long, on gRPC when one SendMsg (blocked on a full
// HTTP/2 window) does not complete in that time. A busy agent that reads
// slowly is not taken for a stuck one.
//
// # Handshake and configuration
//
// The handshake offers version 2 only, carries WithProxyID,
// WithProxyVersion and the agent configuration in config_json, and
// requires success=true and protocol_version 2 (anything else:
// ErrHandshakeRejected). The handshake is sent before the response headers
// are awaited (the Rust client waits for them first, which deadlocks
// against agents that send headers lazily). Right after the handshake the
// configuration goes out again as a configure event with is_initial=true
// (SPEC 8.7: the Rust proxy never delivers it); Conn.Configure pushes a
// new one and makes it the configuration of later reconnects.
//
// # Agent health and flow control
//
// Health reports (AgentToProxy.health, AgentControl.health) are applied
// atomically per session: UNHEALTHY refuses new calls with
// ErrAgentUnhealthy, DRAINING with ErrDraining, DEGRADED stretches the
// default timeout by timeout_multiplier; a report stops applying when its
// valid_until_ms passes. Flow-control signals PAUSE and RESUME act on the
// whole connection or on one correlation id. A per-request pause lasts
// until its RESUME, the request's RequestComplete or Cancel, or the end of
// the session; at most 8192 requests can be paused one by one per
// connection (further per-request pauses are refused and counted as
// protocol errors, so an agent cannot grow the proxy's memory without
// bound). UPDATE_CAPACITY with
// buffer_available caps the requests in flight (without it, lifts the
// cap). Held calls fail with ErrFlowPaused (FlowFailFast, the default) or
// wait within their deadline (FlowWait). Health exposes the resulting view.
//
// The limits.max_concurrency an agent announces in its handshake caps the
// requests in flight on each session (0: no cap): a call holds a slot from
// admission until its reply or failure, whatever its event kind. Callers
// beyond it wait for a slot within their deadline (WithSaturation, default
// FlowWait) or fail fast with ErrSaturated. Slots go to waiters first come
// first served, one wake-up per freed slot (a new call does not overtake a
// waiting one); the fast path costs one atomic add, as before. A call whose
// deadline passes or context ends while admission holds it fails with
// ErrTimeout or ErrCanceled (wrapping ErrSaturated or ErrFlowPaused) and
// counts as a timeout or cancellation (Stats.SaturationWaits and
// Stats.SaturationRejected count the saturated calls).
//
// A DEGRADED report stretches the default request timeout of calls that
// start while it is in force, at most to WithMaxStretchedTimeout (by
// default MaxStretchFactor times the request timeout): the multiplier is
// the agent's choice, up to +Inf. A call keeps the deadline it started
// with; calls after the report's valid_until use the plain timeout.
//
// # The agentwire control plane (extension)
//
// An agentwire agent marks ProcessStream's response headers with
// "agentwire-control: 1". Only then does the Conn open ControlStream, with
// the request metadata "agentwire-control: 1", and on that stream the
// message names give the direction: the Conn sends ProxyControl (drain and
// shutdown notices from Drain, config_response answers) and receives
// AgentControl (health, metrics, config_update, log). Every
// ConfigUpdateRequest — whether it arrived there or on ProcessStream — is
// answered with a ConfigUpdateResponse on ControlStream, computed by the
// WithOnConfigUpdate handler or a Rust-pool-like default. Agents without
// the marker (the Rust SDK) get no ControlStream; their config-update
// requests are handled locally and counted as unanswerable
// (Stats.ConfigUnanswered), since ProcessStream has no slot for the reply.
// Configuration is always pushed on ProcessStream, where it is ordered with
// the events.
//
// # Callbacks
//
// Metrics reports, log lines, health reports and config-update requests
// are handed to the user callbacks on the dispatcher goroutine through a
// bounded queue (WithCallbackQueueSize). A full queue drops the report
// (Stats.CallbacksDropped) instead of blocking the reader; a dropped
// config-update request is answered with a rejection at once. A panicking
// callback is recovered and counted. A callback may call Close or Drain on
// its own Conn: Close then closes the Conn for every caller at once and
// does not wait for the running callback; the dispatcher and the rest of
// the Conn's goroutines exit, and the connection is released, as soon as
// that callback returns.
//
// # Buffer ownership
//
// Events are read, never retained, but the caller must not modify the
// event (body chunk Data included) until the call returns: over a Unix
// socket the session's writer reads a request-headers event while the call
// waits (when the call returns, the writer is done with it). Replies are owned by the caller;
// RequestHeadersInto writes into a caller-provided AgentResponse, which must
// not be touched by anyone else until the call returns.
//
// # What gRPC cannot carry
//
// Conversions follow SPEC 4.6 (see internal/pbconv): routing metadata, body
// mutations and WebSocket decisions have no proto field and are never
// present in replies; audit.custom values travel as JSON text; block and
// redirect status codes above 999 are a protocol error (ErrProtocol)
// instead of being truncated. Guardrail fields without a proto field
// travel in context_json.
//
// # The binary Unix-socket transport
//
// Dial with "unix:///path", "unix:/path", "/path" or a relative "*.sock"
// path speaks SPEC 6: length-prefixed frames (LEN counts the type byte,
// LEN <= 16 MiB, capped further by WithMaxSendSize / WithMaxRecvSize). The
// connect and the JSON handshake are bounded (WithConnectTimeout,
// WithHandshakeTimeout). The handshake offers supported_versions [2], the
// proxy id and version, the agent configuration (or null) and the
// encodings of WithEncodings / WithMsgpack (default ["json"]); the agent
// must answer success, version 2, every feature and limit key, and an
// encoding that was offered (a missing one means json), else Dial fails
// with ErrHandshakeRejected. Events carry the routing id as the top-level
// correlation_id (equal to metadata.correlation_id); replies are routed by
// audit.custom.correlation_id, located without decoding so that the reply
// is decoded once, straight into the caller's destination. A reply that
// names a waiting request but does not decode fails that request at once
// with ErrProtocol. Cancel (0-based reason) and ping are always JSON.
// Health (integer state), flow control (integer action), metrics and
// config-update frames are handled like their gRPC counterparts; there is
// no frame type for a config-update answer, so WithOnConfigUpdate's answer
// stays local and is counted in Stats.ConfigUnanswered. Frames of an
// unknown type are skipped and counted (Stats.ProtocolErrors); an invalid
// LEN ends the connection (the cause, a *frame.TooLargeError or
// frame.ErrZeroLength, is wrapped by every pending call's
// ErrConnectionLost) and the Conn reconnects. Request-headers events are
// encoded by the writer itself, straight into the buffer of its next write
// (no per-request buffer; the call waits, as it does anyway, and a call
// that ends before the writer reached its event takes it back, so that
// event is never sent and no cancel follows it); the other frames are
// encoded by their callers. The writer writes everything queued while it
// was busy with one write (writev when large frames go out from their own
// buffers). Body data is base64 in JSON and MessagePack; WithRawMsgpackBodies sends
// raw bin instead, which only agentwire agents accept.
//
// # Reverse connections
//
// ListenReverse accepts agents that dial the proxy (SPEC 7) on a Unix
// socket or TCP (optionally TLS), validates their registration (version,
// id, allow-list, constant-time token check, per-agent connection limit,
// all before answering success) and turns each admitted socket into a
// JSON Conn without handshake. Such a Conn reads every agent-to-proxy frame
// type, fails its pending calls at once when the socket dies, and then
// closes itself instead of reconnecting (the agent dials again).
//
// # Transports
//
// The core talks to a small unexported transport interface (encoders used
// by callers, send used by the writer, a read loop that delivers decoded
// messages to the session); gRPC and the Unix-socket protocol implement it.
//
// All exported methods of Conn are safe for concurrent use.
package engine
