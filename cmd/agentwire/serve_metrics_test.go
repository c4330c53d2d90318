package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

var metricsRE = regexp.MustCompile(`metrics on (http://\S+)\n`)

// TestServeMetricsListen runs "serve --agent deny --metrics-listen
// 127.0.0.1:0", sends it an allowed and a denied request, scrapes
// /metrics, parses it with the Prometheus text parser (strict names), and
// finds the agent's events by kind and decision, its handler latency, its
// connection, and the Go runtime's and the process's metrics. After the
// graceful stop the metrics port is closed.
func TestServeMetricsListen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sock := shortSocketPath(t, "m.sock")
	var errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--listen", "unix://" + sock, "--agent", "deny", "--agent-id", "deny-7",
			"--metrics-listen", "127.0.0.1:0"}, io.Discard, &errb)
	}()
	endpoint := waitMatch(t, &errb, listeningRE, 10*time.Second)
	url := waitMatch(t, &errb, metricsRE, 10*time.Second)

	c, err := engine.Dial(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	for i, uri := range []string{"/app", "/admin/x"} {
		ev := &agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: string(rune('a' + i))}, Method: "GET", URI: uri}
		if _, err := c.RequestHeaders(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	fams := scrape(t, ctx, url)
	for _, w := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agentwire_server_events_total", map[string]string{"agent": "deny-7", "event": "request_headers", "decision": "allow"}, 1},
		{"agentwire_server_events_total", map[string]string{"agent": "deny-7", "event": "request_headers", "decision": "block"}, 1},
		{"agentwire_server_handler_duration_seconds", map[string]string{"agent": "deny-7", "event": "request_headers"}, 2},
		{"agentwire_server_connections", map[string]string{"agent": "deny-7", "transport": "uds"}, 1},
		{"agentwire_server_handler_errors_total", map[string]string{"agent": "deny-7", "kind": "error"}, 0},
		{"agentwire_server_in_flight", map[string]string{"agent": "deny-7"}, 0},
	} {
		if got, ok := metricValue(fams[w.name], w.labels); !ok || got != w.want {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	c.Close()
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not stop: %s", errb.String())
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("metrics still served after the stop: %s", resp.Status)
	}
}

// TestServeMetricsListenRefused: an address that cannot be bound fails the
// command (exit 1) with a message naming the flag, before serving.
func TestServeMetricsListenRefused(t *testing.T) {
	res := runCLI(t, "serve", "--listen", "unix://"+shortSocketPath(t, "r.sock"), "--metrics-listen", "no-port")
	if res.code != exitFail || !strings.Contains(res.stderr, "--metrics-listen") || strings.Contains(res.stderr, "listening on") {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
}

// scrape GETs url and parses the text exposition with legacy name
// validation.
func scrape(t *testing.T, ctx context.Context, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metricValue returns the value (a histogram's count) of the one metric of
// mf whose labels include want.
func metricValue(mf *dto.MetricFamily, want map[string]string) (float64, bool) {
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.Metric {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}
