package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/agentwire/agentwire"
	"google.golang.org/grpc"
)

// Defaults.
const (
	// DefaultMaxConcurrency bounds the events handled at once per connection
	// (gRPC ProcessStream or Unix-socket connection). It matches the
	// reference AgentLimits.max_concurrency.
	DefaultMaxConcurrency = 100
	// DefaultMaxMessageSize is the default gRPC receive and send limit, the
	// same 4 MiB tonic applies on the Rust side.
	DefaultMaxMessageSize = 4 << 20
	// DefaultGRPCWindow is the HTTP/2 flow-control window (per stream and
	// per connection) of the gRPC server ServeGRPC creates (see
	// WithGRPCWindow): one message of the default maximum size fits
	// without waiting for a window update.
	DefaultGRPCWindow = 4 << 20
	// DefaultAgentID is used when WithAgentID is not given.
	DefaultAgentID = "agentwire-agent"
	// DefaultHealthReportIntervalMS is the health interval announced in the
	// capabilities (HealthConfig.report_interval_ms) and used as the
	// keep-alive period of a Rust-SDK-style ControlStream.
	DefaultHealthReportIntervalMS = 10000
	// controlMetadataKey is the agentwire control-plane marker (see doc.go).
	controlMetadataKey = "agentwire-control"
)

// Option configures a Server. Options are validated by NewServer, which
// panics with an error satisfying errors.Is(err, ErrInvalidConfig) on an
// invalid one.
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

type config struct {
	agentID        string
	name           string
	version        string
	caps           *agentwire.Capabilities
	events         []int32 // WithSupportedEvents; nil: not given
	maxConcurrency int
	logger         *slog.Logger
	maxRecv        int
	maxSend        int
	errDecision    agentwire.Decision
	decodeErr      agentwire.Decision
	grpcOpts       []grpc.ServerOption
	grpcWindow     int
	uds            udsConfig   // Unix-socket and reverse-connection settings (uds_options.go)
	tracing        traceConfig // WithTracerProvider (trace.go)
}

func defaultConfig() config {
	return config{
		agentID:        DefaultAgentID,
		maxConcurrency: DefaultMaxConcurrency,
		logger:         slog.New(slog.DiscardHandler),
		maxRecv:        DefaultMaxMessageSize,
		maxSend:        DefaultMaxMessageSize,
		errDecision:    agentwire.Allow(),
		decodeErr:      DefaultDecodeErrorDecision(),
		grpcWindow:     DefaultGRPCWindow,
	}
}

// WithAgentID sets the agent id announced in the handshake and written into
// health and metrics reports that leave it empty. Default DefaultAgentID.
func WithAgentID(id string) Option {
	return optionFunc(func(c *config) error {
		if id == "" {
			return errors.New("agentwire: agent id must not be empty")
		}
		c.agentID = id
		return nil
	})
}

// WithName sets the agent name announced in the capabilities (default: the
// agent id).
func WithName(name string) Option {
	return optionFunc(func(c *config) error { c.name = name; return nil })
}

// WithVersion sets the agent version announced in the capabilities.
func WithVersion(version string) Option {
	return optionFunc(func(c *config) error { c.version = version; return nil })
}

// WithCapabilities replaces the announced capabilities. Empty AgentID,
// Name and Version are filled from the other options; ProtocolVersion is
// always 2. Without this option the server announces every feature, every
// event type and the default limits (agentwire.FullFeatures,
// agentwire.DefaultLimits), with Features.ConcurrentRequests and
// Limits.MaxConcurrency equal to the concurrency bound.
func WithCapabilities(caps agentwire.Capabilities) Option {
	return optionFunc(func(c *config) error {
		cp := caps
		cp.SupportedEvents = append([]int32(nil), caps.SupportedEvents...)
		c.caps = &cp
		return nil
	})
}

