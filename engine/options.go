package engine

import (
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc"

	"github.com/agentwire/agentwire"
)

// Defaults of the options.
const (
	// DefaultConnectTimeout bounds reaching the agent and opening the
	// stream (up to its response headers).
	DefaultConnectTimeout = 5 * time.Second
	// DefaultHandshakeTimeout bounds the handshake exchange.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultRequestTimeout is the deadline of a call whose context has
	// none (the Rust pool's request timeout). The DEGRADED timeout
	// multiplier stretches it; a context deadline is never extended.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultMaxMessageSize is the default send and receive cap (the 4 MiB
	// that tonic enforces on both Rust sides).
	DefaultMaxMessageSize = 4 << 20
	// DefaultRingSize is the capacity of the outbound queue (at most: see
	// WithRingSize).
	DefaultRingSize = 1024
	// DefaultReconnectBase and DefaultReconnectMax bound the reconnect
	// backoff (exponential, full jitter).
	DefaultReconnectBase = 100 * time.Millisecond
	DefaultReconnectMax  = 5 * time.Second
	// DefaultCallbackQueue is the capacity of the callback dispatcher's
	// queue; reports arriving while it is full are dropped and counted.
	DefaultCallbackQueue = 256
	// DefaultGRPCWindow is the HTTP/2 flow-control window of the gRPC
	// stream and connection in both directions (see WithGRPCWindow): one
	// message of the default maximum size fits without waiting for a
	// window update.
	DefaultGRPCWindow = 4 << 20
	// DefaultProxyID and DefaultProxyVersion are sent in the handshake.
	DefaultProxyID      = "agentwire-proxy"
	DefaultProxyVersion = "0.1.0"
)

// FlowMode says what a call does when the agent's flow control does not let
// it through (connection or correlation id paused, in-flight cap reached).
type FlowMode uint8

const (
	// FlowFailFast returns ErrFlowPaused at once (the Rust pool's default,
	// FailClosed).
	FlowFailFast FlowMode = iota
	// FlowWait waits for the agent to resume (or capacity to free up) for
	// as long as the call's context allows, then returns ErrFlowPaused.
	FlowWait
)

// Option configures Dial and NewConn (and, through WithConnOptions, the
// Conns of a ReverseListener). Options are applied in order and validated
// together by the constructor, which fails with an ErrInvalidConfig error
// when a value is invalid or when an option does not apply to the
// endpoint's transport (each option says where it applies).
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	insecure         bool
	tls              *tls.Config
	connectTimeout   time.Duration
	handshakeTimeout time.Duration
	requestTimeout   time.Duration
	agentConfig      json.RawMessage
	proxyID          string
	proxyVersion     string
	maxSend          int
	maxRecv          int
	logger           *slog.Logger
	flow             FlowMode
	saturation       FlowMode      // WithSaturation
	maxStretch       time.Duration // WithMaxStretchedTimeout (0: MaxStretchFactor × requestTimeout)
	backoffBase      time.Duration
	backoffMax       time.Duration
	failFast         bool
	ringSize         int
	callbackQueue    int
	keepaliveTime    time.Duration
	keepaliveTimeout time.Duration
	livenessInterval time.Duration
	livenessTimeout  time.Duration
	dialOptions      []grpc.DialOption
	grpcWindow       int
	uds              udsOptions // binary Unix-socket transport (uds_options.go)
	failurePolicy    FailurePolicy
	agentName        string
	endpoint         string       // as given to Dial; names the agent in verdicts
	tracing          traceOptions // WithTracerProvider (trace.go)

	// set records which transport-specific options were given (see
	// checkTransport).
	set optSet

	onStateChange  func(from, to ConnState)
	onMetrics      func(*agentwire.MetricsReport)
	onLog          func(*agentwire.LogMessage)
	onHealth       func(agentwire.HealthStatus)
	onConfigUpdate func(*agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse
}

