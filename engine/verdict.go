package engine

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/agentwire/agentwire"
)

// FailureMode says what a call that produced no decision of the agent turns
// into: its request is blocked (FailClosed) or goes on without the agent
// (FailOpen).
type FailureMode uint8

const (
	// FailClosed answers a synthetic block: 503 when the call failed, 504
	// when it timed out (the Rust proxy's statuses, SPEC 12.2). The default:
	// an agent that cannot answer never lets a request through unseen.
	FailClosed FailureMode = iota
	// FailOpen answers a synthetic allow: the request goes on as if the
	// agent had allowed it. The verdict still says it is synthetic and why.
	FailOpen
)

// String returns "closed" or "open".
func (m FailureMode) String() string {
	switch m {
	case FailClosed:
		return "closed"
	case FailOpen:
		return "open"
	}
	return "unknown"
}

// Reason says why a Verdict is synthetic.
type Reason uint8

const (
	// ReasonNone: the verdict is the agent's own decision.
	ReasonNone Reason = iota
	// ReasonError: the call failed (connection lost or not connected,
	// protocol violation, message too large, Conn closed, ...).
	ReasonError
	// ReasonTimeout: the call's deadline passed before the agent answered.
	ReasonTimeout
	// ReasonCanceled: the caller's context was cancelled (the client went
	// away) or the call was cancelled with Conn.Cancel.
	ReasonCanceled
	// ReasonUnavailable: the agent did not take the call: it reported
	// UNHEALTHY or DRAINING, its flow control held the call, or its announced
	// concurrency limit was reached and the call could not wait.
	ReasonUnavailable
	// ReasonBreakerOpen: the agent's circuit breaker refused the call (set
	// by the multi-agent layer).
	ReasonBreakerOpen
	// ReasonBodyTooLarge: the body exceeds what the agent inspects (set by
	// the multi-agent layer; fail-closed answers 413).
	ReasonBodyTooLarge
	// ReasonNotSubscribed: the agent does not take this kind of event. This
	// is not a failure: the verdict is allow in every mode.
	ReasonNotSubscribed
)

var reasonNames = [...]string{"", "error", "timeout", "canceled", "unavailable", "breaker-open", "body-too-large", "not-subscribed"}

// String returns the reason's name ("" for ReasonNone), as used in audit
// tags and metric labels.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// Default statuses of synthetic blocks (FailClosed).
const (
	DefaultErrorStatus        = 503
	DefaultTimeoutStatus      = 504
	DefaultBodyTooLargeStatus = 413
)

// FailurePolicy turns the outcome of a call (reply, error) into the
// decision to enforce. The zero value is FailClosed with the default
// statuses. It is a plain value, safe to copy and to share.
type FailurePolicy struct {
	// Mode chooses between a synthetic block and a synthetic allow.
	Mode FailureMode
	// ErrorStatus is the status of a synthetic block for ReasonError,
	// ReasonCanceled, ReasonUnavailable and ReasonBreakerOpen (0:
	// DefaultErrorStatus).
	ErrorStatus uint16
	// TimeoutStatus is the status of a synthetic block for ReasonTimeout
	// (0: DefaultTimeoutStatus).
	TimeoutStatus uint16
}

// Verdict is what a proxy enforces for one call: the agent's own decision,
// or a synthetic one made by a failure policy because the agent gave none.
// A synthetic verdict says so (Synthetic, Reason, Err), and names the agent.
type Verdict struct {
	// Decision is the decision to enforce. Allow unless the agent, or a
	// fail-closed policy, said otherwise.
	Decision agentwire.Decision
	// Reply is the agent's reply (header operations, audit data, body
	// mutations) when the agent answered; nil for a synthetic verdict.
	Reply *agentwire.AgentResponse
	// Agent names the agent the verdict is about (the Conn's agent id or
	// endpoint).
	Agent string
	// Synthetic is true when the decision was made by the failure policy,
	// not by the agent.
	Synthetic bool
	// Reason says why the verdict is synthetic (ReasonNone when it is not).
	Reason Reason
	// Err is the call's error for a synthetic verdict.
	Err error
}

// Allowed reports whether the request may go on: the decision is allow.
// Block, redirect and challenge all stop it.
func (v *Verdict) Allowed() bool { return v.Decision.Kind == agentwire.DecisionAllow }

// ReasonOf classifies a call's error: ReasonNone for nil, then timeout,
// cancellation, unavailability (health, draining, flow control, saturation),
// not-subscribed, and ReasonError for everything else.
func ReasonOf(err error) Reason {
	switch {
	case err == nil:
		return ReasonNone
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, ErrCanceled), errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, ErrNotSubscribed):
		return ReasonNotSubscribed
	case errors.Is(err, ErrAgentUnhealthy), errors.Is(err, ErrDraining), errors.Is(err, ErrFlowPaused), errors.Is(err, ErrSaturated):
		return ReasonUnavailable
	}
	return ReasonError
}

