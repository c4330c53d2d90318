package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// sampleTP is the W3C specification's example traceparent.
const sampleTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// traceSeen is what the agent's handler saw of an event's trace context.
type traceSeen struct {
	tp string            // metadata.traceparent (request headers; "" otherwise)
	sc trace.SpanContext // trace.SpanContextFromContext(handler ctx)
}

// traceRecorder is an agent handler recording, per correlation id, what
// each request-headers and request-body-chunk event carried.
type traceRecorder struct {
	mu   sync.Mutex
	seen map[string]traceSeen
	body map[string]traceSeen
}

func newTraceRecorder() *traceRecorder {
	return &traceRecorder{seen: map[string]traceSeen{}, body: map[string]traceSeen{}}
}

func (r *traceRecorder) handler() agent.Handler {
	return agent.Funcs{
		RequestHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
			r.mu.Lock()
			r.seen[ev.Metadata.CorrelationID] = traceSeen{tp: ev.Metadata.Traceparent, sc: trace.SpanContextFromContext(ctx)}
			r.mu.Unlock()
			return nil
		},
		RequestBodyChunk: func(ctx context.Context, ev *agentwire.BodyChunk, _ *agentwire.AgentResponse) error {
			r.mu.Lock()
			r.body[ev.CorrelationID] = traceSeen{sc: trace.SpanContextFromContext(ctx)}
			r.mu.Unlock()
			return nil
		},
	}
}

func (r *traceRecorder) get(t *testing.T, cid string) traceSeen {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.seen[cid]
	if !ok {
		t.Fatalf("the agent saw no request headers for %q", cid)
	}
	return s
}

// traceTransport starts an agent with h on one transport and returns a Conn
// to it.
type traceTransport struct {
	name  string
	start func(t *testing.T, h agent.Handler, aopts []agent.Option, opts ...Option) *Conn
}

var traceTransports = []traceTransport{
	{"grpc", func(t *testing.T, h agent.Handler, aopts []agent.Option, opts ...Option) *Conn {
		return dial(t, startAgent(t, h, aopts...).addr, opts...)
	}},
	{"uds-json", func(t *testing.T, h agent.Handler, aopts []agent.Option, opts ...Option) *Conn {
		return dialUDS(t, startUDSAgent(t, h, aopts...).path, opts...)
	}},
	{"uds-msgpack", func(t *testing.T, h agent.Handler, aopts []agent.Option, opts ...Option) *Conn {
		return dialUDS(t, startUDSAgent(t, h, aopts...).path, append([]Option{WithMsgpack()}, opts...)...)
	}},
}

func mustParseTP(t *testing.T, tp string) trace.SpanContext {
	t.Helper()
	sc := trace.SpanContextFromContext(ContextWithTraceparent(context.Background(), tp))
	if !sc.IsValid() {
		t.Fatalf("traceparent %q not parsed", tp)
	}
	return sc
}

// sameSpan reports whether a and b name the same span (trace id, span id,
// flags), whatever their remote bit.
func sameSpan(a, b trace.SpanContext) bool {
	return a.TraceID() == b.TraceID() && a.SpanID() == b.SpanID() && a.TraceFlags() == b.TraceFlags()
}

// TestTraceparentReachesAgent: the trace context of the caller's context
// arrives at the agent, over gRPC and over the Unix socket (JSON and
// MessagePack), as metadata.traceparent and as the remote span context of
// the handler's context; the caller's event is not modified; an event's
// own traceparent wins; no trace context sends none; the handler of a
// later event (body chunk) gets no span context.
func TestTraceparentReachesAgent(t *testing.T) {
	for _, tt := range traceTransports {
		t.Run(tt.name, func(t *testing.T) {
			rec := newTraceRecorder()
			c := tt.start(t, rec.handler(), nil)
			want := mustParseTP(t, sampleTP)

			// A remote span context, as a gateway extracts it.
			ctx := ContextWithTraceparent(testCtx(t), sampleTP)
			ev := headersEvent("remote")
			if _, err := c.RequestHeaders(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if ev.Metadata.Traceparent != "" {
				t.Errorf("the caller's event was modified: traceparent %q", ev.Metadata.Traceparent)
			}
			got := rec.get(t, "remote")
			if got.tp != sampleTP {
				t.Errorf("metadata.traceparent %q, want %q", got.tp, sampleTP)
			}
			if !sameSpan(got.sc, want) || !got.sc.IsRemote() {
				t.Errorf("handler span context %v (remote %v), want %v remote", got.sc, got.sc.IsRemote(), want)
			}

			// A local span of the caller's own tracer.
			tp := sdktrace.NewTracerProvider()
			defer func() { _ = tp.Shutdown(context.Background()) }()
			sctx, span := tp.Tracer("test").Start(testCtx(t), "caller")
			if _, err := c.RequestHeaders(sctx, headersEvent("local")); err != nil {
				t.Fatal(err)
			}
			span.End()
			got = rec.get(t, "local")
			if !sameSpan(got.sc, span.SpanContext()) || !got.sc.IsRemote() {
				t.Errorf("handler span context %v, want the caller's span %v", got.sc, span.SpanContext())
			}

			// The event's own traceparent is sent as it is.
			own := "00-11111111111111111111111111111111-2222222222222222-00"
			ev = headersEvent("own")
			ev.Metadata.Traceparent = own
			if _, err := c.RequestHeaders(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if got := rec.get(t, "own"); got.tp != own || !sameSpan(got.sc, mustParseTP(t, own)) {
				t.Errorf("own traceparent: agent saw %q / %v", got.tp, got.sc)
			}

			// No trace context, no traceparent.
			if err := c.RequestHeadersInto(testCtx(t), headersEvent("none"), new(agentwire.AgentResponse)); err != nil {
				t.Fatal(err)
			}
			if got := rec.get(t, "none"); got.tp != "" || got.sc.IsValid() {
				t.Errorf("no trace context: agent saw %q / %v", got.tp, got.sc)
			}

			// A body chunk has no traceparent field.
			if _, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "remote", Data: []byte("x"), IsLast: true}); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			b, ok := rec.body["remote"]
			rec.mu.Unlock()
			if !ok || b.sc.IsValid() {
				t.Errorf("body chunk: seen %v, span context %v (want none)", ok, b.sc)
			}
		})
	}
}

