package promstats_test

import (
	"fmt"
	"log"

	"github.com/agentwire/agentwire/engine/pool"
	"github.com/agentwire/agentwire/promstats"
)

// A pool's metrics, and those its agents report, on /metrics.
func Example() {
	p, err := pool.New()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	sink, err := promstats.NewReportSink()
	if err != nil {
		log.Fatal(err)
	}
	// The agent's connections feed its metrics reports to the sink.
	if _, err := p.AddAgent("waf", pool.WithEndpoint("unix:///run/waf.sock", 4, sink.Option("waf"))); err != nil {
		log.Fatal(err)
	}
	col, err := promstats.NewPoolCollector(p)
	if err != nil {
		log.Fatal(err)
	}
	h, err := promstats.Handler(col, sink)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := promstats.ListenHTTP("127.0.0.1:0", h)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	fmt.Println("scrape", srv.URL()[:len("http://127.0.0.1:")], "...")
	// Output: scrape http://127.0.0.1: ...
}
