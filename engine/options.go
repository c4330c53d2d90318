package engine

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// DefaultRingSize is the capacity of the outbound queue.
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

// Option configures Dial. Options are applied in order and validated
// together by Dial.
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
		logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
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
	case o.insecure && o.tls != nil:
		return errors.New("agentwire: WithInsecure and WithTLS are mutually exclusive")
	case o.connectTimeout <= 0:
		return errors.New("agentwire: connect timeout must be positive")
	case o.handshakeTimeout <= 0:
		return errors.New("agentwire: handshake timeout must be positive")
	case o.requestTimeout <= 0:
		return errors.New("agentwire: request timeout must be positive")
	case o.requestTimeout > maxStretchedTimeout:
		return fmt.Errorf("agentwire: request timeout %v is longer than the %v supported", o.requestTimeout, maxStretchedTimeout)
	case o.maxSend <= 0 || o.maxRecv <= 0:
		return errors.New("agentwire: message size limits must be positive")
	case o.logger == nil:
		return errors.New("agentwire: nil logger")
	case o.flow > FlowWait:
		return fmt.Errorf("agentwire: unknown flow-control mode %d", o.flow)
	case o.saturation > FlowWait:
		return fmt.Errorf("agentwire: unknown saturation mode %d", o.saturation)
	case o.maxStretch != 0 && (o.maxStretch < o.requestTimeout || o.maxStretch > maxStretchedTimeout):
		return fmt.Errorf("agentwire: max stretched timeout %v out of range %v (the request timeout)..%v", o.maxStretch, o.requestTimeout, maxStretchedTimeout)
	case o.backoffBase <= 0 || o.backoffMax < o.backoffBase:
		return errors.New("agentwire: reconnect backoff needs 0 < base <= max")
	case o.ringSize < 2 || o.ringSize > 1<<20:
		return fmt.Errorf("agentwire: ring size %d out of range 2..%d", o.ringSize, 1<<20)
	case o.callbackQueue < 1:
		return errors.New("agentwire: callback queue size must be positive")
	case o.grpcWindow != 0 && (o.grpcWindow < minGRPCWindow || o.grpcWindow > math.MaxInt32):
		return fmt.Errorf("agentwire: gRPC window %d out of range %d..%d (or 0)", o.grpcWindow, minGRPCWindow, math.MaxInt32)
	case o.keepaliveTime < 0 || o.keepaliveTimeout < 0:
		return errors.New("agentwire: keepalive durations must not be negative")
	case o.livenessInterval < 0 || (o.livenessInterval > 0 && o.livenessTimeout <= 0):
		return errors.New("agentwire: liveness ping needs a positive interval and timeout")
	case len(o.agentConfig) > 0 && !json.Valid(o.agentConfig):
		return errors.New("agentwire: agent config is not valid JSON")
	}
	return o.uds.validate()
}

// WithInsecure allows a plaintext (h2c) connection for "grpc://", "http://"
// and bare "host:port" endpoints. Without it (or WithTLS) such endpoints are
// refused: there is no silent plaintext.
func WithInsecure() Option { return optionFunc(func(o *options) { o.insecure = true }) }

// WithTLS connects with TLS using cfg (cloned). Put client certificates in
// cfg.Certificates for mTLS. "grpcs://" and "https://" endpoints use TLS
// with a default configuration when this option is absent.
func WithTLS(cfg *tls.Config) Option {
	return optionFunc(func(o *options) {
		if cfg != nil {
			o.tls = cfg.Clone()
		}
	})
}

// WithConnectTimeout bounds connecting and opening the stream (default
// DefaultConnectTimeout). It applies to Dial and to every reconnect.
func WithConnectTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.connectTimeout = d })
}

// WithHandshakeTimeout bounds the handshake (default
// DefaultHandshakeTimeout).
func WithHandshakeTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.handshakeTimeout = d })
}

// WithRequestTimeout sets the deadline of calls whose context has none
// (default DefaultRequestTimeout). A DEGRADED agent's timeout multiplier
// stretches it.
func WithRequestTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.requestTimeout = d })
}

// WithAgentConfig sets the agent's configuration (a JSON value, copied). It
// is sent in the handshake's config_json and, right after every successful
// handshake, as a configure event with is_initial=true (SPEC 8.7: the Rust
// proxy never delivers it). Conn.Configure replaces it for later
// reconnects.
func WithAgentConfig(cfg json.RawMessage) Option {
	return optionFunc(func(o *options) { o.agentConfig = append(json.RawMessage(nil), cfg...) })
}

// WithProxyID sets the proxy id sent in the handshake (default
// DefaultProxyID).
func WithProxyID(id string) Option { return optionFunc(func(o *options) { o.proxyID = id }) }

