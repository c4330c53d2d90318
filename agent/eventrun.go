package agent

import (
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/lathist"
)

// eventRun collects the counters of the events one inline Unix-socket
// reader handles (WithInlineHandlers), which it publishes to the server's
// counters (Stats.Events, EventStats) before it writes their replies
// (flushInline), instead of four atomic additions per event: the events
// begun, and the current run of events of one kind, decision and latency
// bucket (an echo or allow-mostly agent handles whole reads of one run).
// Whoever has a reply sees its event counted; a snapshot taken meanwhile
// lags by the replies the reader has not written yet (at most one write's
// worth, inlineFlushBytes). Reader only.
type eventRun struct {
	events uint64 // events begun since the last publish

	n      uint64 // events in the run
	sum    time.Duration
	kind   eventKind
	dk     agentwire.DecisionKind
	bucket int
}

// record counts a handled event of kind k answered with decision dk
// after the handler ran for d: into the run, after publishing the run
// when the event does not belong to it.
func (r *eventRun) record(e *eventCounters, k eventKind, dk agentwire.DecisionKind, d time.Duration) {
	b := lathist.Bucket(d)
	if r.n > 0 && (k != r.kind || dk != r.dk || b != r.bucket) {
		r.publishRun(e)
	}
	r.kind, r.dk, r.bucket = k, dk, b
	r.n++
	r.sum += d
}

// publishRun adds the run to e and empties it.
func (r *eventRun) publishRun(e *eventCounters) {
	k := r.kind & (eventKinds - 1)
	if r.dk < 4 {
		e.decisions[k][r.dk].Add(r.n)
	}
	e.latency[k].ObserveN(r.bucket, r.n, r.sum)
	r.n, r.sum = 0, 0
}

// publish adds everything collected to s's counters.
func (r *eventRun) publish(s *Server) {
	if r.events > 0 {
		s.stats.events.Add(r.events)
		r.events = 0
	}
	if r.n > 0 {
		r.publishRun(&s.stats.byEvent)
	}
}