func defaultOptions() options {
	return options{
		connectTimeout:   DefaultConnectTimeout,
		handshakeTimeout: DefaultHandshakeTimeout,
		requestTimeout:   DefaultRequestTimeout,
		proxyID:          DefaultProxyID,
		proxyVersion:     DefaultProxyVersion,
		maxSend:          DefaultMaxMessageSize,
		maxRecv:          DefaultMaxMessageSize,
		logger:           discardLogger(),
		backoffBase:      DefaultReconnectBase,
		backoffMax:       DefaultReconnectMax,
		failFast:         true,
		ringSize:         DefaultRingSize,
		callbackQueue:    DefaultCallbackQueue,
		grpcWindow:       DefaultGRPCWindow,
		uds:              udsOptions{writeTimeout: DefaultWriteTimeout},
		saturation:       FlowWait,
	}
}

func (o *options) validate() error {
	switch {
	case o.failurePolicy.Mode > FailOpen:
		return configErr("WithFailurePolicy: unknown failure mode %d", o.failurePolicy.Mode)
	case o.set&setTLS != 0 && o.tls == nil:
		return configErr("WithTLS: nil TLS config")
	case o.insecure && o.tls != nil:
		return configErr("WithInsecure and WithTLS are mutually exclusive")
	case o.connectTimeout <= 0:
		return configErr("connect timeout %v must be positive", o.connectTimeout)
	case o.handshakeTimeout <= 0:
		return configErr("handshake timeout %v must be positive", o.handshakeTimeout)
	case o.requestTimeout <= 0:
		return configErr("request timeout %v must be positive", o.requestTimeout)
	case o.requestTimeout > maxStretchedTimeout:
		return configErr("request timeout %v is longer than the %v supported", o.requestTimeout, maxStretchedTimeout)
	case o.maxSend <= 0 || o.maxRecv <= 0:
		return configErr("message size limits must be positive (send %d, receive %d)", o.maxSend, o.maxRecv)
	case o.logger == nil:
		return configErr("nil logger")
	case o.flow > FlowWait:
		return configErr("unknown flow-control mode %d", o.flow)
	case o.saturation > FlowWait:
		return configErr("unknown saturation mode %d", o.saturation)
	case o.maxStretch != 0 && (o.maxStretch < o.requestTimeout || o.maxStretch > maxStretchedTimeout):
		return configErr("max stretched timeout %v out of range %v (the request timeout)..%v", o.maxStretch, o.requestTimeout, maxStretchedTimeout)
	case o.backoffBase <= 0 || o.backoffMax < o.backoffBase:
		return configErr("reconnect backoff needs 0 < base <= max (base %v, max %v)", o.backoffBase, o.backoffMax)
	case o.ringSize < 2 || o.ringSize > 1<<20:
		return configErr("ring size %d out of range 2..%d", o.ringSize, 1<<20)
	case o.callbackQueue < 1:
		return configErr("callback queue size %d must be positive", o.callbackQueue)
	case o.grpcWindow != 0 && (o.grpcWindow < minGRPCWindow || o.grpcWindow > math.MaxInt32):
		return configErr("gRPC window %d out of range %d..%d (or 0)", o.grpcWindow, minGRPCWindow, math.MaxInt32)
	case o.keepaliveTime < 0 || o.keepaliveTimeout < 0:
		return configErr("keepalive durations must not be negative")
	case o.livenessInterval < 0 || (o.livenessInterval > 0 && o.livenessTimeout <= 0):
		return configErr("liveness ping needs a positive interval and timeout")
	case len(o.agentConfig) > 0 && !json.Valid(o.agentConfig):
		return configErr("agent config is not valid JSON")
	}
	if err := o.tracing.validate(); err != nil {
		return err
	}
	return o.uds.validate()
}

// WithInsecure allows a plaintext (h2c) connection for "grpc://", "http://"
// and bare "host:port" endpoints. Without it (or WithTLS) such endpoints are
// refused: there is no silent plaintext. gRPC endpoints only ("grpcs://"
// and "https://" excluded; "grpc+unix://" is plaintext without it): on a
// Unix-socket endpoint or a reverse listener it is an ErrInvalidConfig
// error.
func WithInsecure() Option {
	return optionFunc(func(o *options) { o.insecure = true; o.set |= setInsecure })
}

