package pool

import (
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/internal/lathist"
)

// LatencyBuckets is the number of buckets of a LatencyHistogram.
const LatencyBuckets = lathist.Buckets

// LatencyHistogram counts call latencies in buckets whose upper bounds are
// the powers of two seconds from 2^-16 s: bucket i counts latencies up to
// 2^(i-16) s (bucket 0: up to about 15.26 µs, bucket 16: up to 1 s,
// bucket 20: up to 16 s), the last bucket everything longer. These are
// the boundaries of a Prometheus native histogram of schema 0 (package
// promstats exports the counts as both a classic and a native histogram).
// Latencies are those of calls that reached a connection, whatever their
// outcome.
type LatencyHistogram struct {
	Counts [LatencyBuckets]uint64
	Sum    time.Duration // total of all observed latencies
}

// UpperBound returns bucket i's upper bound, rounded down to the
// nanosecond (the last one: the largest Duration).
func (h *LatencyHistogram) UpperBound(i int) time.Duration {
	return lathist.UpperBound(i)
}

// UpperBoundSeconds returns bucket i's exact upper bound in seconds,
// 2^(i-16) (the last one: +Inf).
func (h *LatencyHistogram) UpperBoundSeconds(i int) float64 {
	return lathist.UpperBoundSeconds(i)
}

// Count returns the number of observations.
func (h *LatencyHistogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile returns the upper bound of the bucket holding quantile q
// (0..1), 0 when the histogram is empty.
func (h *LatencyHistogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= max(rank, 1) {
			return h.UpperBound(i)
		}
	}
	return h.UpperBound(LatencyBuckets - 1)
}

// histogram is the atomic latency histogram of a connection or an event
// kind (lathist's layout).
type histogram struct{ lathist.Hist }

func (h *histogram) observe(d time.Duration) { h.Observe(d) }

func (h *histogram) snapshot() LatencyHistogram {
	var s LatencyHistogram
	h.AddTo(&s.Counts, &s.Sum)
	return s
}

// DecisionCounts counts verdicts by the decision they enforce.
type DecisionCounts struct {
	Allow     uint64
	Block     uint64
	Redirect  uint64
	Challenge uint64
}

// ReasonCounts counts synthetic verdicts by their reason
// (engine.Reason): why the agent gave no decision.
type ReasonCounts struct {
	Error         uint64 // the call failed
	Timeout       uint64 // the call timed out
	Canceled      uint64 // the caller cancelled
	Unavailable   uint64 // no usable connection, agent saturated, unhealthy, draining or paused
	BreakerOpen   uint64 // refused by the circuit breaker
	BodyTooLarge  uint64 // body over the agent's inspection limit
	NotSubscribed uint64 // the agent does not take the event (not an error)
}

// callCounters are the counters shared by agents and connections.
type callCounters struct {
	inFlight  atomic.Int64
	requests  atomic.Uint64
	decisions [4]atomic.Uint64 // by agentwire.DecisionKind, agent decisions only
	reasons   [8]atomic.Uint64 // by engine.Reason, synthetic verdicts
	synth     [2]atomic.Uint64 // synthetic allows, synthetic non-allows
	latency   histogram
}

// count records a verdict.
func (c *callCounters) count(v *engine.Verdict) {
	if !v.Synthetic {
		if k := v.Decision.Kind; int(k) < len(c.decisions) {
			c.decisions[k].Add(1)
		}
		return
	}
	if int(v.Reason) < len(c.reasons) {
		c.reasons[v.Reason].Add(1)
	}
	if v.Reason == engine.ReasonNotSubscribed {
		return
	}
	if v.Decision.Kind == agentwire.DecisionAllow {
		c.synth[0].Add(1)
	} else {
		c.synth[1].Add(1)
	}
}

func (c *callCounters) decisionsSnapshot() DecisionCounts {
	return DecisionCounts{
		Allow: c.decisions[0].Load(), Block: c.decisions[1].Load(),
		Redirect: c.decisions[2].Load(), Challenge: c.decisions[3].Load(),
	}
}

func (c *callCounters) reasonsSnapshot() ReasonCounts {
	r := &c.reasons
	return ReasonCounts{
		Error: r[engine.ReasonError].Load(), Timeout: r[engine.ReasonTimeout].Load(),
		Canceled: r[engine.ReasonCanceled].Load(), Unavailable: r[engine.ReasonUnavailable].Load(),
		BreakerOpen: r[engine.ReasonBreakerOpen].Load(), BodyTooLarge: r[engine.ReasonBodyTooLarge].Load(),
		NotSubscribed: r[engine.ReasonNotSubscribed].Load(),
	}
}

