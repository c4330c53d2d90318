package promstats

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// ServerCollector is a prometheus.Collector over an agent.Server, the
// agent side: the families agentwire_server_*, with label agent set to
// the agent id the server announces.
//
// Families:
//
//   - agentwire_server_events_total{agent,event,decision}: events the
//     Handler was called for and that were answered, by event kind and the
//     decision of the reply (allow, block, redirect, challenge; after a
//     handler error or panic, the error decision). Series exist for every
//     event kind the server announces, and any other once counted.
//   - agentwire_server_handler_duration_seconds{agent,event}: histogram of
//     the Handler's latency (classic and native forms, see the package
//     documentation).
//   - agentwire_server_handler_errors_total{agent,kind}: handler calls that
//     failed (error: returned an error, or its reply could not be encoded;
//     panic: panicked).
//   - agentwire_server_in_flight{agent}: events being handled.
//   - agentwire_server_connections{agent,transport}: open gRPC
//     ProcessStreams (grpc) and Unix-socket and reverse connections (uds).
//   - agentwire_server_decode_errors_total, agentwire_server_protocol_errors_total,
//     agentwire_server_ignored_frames_total, agentwire_server_cancels_total,
//     agentwire_server_dropped_pushes_total{agent}: see agent.Stats.
//
// Collect reads the server's atomic counters (and takes the server's
// lock briefly to count its streams, as Server.Stats does). A
// ServerCollector is safe for concurrent use.
type ServerCollector struct {
	s      *agent.Server
	id     string
	events uint32 // announced event kinds, as a bit set
	native bool

	handled, duration, handlerErrors, inFlight, conns                *prometheus.Desc
	decodeErrors, protocolErrors, ignoredFrames, cancels, dropPushes *prometheus.Desc
}

// NewServerCollector returns a collector over s. It fails with
// ErrInvalidConfig when s is nil.
func NewServerCollector(s *agent.Server, opts ...Option) (*ServerCollector, error) {
	if s == nil {
		return nil, invalidf("nil agent server")
	}
	o := buildOptions(opts)
	caps := s.Capabilities()
	var events uint32
	for _, k := range caps.SupportedEvents {
		if k >= agentwire.EventRequestHeaders && k <= agentwire.EventGuardrailInspect {
			events |= 1 << uint(k)
		}
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"agent"}, labels...), nil)
	}
	return &ServerCollector{
		s: s, id: caps.AgentID, events: events, native: o.native,
		handled: d("agentwire_server_events_total",
			"Events handled and answered, by event kind and the decision of the reply (after a handler failure: the error decision).", "event", "decision"),
		duration:       d("agentwire_server_handler_duration_seconds", "Latency of the Handler, by event kind.", "event"),
		handlerErrors:  d("agentwire_server_handler_errors_total", "Handler calls that failed: error (returned an error or an unencodable reply) or panic.", "kind"),
		inFlight:       d("agentwire_server_in_flight", "Events being handled."),
		conns:          d("agentwire_server_connections", "Open connections by transport: grpc (ProcessStreams), uds (Unix-socket and reverse connections).", "transport"),
		decodeErrors:   d("agentwire_server_decode_errors_total", "Unix-socket events and cancels that could not be decoded."),
		protocolErrors: d("agentwire_server_protocol_errors_total", "Streams ended because of a protocol violation."),
		ignoredFrames:  d("agentwire_server_ignored_frames_total", "Unix-socket frames of an unknown type or one a proxy does not send."),
		cancels:        d("agentwire_server_cancels_total", "Cancel notices received."),
		dropPushes:     d("agentwire_server_dropped_pushes_total", "Health, metrics, flow-control and log pushes dropped on a full queue."),
	}, nil
}

// Describe implements prometheus.Collector.
func (c *ServerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.handled, c.duration, c.handlerErrors, c.inFlight, c.conns,
		c.decodeErrors, c.protocolErrors, c.ignoredFrames, c.cancels, c.dropPushes,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ServerCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	id := c.id
	for k := agentwire.EventRequestHeaders; k <= agentwire.EventGuardrailInspect; k++ {
		es := c.s.EventStats(k)
		announced := c.events&(1<<uint(k)) != 0
		if !announced && es.Latency.Count() == 0 && es.Decisions.Total() == 0 {
			continue
		}
		d := &es.Decisions
		for i, n := range [4]uint64{d.Allow, d.Block, d.Redirect, d.Challenge} {
			counter(c.handled, n, id, eventNames[k], decisionNames[i])
		}
		ch <- newLatencyMetric(c.duration, &es.Latency.Counts, es.Latency.Sum, c.native, id, eventNames[k])
	}
	st := c.s.Stats()
	counter(c.handlerErrors, st.HandlerErrors, id, "error")
	counter(c.handlerErrors, st.HandlerPanics, id, "panic")
	gauge(c.inFlight, float64(st.InFlight), id)
	gauge(c.conns, float64(st.Streams), id, "grpc")
	gauge(c.conns, float64(st.Conns), id, "uds")
	counter(c.decodeErrors, st.DecodeErrors, id)
	counter(c.protocolErrors, st.ProtocolErrors, id)
	counter(c.ignoredFrames, st.IgnoredFrames, id)
	counter(c.cancels, st.Cancels, id)
	counter(c.dropPushes, st.DroppedPushes, id)
}