// WithSupportedEvents replaces the supported_events list of the announced
// capabilities (the default list of every event, or the list of
// WithCapabilities, whatever the order of the options) with codes, in gRPC
// numbering: agentwire.EventRequestHeaders (1) … agentwire.EventGuardrailInspect
// (7) and agentwire.EventConfigureGRPC (8); the Unix-socket and reverse
// transports announce Configure as 0 themselves. Proxies send only the
// events an agent lists, so listing only the handled ones (for a Funcs,
// WithSupportedEvents(f.Events()...)) saves the proxy calls that would
// only be answered allow. An empty list announces no event. A code outside
// 1..8 or a repeated code is invalid.
func WithSupportedEvents(codes ...int32) Option {
	codes = slices.Clone(codes)
	return optionFunc(func(c *config) error {
		out := make([]int32, 0, len(codes))
		for _, code := range codes {
			if code < agentwire.EventRequestHeaders || code > agentwire.EventConfigureGRPC {
				return fmt.Errorf("agentwire: supported event code %d out of range 1..8 (gRPC numbering: Configure is 8)", code)
			}
			if slices.Contains(out, code) {
				return fmt.Errorf("agentwire: supported event code %d repeated", code)
			}
			out = append(out, code)
		}
		c.events = out
		return nil
	})
}

// WithMaxConcurrency bounds the number of events handled at once on one
// connection. When the bound is reached, up to as many further events are
// read and wait in a backlog (so cancels and pings behind them are still
// processed); when the backlog is full too, the connection's reader waits
// for a slot (backpressure to the proxy). Default DefaultMaxConcurrency.
func WithMaxConcurrency(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1 || n > 1<<16 {
			return fmt.Errorf("agentwire: max concurrency %d out of range 1..65536", n)
		}
		c.maxConcurrency = n
		return nil
	})
}

// WithLogger sets the logger. Default: discard everything (a handler
// enabled at no level). At Debug the server logs each connection or stream
// established and ended; nothing is logged per request except handler
// failures.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) error {
		if l == nil {
			return errors.New("agentwire: nil logger")
		}
		c.logger = l
		return nil
	})
}

// WithMaxRecvSize sets the largest gRPC message the server accepts (only
// for servers created by ServeGRPC). Default DefaultMaxMessageSize.
func WithMaxRecvSize(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1024 {
			return fmt.Errorf("agentwire: max receive size %d below 1024", n)
		}
		c.maxRecv = n
		return nil
	})
}

// WithMaxSendSize sets the largest gRPC message the server sends (only for
// servers created by ServeGRPC). Default DefaultMaxMessageSize.
func WithMaxSendSize(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1024 {
			return fmt.Errorf("agentwire: max send size %d below 1024", n)
		}
		c.maxSend = n
		return nil
	})
}

// WithErrorDecision sets the decision sent when a handler returns an error
// or panics, or when its reply cannot be encoded. The reply carries only
// this decision and the audit tag TagHandlerError or TagHandlerPanic
// (nothing the handler wrote before failing), and the failure is counted
// in Stats.HandlerErrors or Stats.HandlerPanics.
//
// Default allow (fail open), as in the Rust SDK. agentwire keeps that
// default, where it does not for undecodable events, because:
//   - The proxy owns the failure policy. Each agent has a failure mode
//     (open or closed) in the proxy's configuration, applied when the agent
//     fails to answer; an agent that blocked on its own bugs would override
//     an operator's fail-open choice, turning a bug in one handler method
//     (say, an enrichment agent's header parser) into an outage of every
//     route using the agent. Failing closed is a per-agent decision, made
//     here.
//   - A Go agent that replaces a Rust one behaves the same.
//   - The failure is no longer silent: the tag marks the reply in the
//     proxy's audit data and the counters expose it.
//
// An undecodable event differs: the handler never saw it, so an allow would
// let a malformed or hostile payload bypass the agent altogether; those use
// WithDecodeErrorDecision (block 503 by default). Security agents that must
// fail closed set agentwire.Block(503) or similar here.
func WithErrorDecision(d agentwire.Decision) Option {
	return optionFunc(func(c *config) error { c.errDecision = d; return nil })
}

