package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
)

// Event is one event as a Middleware sees it: Kind says which event it is
// and which pointer field is set (the others are nil). The pointers are the
// server's and are only valid until the call returns, like the arguments
// of the Handler methods.
type Event struct {
	// Kind is the event's type code in gRPC numbering:
	// agentwire.EventRequestHeaders … agentwire.EventGuardrailInspect.
	Kind int32
	// RequestHeaders is set for agentwire.EventRequestHeaders.
	RequestHeaders *agentwire.RequestHeadersEvent
	// BodyChunk is set for agentwire.EventRequestBodyChunk and
	// agentwire.EventResponseBodyChunk.
	BodyChunk *agentwire.BodyChunk
	// ResponseHeaders is set for agentwire.EventResponseHeaders.
	ResponseHeaders *agentwire.ResponseHeadersEvent
	// RequestComplete is set for agentwire.EventRequestComplete.
	RequestComplete *agentwire.RequestCompleteEvent
	// WebSocketFrame is set for agentwire.EventWebSocketFrame.
	WebSocketFrame *agentwire.WebSocketFrameEvent
	// GuardrailInspect is set for agentwire.EventGuardrailInspect.
	GuardrailInspect *agentwire.GuardrailInspectEvent
}

// HandlerFunc handles any event: the form of a Handler that Middleware
// wraps. resp is the reply, pre-initialised as for the Handler methods
// (resp.CorrelationID is the event's correlation id).
type HandlerFunc func(ctx context.Context, ev Event, resp *agentwire.AgentResponse) error

// Middleware wraps the event handling of a Handler (see Wrap): it returns
// a HandlerFunc that may act before and after calling next (or instead of
// it), e.g. to time, log, count or short-circuit events, or to recover
// panics itself. It is called once per Wrap, not per event; the HandlerFunc
// it returns is called concurrently. A Middleware that calls next with a
// different Event must keep Kind and the matching pointer field consistent.
type Middleware func(next HandlerFunc) HandlerFunc

// Wrap returns a Handler that passes every event through mw and then to h:
// Wrap(h, a, b) runs a, which calls b, which calls h's method for the
// event. Without middleware it returns h itself.
//
// The optional hooks are not wrapped, and they are kept exactly: the
// returned handler forwards OnHandshake, OnConfigure, OnCancel, OnDrain and
// OnShutdown to h when h has that hook, and a Server sees precisely the
// hooks h has (also when h is a Funcs or another Wrap), so wrapping never
// adds or removes a hook. (For the Go type system the returned value has
// all five hook methods; called directly, a hook h lacks does nothing and
// returns nil.)
//
// Wrap panics, with an error satisfying errors.Is(err, ErrInvalidConfig),
// if h or one of mw is nil. The returned handler is safe for concurrent use
// if h and the middleware are. A wrapped call costs one indirect call per
// middleware and no allocation of its own.
func Wrap(h Handler, mw ...Middleware) Handler {
	if h == nil {
		panic(invalidConfig(errors.New("agentwire: Wrap of a nil Handler")))
	}
	for i, m := range mw {
		if m == nil {
			panic(invalidConfig(fmt.Errorf("agentwire: Wrap: middleware %d is nil", i)))
		}
	}
	if len(mw) == 0 {
		return h
	}
	next := handlerFuncOf(h)
	for i := len(mw) - 1; i >= 0; i-- {
		next = mw[i](next)
		if next == nil {
			panic(invalidConfig(fmt.Errorf("agentwire: Wrap: middleware %d returned a nil HandlerFunc", i)))
		}
	}
	return &wrapped{chain: next, hk: hooksOf(h)}
}

// handlerFuncOf calls h's method for each event kind.
func handlerFuncOf(h Handler) HandlerFunc {
	return func(ctx context.Context, ev Event, resp *agentwire.AgentResponse) error {
		switch ev.Kind {
		case agentwire.EventRequestHeaders:
			return h.OnRequestHeaders(ctx, ev.RequestHeaders, resp)
		case agentwire.EventRequestBodyChunk:
			return h.OnRequestBodyChunk(ctx, ev.BodyChunk, resp)
		case agentwire.EventResponseHeaders:
			return h.OnResponseHeaders(ctx, ev.ResponseHeaders, resp)
		case agentwire.EventResponseBodyChunk:
			return h.OnResponseBodyChunk(ctx, ev.BodyChunk, resp)
		case agentwire.EventRequestComplete:
			return h.OnRequestComplete(ctx, ev.RequestComplete, resp)
		case agentwire.EventWebSocketFrame:
			return h.OnWebSocketFrame(ctx, ev.WebSocketFrame, resp)
		case agentwire.EventGuardrailInspect:
			return h.OnGuardrailInspect(ctx, ev.GuardrailInspect, resp)
		}
		return fmt.Errorf("agentwire: middleware passed an event of unknown kind %d", ev.Kind)
	}
}

// wrapped is the Handler returned by Wrap.
type wrapped struct {
	chain HandlerFunc // the middleware, then the wrapped handler
	hk    hookSet     // the wrapped handler's hooks
}

func (w *wrapped) OnRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, resp *agentwire.AgentResponse) error {
	return w.chain(ctx, Event{Kind: agentwire.EventRequestHeaders, RequestHeaders: ev}, resp)
}

func (w *wrapped) OnRequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, resp *agentwire.AgentResponse) error {
	return w.chain(ctx, Event{Kind: agentwire.EventRequestBodyChunk, BodyChunk: ev}, resp)
}

func (w *wrapped) OnResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent, resp *agentwire.AgentResponse) error {
	return w.chain(ctx, Event{Kind: agentwire.EventResponseHeaders, ResponseHeaders: ev}, resp)
}

func (w *wrapped) OnResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, resp *agentwire.AgentResponse) error {
	return w.chain(ctx, Event{Kind: agentwire.EventResponseBodyChunk, BodyChunk: ev}, resp)
}

func (w *wrapped) OnRequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent, resp *agentwire.AgentResponse) error {
	return w.chain(ctx, Event{Kind: agentwire.EventRequestComplete, RequestComplete: ev}, resp)
}

func (w *wrapped) OnWebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent, resp *agentwire.AgentResponse) error {
	return w.chain(ctx, Event{Kind: agentwire.EventWebSocketFrame, WebSocketFrame: ev}, resp)
}

func (w *wrapped) OnGuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent, resp *agentwire.AgentResponse) error {
	return w.chain(ctx, Event{Kind: agentwire.EventGuardrailInspect, GuardrailInspect: ev}, resp)
}

func (w *wrapped) OnHandshake(ctx context.Context, req *agentwire.HandshakeRequest, resp *agentwire.HandshakeResponse) error {
	if w.hk.handshaker == nil {
		return nil
	}
	return w.hk.handshaker.OnHandshake(ctx, req, resp)
}

func (w *wrapped) OnConfigure(ctx context.Context, config json.RawMessage, version string) error {
	if w.hk.configurer == nil {
		return nil
	}
	return w.hk.configurer.OnConfigure(ctx, config, version)
}

func (w *wrapped) OnCancel(ctx context.Context, c agentwire.Cancel) {
	if w.hk.canceller != nil {
		w.hk.canceller.OnCancel(ctx, c)
	}
}

func (w *wrapped) OnDrain(ctx context.Context, n DrainNotice) {
	if w.hk.drainer != nil {
		w.hk.drainer.OnDrain(ctx, n)
	}
}

func (w *wrapped) OnShutdown(ctx context.Context, n ShutdownNotice) {
	if w.hk.shutdowner != nil {
		w.hk.shutdowner.OnShutdown(ctx, n)
	}
}
