// Package promstats exports agentwire's statistics to Prometheus
// (github.com/prometheus/client_golang). It lives in a package of its own
// so that importing engine, engine/pool or agent does not pull in the
// Prometheus client.
//
// Every collector reads the atomic counters the packages keep anyway
// (pool.Agent.Stats and EventStats, engine.Conn.Stats, agent.Server.Stats
// and EventStats) when it is scraped: a registered collector adds no lock,
// no allocation and no work to a request, and costs nothing while nobody
// scrapes.
//
// # Collectors
//
//   - NewPoolCollector: the multi-agent layer (engine/pool), per agent
//     (the families agentwire_agent_*: requests by event kind and
//     decision, failures by kind, latency histograms by event kind, calls
//     in flight, breaker state, connections and their health, synthetic
//     decisions by reason).
//   - NewConnCollector: single engine.Conns used without a pool
//     (agentwire_conn_*).
//   - NewServerCollector: the agent side, an agent.Server
//     (agentwire_server_*: events handled by kind and decision, handler
//     latency, handler errors and panics, connections).
//   - NewReportSink: the metrics that agents report (MetricsReport, frame
//     0x31 / gRPC AgentToProxy.metrics), re-exported with the agent's id
//     under a series cap and an expiry, names and labels sanitised. Feed
//     it with engine.WithOnMetrics (ReportSink.Option does it), also
//     through pool.WithEndpoint's engine options.
//
// # Serving /metrics
//
//	col, _ := promstats.NewPoolCollector(p)
//	sink, _ := promstats.NewReportSink()
//	p.AddAgent("waf", pool.WithEndpoint("unix:///run/waf.sock", 4, sink.Option("waf")))
//	h, _ := promstats.Handler(col, sink)
//	srv, _ := promstats.ListenHTTP("127.0.0.1:9464", h) // GET /metrics
//	defer srv.Close()
//
// Or register the collectors on a registry of your own
// (prometheus.Registerer.Register): they are ordinary
// prometheus.Collectors.
//
// # Latency histograms
//
// The latency histograms (agentwire_agent_request_duration_seconds,
// agentwire_server_handler_duration_seconds) are built at scrape time from
// the atomic buckets, whose upper bounds are the powers of two seconds from
// 2^-16 s (about 15.3 µs) to 16 s. Each is exported in both forms: classic
// buckets (le = 2^-16 ... 16, +Inf), which the text format carries, and a
// native histogram of schema 0 with a zero bucket of width 2^-16 s, which
// the protobuf format carries to a Prometheus that scrapes native
// histograms. Both forms hold exactly the same counts, because the bucket
// boundaries are those of schema 0; the only difference is that the
// native form puts the latencies over 16 s (the +Inf bucket) in the
// bucket (16 s, 32 s], since a native histogram has no unbounded bucket.
// WithNativeHistograms(false) exports the classic form only.
package promstats