// WithProxyVersion sets the proxy version sent in the handshake (default
// DefaultProxyVersion).
func WithProxyVersion(v string) Option { return optionFunc(func(o *options) { o.proxyVersion = v }) }

// WithMaxSendSize caps an encoded outbound message (default
// DefaultMaxMessageSize). Larger events fail with ErrMessageTooLarge before
// anything is sent; split bodies into chunks of at most the agent's
// preferred_chunk_size.
func WithMaxSendSize(n int) Option { return optionFunc(func(o *options) { o.maxSend = n }) }

// WithMaxRecvSize caps an inbound message (default DefaultMaxMessageSize).
// gRPC ends the stream on a larger message; pending requests then fail with
// ErrConnectionLost and the Conn reconnects.
func WithMaxRecvSize(n int) Option { return optionFunc(func(o *options) { o.maxRecv = n }) }

// WithLogger sets the logger (default: discard). The Conn logs connection
// events, never per request above Debug.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithFlowControl selects what calls do while the agent's flow control holds
// them (default FlowFailFast).
func WithFlowControl(m FlowMode) Option { return optionFunc(func(o *options) { o.flow = m }) }

// WithReconnectBackoff sets the reconnect backoff: the n-th consecutive
// failed attempt waits a random duration in [0, min(max, base·2^n)]
// (defaults DefaultReconnectBase, DefaultReconnectMax). Reconnection never
// gives up while the Conn is open.
func WithReconnectBackoff(base, max time.Duration) Option {
	return optionFunc(func(o *options) { o.backoffBase, o.backoffMax = base, max })
}

// WithFailFastWhileReconnecting sets what calls do while the Conn is
// reconnecting: fail at once with ErrNotConnected (true, the default) or
// wait for the connection within their context (false).
func WithFailFastWhileReconnecting(failFast bool) Option {
	return optionFunc(func(o *options) { o.failFast = failFast })
}

// WithRingSize sets the capacity of the outbound queue (rounded up to a
// power of two; default DefaultRingSize). Callers block (within their
// context) while it is full.
func WithRingSize(n int) Option { return optionFunc(func(o *options) { o.ringSize = n }) }

// WithCallbackQueueSize sets the capacity of the callback queue (default
// DefaultCallbackQueue). Whatever the capacity, the reports waiting in it
// hold at most 16 MiB of wire bytes (one larger report is taken when the
// queue is empty). A report that does not fit is dropped and counted
// (Stats.CallbacksDropped); a config-update request is then answered with
// a rejection.
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
// them. Unix-socket connections ignore it.
func WithKeepalive(t, timeout time.Duration) Option {
	return optionFunc(func(o *options) { o.keepaliveTime, o.keepaliveTimeout = t, timeout })
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
// Conn has something to send.
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
// links with a large bandwidth-delay product. Unix-socket connections
// ignore it.
func WithGRPCWindow(n int) Option { return optionFunc(func(o *options) { o.grpcWindow = n }) }

// WithGRPCDialOptions appends raw grpc dial options (buffer and window
// sizes, stats handlers). Options that conflict with the Conn's own
// (credentials, codec) lead to undefined behaviour.
func WithGRPCDialOptions(opts ...grpc.DialOption) Option {
	return optionFunc(func(o *options) { o.dialOptions = append(o.dialOptions, opts...) })
}

// WithOnMetrics sets the callback for agent metrics reports. Callbacks run
// on the Conn's dispatcher goroutine, one at a time, never on the reader;
// a slow callback delays only other callbacks.
func WithOnMetrics(f func(*agentwire.MetricsReport)) Option {
	return optionFunc(func(o *options) { o.onMetrics = f })
}

// WithOnLog sets the callback for log lines forwarded by the agent
// (dispatcher goroutine).
func WithOnLog(f func(*agentwire.LogMessage)) Option {
	return optionFunc(func(o *options) { o.onLog = f })
}

// WithOnHealth sets the callback for agent health reports (dispatcher
// goroutine). The Conn applies reports itself (see Health); the callback is
// for observation.
func WithOnHealth(f func(agentwire.HealthStatus)) Option {
	return optionFunc(func(o *options) { o.onHealth = f })
}

// WithOnConfigUpdate sets the handler of agent config-update requests
// (dispatcher goroutine). Its answer is sent back on the agentwire
// ControlStream (when the agent offers one). Without a handler the Conn
// answers like the Rust pool: request_reload, restart_required and
// config_error are accepted, rule and list updates rejected as not
// supported. RequestID and a zero TimestampMS of the answer are filled in.
func WithOnConfigUpdate(f func(*agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse) Option {
	return optionFunc(func(o *options) { o.onConfigUpdate = f })
}
