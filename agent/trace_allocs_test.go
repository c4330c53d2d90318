//go:build !race

package agent

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire/internal/allocs"
)

// TestTraceOffDispatchAllocs pins the dispatch path's allocations around
// the trace support, with no tracer provider (fast gRPC path, exact
// counts): an event without traceparent, with one that does not parse, or
// with a valid one (whose remote span context the handler's context then
// carries, see TestRemoteSpanInReqCtx) costs what TestDispatchAllocs pins:
// 1, plus a context slab every slabSize. (With the remote span context as
// a context value, trace.ContextWithRemoteSpanContext, a valid traceparent
// cost 2 more.)
func TestTraceOffDispatchAllocs(t *testing.T) {
	s := NewServer(echoHandler{})
	defer s.Close()
	var tbl inflightTable
	var slab reqCtxSlab
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name string
		tp   string
		want float64
	}{
		{"no traceparent", "", 1 + 1.0/slabSize},
		{"invalid traceparent", "00-not-a-trace-context", 1 + 1.0/slabSize},
		{"valid traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", 1 + 1.0/slabSize},
	} {
		m := benchRequest("5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7")
		if tc.tp != "" {
			tp := tc.tp
			m.GetRequestHeaders().Metadata.Traceparent = &tp
		}
		in, err := m.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, 0, 256)
		out = processOne(s, &tbl, &slab, ctx, in, out, true)
		got := allocs.AtMost(t, tc.name, slabSize*100, tc.want, func() { out = processOne(s, &tbl, &slab, ctx, in, out, true) })
		t.Logf("%s: %d allocations in %d events", tc.name, got, slabSize*100)
	}
}

// TestRemoteSpanInReqCtx: a request context given a traceparent answers
// trace.SpanContextFromContext with its remote span context, also through
// contexts derived from it, and costs no allocation.
func TestRemoteSpanInReqCtx(t *testing.T) {
	if spanKey == nil {
		t.Fatal("package trace's span key was not learned")
	}
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	var slab reqCtxSlab
	parent := context.WithValue(context.Background(), testKey("parent"), "v")
	x := &exchange{kind: kindRequestHeaders}
	x.reqHeaders.Metadata.Traceparent = tp
	allocs.AtMost(t, "request context with a remote span context", slabSize*100, 1.0/slabSize, func() {
		rc := slab.get(parent)
		x.ctx, x.rc = rc, rc
		remoteParent(x)
		if sc := trace.SpanContextFromContext(x.ctx); !sc.IsRemote() || sc.SpanID().String() != "b7ad6b7169203331" {
			t.Fatalf("span context %v", sc)
		}
		rc.cancel(context.Canceled)
	})
	derived, cancel := context.WithCancel(context.WithValue(x.ctx, testKey("k"), 1))
	defer cancel()
	if sc := trace.SpanContextFromContext(derived); sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || !sc.IsRemote() {
		t.Fatalf("derived context: span context %v", sc)
	}
	if derived.Value(testKey("parent")) != "v" {
		t.Fatal("parent values lost")
	}
}

// testKey is a context key type of the tests.
type testKey string
