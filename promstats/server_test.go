package promstats

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
)

// TestServerCollector exports an agent.Server's counters: events by kind
// and the decision of the reply (a handler error under the error
// decision), the handler latency histogram, handler errors, connections;
// event kinds the server announces have series from zero, others none.
func TestServerCollector(t *testing.T) {
	ctx := testCtx(t)
	h := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			switch ev.URI {
			case "/block":
				r.Decision = agentwire.Block(403)
			case "/error":
				return errors.New("boom")
			}
			return nil
		},
		RequestComplete: func(context.Context, *agentwire.RequestCompleteEvent, *agentwire.AgentResponse) error { return nil },
	}
	a := startUDSAgent(t, h, agent.WithSupportedEvents(h.Events()...), agent.WithAgentID("waf-1"),
		agent.WithErrorDecision(agentwire.Block(500)), agent.WithLogger(slog.New(slog.DiscardHandler)))
	col, err := NewServerCollector(a.Server())
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine.Dial(ctx, a.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, uri := range []string{"/", "/", "/block", "/error"} {
		ev := &agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: string(rune('a' + i))}, URI: uri}
		if _, err := c.RequestHeaders(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.RequestComplete(ctx, &agentwire.RequestCompleteEvent{CorrelationID: "a"}); err != nil {
		t.Fatal(err)
	}
	f := gather(t, col)
	for _, w := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agentwire_server_events_total", L("agent", "waf-1", "event", "request_headers", "decision", "allow"), 2},
		{"agentwire_server_events_total", L("agent", "waf-1", "event", "request_headers", "decision", "block"), 2},
		{"agentwire_server_events_total", L("agent", "waf-1", "event", "request_complete", "decision", "allow"), 1},
		{"agentwire_server_handler_duration_seconds", L("agent", "waf-1", "event", "request_headers"), 4},
		{"agentwire_server_handler_duration_seconds", L("agent", "waf-1", "event", "request_complete"), 1},
		{"agentwire_server_handler_errors_total", L("agent", "waf-1", "kind", "error"), 1},
		{"agentwire_server_handler_errors_total", L("agent", "waf-1", "kind", "panic"), 0},
		{"agentwire_server_connections", L("agent", "waf-1", "transport", "uds"), 1},
		{"agentwire_server_connections", L("agent", "waf-1", "transport", "grpc"), 0},
		{"agentwire_server_in_flight", L("agent", "waf-1"), 0},
	} {
		m := f.metric(t, w.name, w.labels)
		if m == nil || value(m) != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, m, w.want)
		}
	}
	if got := f.labelValues("agentwire_server_events_total", "event"); len(got) != 2 {
		t.Errorf("event kinds exported: %v, want the two announced", got)
	}
	for _, fam := range []string{"agentwire_server_decode_errors_total", "agentwire_server_protocol_errors_total",
		"agentwire_server_ignored_frames_total", "agentwire_server_cancels_total", "agentwire_server_dropped_pushes_total"} {
		if f.metric(t, fam, L("agent", "waf-1")) == nil {
			t.Errorf("%s missing", fam)
		}
	}
	if _, err := NewServerCollector(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil server: %v", err)
	}
}
