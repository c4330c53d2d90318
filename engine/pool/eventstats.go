package pool

import (
	"errors"
	"sync/atomic"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// FailureKind classifies why an agent gave no decision for a call: the
// failure behind a synthetic verdict (AgentStats.Failures). Its String
// is the label value package promstats exports.
type FailureKind uint8

const (
	// FailureTimeout: the call's deadline passed (engine.ReasonTimeout).
	FailureTimeout FailureKind = iota
	// FailureCanceled: the caller's context ended (engine.ReasonCanceled).
	FailureCanceled
	// FailureConnectionLost: the connection died (or was closed) while
	// the call was on it.
	FailureConnectionLost
	// FailureNoConnection: no connection of the agent was connected
	// (engine.ErrNotConnected, ErrNoConnection).
	FailureNoConnection
	// FailureProtocol: the agent broke the protocol (engine.ErrProtocol,
	// engine.ErrMessageTooLarge, engine.ErrHandshakeRejected).
	FailureProtocol
	// FailureRefused: the agent refused the call before it was sent: it
	// reported UNHEALTHY or DRAINING, or its flow control paused it; or
	// the agent or pool is draining or closed.
	FailureRefused
	// FailureSaturated: a concurrency limit was reached (the agent's
	// WithConcurrency, or the max_concurrency the agent announced).
	FailureSaturated
	// FailureBreakerOpen: the agent's circuit breaker refused the call.
	FailureBreakerOpen
	// FailureBodyTooLarge: the body is over the agent's inspection limit.
	FailureBodyTooLarge
	// FailureOther: anything else (an invalid event, a duplicate
	// correlation id, ...).
	FailureOther
)

// FailureKinds is the number of FailureKind values.
const FailureKinds = int(FailureOther) + 1

var failureNames = [FailureKinds]string{
	"timeout", "canceled", "connection_lost", "no_connection", "protocol",
	"refused", "saturated", "breaker_open", "body_too_large", "other",
}

// String returns the kind's name in snake case ("timeout",
// "connection_lost", ...).
func (k FailureKind) String() string {
	if int(k) < FailureKinds {
		return failureNames[k]
	}
	return "unknown"
}

// failureOf classifies the failure behind a synthetic verdict (not a
// not-subscribed one). It runs on the failure path only.
func failureOf(v *engine.Verdict) FailureKind {
	err := v.Err
	switch v.Reason {
	case engine.ReasonTimeout:
		return FailureTimeout
	case engine.ReasonCanceled:
		return FailureCanceled
	case engine.ReasonBreakerOpen:
		return FailureBreakerOpen
	case engine.ReasonBodyTooLarge:
		return FailureBodyTooLarge
	case engine.ReasonUnavailable:
		switch {
		case errors.Is(err, ErrSaturated), errors.Is(err, engine.ErrSaturated):
			return FailureSaturated
		case errors.Is(err, engine.ErrNotConnected), errors.Is(err, ErrNoConnection):
			return FailureNoConnection
		}
		return FailureRefused
	}
	switch {
	case errors.Is(err, engine.ErrConnectionLost), errors.Is(err, engine.ErrClosed):
		return FailureConnectionLost
	case errors.Is(err, engine.ErrNotConnected), errors.Is(err, engine.ErrConnectFailed):
		return FailureNoConnection
	case errors.Is(err, engine.ErrProtocol), errors.Is(err, engine.ErrMessageTooLarge), errors.Is(err, engine.ErrHandshakeRejected):
		return FailureProtocol
	case errors.Is(err, ErrSaturated), errors.Is(err, engine.ErrSaturated):
		return FailureSaturated
	case errors.Is(err, engine.ErrAgentUnhealthy), errors.Is(err, engine.ErrDraining), errors.Is(err, engine.ErrFlowPaused):
		return FailureRefused
	}
	return FailureOther
}

// Indexes of eventCounters.outcome: the four decision kinds, then the
// synthetic outcomes.
const (
	outFailOpen = 4 + iota
	outFailClosed
	outNotSubscribed
	numOutcomes
)

// eventKinds bounds the event kinds counted (agentwire.EventRequestHeaders
// .. agentwire.EventGuardrailInspect, indexed by kind&7).
const eventKinds = 8

// eventCounters are an agent's verdict and latency counters by event
// kind. A call adds to exactly one outcome counter (as many atomic
// additions as the per-agent totals they replace, which are sums of these);
// a failure also adds to its reason and kind.
type eventCounters struct {
	outcome [eventKinds][numOutcomes]atomic.Uint64
	synth   [8][2]atomic.Uint64 // by engine.Reason: [0] synthetic allows, [1] the others (not-subscribed excluded)
	failure [FailureKinds]atomic.Uint64
	latency [eventKinds]histogram
}

// count records the verdict of a call of event kind.
func (e *eventCounters) count(kind int32, v *engine.Verdict) {
	o := &e.outcome[kind&7]
	if !v.Synthetic {
		if k := v.Decision.Kind; k < 4 {
			o[k].Add(1)
		}
		return
	}
	if v.Reason == engine.ReasonNotSubscribed {
		o[outNotSubscribed].Add(1)
		return
	}
	e.countFailure(o, v)
}

// countFailure records a synthetic verdict made because the agent gave
// no decision.
func (e *eventCounters) countFailure(o *[numOutcomes]atomic.Uint64, v *engine.Verdict) {
	m, out := 1, outFailClosed
	if v.Decision.Kind == agentwire.DecisionAllow {
		m, out = 0, outFailOpen
	}
	o[out].Add(1)
	e.synth[v.Reason&7][m].Add(1)
	e.failure[failureOf(v)].Add(1)
}

// EventStats is a snapshot of one agent's counters for one event kind
// (Agent.EventStats). Every completed call of the kind is counted once:
// in Decisions, FailOpen, FailClosed or NotSubscribed.
type EventStats struct {
	// Decisions counts the agent's own decisions.
	Decisions DecisionCounts
	// FailOpen counts synthetic allows made because the agent gave no
	// decision (a fail-open policy, FlowFailOpen): the agent was skipped.
	// FailClosed counts the synthetic blocks of a fail-closed policy.
	FailOpen   uint64
	FailClosed uint64
	// NotSubscribed counts the events the agent does not take (skipped
	// with an allow; not a failure).
	NotSubscribed uint64
	// Latency is the latency histogram of the kind's calls that reached a
	// connection.
	Latency LatencyHistogram
}

// Completed returns the number of calls counted.
func (s *EventStats) Completed() uint64 {
	d := &s.Decisions
	return d.Allow + d.Block + d.Redirect + d.Challenge + s.FailOpen + s.FailClosed + s.NotSubscribed
}

// EventStats returns a snapshot of the agent's counters for calls of
// event kind (agentwire.EventRequestHeaders ... agentwire.EventGuardrailInspect;
// any other kind: the zero EventStats). It takes no lock and does not
// allocate.
func (a *Agent) EventStats(kind int32) EventStats {
	if kind < agentwire.EventRequestHeaders || kind > agentwire.EventGuardrailInspect {
		return EventStats{}
	}
	o := &a.ev.outcome[kind]
	return EventStats{
		Decisions: DecisionCounts{
			Allow: o[agentwire.DecisionAllow].Load(), Block: o[agentwire.DecisionBlock].Load(),
			Redirect: o[agentwire.DecisionRedirect].Load(), Challenge: o[agentwire.DecisionChallenge].Load(),
		},
		FailOpen:      o[outFailOpen].Load(),
		FailClosed:    o[outFailClosed].Load(),
		NotSubscribed: o[outNotSubscribed].Load(),
		Latency:       a.ev.latency[kind].snapshot(),
	}
}

// totals fills the agent-wide counters of st from the per-event ones.
func (e *eventCounters) totals(st *AgentStats) {
	var out [numOutcomes]uint64
	for k := range e.outcome {
		for i := range out {
			out[i] += e.outcome[k][i].Load()
		}
		e.latency[k].AddTo(&st.Latency.Counts, &st.Latency.Sum)
	}
	st.Decisions = DecisionCounts{Allow: out[0], Block: out[1], Redirect: out[2], Challenge: out[3]}
	st.Verdicts = engine.VerdictStats{FailOpen: out[outFailOpen], FailClosed: out[outFailClosed], NotSubscribed: out[outNotSubscribed]}
	var open, closed [8]uint64
	for r := range e.synth {
		open[r], closed[r] = e.synth[r][0].Load(), e.synth[r][1].Load()
	}
	st.FailOpen = reasonCounts(&open)
	st.FailClosed = reasonCounts(&closed)
	for r := range open {
		open[r] += closed[r]
	}
	open[engine.ReasonNotSubscribed] = out[outNotSubscribed]
	st.Errors = reasonCounts(&open)
	for k := range e.failure {
		st.Failures[k] = e.failure[k].Load()
	}
}

// reasonCounts names counts indexed by engine.Reason.
func reasonCounts(r *[8]uint64) ReasonCounts {
	return ReasonCounts{
		Error: r[engine.ReasonError], Timeout: r[engine.ReasonTimeout],
		Canceled: r[engine.ReasonCanceled], Unavailable: r[engine.ReasonUnavailable],
		BreakerOpen: r[engine.ReasonBreakerOpen], BodyTooLarge: r[engine.ReasonBodyTooLarge],
		NotSubscribed: r[engine.ReasonNotSubscribed],
	}
}