// Decide turns a call's outcome into the verdict to enforce for agent. With
// err == nil and a reply, the verdict is the agent's decision. Otherwise it
// is synthetic: allow for ReasonNotSubscribed in every mode; else allow in
// FailOpen, and in FailClosed a block with ErrorStatus (TimeoutStatus for a
// timeout, DefaultBodyTooLargeStatus for a body too large). The synthetic
// block's audit cannot be seen by the client; its reason is in the Verdict.
//
// Decide does not count; Conn.Decide does.
func (p FailurePolicy) Decide(agent string, reply *agentwire.AgentResponse, err error) Verdict {
	if err == nil && reply != nil {
		return Verdict{Decision: reply.Decision, Reply: reply, Agent: agent}
	}
	r := ReasonOf(err)
	if r == ReasonNone {
		// A nil reply without an error: a caller bug, treated as an error.
		r, err = ReasonError, &Error{Kind: ErrProtocol, Detail: "no reply and no error"}
	}
	return p.Synthetic(agent, r, err)
}

// Synthetic returns the synthetic verdict this policy makes for reason r
// (the multi-agent layer uses it for breaker and body-limit refusals, which
// involve no call).
func (p FailurePolicy) Synthetic(agent string, r Reason, err error) Verdict {
	v := Verdict{Agent: agent, Synthetic: true, Reason: r, Err: err}
	if p.Mode == FailOpen || r == ReasonNotSubscribed {
		return v
	}
	status := p.ErrorStatus
	switch r {
	case ReasonTimeout:
		status = p.TimeoutStatus
		if status == 0 {
			status = DefaultTimeoutStatus
		}
	case ReasonBodyTooLarge:
		status = DefaultBodyTooLargeStatus
	}
	if status == 0 {
		status = DefaultErrorStatus
	}
	v.Decision = agentwire.Block(status)
	return v
}

// WithFailurePolicy sets the policy Conn.Decide applies (default: the zero
// FailurePolicy, fail-closed with 503 and 504).
func WithFailurePolicy(p FailurePolicy) Option {
	return optionFunc(func(o *options) { o.failurePolicy = p })
}

// WithAgentName sets the name Conn.Decide puts in verdicts (default: the
// agent id from the handshake when the agent sent one, else the endpoint).
func WithAgentName(name string) Option {
	return optionFunc(func(o *options) { o.agentName = name })
}

// VerdictStats counts synthetic verdicts: decisions a failure policy made
// because an agent gave none.
type VerdictStats struct {
	FailOpen      uint64 // synthetic allows (fail-open)
	FailClosed    uint64 // synthetic blocks (fail-closed)
	NotSubscribed uint64 // allows because the agent does not take the event kind
}

// policyCounters counts the verdicts Conn.Decide made.
type policyCounters struct {
	failOpen    atomic.Uint64
	failClosed  atomic.Uint64
	unsubscribe atomic.Uint64
}

func (p *policyCounters) snapshot() VerdictStats {
	return VerdictStats{FailOpen: p.failOpen.Load(), FailClosed: p.failClosed.Load(), NotSubscribed: p.unsubscribe.Load()}
}

// Decide turns the outcome of one of this Conn's calls into the verdict to
// enforce under the Conn's failure policy (WithFailurePolicy; fail-closed by
// default), and counts synthetic verdicts in Stats (FailOpen, FailClosed).
// It is meant to wrap a call directly:
//
//	v := c.Decide(c.RequestHeaders(ctx, ev))
//	if !v.Allowed() {
//		// respond with v.Decision (v.Synthetic says whether the agent made it)
//	}
func (c *Conn) Decide(reply *agentwire.AgentResponse, err error) Verdict {
	v := c.opts.failurePolicy.Decide(c.AgentName(), reply, err)
	if v.Synthetic {
		switch {
		case v.Reason == ReasonNotSubscribed:
			c.policy.unsubscribe.Add(1)
		case v.Allowed():
			c.policy.failOpen.Add(1)
		default:
			c.policy.failClosed.Add(1)
		}
	}
	return v
}

// FailurePolicy returns the Conn's failure policy.
func (c *Conn) FailurePolicy() FailurePolicy { return c.opts.failurePolicy }

// AgentName returns the name verdicts carry: WithAgentName, else the agent
// id the agent announced in its last handshake, else the endpoint.
func (c *Conn) AgentName() string {
	if c.opts.agentName != "" {
		return c.opts.agentName
	}
	if p := c.caps.Load(); p != nil && p.AgentID != "" {
		return p.AgentID // no copy of the whole Capabilities per Decide
	}
	return c.opts.endpoint
}
