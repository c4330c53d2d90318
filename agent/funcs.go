package agent

import (
	"context"
	"encoding/json"

	"github.com/agentwire/agentwire"
)

// Funcs is a Handler made of functions: one field per event and per
// optional hook. Unlike a type that embeds BaseHandler, where a misspelt
// method (OnRequestHeader) compiles and silently leaves the event to
// BaseHandler's allow, a misspelt field name does not compile.
//
// Defaults: an event field left nil answers the pre-initialised allow
// reply (like BaseHandler); a hook field left nil is no hook at all: the
// server behaves exactly as for a handler without that hook interface
// (for example, without Configure a Unix-socket Configure event is
// answered allow and the configuration is ignored; without Handshake every
// proxy offering version 2 is accepted).
//
// Funcs implements Handler, Handshaker, Configurer, Canceller, Drainer and
// Shutdowner. The fields' contracts are those of the interface methods of
// the same name with an On prefix (see Handler and the hook interfaces):
// the functions are called concurrently and must not retain their
// arguments. NewServer(f, …) copies f, so later changes to the variable do
// not reach the server; with a *Funcs the fields must not change while a
// server uses it.
//
// The announced capabilities list every event by default, so a proxy sends
// events even for nil fields (they are answered allow). To announce exactly
// the events with a function, pass WithSupportedEvents(f.Events()...).
type Funcs struct {
	// RequestHeaders is OnRequestHeaders.
	RequestHeaders func(ctx context.Context, ev *agentwire.RequestHeadersEvent, resp *agentwire.AgentResponse) error
	// RequestBodyChunk is OnRequestBodyChunk.
	RequestBodyChunk func(ctx context.Context, ev *agentwire.BodyChunk, resp *agentwire.AgentResponse) error
	// ResponseHeaders is OnResponseHeaders.
	ResponseHeaders func(ctx context.Context, ev *agentwire.ResponseHeadersEvent, resp *agentwire.AgentResponse) error
	// ResponseBodyChunk is OnResponseBodyChunk.
	ResponseBodyChunk func(ctx context.Context, ev *agentwire.BodyChunk, resp *agentwire.AgentResponse) error
	// RequestComplete is OnRequestComplete.
	RequestComplete func(ctx context.Context, ev *agentwire.RequestCompleteEvent, resp *agentwire.AgentResponse) error
	// WebSocketFrame is OnWebSocketFrame.
	WebSocketFrame func(ctx context.Context, ev *agentwire.WebSocketFrameEvent, resp *agentwire.AgentResponse) error
	// GuardrailInspect is OnGuardrailInspect.
	GuardrailInspect func(ctx context.Context, ev *agentwire.GuardrailInspectEvent, resp *agentwire.AgentResponse) error

	// Handshake is Handshaker.OnHandshake.
	Handshake func(ctx context.Context, req *agentwire.HandshakeRequest, resp *agentwire.HandshakeResponse) error
	// Configure is Configurer.OnConfigure.
	Configure func(ctx context.Context, config json.RawMessage, version string) error
	// Cancel is Canceller.OnCancel.
	Cancel func(ctx context.Context, c agentwire.Cancel)
	// Drain is Drainer.OnDrain.
	Drain func(ctx context.Context, n DrainNotice)
	// Shutdown is Shutdowner.OnShutdown.
	Shutdown func(ctx context.Context, n ShutdownNotice)
}

var (
	_ Handler    = Funcs{}
	_ Handshaker = Funcs{}
	_ Configurer = Funcs{}
	_ Canceller  = Funcs{}
	_ Drainer    = Funcs{}
	_ Shutdowner = Funcs{}
)

// OnRequestHeaders calls f.RequestHeaders, or allows when it is nil.
func (f Funcs) OnRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, resp *agentwire.AgentResponse) error {
	if f.RequestHeaders == nil {
		return nil
	}
	return f.RequestHeaders(ctx, ev, resp)
}

// OnRequestBodyChunk calls f.RequestBodyChunk, or allows when it is nil.
func (f Funcs) OnRequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, resp *agentwire.AgentResponse) error {
	if f.RequestBodyChunk == nil {
		return nil
	}
	return f.RequestBodyChunk(ctx, ev, resp)
}

// OnResponseHeaders calls f.ResponseHeaders, or allows when it is nil.
func (f Funcs) OnResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent, resp *agentwire.AgentResponse) error {
	if f.ResponseHeaders == nil {
		return nil
	}
	return f.ResponseHeaders(ctx, ev, resp)
}

// OnResponseBodyChunk calls f.ResponseBodyChunk, or allows when it is nil.
func (f Funcs) OnResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, resp *agentwire.AgentResponse) error {
	if f.ResponseBodyChunk == nil {
		return nil
	}
	return f.ResponseBodyChunk(ctx, ev, resp)
}

// OnRequestComplete calls f.RequestComplete, or allows when it is nil.
func (f Funcs) OnRequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent, resp *agentwire.AgentResponse) error {
	if f.RequestComplete == nil {
		return nil
	}
	return f.RequestComplete(ctx, ev, resp)
}

// OnWebSocketFrame calls f.WebSocketFrame, or allows when it is nil.
func (f Funcs) OnWebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent, resp *agentwire.AgentResponse) error {
	if f.WebSocketFrame == nil {
		return nil
	}
	return f.WebSocketFrame(ctx, ev, resp)
}

// OnGuardrailInspect calls f.GuardrailInspect, or allows (nothing detected)
// when it is nil.
func (f Funcs) OnGuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent, resp *agentwire.AgentResponse) error {
	if f.GuardrailInspect == nil {
		return nil
	}
	return f.GuardrailInspect(ctx, ev, resp)
}