// TestTraceparentConcurrent: concurrent calls, each with its own trace
// context, each deliver their own traceparent (the pooled event copies are
// not shared or recycled while the writer reads them).
func TestTraceparentConcurrent(t *testing.T) {
	for _, tt := range traceTransports {
		t.Run(tt.name, func(t *testing.T) {
			rec := newTraceRecorder()
			c := tt.start(t, rec.handler(), nil)
			const workers, per = 8, 50
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					dst := new(agentwire.AgentResponse)
					for i := range per {
						n := w*per + i
						tp := fmt.Sprintf("00-%032x-%016x-01", n+1, n+1)
						ev := headersEvent(fmt.Sprintf("c%d", n))
						if err := c.RequestHeadersInto(ContextWithTraceparent(testCtx(t), tp), ev, dst); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			for n := range workers * per {
				want := fmt.Sprintf("00-%032x-%016x-01", n+1, n+1)
				if got := rec.get(t, fmt.Sprintf("c%d", n)); got.tp != want {
					t.Fatalf("c%d: agent saw %q, want %q", n, got.tp, want)
				}
			}
		})
	}
}

// TestClientAndServerSpans: with WithTracerProvider on both sides, each
// call is a client span (child of the caller's context) whose context is
// the traceparent sent, and the agent's server span is its child; both
// carry the agent, event, correlation id, decision and outcome attributes;
// a failed call records its outcome and an Error status.
func TestClientAndServerSpans(t *testing.T) {
	for _, tt := range traceTransports {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
			ctp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(client))
			stp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(server))
			rec := newTraceRecorder()
			c := tt.start(t, rec.handler(), []agent.Option{agent.WithTracerProvider(stp), agent.WithAgentID("traced")},
				WithTracerProvider(ctp), WithAgentName("waf"))

			ctx := ContextWithTraceparent(testCtx(t), sampleTP)
			parent := mustParseTP(t, sampleTP)
			if _, err := c.RequestHeaders(ctx, headersEvent("span-1")); err != nil {
				t.Fatal(err)
			}
			ended := client.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d client spans, want 1", len(ended))
			}
			cs := ended[0]
			if cs.Name() != "agentwire.RequestHeaders" || cs.SpanKind() != trace.SpanKindClient ||
				cs.Parent().SpanID() != parent.SpanID() || cs.SpanContext().TraceID() != parent.TraceID() {
				t.Errorf("client span %q kind %v parent %v trace %v", cs.Name(), cs.SpanKind(), cs.Parent(), cs.SpanContext().TraceID())
			}
			wantAttrs(t, "client", cs, map[string]string{"agentwire.agent": "waf", "agentwire.event": "request_headers",
				"agentwire.correlation_id": "span-1", "agentwire.decision": "allow", "agentwire.outcome": "ok"})

			// The agent saw the client span as its remote parent.
			got := rec.get(t, "span-1")
			if !sameSpan(mustParseTP(t, got.tp), cs.SpanContext()) {
				t.Errorf("traceparent %q, want the client span %v", got.tp, cs.SpanContext())
			}
			sEnded := server.Ended()
			if len(sEnded) != 1 {
				t.Fatalf("%d server spans, want 1", len(sEnded))
			}
			ss := sEnded[0]
			if ss.Name() != "agentwire.OnRequestHeaders" || ss.SpanKind() != trace.SpanKindServer ||
				ss.Parent().SpanID() != cs.SpanContext().SpanID() || !ss.Parent().IsRemote() ||
				ss.SpanContext().TraceID() != parent.TraceID() {
				t.Errorf("server span %q kind %v parent %v", ss.Name(), ss.SpanKind(), ss.Parent())
			}
			wantAttrs(t, "server", ss, map[string]string{"agentwire.agent": "traced", "agentwire.event": "request_headers",
				"agentwire.correlation_id": "span-1", "agentwire.decision": "allow", "agentwire.outcome": "ok"})
			// The handler's context carries the server span.
			if !sameSpan(got.sc, ss.SpanContext()) {
				t.Errorf("handler span context %v, want the server span %v", got.sc, ss.SpanContext())
			}

			// A failed call.
			_ = c.Close()
			if _, err := c.RequestHeaders(ctx, headersEvent("span-2")); err == nil {
				t.Fatal("call on a closed Conn succeeded")
			}
			ended = client.Ended()
			if len(ended) != 2 {
				t.Fatalf("%d client spans, want 2", len(ended))
			}
			fs := ended[1]
			wantAttrs(t, "failed client", fs, map[string]string{"agentwire.outcome": "closed", "agentwire.correlation_id": "span-2"})
			if fs.Status().Code.String() != "Error" {
				t.Errorf("failed call: span status %v", fs.Status())
			}
		})
	}
}

func wantAttrs(t *testing.T, what string, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, kv := range s.Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s span: attribute %s = %q, want %q (all: %v)", what, k, got[k], v, got)
		}
	}
}

// TestWithTracerProviderNil: a nil provider is an invalid configuration.
func TestWithTracerProviderNil(t *testing.T) {
	_, err := NewConn("unix://"+sockPath(t), WithTracerProvider(nil))
	mustKind(t, err, ErrInvalidConfig)
}