// WithTLS connects with TLS using cfg (cloned; nil is an ErrInvalidConfig
// error). Put client certificates in cfg.Certificates for mTLS. "grpcs://"
// and "https://" endpoints use TLS with a default configuration when this
// option is absent. gRPC endpoints only: on a Unix-socket endpoint or a
// reverse listener (see WithReverseTLS) it is an ErrInvalidConfig error.
func WithTLS(cfg *tls.Config) Option {
	return optionFunc(func(o *options) {
		o.set |= setTLS
		o.tls = nil
		if cfg != nil {
			o.tls = cfg.Clone()
		}
	})
}

// WithConnectTimeout bounds connecting and opening the stream (default
// DefaultConnectTimeout). It applies to Dial, to NewConn's background
// connection and to every reconnect. gRPC and Unix-socket endpoints; a
// reverse listener does not connect (ErrInvalidConfig there; see
// WithRegistrationTimeout).
func WithConnectTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.connectTimeout = d; o.set |= setConnectTimeout })
}

// WithHandshakeTimeout bounds the handshake (default
// DefaultHandshakeTimeout). gRPC and Unix-socket endpoints; reverse
// connections have no handshake (ErrInvalidConfig there; see
// WithRegistrationTimeout).
func WithHandshakeTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.handshakeTimeout = d; o.set |= setHandshakeTimeout })
}

// WithRequestTimeout sets the deadline of calls whose context has none
// (default DefaultRequestTimeout). A DEGRADED agent's timeout multiplier
// stretches it. Every transport.
func WithRequestTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.requestTimeout = d })
}

// WithAgentConfig sets the agent's configuration (a JSON value, copied). It
// is sent in the handshake's config_json and, right after every successful
// handshake, as a configure event with is_initial=true (SPEC 8.7: the Rust
// proxy never delivers it). Conn.Configure replaces it for later
// reconnects. Every transport (a reverse Conn gets it as a configure event
// right after the registration).
func WithAgentConfig(cfg json.RawMessage) Option {
	return optionFunc(func(o *options) { o.agentConfig = append(json.RawMessage(nil), cfg...) })
}

// WithProxyID sets the proxy id sent in the handshake (default
// DefaultProxyID). Every transport (reverse: in the registration answer).
func WithProxyID(id string) Option { return optionFunc(func(o *options) { o.proxyID = id }) }

// WithProxyVersion sets the proxy version sent in the handshake (default
// DefaultProxyVersion). Every transport (reverse: in the registration
// answer).
func WithProxyVersion(v string) Option { return optionFunc(func(o *options) { o.proxyVersion = v }) }

// WithMaxSendSize caps an encoded outbound message (default
// DefaultMaxMessageSize). Larger events fail with ErrMessageTooLarge before
// anything is sent; split bodies into chunks of at most the agent's
// preferred_chunk_size. Every transport.
func WithMaxSendSize(n int) Option { return optionFunc(func(o *options) { o.maxSend = n }) }

// WithMaxRecvSize caps an inbound message (default DefaultMaxMessageSize).
// gRPC ends the stream on a larger message; pending requests then fail with
// ErrConnectionLost and the Conn reconnects. Every transport.
func WithMaxRecvSize(n int) Option { return optionFunc(func(o *options) { o.maxRecv = n }) }

// WithLogger sets the logger (default: discard, a handler enabled at no
// level). The Conn logs its connection's life cycle, with the endpoint as
// attribute "agent" (see Logging in the package documentation), never a
// line per request. Every transport.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithFlowControl selects what calls do while the agent's flow control holds
// them (default FlowFailFast). Every transport.
func WithFlowControl(m FlowMode) Option { return optionFunc(func(o *options) { o.flow = m }) }

// WithReconnectBackoff sets the reconnect backoff: the n-th consecutive
// failed attempt waits a random duration in [0, min(max, base·2^n)]
// (defaults DefaultReconnectBase, DefaultReconnectMax). Reconnection never
// gives up while the Conn is open; NewConn's first connection is retried
// the same way. gRPC and Unix-socket endpoints; a reverse Conn is never
// redialled (ErrInvalidConfig there).
func WithReconnectBackoff(base, max time.Duration) Option {
	return optionFunc(func(o *options) { o.backoffBase, o.backoffMax = base, max; o.set |= setReconnectBackoff })
}