// OnHandshake calls f.Handshake; when it is nil it accepts (leaves resp
// unchanged). A Server never calls it then (see hooks).
func (f Funcs) OnHandshake(ctx context.Context, req *agentwire.HandshakeRequest, resp *agentwire.HandshakeResponse) error {
	if f.Handshake == nil {
		return nil
	}
	return f.Handshake(ctx, req, resp)
}

// OnConfigure calls f.Configure; when it is nil it accepts and ignores the
// configuration. A Server never calls it then.
func (f Funcs) OnConfigure(ctx context.Context, config json.RawMessage, version string) error {
	if f.Configure == nil {
		return nil
	}
	return f.Configure(ctx, config, version)
}

// OnCancel calls f.Cancel, if set.
func (f Funcs) OnCancel(ctx context.Context, c agentwire.Cancel) {
	if f.Cancel != nil {
		f.Cancel(ctx, c)
	}
}

// OnDrain calls f.Drain, if set.
func (f Funcs) OnDrain(ctx context.Context, n DrainNotice) {
	if f.Drain != nil {
		f.Drain(ctx, n)
	}
}

// OnShutdown calls f.Shutdown, if set.
func (f Funcs) OnShutdown(ctx context.Context, n ShutdownNotice) {
	if f.Shutdown != nil {
		f.Shutdown(ctx, n)
	}
}

// Events returns the event type codes (gRPC numbering, as
// WithSupportedEvents takes them) of the fields that are set, in code
// order: agentwire.EventRequestHeaders for RequestHeaders, …,
// agentwire.EventGuardrailInspect for GuardrailInspect, and
// agentwire.EventConfigureGRPC when Configure is set (configure events are
// delivered to the Configure hook). The result is a new slice.
func (f Funcs) Events() []int32 {
	out := make([]int32, 0, 8)
	for _, e := range [...]struct {
		set  bool
		code int32
	}{
		{f.RequestHeaders != nil, agentwire.EventRequestHeaders},
		{f.RequestBodyChunk != nil, agentwire.EventRequestBodyChunk},
		{f.ResponseHeaders != nil, agentwire.EventResponseHeaders},
		{f.ResponseBodyChunk != nil, agentwire.EventResponseBodyChunk},
		{f.RequestComplete != nil, agentwire.EventRequestComplete},
		{f.WebSocketFrame != nil, agentwire.EventWebSocketFrame},
		{f.GuardrailInspect != nil, agentwire.EventGuardrailInspect},
		{f.Configure != nil, agentwire.EventConfigureGRPC},
	} {
		if e.set {
			out = append(out, e.code)
		}
	}
	return out
}

// hooks reports the set hook fields only, so that the server treats a nil
// field exactly like a missing hook interface.
func (f Funcs) hooks() hookSet {
	var k hookSet
	if f.Handshake != nil {
		k.handshaker = handshakeFunc(f.Handshake)
	}
	if f.Configure != nil {
		k.configurer = configureFunc(f.Configure)
	}
	if f.Cancel != nil {
		k.canceller = cancelFunc(f.Cancel)
	}
	if f.Drain != nil {
		k.drainer = drainFunc(f.Drain)
	}
	if f.Shutdown != nil {
		k.shutdowner = shutdownFunc(f.Shutdown)
	}
	return k
}

// Single-hook adapters for Funcs.hooks.
type (
	handshakeFunc func(context.Context, *agentwire.HandshakeRequest, *agentwire.HandshakeResponse) error
	configureFunc func(context.Context, json.RawMessage, string) error
	cancelFunc    func(context.Context, agentwire.Cancel)
	drainFunc     func(context.Context, DrainNotice)
	shutdownFunc  func(context.Context, ShutdownNotice)
)

func (f handshakeFunc) OnHandshake(ctx context.Context, req *agentwire.HandshakeRequest, resp *agentwire.HandshakeResponse) error {
	return f(ctx, req, resp)
}

func (f configureFunc) OnConfigure(ctx context.Context, config json.RawMessage, version string) error {
	return f(ctx, config, version)
}

func (f cancelFunc) OnCancel(ctx context.Context, c agentwire.Cancel)   { f(ctx, c) }
func (f drainFunc) OnDrain(ctx context.Context, n DrainNotice)          { f(ctx, n) }
func (f shutdownFunc) OnShutdown(ctx context.Context, n ShutdownNotice) { f(ctx, n) }

// hookSet is the optional hooks a server uses; nil members are absent.
type hookSet struct {
	handshaker Handshaker
	configurer Configurer
	canceller  Canceller
	drainer    Drainer
	shutdowner Shutdowner
}

// hooksOf returns h's hooks. For Funcs and the handlers of Wrap, which have
// every hook method, only the hooks they really have (set fields, the
// wrapped handler's hooks); for any other handler, the hook interfaces it
// implements. Only these exact types are asked: a user type that embeds a
// Funcs and defines its own hook methods gets those methods.
func hooksOf(h Handler) hookSet {
	switch v := h.(type) {
	case Funcs:
		return v.hooks()
	case *Funcs:
		if v == nil {
			return hookSet{}
		}
		return v.hooks()
	case *wrapped:
		return v.hk
	}
	var k hookSet
	k.handshaker, _ = h.(Handshaker)
	k.configurer, _ = h.(Configurer)
	k.canceller, _ = h.(Canceller)
	k.drainer, _ = h.(Drainer)
	k.shutdowner, _ = h.(Shutdowner)
	return k
}
