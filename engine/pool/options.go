package pool

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// Pool defaults.
const (
	// DefaultHealthCheckInterval is how often the pool re-reads the health
	// of its connections (to re-admit recovered ones and retire closed
	// reverse ones).
	DefaultHealthCheckInterval = 250 * time.Millisecond
	// DefaultDialBackoffBase and DefaultDialBackoffMax bound the capped,
	// jittered exponential backoff between first-connection attempts to an
	// agent that is not up yet (retried forever).
	DefaultDialBackoffBase = 100 * time.Millisecond
	DefaultDialBackoffMax  = 5 * time.Second
)

// Agent defaults (the Rust proxy's where it has one, SPEC 9.1 and 12.2).
const (
	// DefaultTimeout bounds each call to an agent (the Rust proxy's
	// timeout-ms default).
	DefaultTimeout = time.Second
	// DefaultMaxConcurrent is the per-agent limit of calls in flight
	// (max-concurrent-calls).
	DefaultMaxConcurrent = 100
	// DefaultBodyLimit is the per-agent body inspection limit, for request
	// and response bodies (max-request-body-bytes, max-response-body-bytes).
	DefaultBodyLimit = 1 << 20
	// DefaultFlowWait is how long FlowWaitAndRetry waits for a paused
	// agent (flow_control_wait_timeout).
	DefaultFlowWait = 100 * time.Millisecond
	// DefaultMaxPins and DefaultPinTTL bound the correlation affinity
	// table of an agent: pins in it and their idle time to live
	// (correlation_affinity_ttl, sticky_session_timeout).
	DefaultMaxPins = 16384
	DefaultPinTTL  = 5 * time.Minute
)

// Option configures a Pool (New).
type Option interface{ applyPool(*poolOptions) error }

type poolOptionFunc func(*poolOptions) error

func (f poolOptionFunc) applyPool(o *poolOptions) error { return f(o) }

type poolOptions struct {
	healthEvery  time.Duration
	log          *slog.Logger
	backoffBase  time.Duration
	backoffMax   time.Duration
	unknownAgent func(agentID string, c *engine.Conn)
}

func defaultPoolOptions() poolOptions {
	return poolOptions{
		healthEvery: DefaultHealthCheckInterval,
		log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		backoffBase: DefaultDialBackoffBase,
		backoffMax:  DefaultDialBackoffMax,
	}
}

// WithHealthCheckInterval sets how often the pool re-reads its
// connections' health (default DefaultHealthCheckInterval; at least 1 ms).
// Connections are also taken out at once when a call finds them
// unusable.
func WithHealthCheckInterval(d time.Duration) Option {
	return poolOptionFunc(func(o *poolOptions) error {
		if d < time.Millisecond {
			return configErr(fmt.Sprintf("health check interval %v below 1ms", d))
		}
		o.healthEvery = d
		return nil
	})
}

// WithLogger sets the pool's logger (default: discard). Fail-open skips
// and connection changes are logged at warn and info level.
func WithLogger(l *slog.Logger) Option {
	return poolOptionFunc(func(o *poolOptions) error {
		if l == nil {
			return configErr("nil logger")
		}
		o.log = l
		return nil
	})
}

// WithDialBackoff sets the capped, jittered exponential backoff between
// attempts to make a dialled connection's first connection (default
// DefaultDialBackoffBase, DefaultDialBackoffMax). Attempts never stop
// while the agent is in the pool. Once connected, the engine.Conn
// reconnects by itself (engine.WithReconnectBackoff).
func WithDialBackoff(base, max time.Duration) Option {
	return poolOptionFunc(func(o *poolOptions) error {
		if base <= 0 || max < base {
			return configErr(fmt.Sprintf("dial backoff base %v, max %v: want 0 < base <= max", base, max))
		}
		o.backoffBase, o.backoffMax = base, max
		return nil
	})
}

// WithUnknownReverseAgent sets what AddReverse does with a connection from
// an agent id the pool has no agent for (default: close it and log).
func WithUnknownReverseAgent(f func(agentID string, c *engine.Conn)) Option {
	return poolOptionFunc(func(o *poolOptions) error { o.unknownAgent = f; return nil })
}

// Balance is a load-balancing strategy: how an agent's calls are spread
// over its connections. Every strategy considers only connections that
// take calls (connected; not reported unhealthy or draining; not paused by
// flow control) and breaks ties at random, so that no connection is
// favoured by its position.
type Balance uint8

