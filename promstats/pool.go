package promstats

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
)

// PoolCollector is a prometheus.Collector over a pool.Pool: the families
// agentwire_agent_*, one set of series per agent of the pool (label
// agent: the agent's name), read from the agents' atomic counters at
// scrape time. Agents added to or removed from the pool later appear and
// disappear at the next scrape.
//
// Families (all counters are cumulative since the agent was added):
//
//   - agentwire_agent_requests_total{agent,event,decision}: completed calls
//     by event kind (request_headers, request_body_chunk,
//     response_headers, response_body_chunk, request_complete,
//     websocket_frame, guardrail_inspect) and outcome: the agent's own
//     decision (allow, block, redirect, challenge), a synthetic decision
//     because the agent gave none (fail_open: the agent was skipped;
//     fail_closed: the request is blocked) or not_subscribed (the agent
//     does not take the event kind; skipped). Every call is counted once,
//     when it completes. Series exist for the event kinds the agent takes,
//     and for any other kind once counted.
//   - agentwire_agent_errors_total{agent,kind}: calls the agent gave no
//     decision for, by kind of failure (pool.FailureKind: timeout,
//     canceled, connection_lost, no_connection, protocol, refused,
//     saturated, breaker_open, body_too_large, other). Their sum is the
//     fail_open and fail_closed requests.
//   - agentwire_agent_synthetic_decisions_total{agent,reason,decision}: the
//     same calls by engine.Reason (error, timeout, canceled, unavailable,
//     breaker_open, body_too_large) and decision (fail_open: a skip,
//     fail_closed: a block).
//   - agentwire_agent_request_duration_seconds{agent,event}: histogram of
//     the latency of calls that reached a connection, whatever their
//     outcome (classic and native forms, see the package documentation).
//   - agentwire_agent_in_flight{agent}: calls in progress.
//   - agentwire_agent_breaker_state{agent}: 0 closed, 1 half-open, 2 open;
//     agentwire_agent_breaker_opens_total{agent}: times it opened.
//   - agentwire_agent_connections{agent,state}: connections by the pool's
//     view of them (connecting, up, down, unhealthy, draining, paused,
//     closed); agentwire_agent_up{agent}: 1 when at least one takes calls.
//   - agentwire_agent_health{agent,state}: connections by the health the
//     agent reported on them (unknown: none in force, healthy, degraded,
//     draining, unhealthy).
//   - agentwire_agent_queue_waits_total, agentwire_agent_retries_total,
//     agentwire_agent_flow_waits_total, agentwire_agent_dial_failures_total,
//     agentwire_agent_affinity_fallbacks_total{agent}: see pool.AgentStats.
//
// Collect reads every agent's Stats, EventStats and ConnStats (a few
// hundred atomic loads per agent, one short lock of the agent's membership
// for ConnStats, which calls do not take). A PoolCollector is safe for
// concurrent use.
type PoolCollector struct {
	p      *pool.Pool
	native bool

	requests, errors, synthetic, duration                      *prometheus.Desc
	inFlight, breaker, breakerOpens, conns, up, health         *prometheus.Desc
	queueWaits, retries, flowWaits, dialFailures, affinityMiss *prometheus.Desc
}

// Names of the pool collector's families.
const (
	famAgentRequests  = "agentwire_agent_requests_total"
	famAgentErrors    = "agentwire_agent_errors_total"
	famAgentSynthetic = "agentwire_agent_synthetic_decisions_total"
	famAgentDuration  = "agentwire_agent_request_duration_seconds"
)