// WithFailFastWhileReconnecting sets what calls do while the Conn has no
// session (NewConn's first connection, or a reconnection): fail at once
// with ErrNotConnected (true, the default) or wait for the connection
// within their context (false). gRPC and Unix-socket endpoints; a reverse
// Conn has a session from its creation to its end (ErrInvalidConfig
// there).
func WithFailFastWhileReconnecting(failFast bool) Option {
	return optionFunc(func(o *options) { o.failFast = failFast; o.set |= setFailFast })
}

// WithRingSize sets the capacity of the outbound queue (rounded up to a
// power of two; default DefaultRingSize). A session whose agent announces
// a max_concurrency M (which admission keeps the requests in flight
// under) uses M+16 instead when that is smaller, so that idle connections
// do not hold slots no request can use. Callers block (within their
// context) while it is full. Every transport.
func WithRingSize(n int) Option { return optionFunc(func(o *options) { o.ringSize = n }) }

// WithCallbackQueueSize sets the capacity of the callback queue (default
// DefaultCallbackQueue). Whatever the capacity, the reports waiting in it
// hold at most 16 MiB of wire bytes (one larger report is taken when the
// queue is empty). A report that does not fit is dropped and counted
// (Stats.CallbacksDropped); a config-update request is then answered with
// a rejection. The queue is made when the first report is queued: a Conn
// whose agent sends none holds no memory for it. Every transport.
func WithCallbackQueueSize(n int) Option { return optionFunc(func(o *options) { o.callbackQueue = n }) }

// WithKeepalive turns on HTTP/2 keep-alive pings every t on gRPC
// connections, closing the transport when no answer comes within timeout
// (pending calls then fail with ErrConnectionLost and the Conn
// reconnects). HTTP/2 PINGs are answered by the agent's HTTP/2 transport,
// not by its handler: keep-alive detects a dead peer, a frozen process
// and a broken network path, but not a hung handler or an agent that
// stopped reading its stream (WithLivenessPing and WithWriteTimeout
// detect those). Off by default: grpc-go servers reject pings more
// frequent than every 5 minutes unless their enforcement policy allows
// them. gRPC endpoints only: Unix-socket and reverse connections have no
// HTTP/2 (ErrInvalidConfig there; use WithLivenessPing).
func WithKeepalive(t, timeout time.Duration) Option {
	return optionFunc(func(o *options) { o.keepaliveTime, o.keepaliveTimeout = t, timeout; o.set |= setKeepalive })
}

// WithLivenessPing makes the Conn send a protocol Ping every interval and
// declare the connection lost (pending calls fail with ErrConnectionLost,
// then it reconnects) when the matching Pong does not arrive within
// timeout. The Ping travels on the event stream and is answered by the
// agent's own code, so it detects an agent whose stream reader stopped or
// hung, besides agents and networks that went silent without closing the
// connection. Off by default: an agent that handles messages one at a
// time (the Rust SDK) answers a ping only after the events queued before
// it, so keep timeout above the slowest expected event. An agent that
// stops reading altogether is also caught by WithWriteTimeout once the
// Conn has something to send. Every transport (a reverse Conn declared
// lost closes itself).
func WithLivenessPing(interval, timeout time.Duration) Option {
	return optionFunc(func(o *options) { o.livenessInterval, o.livenessTimeout = interval, timeout })
}

// minGRPCWindow is grpc-go's smallest accepted window (HTTP/2's initial
// 64 KiB); it ignores smaller ones.
const minGRPCWindow = 64 << 10