const (
	// BalanceP2C (the default): power of two choices. Two connections are
	// drawn at random and the one with the lower (in flight + 1) ×
	// latency EWMA is used.
	BalanceP2C Balance = iota
	// BalanceRoundRobin: connections in turn.
	BalanceRoundRobin
	// BalanceLeastInFlight: the connection with the fewest calls in
	// flight.
	BalanceLeastInFlight
	// BalanceRandom: a connection drawn uniformly at random.
	BalanceRandom
	// BalanceWeighted: connections in proportion to their weights
	// (Endpoint.Weight, AddConn), interleaved smoothly.
	BalanceWeighted
)

var balanceNames = [...]string{"p2c", "round-robin", "least-in-flight", "random", "weighted"}

// String returns the strategy's name.
func (b Balance) String() string {
	if int(b) < len(balanceNames) {
		return balanceNames[b]
	}
	return "unknown"
}

// FlowMode says what a call does when every usable connection of its
// agent is paused by the agent's flow control (the Rust pool's
// flow_control_mode).
type FlowMode uint8

const (
	// FlowFailClosed (the default): the call gets the failure policy's
	// verdict with ReasonUnavailable (a block in fail-closed).
	FlowFailClosed FlowMode = iota
	// FlowFailOpen: the call is skipped with a synthetic allow (counted),
	// whatever the failure policy.
	FlowFailOpen
	// FlowWaitAndRetry: the call waits up to the flow wait (and within its
	// timeout) for a connection to resume, then is treated as
	// FlowFailClosed.
	FlowWaitAndRetry
)

// Endpoint describes connections the pool dials to an agent.
type Endpoint struct {
	// Address is the agent's endpoint, as engine.Dial takes it.
	Address string
	// Conns is the number of connections to open (default 1).
	Conns int
	// Weight is each connection's weight for BalanceWeighted (default 1,
	// at most 1000).
	Weight int
	// Options are the connections' engine options. The pool appends
	// engine.WithRequestTimeout(the agent's timeout) and
	// engine.WithAgentName(the agent's name).
	Options []engine.Option
}

// AgentOption configures an Agent (Pool.AddAgent).
type AgentOption interface{ applyAgent(*agentOptions) error }

type agentOptionFunc func(*agentOptions) error

func (f agentOptionFunc) applyAgent(o *agentOptions) error { return f(o) }

type agentOptions struct {
	endpoints     []Endpoint
	balance       Balance
	timeout       time.Duration
	phaseTimeouts [8]time.Duration // by event kind; 0: timeout
	policy        engine.FailurePolicy
	breaker       BreakerConfig
	maxConcurrent int
	maxWait       time.Duration
	flow          FlowMode
	flowWait      time.Duration
	events        uint32 // configured subscription (bit k: event kind k)
	reqBodyLimit  int64  // < 0: none
	respBodyLimit int64
	maxPins       int
	pinTTL        time.Duration
}

// allEvents subscribes event kinds 1..7.
const allEvents = 0xfe

func defaultAgentOptions() agentOptions {
	return agentOptions{
		balance:       BalanceP2C,
		timeout:       DefaultTimeout,
		maxConcurrent: DefaultMaxConcurrent,
		flowWait:      DefaultFlowWait,
		events:        allEvents,
		reqBodyLimit:  DefaultBodyLimit,
		respBodyLimit: DefaultBodyLimit,
		maxPins:       DefaultMaxPins,
		pinTTL:        DefaultPinTTL,
	}
}

// WithEndpoint makes the pool dial conns connections to address (a
// shorthand for WithEndpoints(Endpoint{address, conns, 1, opts})).
func WithEndpoint(address string, conns int, opts ...engine.Option) AgentOption {
	return WithEndpoints(Endpoint{Address: address, Conns: conns, Options: opts})
}

// WithEndpoints makes the pool dial the endpoints' connections. They start
// in parallel when the agent is added; an endpoint that is not up is
// retried forever (WithDialBackoff) and its connections join when it
// comes up.
func WithEndpoints(eps ...Endpoint) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		for _, ep := range eps {
			if err := checkEndpoint(&ep); err != nil {
				return err
			}
			o.endpoints = append(o.endpoints, ep)
		}
		return nil
	})
}

