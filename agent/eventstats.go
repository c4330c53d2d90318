package agent

import (
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/lathist"
)

// LatencyBuckets is the number of buckets of a LatencyHistogram.
const LatencyBuckets = lathist.Buckets

// LatencyHistogram counts handler latencies in buckets whose upper bounds
// are the powers of two seconds from 2^-16 s: bucket i counts latencies
// up to 2^(i-16) s (bucket 0: up to about 15.26 µs, bucket 16: up to 1 s,
// bucket 20: up to 16 s), the last bucket everything longer; the layout
// of engine/pool's LatencyHistogram, and the boundaries of a Prometheus
// native histogram of schema 0.
type LatencyHistogram struct {
	Counts [LatencyBuckets]uint64
	Sum    time.Duration // total of all observed latencies
}

// UpperBound returns bucket i's upper bound, rounded down to the
// nanosecond (the last one: the largest Duration).
func (h *LatencyHistogram) UpperBound(i int) time.Duration { return lathist.UpperBound(i) }

// UpperBoundSeconds returns bucket i's exact upper bound in seconds,
// 2^(i-16) (the last one: +Inf).
func (h *LatencyHistogram) UpperBoundSeconds(i int) float64 { return lathist.UpperBoundSeconds(i) }

// Count returns the number of observations.
func (h *LatencyHistogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// DecisionCounts counts replies by the kind of their decision.
type DecisionCounts struct {
	Allow     uint64
	Block     uint64
	Redirect  uint64
	Challenge uint64
}

// Total returns the sum of the counts.
func (d *DecisionCounts) Total() uint64 { return d.Allow + d.Block + d.Redirect + d.Challenge }

// EventStats is a snapshot of the server's counters for one event kind
// (Server.EventStats).
type EventStats struct {
	// Decisions counts the events of the kind the Handler was called for
	// and that were answered, by the decision of the reply (after a
	// handler error or panic: the error decision, WithErrorDecision).
	// Events that could not be decoded never reach the Handler and are
	// not counted here (Stats.DecodeErrors).
	Decisions DecisionCounts
	// Latency is the Handler's latency for the kind: from the call of its
	// method to its return (or the recovery of its panic).
	Latency LatencyHistogram
}

// monoBase is the origin of monoNow.
var monoBase = time.Now()

// monoNow returns the time elapsed since monoBase on the monotonic clock.
// It reads one clock (time.Since of a time with a monotonic reading reads
// only the monotonic clock), where time.Now reads the wall clock too: the
// handler latency of every event takes two clock reads instead of three.
func monoNow() time.Duration { return time.Since(monoBase) }

// eventKinds bounds the event kinds counted (indexed by eventKind, which
// numbers kinds as agentwire.EventRequestHeaders...EventGuardrailInspect).
const eventKinds = 8

// eventCounters are the server's counters by event kind: one atomic
// addition for the decision, two for the latency, per handled event.
type eventCounters struct {
	decisions [eventKinds][4]atomic.Uint64
	latency   [eventKinds]lathist.Hist
}

// record counts a handled event of kind k answered with decision dk after
// the handler ran for d.
func (e *eventCounters) record(k eventKind, dk agentwire.DecisionKind, d time.Duration) {
	k &= eventKinds - 1
	if dk < 4 {
		e.decisions[k][dk].Add(1)
	}
	e.latency[k].Observe(d)
}

// EventStats returns a snapshot of the server's counters for events of
// kind (agentwire.EventRequestHeaders ... agentwire.EventGuardrailInspect;
// any other kind: the zero EventStats), over every transport. It takes no
// lock and does not allocate; safe for concurrent use. With
// WithInlineHandlers, a Unix-socket or reverse connection's events are
// added just before their replies are written (see Stats.Events).
func (s *Server) EventStats(kind int32) EventStats {
	if kind < agentwire.EventRequestHeaders || kind > agentwire.EventGuardrailInspect {
		return EventStats{}
	}
	e := &s.stats.byEvent
	d := &e.decisions[kind]
	st := EventStats{Decisions: DecisionCounts{
		Allow: d[agentwire.DecisionAllow].Load(), Block: d[agentwire.DecisionBlock].Load(),
		Redirect: d[agentwire.DecisionRedirect].Load(), Challenge: d[agentwire.DecisionChallenge].Load(),
	}}
	e.latency[kind].AddTo(&st.Latency.Counts, &st.Latency.Sum)
	return st
}