// WithGRPCWindow sets the HTTP/2 flow-control window of gRPC connections
// (per stream and per connection) to n bytes; default DefaultGRPCWindow,
// valid 64 KiB..2 GiB-1. A fixed window turns off grpc-go's dynamic
// window sizing, whose bandwidth-delay probes (a PING and a WINDOW_UPDATE
// per round trip of the probe) cost socket writes and allocations on
// every busy connection; measured over loopback with small events at 64
// in flight: ~5% less CPU per request, ~0.25 fewer allocations. n = 0
// restores grpc-go's dynamic sizing (starting at 64 KiB), which suits
// links with a large bandwidth-delay product. gRPC endpoints only
// (ErrInvalidConfig on Unix-socket endpoints and reverse listeners).
func WithGRPCWindow(n int) Option {
	return optionFunc(func(o *options) { o.grpcWindow = n; o.set |= setGRPCWindow })
}

// WithGRPCDialOptions appends raw grpc dial options (buffer and window
// sizes, stats handlers). Options that conflict with the Conn's own
// (credentials, codec) lead to undefined behaviour. gRPC endpoints only
// (ErrInvalidConfig on Unix-socket endpoints and reverse listeners).
func WithGRPCDialOptions(opts ...grpc.DialOption) Option {
	return optionFunc(func(o *options) { o.dialOptions = append(o.dialOptions, opts...); o.set |= setGRPCDialOptions })
}

// WithOnMetrics sets the callback for agent metrics reports. Callbacks run
// on the Conn's dispatcher goroutine, one at a time, never on the reader;
// a slow callback delays only other callbacks. Every transport.
func WithOnMetrics(f func(*agentwire.MetricsReport)) Option {
	return optionFunc(func(o *options) { o.onMetrics = f })
}

// WithOnLog sets the callback for log lines forwarded by the agent
// (dispatcher goroutine). gRPC endpoints only (agentwire agents forward
// log lines on the ControlStream): the Unix-socket protocol has no log
// frame, so on Unix-socket endpoints and reverse listeners it is an
// ErrInvalidConfig error.
func WithOnLog(f func(*agentwire.LogMessage)) Option {
	return optionFunc(func(o *options) { o.onLog = f; o.set |= setOnLog })
}

// WithOnHealth sets the callback for agent health reports (dispatcher
// goroutine). The Conn applies reports itself (see Health); the callback is
// for observation. Every transport.
func WithOnHealth(f func(agentwire.HealthStatus)) Option {
	return optionFunc(func(o *options) { o.onHealth = f })
}

// WithOnConfigUpdate sets the handler of agent config-update requests
// (dispatcher goroutine). Its answer is sent back on the agentwire
// ControlStream (when the agent offers one). Without a handler the Conn
// answers like the Rust pool: request_reload, restart_required and
// config_error are accepted, rule and list updates rejected as not
// supported. RequestID and a zero TimestampMS of the answer are filled in.
// Every transport; the Unix-socket protocol has no frame for the answer
// (the handler runs, its answer stays local and is counted in
// Stats.ConfigUnanswered).
func WithOnConfigUpdate(f func(*agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse) Option {
	return optionFunc(func(o *options) { o.onConfigUpdate = f })
}

// WithOnStateChange sets the callback of the Conn's connection-state
// transitions (see ConnState and Conn.State): f(from, to) runs on the
// Conn's dispatcher goroutine (never on a reader or writer), one call at a
// time, like the other callbacks.
//
// Every transition is delivered, in the order it happened, each call's
// from being the previous call's to: a Conn from NewConn first reports
// StateConnecting → StateConnected (Dial's Conn reports that one too, once
// Dial has connected), a lost session StateConnected → StateReconnecting
// and the next one StateReconnecting → StateConnected (a reverse Conn goes
// from StateConnected to StateClosed instead), and Close ... → StateClosed,
// which is the last call. Close waits for that call, except when a
// callback of this Conn is running at that moment (Close may be called
// from it): the call is then made as soon as that callback returns, after
// Close returned. Transitions are coalesced only while more than 1024 wait
// for a callback that does not return: the newest are then merged into the
// last waiting one (a pair whose ends are equal is dropped), so that a
// stuck callback cannot make the queue grow without bound, and the
// from → to chain stays consistent.
//
// A panicking f is recovered and counted (Stats.CallbackPanics). Every
// transport. nil: no callback (the default).
func WithOnStateChange(f func(from, to ConnState)) Option {
	return optionFunc(func(o *options) { o.onStateChange = f })
}