func checkEndpoint(ep *Endpoint) error {
	if ep.Address == "" {
		return configErr("empty endpoint address")
	}
	if ep.Conns == 0 {
		ep.Conns = 1
	}
	if ep.Weight == 0 {
		ep.Weight = 1
	}
	if ep.Conns < 0 || ep.Conns > 1024 {
		return configErr(fmt.Sprintf("endpoint %s: %d connections, want 1..1024", ep.Address, ep.Conns))
	}
	if ep.Weight < 0 || ep.Weight > 1000 {
		return configErr(fmt.Sprintf("endpoint %s: weight %d, want 1..1000", ep.Address, ep.Weight))
	}
	return nil
}

// WithBalance sets the load-balancing strategy (default BalanceP2C).
func WithBalance(b Balance) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		if b > BalanceWeighted {
			return configErr(fmt.Sprintf("unknown balance strategy %d", b))
		}
		o.balance = b
		return nil
	})
}

// WithTimeout bounds every call to the agent (default DefaultTimeout),
// including the wait for a concurrency slot. A caller's earlier deadline
// wins. It is also the request timeout of the connections the pool dials,
// so that a call whose context has no deadline costs no timer of its own:
// the connection enforces the timeout (stretched, as the engine does, by
// the timeout multiplier of an agent that reports DEGRADED).
func WithTimeout(d time.Duration) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		if d <= 0 {
			return configErr(fmt.Sprintf("timeout %v must be positive", d))
		}
		o.timeout = d
		return nil
	})
}

// WithPhaseTimeout bounds the calls of one event kind
// (agentwire.EventRequestBodyChunk, ...) instead of WithTimeout.
func WithPhaseTimeout(kind int32, d time.Duration) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		if kind < agentwire.EventRequestHeaders || kind > agentwire.EventGuardrailInspect {
			return configErr(fmt.Sprintf("phase timeout for unknown event kind %d", kind))
		}
		if d <= 0 {
			return configErr(fmt.Sprintf("phase timeout %v must be positive", d))
		}
		o.phaseTimeouts[kind] = d
		return nil
	})
}

// WithFailurePolicy sets the agent's failure policy (default: the zero
// engine.FailurePolicy, fail-closed with 503 for errors and 504 for
// timeouts). A pipeline step and a call can override it (Step.Policy,
// WithCallPolicy).
func WithFailurePolicy(p engine.FailurePolicy) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		if p.Mode > engine.FailOpen {
			return configErr(fmt.Sprintf("unknown failure mode %d", p.Mode))
		}
		o.policy = p
		return nil
	})
}

// WithBreaker configures the agent's circuit breaker (default: the zero
// BreakerConfig, the Rust proxy's 5 / 30 s / 1 probe / 2 successes).
func WithBreaker(cfg BreakerConfig) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		for _, f := range []struct {
			name string
			v    int
		}{{"failure threshold", cfg.FailureThreshold}, {"half-open probes", cfg.HalfOpenProbes}, {"success threshold", cfg.SuccessThreshold}} {
			if f.v < 0 || f.v > 255 {
				return configErr(fmt.Sprintf("breaker %s %d out of range 1..255", f.name, f.v))
			}
		}
		if cfg.OpenDuration < 0 || (cfg.OpenDuration > 0 && cfg.OpenDuration < time.Millisecond) {
			return configErr(fmt.Sprintf("breaker open duration %v below 1ms", cfg.OpenDuration))
		}
		if cfg.ProbeLease < 0 {
			return configErr(fmt.Sprintf("breaker probe lease %v negative", cfg.ProbeLease))
		}
		o.breaker = cfg
		return nil
	})
}

// WithConcurrency limits the agent's calls in flight over all its
// connections (default DefaultMaxConcurrent). A call that finds no free
// slot waits for one, at most maxWait (0: until its timeout), and then
// gets the failure policy with ReasonUnavailable (ErrSaturated), or
// ReasonTimeout when its timeout ran out first. The wait is part of the
// call's timeout.
func WithConcurrency(limit int, maxWait time.Duration) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		if limit < 1 || limit > 1<<20 {
			return configErr(fmt.Sprintf("concurrency limit %d out of range 1..%d", limit, 1<<20))
		}
		if maxWait < 0 {
			return configErr(fmt.Sprintf("concurrency wait %v negative", maxWait))
		}
		o.maxConcurrent, o.maxWait = limit, maxWait
		return nil
	})
}