// NewPoolCollector returns a collector over p's agents. It fails with
// ErrInvalidConfig when p is nil.
func NewPoolCollector(p *pool.Pool, opts ...Option) (*PoolCollector, error) {
	if p == nil {
		return nil, invalidf("nil pool")
	}
	o := buildOptions(opts)
	a := []string{"agent"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(a[:1:1], labels...), nil)
	}
	return &PoolCollector{
		p:      p,
		native: o.native,
		requests: d(famAgentRequests,
			"Completed calls to the agent by event kind and outcome: the agent's decision (allow, block, redirect, challenge), a synthetic fail_open (skipped) or fail_closed (blocked) decision because the agent gave none, or not_subscribed.",
			"event", "decision"),
		errors: d(famAgentErrors,
			"Calls the agent gave no decision for, by kind of failure.", "kind"),
		synthetic: d(famAgentSynthetic,
			"Decisions made by the failure policy because the agent gave none, by reason: fail_open (the agent was skipped) or fail_closed (the request blocked).",
			"reason", "decision"),
		duration: d(famAgentDuration,
			"Latency of calls to the agent that reached a connection, by event kind.", "event"),
		inFlight:     d("agentwire_agent_in_flight", "Calls to the agent in progress (waiting for a slot or on a connection)."),
		breaker:      d("agentwire_agent_breaker_state", "State of the agent's circuit breaker: 0 closed, 1 half-open, 2 open."),
		breakerOpens: d("agentwire_agent_breaker_opens_total", "Times the agent's circuit breaker opened."),
		conns:        d("agentwire_agent_connections", "The agent's connections by state (the pool's view).", "state"),
		up:           d("agentwire_agent_up", "1 when at least one of the agent's connections takes calls, else 0."),
		health: d("agentwire_agent_health",
			"The agent's connections by the health state the agent reported on them (unknown: no report in force).", "state"),
		queueWaits:   d("agentwire_agent_queue_waits_total", "Calls that waited for a concurrency slot."),
		retries:      d("agentwire_agent_retries_total", "Calls moved to another connection after one refused them before sending."),
		flowWaits:    d("agentwire_agent_flow_waits_total", "Calls that waited for an agent paused by flow control."),
		dialFailures: d("agentwire_agent_dial_failures_total", "Failed first-connection attempts of the agent's dialled connections."),
		affinityMiss: d("agentwire_agent_affinity_fallbacks_total", "Events of a pinned request that went to another connection."),
	}, nil
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.requests, c.errors, c.synthetic, c.duration, c.inFlight, c.breaker, c.breakerOpens,
		c.conns, c.up, c.health, c.queueWaits, c.retries, c.flowWaits, c.dialFailures, c.affinityMiss,
	} {
		ch <- d
	}
}

// breakerValue maps pool.BreakerState to the exported gauge value.
func breakerValue(s pool.BreakerState) float64 {
	switch s {
	case pool.BreakerHalfOpen:
		return 1
	case pool.BreakerOpen:
		return 2
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, a := range c.p.Agents() {
		name := a.Name()
		st := a.Stats()
		for k := agentwire.EventRequestHeaders; k <= agentwire.EventGuardrailInspect; k++ {
			es := a.EventStats(k)
			ev := eventNames[k]
			if a.Subscribed(k) || es.Completed() > 0 {
				d := &es.Decisions
				for i, n := range [4]uint64{d.Allow, d.Block, d.Redirect, d.Challenge} {
					counter(c.requests, n, name, ev, decisionNames[i])
				}
				counter(c.requests, es.FailOpen, name, ev, labelFailOpen)
				counter(c.requests, es.FailClosed, name, ev, labelFailClosed)
				counter(c.requests, es.NotSubscribed, name, ev, labelNotSubscribed)
			}
			if a.Subscribed(k) || es.Latency.Count() > 0 {
				ch <- newLatencyMetric(c.duration, &es.Latency.Counts, es.Latency.Sum, c.native, name, ev)
			}
		}
		for k, n := range st.Failures {
			counter(c.errors, n, name, pool.FailureKind(k).String())
		}
		open, closed := reasonArray(&st.FailOpen), reasonArray(&st.FailClosed)
		for _, r := range reasonNames {
			counter(c.synthetic, open[r.r], name, r.name, labelFailOpen)
			counter(c.synthetic, closed[r.r], name, r.name, labelFailClosed)
		}
		gauge(c.inFlight, float64(st.InFlight), name)
		gauge(c.breaker, breakerValue(st.Breaker), name)
		counter(c.breakerOpens, st.BreakerOpens, name)
		var states [pool.ConnClosed + 1]int
		var health [len(healthNames)]int
		for _, cs := range a.ConnStats() {
			if cs.State <= pool.ConnClosed {
				states[cs.State]++
			}
			health[healthIndex(cs.Health.State)]++
		}
		for s, n := range states {
			gauge(c.conns, float64(n), name, pool.ConnState(s).String())
		}
		for s, n := range health {
			gauge(c.health, float64(n), name, healthNames[s])
		}
		up := 0.0
		if st.Healthy {
			up = 1
		}
		gauge(c.up, up, name)
		counter(c.queueWaits, st.QueueWaits, name)
		counter(c.retries, st.Retries, name)
		counter(c.flowWaits, st.FlowWaits, name)
		counter(c.dialFailures, st.DialFailures, name)
		counter(c.affinityMiss, st.AffinityFallbacks, name)
	}
}

// reasonArray indexes c by engine.Reason.
func reasonArray(c *pool.ReasonCounts) [8]uint64 {
	var r [8]uint64
	r[engine.ReasonError], r[engine.ReasonTimeout], r[engine.ReasonCanceled] = c.Error, c.Timeout, c.Canceled
	r[engine.ReasonUnavailable], r[engine.ReasonBreakerOpen] = c.Unavailable, c.BreakerOpen
	r[engine.ReasonBodyTooLarge], r[engine.ReasonNotSubscribed] = c.BodyTooLarge, c.NotSubscribed
	return r
}
