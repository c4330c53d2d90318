package agent

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
)

// TestTraceparentUnary: the unary ProcessEvent (whose request context is
// not a reqCtx) hands the handler the remote span context of the event's
// traceparent too (as a context value), and none without one. The
// streaming transports are covered end to end in package engine
// (TestTraceparentReachesAgent).
func TestTraceparentUnary(t *testing.T) {
	seen := make(chan trace.SpanContext, 2)
	e := startEnv(t, Funcs{RequestHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		seen <- trace.SpanContextFromContext(ctx)
		return nil
	}}, "tcp")
	m := reqHeaders("t1", "/")
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	m.GetRequestHeaders().Metadata.Traceparent = &tp
	if _, err := e.client.ProcessEvent(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if sc := <-seen; !sc.IsRemote() || sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sc.SpanID().String() != "b7ad6b7169203331" || !sc.IsSampled() {
		t.Fatalf("handler span context %v", sc)
	}
	if _, err := e.client.ProcessEvent(testCtx(t), reqHeaders("t2", "/")); err != nil {
		t.Fatal(err)
	}
	if sc := <-seen; sc.IsValid() {
		t.Fatalf("no traceparent: handler span context %v", sc)
	}
}