// WithFlowControl sets what calls do when the agent paused every usable
// connection (default FlowFailClosed; wait is FlowWaitAndRetry's bound,
// default DefaultFlowWait).
func WithFlowControl(mode FlowMode, wait time.Duration) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		if mode > FlowWaitAndRetry {
			return configErr(fmt.Sprintf("unknown flow mode %d", mode))
		}
		if wait < 0 {
			return configErr(fmt.Sprintf("flow wait %v negative", wait))
		}
		o.flow = mode
		if wait > 0 {
			o.flowWait = wait
		}
		return nil
	})
}

// WithEvents sets the event kinds the agent is configured to receive
// (agentwire.EventRequestHeaders ... agentwire.EventGuardrailInspect;
// default: all). An agent receives an event only when it is configured
// for its kind and its connections announced the kind in their
// capabilities (an agent that announced none takes all); otherwise the
// call's verdict is a synthetic allow with ReasonNotSubscribed and nothing
// is sent.
func WithEvents(kinds ...int32) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		var m uint32
		for _, k := range kinds {
			if k < agentwire.EventRequestHeaders || k > agentwire.EventGuardrailInspect {
				return configErr(fmt.Sprintf("unknown event kind %d", k))
			}
			m |= 1 << uint(k)
		}
		o.events = m
		return nil
	})
}

// WithBodyLimits sets the largest request and response bodies the agent
// inspects, in bytes (default DefaultBodyLimit each; -1: no limit of its
// own). The limit in force is the smaller of this and the max_body_size
// the agent announced. A body chunk whose body (its BytesTransferred, its
// data, or its declared TotalSize) exceeds it is not sent: fail-closed
// answers a synthetic block 413, fail-open skips the agent (synthetic
// allow), both with ReasonBodyTooLarge.
func WithBodyLimits(request, response int64) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		if request < -1 || response < -1 || request == 0 || response == 0 {
			return configErr(fmt.Sprintf("body limits %d, %d: want a positive size or -1", request, response))
		}
		o.reqBodyLimit, o.respBodyLimit = request, response
		return nil
	})
}

// WithAffinity bounds the correlation affinity of the agent: at most
// maxPins requests pinned to a connection at once (default
// DefaultMaxPins), each pin expiring after ttl without use (default
// DefaultPinTTL). A request that cannot be pinned, or whose pin expired,
// has its later events balanced like new ones (counted).
func WithAffinity(maxPins int, ttl time.Duration) AgentOption {
	return agentOptionFunc(func(o *agentOptions) error {
		if maxPins < 1 || maxPins > 1<<22 {
			return configErr(fmt.Sprintf("max pins %d out of range 1..%d", maxPins, 1<<22))
		}
		if ttl < time.Millisecond {
			return configErr(fmt.Sprintf("pin ttl %v below 1ms", ttl))
		}
		o.maxPins, o.pinTTL = maxPins, ttl
		return nil
	})
}

// CallOption overrides an agent's configuration for one call (of an
// Agent or a Pipeline). It is a plain value: options cost no allocation.
type CallOption struct {
	agent     *Agent // nil: every agent of the call
	policy    engine.FailurePolicy
	hasPolicy bool
	timeout   time.Duration
}

// WithCallPolicy overrides the failure policy of every agent of the call.
func WithCallPolicy(p engine.FailurePolicy) CallOption {
	return CallOption{policy: p, hasPolicy: true}
}

// WithAgentCallPolicy overrides the failure policy of agent a only.
func WithAgentCallPolicy(a *Agent, p engine.FailurePolicy) CallOption {
	return CallOption{agent: a, policy: p, hasPolicy: true}
}

// WithCallTimeout bounds each agent call of the call by d instead of the
// agents' timeouts (d > 0).
func WithCallTimeout(d time.Duration) CallOption {
	return CallOption{timeout: d}
}

// resolved is the effective per-call configuration for one agent.
type resolved struct {
	policy  engine.FailurePolicy
	timeout time.Duration
}

// resolve applies opts to agent a's configuration for an event kind;
// step is the pipeline step's policy override (nil: none).
func (a *Agent) resolve(kind int32, step *engine.FailurePolicy, opts []CallOption) resolved {
	r := resolved{policy: a.o.policy, timeout: a.timeoutFor(kind)}
	if step != nil {
		r.policy = *step
	}
	for i := range opts {
		o := &opts[i]
		if o.agent != nil && o.agent != a {
			continue
		}
		if o.hasPolicy {
			r.policy = o.policy
		}
		if o.timeout > 0 {
			r.timeout = o.timeout
		}
	}
	return r
}
