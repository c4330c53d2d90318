package httpguard

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// TestTraceparentReachesAgentThroughGuard: the traceparent of an incoming
// HTTP request arrives at the agent in the event's metadata and, parsed,
// as the remote span context of the handler's ctx.
func TestTraceparentReachesAgentThroughGuard(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var (
		mu      sync.Mutex
		gotMeta string
		gotSpan trace.SpanContext
	)
	h := agent.Funcs{RequestHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		mu.Lock()
		gotMeta, gotSpan = ev.Metadata.Traceparent, trace.SpanContextFromContext(ctx)
		mu.Unlock()
		return nil
	}}
	ua := startUDSAgent(t, h)
	_, pl, _ := newPipeline(t, true, agentOpts(ua.Endpoint()))
	_, srv := newGuard(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }), pl)

	req, err := http.NewRequest("GET", srv.URL+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Traceparent", tp)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if gotMeta != tp {
		t.Fatalf("metadata.traceparent = %q", gotMeta)
	}
	if !gotSpan.IsValid() || !gotSpan.IsRemote() || gotSpan.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		gotSpan.SpanID().String() != "00f067aa0ba902b7" || !gotSpan.IsSampled() {
		t.Fatalf("handler ctx span context = %+v", gotSpan)
	}
}
