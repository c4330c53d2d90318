package promstats

import (
	"context"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
)

// TestConnCollector exports a single engine.Conn to a real agent: the
// messages sent and replies received, a timeout (calls_failed by reason,
// a fail-closed synthetic decision), the metrics report it received (also
// fed to a ReportSink through ReportSink.Option), the state (connected,
// then reconnecting once the agent is killed) and the health the agent
// reported; Remove takes its series away.
func TestConnCollector(t *testing.T) {
	ctx := testCtx(t)
	a := startUDSAgent(t, agent.Funcs{
		RequestHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
			if ev.URI == "/slow" {
				<-ctx.Done() // until the proxy cancels it
			}
			return nil
		},
	})
	sink, err := NewReportSink()
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.Dial(ctx, a.Endpoint(), sink.Option("waf"), engine.WithReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	col := NewConnCollector()
	col.Add("waf", c)
	for i := range 5 {
		ev := &agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: string(rune('a' + i))}, Method: "GET", URI: "/"}
		if v := c.Decide(c.RequestHeaders(ctx, ev)); v.Synthetic {
			t.Fatalf("verdict %+v", v)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	v := c.Decide(c.RequestHeaders(tctx, &agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: "slow"}, URI: "/slow"}))
	cancel()
	if !v.Synthetic || v.Allowed() {
		t.Fatalf("slow verdict %+v", v)
	}
	a.Server().ReportHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: 1})
	a.Server().ReportMetrics(&agentwire.MetricsReport{Gauges: []agentwire.GaugeMetric{{Name: "queue", Value: 3}}})
	var f families
	eventually(t, "the health and metrics reports", func() bool {
		f = gather(t, col, sink)
		return f.sum("agentwire_conn_health", L("agent", "waf", "state", "degraded")) == 1 &&
			f.sum("agentwire_conn_metrics_reports_total", nil) == 1 && f.metric(t, "agentwire_reported_queue", nil) != nil
	})
	for _, w := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agentwire_conn_sent_total", L("agent", "waf"), 6 + float64(c.Stats().CancelsSent)}, // the events, and the cancel of the one that timed out
		{"agentwire_conn_received_total", L("agent", "waf"), 5},
		{"agentwire_conn_calls_failed_total", L("agent", "waf", "reason", "timeout"), 1},
		{"agentwire_conn_calls_failed_total", L("agent", "waf", "reason", "error"), 0},
		{"agentwire_conn_synthetic_decisions_total", L("agent", "waf", "decision", "fail_closed"), 1},
		{"agentwire_conn_synthetic_decisions_total", L("agent", "waf", "decision", "fail_open"), 0},
		{"agentwire_conn_in_flight", L("agent", "waf"), 0},
		{"agentwire_conn_state", L("agent", "waf", "state", "connected"), 1},
		{"agentwire_conn_state", L("agent", "waf", "state", "reconnecting"), 0},
		{"agentwire_conn_health", L("agent", "waf", "state", "healthy"), 0},
		{"agentwire_conn_accepts_requests", L("agent", "waf"), 1},
		{"agentwire_reported_queue", L("agent", "waf"), 3},
	} {
		m := f.metric(t, w.name, w.labels)
		if m == nil || value(m) != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, m, w.want)
		}
	}
	for _, fam := range []string{"agentwire_conn_connection_lost_total", "agentwire_conn_flow_rejected_total", "agentwire_conn_saturation_waits_total",
		"agentwire_conn_saturation_rejected_total", "agentwire_conn_protocol_errors_total", "agentwire_conn_reconnects_total", "agentwire_conn_reconnect_failures_total"} {
		if f.metric(t, fam, L("agent", "waf")) == nil {
			t.Errorf("%s missing", fam)
		}
	}
	a.Stop()
	eventually(t, "the connection to be lost", func() bool {
		return gather(t, col).sum("agentwire_conn_state", L("agent", "waf", "state", "reconnecting")) == 1
	})
	col.Remove("waf")
	if f := gather(t, col); len(f) != 0 {
		t.Errorf("after Remove: %v", keys(f))
	}
}
