package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/agentwire/agentwire"
)

// kindRecorder is a Handler that records which method each call reached.
type kindRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (k *kindRecorder) note(s string) error {
	k.mu.Lock()
	k.seen = append(k.seen, s)
	k.mu.Unlock()
	return nil
}

func (k *kindRecorder) OnRequestHeaders(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
	return k.note("request_headers " + ev.URI)
}

func (k *kindRecorder) OnRequestBodyChunk(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error {
	return k.note("request_body")
}

func (k *kindRecorder) OnResponseHeaders(context.Context, *agentwire.ResponseHeadersEvent, *agentwire.AgentResponse) error {
	return k.note("response_headers")
}

func (k *kindRecorder) OnResponseBodyChunk(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error {
	return k.note("response_body")
}

func (k *kindRecorder) OnRequestComplete(context.Context, *agentwire.RequestCompleteEvent, *agentwire.AgentResponse) error {
	return k.note("request_complete")
}

func (k *kindRecorder) OnWebSocketFrame(context.Context, *agentwire.WebSocketFrameEvent, *agentwire.AgentResponse) error {
	return k.note("websocket")
}

func (k *kindRecorder) OnGuardrailInspect(context.Context, *agentwire.GuardrailInspectEvent, *agentwire.AgentResponse) error {
	return k.note("guardrail")
}

// callAll calls every Handler method of h once.
func callAll(h Handler) []error {
	ctx := context.Background()
	var r agentwire.AgentResponse
	return []error{
		h.OnRequestHeaders(ctx, &agentwire.RequestHeadersEvent{URI: "/u"}, &r),
		h.OnRequestBodyChunk(ctx, &agentwire.BodyChunk{}, &r),
		h.OnResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{}, &r),
		h.OnResponseBodyChunk(ctx, &agentwire.BodyChunk{}, &r),
		h.OnRequestComplete(ctx, &agentwire.RequestCompleteEvent{}, &r),
		h.OnWebSocketFrame(ctx, &agentwire.WebSocketFrameEvent{}, &r),
		h.OnGuardrailInspect(ctx, &agentwire.GuardrailInspectEvent{}, &r),
	}
}

// TestWrapOrderAndEvents: Wrap(h, a, b) runs a, then b, then h's method
// for the event; every event reaches the middleware with its Kind and only
// its pointer set, and then the right method of h.
func TestWrapOrderAndEvents(t *testing.T) {
	var trace []string
	var mu sync.Mutex
	mw := func(name string) Middleware {
		return func(next HandlerFunc) HandlerFunc {
			return func(ctx context.Context, ev Event, r *agentwire.AgentResponse) error {
				set := 0
				for _, p := range []bool{ev.RequestHeaders != nil, ev.BodyChunk != nil, ev.ResponseHeaders != nil,
					ev.RequestComplete != nil, ev.WebSocketFrame != nil, ev.GuardrailInspect != nil} {
					if p {
						set++
					}
				}
				if set != 1 {
					t.Errorf("event kind %d has %d pointers set", ev.Kind, set)
				}
				mu.Lock()
				trace = append(trace, name)
				mu.Unlock()
				return next(ctx, ev, r)
			}
		}
	}
	rec := &kindRecorder{}
	var kinds []int32
	kindOf := func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, ev Event, r *agentwire.AgentResponse) error {
			kinds = append(kinds, ev.Kind)
			return next(ctx, ev, r)
		}
	}
	h := Wrap(rec, mw("a"), mw("b"), kindOf)
	for _, err := range callAll(h) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"a", "b"}; !slices.Equal(trace[:2], want) || len(trace) != 14 {
		t.Fatalf("trace %v, want a, b per event", trace)
	}
	if want := []int32{1, 2, 3, 4, 5, 6, 7}; !slices.Equal(kinds, want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	if want := []string{"request_headers /u", "request_body", "response_headers", "response_body", "request_complete", "websocket", "guardrail"}; !slices.Equal(rec.seen, want) {
		t.Fatalf("methods %v, want %v", rec.seen, want)
	}
}