// AgentStats is a snapshot of one agent's counters (Agent.Stats). Counters
// are cumulative since the agent was added; InFlight, Conns, ConnsUp,
// Pins and Breaker are current values.
type AgentStats struct {
	Name string
	// InFlight is the number of calls in progress (waiting for a
	// concurrency slot or on a connection).
	InFlight int64
	// Requests counts calls made through the agent (every event kind),
	// including those answered synthetically without reaching it.
	Requests uint64
	// Decisions counts the agent's own decisions by kind.
	Decisions DecisionCounts
	// Errors counts synthetic verdicts by reason (Errors.Timeout is the
	// number of timeouts).
	Errors ReasonCounts
	// FailOpen and FailClosed split Errors (but for NotSubscribed) by what
	// the synthetic verdict decided: FailOpen the allows (the agent was
	// skipped: a fail-open policy, FlowFailOpen), FailClosed the blocks of
	// a fail-closed policy.
	FailOpen   ReasonCounts
	FailClosed ReasonCounts
	// Failures counts the same synthetic verdicts (all but not-subscribed
	// skips) by the kind of failure, indexed by FailureKind: it tells a
	// lost connection from a protocol violation, which Errors.Error
	// lumps together, and a refusal from saturation.
	Failures [FailureKinds]uint64
	// Verdicts counts synthetic verdicts by what they decided.
	Verdicts engine.VerdictStats
	// Latency is the latency histogram of calls that reached a connection
	// (the sum of the per-event histograms of Agent.EventStats).
	Latency LatencyHistogram
	// QueueWaits counts calls that waited for a concurrency slot;
	// Saturated those that found none in time.
	QueueWaits uint64
	Saturated  uint64
	// Retries counts calls moved to another connection after one refused
	// them before sending (not connected, unhealthy, draining, paused).
	Retries uint64
	// FlowWaits counts calls that waited for a paused agent
	// (FlowWaitAndRetry).
	FlowWaits uint64
	// DialFailures counts failed first-connection attempts of dialled
	// connections (retried forever).
	DialFailures uint64

	// Breaker is the circuit breaker's state, BreakerOpens the number of
	// times it opened, BreakerRejected the calls it refused and
	// BreakerLeaseExpired the reopenings because half-open probes did not
	// report within their lease.
	Breaker             BreakerState
	BreakerOpens        uint64
	BreakerRejected     uint64
	BreakerLeaseExpired uint64

	// Conns is the number of connections (including those still
	// connecting), ConnsUp those that take calls. Healthy is ConnsUp > 0.
	Conns   int
	ConnsUp int
	Healthy bool

	// Pins is the number of live affinity pins (counted by a scan of the
	// table when Stats is called); PinsRejected counts pins refused
	// because the table was full around the id, PinsExpired pins found
	// expired, and AffinityFallbacks events of a pinned request that went
	// to another connection because the pin was gone or its connection
	// unusable.
	Pins              int64
	PinsRejected      uint64
	PinsExpired       uint64
	AffinityFallbacks uint64
}

// ConnState is the pool's view of one connection (ConnStats.State).
type ConnState uint8

const (
	// ConnConnecting: the first connection attempt has not succeeded yet
	// (retried forever with backoff).
	ConnConnecting ConnState = iota
	// ConnUp: the connection takes calls.
	ConnUp
	// ConnDown: the connection is lost and reconnecting.
	ConnDown
	// ConnUnhealthy: the agent reported UNHEALTHY on it.
	ConnUnhealthy
	// ConnDraining: the agent reported DRAINING, or the connection is
	// being removed.
	ConnDraining
	// ConnPaused: the agent paused it (flow control).
	ConnPaused
	// ConnClosed: the connection is closed and leaves the pool.
	ConnClosed
)

var connStateNames = [...]string{"connecting", "up", "down", "unhealthy", "draining", "paused", "closed"}

// String returns the state's name.
func (s ConnState) String() string {
	if int(s) < len(connStateNames) {
		return connStateNames[s]
	}
	return "unknown"
}

// ConnSource says how a connection joined its agent's pool.
type ConnSource uint8

const (
	// SourceDialed: dialled by the pool (WithEndpoint, Agent.AddEndpoint).
	SourceDialed ConnSource = iota
	// SourceAdded: an engine.Conn handed to Agent.AddConn.
	SourceAdded
	// SourceReverse: a reverse connection the agent opened (Pool.AddReverse).
	SourceReverse
)

var connSourceNames = [...]string{"dialed", "added", "reverse"}

// String returns the source's name.
func (s ConnSource) String() string {
	if int(s) < len(connSourceNames) {
		return connSourceNames[s]
	}
	return "unknown"
}

// ConnStats is a snapshot of one connection's counters (Agent.ConnStats).
type ConnStats struct {
	// ID is the connection's id within its agent (stable, never reused).
	ID       uint32
	Endpoint string
	Source   ConnSource
	State    ConnState
	// Health is the connection's own view of the agent (zero while
	// connecting).
	Health engine.HealthSnapshot
	// InFlight counts calls on the connection now; Requests calls made on
	// it.
	InFlight int64
	Requests uint64
	// Decisions and Errors count the verdicts of calls made on the
	// connection, as in AgentStats.
	Decisions DecisionCounts
	Errors    ReasonCounts
	// Latency is the connection's latency histogram, LatencyEWMA the
	// moving average the power-of-two-choices balancer weighs.
	Latency     LatencyHistogram
	LatencyEWMA time.Duration
	// Weight is the connection's weight for BalanceWeighted.
	Weight int
}
