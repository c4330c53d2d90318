package agent

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestRemoteSpanParsedOnLookup: the request's traceparent is parsed only
// when the span is looked up (never for a handler that does not
// look), concurrent lookups agree, and an invalid traceparent leaves the
// parent's span visible instead of a broken one.
func TestRemoteSpanParsedOnLookup(t *testing.T) {
	if spanKey == nil {
		t.Fatal("package trace's span key was not learned")
	}
	var slab reqCtxSlab
	x := &exchange{kind: kindRequestHeaders}
	x.reqHeaders.Metadata.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	rc := slab.get(context.Background())
	x.ctx, x.rc = rc, rc
	remoteParent(x)
	if rc.remote.raw != x.reqHeaders.Metadata.Traceparent {
		t.Fatalf("request context keeps %q", rc.remote.raw)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sc := trace.SpanContextFromContext(x.ctx); sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || !sc.IsRemote() {
				t.Errorf("span context %v", sc)
			}
		}()
	}
	wg.Wait()
	rc.cancel(context.Canceled)

	parentSC := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	parent := trace.ContextWithSpanContext(context.Background(), parentSC)
	for _, bad := range []string{"00-zz", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		rc := slab.get(parent)
		x.ctx, x.rc = rc, rc
		x.reqHeaders.Metadata.Traceparent = bad
		remoteParent(x)
		if sc := trace.SpanContextFromContext(x.ctx); !sc.Equal(parentSC) {
			t.Errorf("%q: span context %v, want the parent's", bad, sc)
		}
		rc.cancel(context.Canceled)
	}
}