// TestWrapShortCircuitAndErrors: a middleware may answer without calling
// next, and errors travel back through the chain to the server.
func TestWrapShortCircuitAndErrors(t *testing.T) {
	rec := &kindRecorder{}
	deny := func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, ev Event, r *agentwire.AgentResponse) error {
			if ev.Kind == agentwire.EventRequestHeaders && ev.RequestHeaders.URI == "/blocked" {
				r.Decision = agentwire.Block(403)
				return nil
			}
			if ev.Kind == agentwire.EventGuardrailInspect {
				return errors.New("no guardrails here")
			}
			return next(ctx, ev, r)
		}
	}
	h := Wrap(rec, deny)
	var r agentwire.AgentResponse
	if err := h.OnRequestHeaders(context.Background(), &agentwire.RequestHeadersEvent{URI: "/blocked"}, &r); err != nil || r.Decision.Status != 403 {
		t.Fatalf("short circuit: %v %+v", err, r)
	}
	if len(rec.seen) != 0 {
		t.Fatalf("handler reached: %v", rec.seen)
	}
	if err := h.OnGuardrailInspect(context.Background(), &agentwire.GuardrailInspectEvent{}, &r); err == nil {
		t.Fatal("middleware error lost")
	}
	// A middleware that passes on an inconsistent Kind gets an error, not a
	// call of the wrong method.
	bad := Wrap(rec, func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, ev Event, r *agentwire.AgentResponse) error {
			ev.Kind = 42
			return next(ctx, ev, r)
		}
	})
	if err := bad.OnRequestBodyChunk(context.Background(), &agentwire.BodyChunk{}, &r); err == nil || len(rec.seen) != 0 {
		t.Fatalf("unknown kind: err %v, methods %v", err, rec.seen)
	}
}

// TestWrapKeepsHooksExactly: a server sees exactly the hooks of the wrapped
// handler, through any depth of wrapping, and the wrapper's hook methods
// reach h's.
func TestWrapKeepsHooksExactly(t *testing.T) {
	pass := func(next HandlerFunc) HandlerFunc { return next }
	if got := hooksFor(t, Wrap(BaseHandler{}, pass)); len(got) != 0 {
		t.Fatalf("Wrap(BaseHandler) hooks = %v, want none", got)
	}
	f := Funcs{Cancel: func(context.Context, agentwire.Cancel) {}}
	if got := hooksFor(t, Wrap(Wrap(f, pass), pass)); !slices.Equal(got, []string{"cancel"}) {
		t.Fatalf("Wrap(Wrap(Funcs{Cancel})) hooks = %v, want [cancel]", got)
	}
	hh := newHookHandler()
	w := Wrap(hh, pass)
	if got := hooksFor(t, w); len(got) != 5 {
		t.Fatalf("Wrap(all hooks) hooks = %v, want all five", got)
	}
	ctx := context.Background()
	ww := w.(interface {
		Handshaker
		Configurer
		Canceller
		Drainer
		Shutdowner
	})
	if err := ww.OnHandshake(ctx, &agentwire.HandshakeRequest{ProxyID: "p"}, &agentwire.HandshakeResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := ww.OnConfigure(ctx, json.RawMessage(`{"k":1}`), "v1"); err != nil {
		t.Fatal(err)
	}
	ww.OnCancel(ctx, agentwire.Cancel{CorrelationID: "c"})
	ww.OnDrain(ctx, DrainNotice{DurationMS: 5})
	ww.OnShutdown(ctx, ShutdownNotice{GracePeriodMS: 6})
	for _, want := range []string{"handshake", "configure", "cancel", "drain", "shutdown"} {
		hh.waitCall(t, want)
	}
	hh.mu.Lock()
	defer hh.mu.Unlock()
	if hh.handshakes[0].ProxyID != "p" || hh.configs[0] != `v1={"k":1}` || hh.cancels[0].CorrelationID != "c" ||
		hh.drains[0].DurationMS != 5 || hh.shutdowns[0].GracePeriodMS != 6 {
		t.Fatalf("hook arguments lost: %+v", hh)
	}
	// Hooks h lacks do nothing when called directly.
	nw := Wrap(BaseHandler{}, pass).(Configurer)
	if err := nw.OnConfigure(ctx, json.RawMessage(`{}`), ""); err != nil {
		t.Fatal(err)
	}
}

// TestWrapArguments: no middleware returns h itself; nil arguments panic
// with ErrInvalidConfig.
func TestWrapArguments(t *testing.T) {
	h := &kindRecorder{}
	if Wrap(h) != Handler(h) {
		t.Fatal("Wrap without middleware is not h")
	}
	for name, f := range map[string]func(){
		"nil handler":    func() { Wrap(nil, func(n HandlerFunc) HandlerFunc { return n }) },
		"nil middleware": func() { Wrap(h, nil) },
		"nil result":     func() { Wrap(h, func(HandlerFunc) HandlerFunc { return nil }) },
	} {
		func() {
			defer func() {
				err, _ := recover().(error)
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("%s: panic %v, want an ErrInvalidConfig", name, err)
				}
			}()
			f()
		}()
	}
}
