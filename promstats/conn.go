package promstats

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentwire/agentwire/engine"
)

// ConnCollector is a prometheus.Collector over single engine.Conns used
// without a pool (a pool's connections are covered by PoolCollector):
// the families agentwire_conn_*, one set of series per connection added,
// with label agent set to the name it was added under.
//
// Families:
//
//   - agentwire_conn_in_flight{agent}: calls in progress.
//   - agentwire_conn_sent_total{agent}, agentwire_conn_received_total{agent}:
//     event-stream messages sent and replies delivered.
//   - agentwire_conn_calls_failed_total{agent,reason}: calls that failed, by
//     reason (timeout, canceled, error: any other failure).
//   - agentwire_conn_connection_lost_total{agent}: calls failed because the
//     stream died (also counted under reason error).
//   - agentwire_conn_flow_rejected_total, agentwire_conn_saturation_waits_total,
//     agentwire_conn_saturation_rejected_total, agentwire_conn_protocol_errors_total,
//     agentwire_conn_reconnects_total, agentwire_conn_reconnect_failures_total,
//     agentwire_conn_metrics_reports_total{agent}: see engine.Stats.
//   - agentwire_conn_synthetic_decisions_total{agent,decision}: verdicts
//     Conn.Decide made because the agent gave none (fail_open, fail_closed,
//     not_subscribed).
//   - agentwire_conn_state{agent,state}: 1 for the connection's state
//     (connecting, connected, reconnecting, closed), 0 for the others.
//   - agentwire_conn_health{agent,state}: 1 for the health state the agent
//     reported (unknown: none in force), 0 for the others;
//     agentwire_conn_accepts_requests{agent}: 1 when new calls are taken.
//
// Add and Remove take a lock that only Collect shares. A ConnCollector is
// safe for concurrent use.
type ConnCollector struct {
	mu    sync.Mutex
	conns map[string]*engine.Conn

	inFlight, sent, received, failed, lost, flowRejected, satWaits, satRejected *prometheus.Desc
	protocolErrors, reconnects, reconnectFailures, reports, synthetic           *prometheus.Desc
	state, health, accepts                                                      *prometheus.Desc
}

// NewConnCollector returns an empty ConnCollector; Add connections to it.
func NewConnCollector() *ConnCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"agent"}, labels...), nil)
	}
	return &ConnCollector{
		conns:             map[string]*engine.Conn{},
		inFlight:          d("agentwire_conn_in_flight", "Calls in progress on the connection."),
		sent:              d("agentwire_conn_sent_total", "Event-stream messages handed to the transport."),
		received:          d("agentwire_conn_received_total", "Replies delivered to their callers."),
		failed:            d("agentwire_conn_calls_failed_total", "Calls that failed, by reason (timeout, canceled, error).", "reason"),
		lost:              d("agentwire_conn_connection_lost_total", "Calls failed because the stream died."),
		flowRejected:      d("agentwire_conn_flow_rejected_total", "Calls refused by the agent's flow control."),
		satWaits:          d("agentwire_conn_saturation_waits_total", "Calls that waited for a slot under the agent's announced max_concurrency."),
		satRejected:       d("agentwire_conn_saturation_rejected_total", "Calls that got no slot under the agent's announced max_concurrency."),
		protocolErrors:    d("agentwire_conn_protocol_errors_total", "Inbound messages that could not be used."),
		reconnects:        d("agentwire_conn_reconnects_total", "Successful reconnections after a loss."),
		reconnectFailures: d("agentwire_conn_reconnect_failures_total", "Failed connection attempts in the background."),
		reports:           d("agentwire_conn_metrics_reports_total", "Metrics reports received from the agent."),
		synthetic:         d("agentwire_conn_synthetic_decisions_total", "Verdicts Conn.Decide made because the agent gave none (fail_open, fail_closed, not_subscribed).", "decision"),
		state:             d("agentwire_conn_state", "1 for the connection's current state, 0 for the others.", "state"),
		health:            d("agentwire_conn_health", "1 for the health state the agent reported (unknown: none in force), 0 for the others.", "state"),
		accepts:           d("agentwire_conn_accepts_requests", "1 when the connection takes new calls, else 0."),
	}
}

// Add exports c under name (label agent), replacing the connection
// previously added under that name. A nil c removes name.
func (c *ConnCollector) Add(name string, conn *engine.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn == nil {
		delete(c.conns, name)
		return
	}
	c.conns[name] = conn
}

// Remove stops exporting the connection added under name.
func (c *ConnCollector) Remove(name string) { c.Add(name, nil) }

// Describe implements prometheus.Collector.
func (c *ConnCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.inFlight, c.sent, c.received, c.failed, c.lost, c.flowRejected, c.satWaits, c.satRejected,
		c.protocolErrors, c.reconnects, c.reconnectFailures, c.reports, c.synthetic, c.state, c.health, c.accepts,
	} {
		ch <- d
	}
}

var connStates = [...]engine.ConnState{engine.StateConnecting, engine.StateConnected, engine.StateReconnecting, engine.StateClosed}

// Collect implements prometheus.Collector.
func (c *ConnCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	names := make([]string, 0, len(c.conns))
	conns := make([]*engine.Conn, 0, len(c.conns))
	for n := range c.conns {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		conns = append(conns, c.conns[n])
	}
	c.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for i, conn := range conns {
		name := names[i]
		st := conn.Stats()
		gauge(c.inFlight, float64(st.InFlight), name)
		counter(c.sent, st.Sent, name)
		counter(c.received, st.Received, name)
		counter(c.failed, st.Timeouts, name, "timeout")
		counter(c.failed, st.Canceled, name, "canceled")
		counter(c.failed, st.Errors, name, "error")
		counter(c.lost, st.ConnectionLost, name)
		counter(c.flowRejected, st.FlowRejected, name)
		counter(c.satWaits, st.SaturationWaits, name)
		counter(c.satRejected, st.SaturationRejected, name)
		counter(c.protocolErrors, st.ProtocolErrors, name)
		counter(c.reconnects, st.Reconnects, name)
		counter(c.reconnectFailures, st.ReconnectFailures, name)
		counter(c.reports, st.MetricsReports, name)
		counter(c.synthetic, st.Verdicts.FailOpen, name, labelFailOpen)
		counter(c.synthetic, st.Verdicts.FailClosed, name, labelFailClosed)
		counter(c.synthetic, st.Verdicts.NotSubscribed, name, labelNotSubscribed)
		s := conn.State()
		for _, cs := range connStates {
			gauge(c.state, flag(s == cs), name, cs.String())
		}
		h := conn.Health()
		hi := healthIndex(h.State)
		for j, hn := range healthNames {
			gauge(c.health, flag(j == hi), name, hn)
		}
		gauge(c.accepts, flag(h.AcceptsRequests), name)
	}
}