// DefaultDecodeErrorDecision is the decision an event that cannot be
// decoded gets by default (WithDecodeErrorDecision): block 503. An
// undecodable event was never seen by the handler, so allowing it would
// let a malformed or hostile payload bypass the agent (the Rust SDK's
// fail-open behaviour, which agentwire does not copy).
func DefaultDecodeErrorDecision() agentwire.Decision { return agentwire.Block(503) }

// WithDecodeErrorDecision sets the decision sent for an event the agent
// cannot decode (Unix-socket and reverse connections; over gRPC an
// undecodable message ends the stream). Default
// DefaultDecodeErrorDecision, block 503. A WebSocket frame that cannot be
// decoded gets websocket_decision close 1011 unless d is allow (then
// allow). agentwire.Allow() restores fail-open explicitly.
func WithDecodeErrorDecision(d agentwire.Decision) Option {
	return optionFunc(func(c *config) error { c.decodeErr = d; return nil })
}

// WithGRPCWindow sets the HTTP/2 flow-control window (per stream and per
// connection) of the grpc.Server that ServeGRPC creates to n bytes; default
// DefaultGRPCWindow, valid 64 KiB..2 GiB-1. A fixed window turns off
// grpc-go's dynamic window sizing, whose bandwidth-delay probes (a PING and
// a WINDOW_UPDATE per round trip of the probe) cost socket writes and
// allocations on every busy connection. n = 0 restores grpc-go's dynamic
// sizing (starting at 64 KiB), which suits links with a large
// bandwidth-delay product.
func WithGRPCWindow(n int) Option {
	return optionFunc(func(c *config) error {
		if n != 0 && (n < 64<<10 || n > math.MaxInt32) {
			return fmt.Errorf("agentwire: gRPC window %d out of range %d..%d (or 0)", n, 64<<10, math.MaxInt32)
		}
		c.grpcWindow = n
		return nil
	})
}

// WithGRPCServerOptions adds options for the grpc.Server that ServeGRPC
// creates (TLS credentials, keepalive, interceptors, …). They are applied
// after the server's own options.
func WithGRPCServerOptions(opts ...grpc.ServerOption) Option {
	return optionFunc(func(c *config) error {
		c.grpcOpts = append(c.grpcOpts, opts...)
		return nil
	})
}

// allEvents lists every event type code the Handler interface covers (gRPC
// numbering: Configure is 8).
var allEvents = []int32{
	agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk,
	agentwire.EventResponseHeaders, agentwire.EventResponseBodyChunk,
	agentwire.EventRequestComplete, agentwire.EventWebSocketFrame,
	agentwire.EventGuardrailInspect, agentwire.EventConfigureGRPC,
}

func (c *config) capabilities() agentwire.Capabilities {
	var caps agentwire.Capabilities
	if c.caps != nil {
		caps = *c.caps
	} else {
		caps = agentwire.Capabilities{
			SupportedEvents: append([]int32(nil), allEvents...),
			Features:        agentwire.FullFeatures(),
			Limits:          agentwire.DefaultLimits(),
			Health: agentwire.HealthConfig{
				ReportIntervalMS:   DefaultHealthReportIntervalMS,
				IncludeLoadMetrics: true,
			},
		}
		caps.Features.ConcurrentRequests = uint32(c.maxConcurrency)
		caps.Limits.MaxConcurrency = uint32(c.maxConcurrency)
	}
	if c.events != nil {
		caps.SupportedEvents = slices.Clone(c.events)
	}
	caps.ProtocolVersion = agentwire.ProtocolVersion
	if caps.AgentID == "" {
		caps.AgentID = c.agentID
	}
	if caps.Name == "" {
		caps.Name = c.name
		if caps.Name == "" {
			caps.Name = c.agentID
		}
	}
	if caps.Version == "" {
		caps.Version = c.version
	}
	return caps
}
