package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/agentwire/agentwire/engine/pool"
	"github.com/agentwire/agentwire/httpguard"
)

// writeGatewayMetrics writes the gateway's statistics (the guard's
// counters and each agent's pool statistics) in the Prometheus text
// exposition format 0.0.4. It stands in until the gateway gets the
// project's metrics (a later issue); g is nil for a plain reverse proxy.
func writeGatewayMetrics(w io.Writer, p *pool.Pool, g *httpguard.Guard) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	family := func(name, typ, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	if g != nil {
		s := g.Stats()
		family("agentwire_gateway_requests_total", "counter", "HTTP requests served through the agents.")
		fmt.Fprintf(bw, "agentwire_gateway_requests_total %d\n", s.Requests)
		family("agentwire_gateway_blocked_total", "counter", "Responses replaced by a decision or a failure policy, by phase.")
		for _, b := range []struct {
			phase string
			n     uint64
		}{
			{"request_headers", s.RequestHeadersBlocked},
			{"request_body", s.RequestBodyBlocked},
			{"response_headers", s.ResponseHeadersBlocked},
			{"response_body", s.ResponseBodyBlocked},
		} {
			fmt.Fprintf(bw, "agentwire_gateway_blocked_total{phase=%q} %d\n", b.phase, b.n)
		}
		for _, c := range []struct {
			name, help string
			n          uint64
		}{
			{"agentwire_gateway_aborted_total", "Responses cut off by a decision after their headers went out.", s.Aborted},
			{"agentwire_gateway_client_disconnects_total", "Requests whose client went away (cancelled at the agents).", s.ClientDisconnects},
			{"agentwire_gateway_header_ops_refused_total", "Phases in which an agent's header operation was refused.", s.HeaderOpsRefused},
			{"agentwire_gateway_mutations_ignored_total", "Body mutations that could not be applied.", s.MutationsIgnored},
			{"agentwire_gateway_websocket_streams_total", "Upgraded connections whose frames went to the agents.", s.WebSocketStreams},
			{"agentwire_gateway_websocket_closes_total", "Upgraded connections closed by an agent's decision or failure.", s.WebSocketCloses},
		} {
			family(c.name, "counter", c.help)
			fmt.Fprintf(bw, "%s %d\n", c.name, c.n)
		}
	}
	agents := p.Agents()
	if len(agents) == 0 {
		return
	}
	stats := make([]pool.AgentStats, len(agents))
	for i, a := range agents {
		stats[i] = a.Stats()
	}
	each := func(name, typ, help string, f func(label string, s *pool.AgentStats)) {
		family(name, typ, help)
		for i := range stats {
			f(`agent="`+labelValue(stats[i].Name)+`"`, &stats[i])
		}
	}
	each("agentwire_agent_calls_total", "counter", "Calls made through the agent (every event kind).", func(l string, s *pool.AgentStats) {
		fmt.Fprintf(bw, "agentwire_agent_calls_total{%s} %d\n", l, s.Requests)
	})
	each("agentwire_agent_in_flight", "gauge", "Calls in progress.", func(l string, s *pool.AgentStats) {
		fmt.Fprintf(bw, "agentwire_agent_in_flight{%s} %d\n", l, s.InFlight)
	})
	each("agentwire_agent_decisions_total", "counter", "The agent's own decisions, by kind.", func(l string, s *pool.AgentStats) {
		d := s.Decisions
		for _, k := range []struct {
			kind string
			n    uint64
		}{{"allow", d.Allow}, {"block", d.Block}, {"redirect", d.Redirect}, {"challenge", d.Challenge}} {
			fmt.Fprintf(bw, "agentwire_agent_decisions_total{%s,decision=%q} %d\n", l, k.kind, k.n)
		}
	})
	each("agentwire_agent_synthetic_total", "counter", "Verdicts the agent did not give (failure policy), by reason.", func(l string, s *pool.AgentStats) {
		e := s.Errors
		for _, r := range []struct {
			reason string
			n      uint64
		}{
			{"error", e.Error}, {"timeout", e.Timeout}, {"canceled", e.Canceled}, {"unavailable", e.Unavailable},
			{"breaker_open", e.BreakerOpen}, {"body_too_large", e.BodyTooLarge}, {"not_subscribed", e.NotSubscribed},
		} {
			fmt.Fprintf(bw, "agentwire_agent_synthetic_total{%s,reason=%q} %d\n", l, r.reason, r.n)
		}
	})
	each("agentwire_agent_connections", "gauge", "Connections of the agent: configured, and up (taking calls).", func(l string, s *pool.AgentStats) {
		fmt.Fprintf(bw, "agentwire_agent_connections{%s,state=\"configured\"} %d\n", l, s.Conns)
		fmt.Fprintf(bw, "agentwire_agent_connections{%s,state=\"up\"} %d\n", l, s.ConnsUp)
	})
	each("agentwire_agent_breaker_state", "gauge", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", func(l string, s *pool.AgentStats) {
		fmt.Fprintf(bw, "agentwire_agent_breaker_state{%s} %d\n", l, s.Breaker)
	})
	each("agentwire_agent_breaker_opens_total", "counter", "Times the circuit breaker opened.", func(l string, s *pool.AgentStats) {
		fmt.Fprintf(bw, "agentwire_agent_breaker_opens_total{%s} %d\n", l, s.BreakerOpens)
	})
	each("agentwire_agent_call_duration_seconds", "histogram", "Latency of calls that reached a connection.", func(l string, s *pool.AgentStats) {
		h := &s.Latency
		var cum uint64
		for i := range pool.LatencyBuckets - 1 {
			cum += h.Counts[i]
			fmt.Fprintf(bw, "agentwire_agent_call_duration_seconds_bucket{%s,le=\"%g\"} %d\n", l, h.UpperBound(i).Seconds(), cum)
		}
		fmt.Fprintf(bw, "agentwire_agent_call_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", l, h.Count())
		fmt.Fprintf(bw, "agentwire_agent_call_duration_seconds_sum{%s} %g\n", l, h.Sum.Seconds())
		fmt.Fprintf(bw, "agentwire_agent_call_duration_seconds_count{%s} %d\n", l, h.Count())
	})
}

// labelValue escapes a Prometheus label value.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
