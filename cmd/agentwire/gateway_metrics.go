package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentwire/agentwire/engine/pool"
	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/promstats"
)

// gatewayMetrics is what gateway --metrics-listen serves: the multi-agent
// layer's families (promstats.NewPoolCollector: agentwire_agent_*), the
// metrics the agents report (promstats.ReportSink) and the guard's HTTP
// counters (agentwire_gateway_*), all read at scrape time.
type gatewayMetrics struct {
	sink *promstats.ReportSink
}

func newGatewayMetrics() (*gatewayMetrics, error) {
	sink, err := promstats.NewReportSink()
	if err != nil {
		return nil, err
	}
	return &gatewayMetrics{sink: sink}, nil
}

// handler returns the /metrics handler over p and g (g is nil for a plain
// reverse proxy).
func (m *gatewayMetrics) handler(p *pool.Pool, g *httpguard.Guard) (http.Handler, error) {
	pc, err := promstats.NewPoolCollector(p)
	if err != nil {
		return nil, err
	}
	cs := []prometheus.Collector{pc, m.sink}
	if g != nil {
		cs = append(cs, guardCollector{g})
	}
	return promstats.Handler(cs...)
}

// guardCollector exports httpguard.Guard's counters.
type guardCollector struct{ g *httpguard.Guard }

var (
	gwRequests = prometheus.NewDesc("agentwire_gateway_requests_total", "HTTP requests served through the agents.", nil, nil)
	gwBlocked  = prometheus.NewDesc("agentwire_gateway_blocked_total", "Responses replaced by a decision or a failure policy, by phase.", []string{"phase"}, nil)
	gwEvents   = prometheus.NewDesc("agentwire_gateway_events_total", "Other events of the guard: responses cut off after their headers, client disconnects, cancels sent to agents left waiting for more of a request, refused header operations, ignored mutations, WebSocket streams and closes.", []string{"event"}, nil)
)

func (guardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- gwRequests
	ch <- gwBlocked
	ch <- gwEvents
}

func (c guardCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.g.Stats()
	ch <- prometheus.MustNewConstMetric(gwRequests, prometheus.CounterValue, float64(s.Requests))
	for _, b := range []struct {
		phase string
		n     uint64
	}{
		{"request_headers", s.RequestHeadersBlocked}, {"request_body", s.RequestBodyBlocked},
		{"response_headers", s.ResponseHeadersBlocked}, {"response_body", s.ResponseBodyBlocked},
	} {
		ch <- prometheus.MustNewConstMetric(gwBlocked, prometheus.CounterValue, float64(b.n), b.phase)
	}
	for _, e := range []struct {
		event string
		n     uint64
	}{
		{"aborted", s.Aborted}, {"client_disconnect", s.ClientDisconnects}, {"waiting_cancel", s.WaitingCancels}, {"header_ops_refused", s.HeaderOpsRefused},
		{"mutation_ignored", s.MutationsIgnored}, {"websocket_stream", s.WebSocketStreams}, {"websocket_close", s.WebSocketCloses},
	} {
		ch <- prometheus.MustNewConstMetric(gwEvents, prometheus.CounterValue, float64(e.n), e.event)
	}
}
