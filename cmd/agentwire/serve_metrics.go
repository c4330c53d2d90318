package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/promstats"
)

// registerMetricsFlag adds --metrics-listen to the serve command's flags.
func (f *serveFlags) registerMetricsFlag(fs *flag.FlagSet) {
	fs.StringVar(&f.metricsListen, "metrics-listen", "",
		"serve the agent's Prometheus metrics on http://HOST:PORT/metrics (port 0: any free port)")
}

// startServeMetrics serves the metrics of srv (promstats.ServerCollector,
// with the Go runtime's and the process's) on addr's /metrics when addr is
// set, and prints "metrics on URL" to stderr once it accepts scrapes.
// stop shuts it down; it is a no-op when addr is empty.
func startServeMetrics(addr string, srv *agent.Server, stderr io.Writer) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	col, err := promstats.NewServerCollector(srv)
	if err != nil {
		return nil, err
	}
	h, err := promstats.Handler(col, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err != nil {
		return nil, err
	}
	hs, err := promstats.ListenHTTP(addr, h)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	fmt.Fprintf(stderr, "metrics on %s\n", hs.URL())
	return func() { _ = hs.Close() }, nil
}
