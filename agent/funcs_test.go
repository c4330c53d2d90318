package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// hookNames lists which hooks a server found.
func hookNames(s *Server) []string {
	var out []string
	if s.handshaker != nil {
		out = append(out, "handshake")
	}
	if s.configurer != nil {
		out = append(out, "configure")
	}
	if s.canceller != nil {
		out = append(out, "cancel")
	}
	if s.drainer != nil {
		out = append(out, "drain")
	}
	if s.shutdowner != nil {
		out = append(out, "shutdown")
	}
	return out
}

func hooksFor(t *testing.T, h Handler) []string {
	t.Helper()
	s := NewServer(h)
	defer s.Close()
	return hookNames(s)
}

// TestFuncsZeroValue: an empty Funcs allows every event without touching
// the reply, and a server sees none of its hooks (a nil field is no hook).
func TestFuncsZeroValue(t *testing.T) {
	var f Funcs
	ctx := context.Background()
	resp := agentwire.AgentResponse{CorrelationID: "c", Version: 2}
	want := resp
	for name, err := range map[string]error{
		"request headers":    f.OnRequestHeaders(ctx, &agentwire.RequestHeadersEvent{}, &resp),
		"request body":       f.OnRequestBodyChunk(ctx, &agentwire.BodyChunk{}, &resp),
		"response headers":   f.OnResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{}, &resp),
		"response body":      f.OnResponseBodyChunk(ctx, &agentwire.BodyChunk{}, &resp),
		"request complete":   f.OnRequestComplete(ctx, &agentwire.RequestCompleteEvent{}, &resp),
		"websocket":          f.OnWebSocketFrame(ctx, &agentwire.WebSocketFrameEvent{}, &resp),
		"guardrail":          f.OnGuardrailInspect(ctx, &agentwire.GuardrailInspectEvent{}, &resp),
		"handshake (direct)": f.OnHandshake(ctx, &agentwire.HandshakeRequest{}, &agentwire.HandshakeResponse{}),
		"configure (direct)": f.OnConfigure(ctx, json.RawMessage(`{}`), ""),
	} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	f.OnCancel(ctx, agentwire.Cancel{})
	f.OnDrain(ctx, DrainNotice{})
	f.OnShutdown(ctx, ShutdownNotice{})
	if resp.CorrelationID != want.CorrelationID || resp.Version != want.Version || resp.Decision.Kind != agentwire.DecisionAllow ||
		len(resp.RequestHeaders) != 0 || len(resp.Audit.Tags) != 0 {
		t.Fatalf("reply changed: %+v", resp)
	}
	if got := hooksFor(t, f); len(got) != 0 {
		t.Fatalf("hooks of Funcs{} = %v, want none", got)
	}
	if got := hooksFor(t, &f); len(got) != 0 {
		t.Fatalf("hooks of &Funcs{} = %v, want none", got)
	}
	if ev := f.Events(); len(ev) != 0 {
		t.Fatalf("Events of Funcs{} = %v", ev)
	}
}

// TestFuncsHooksExactly: a server sees exactly the hook fields that are set.
func TestFuncsHooksExactly(t *testing.T) {
	f := Funcs{
		Configure: func(context.Context, json.RawMessage, string) error { return nil },
		Drain:     func(context.Context, DrainNotice) {},
	}
	if got := hooksFor(t, f); !slices.Equal(got, []string{"configure", "drain"}) {
		t.Fatalf("hooks = %v, want [configure drain]", got)
	}
	f.Handshake = func(context.Context, *agentwire.HandshakeRequest, *agentwire.HandshakeResponse) error { return nil }
	f.Cancel = func(context.Context, agentwire.Cancel) {}
	f.Shutdown = func(context.Context, ShutdownNotice) {}
	if got := hooksFor(t, f); len(got) != 5 {
		t.Fatalf("hooks = %v, want all five", got)
	}
}

// ownConfigure embeds a Funcs and defines its own OnConfigure: the server
// must call that method, not look at the embedded Funcs' nil field.
type ownConfigure struct {
	Funcs
	got chan string
}

func (o ownConfigure) OnConfigure(_ context.Context, cfg json.RawMessage, _ string) error {
	o.got <- string(cfg)
	return nil
}

func TestFuncsEmbeddedWithOwnHook(t *testing.T) {
	o := ownConfigure{got: make(chan string, 1)}
	s := NewServer(o)
	defer s.Close()
	if s.configurer == nil {
		t.Fatal("the embedding type's OnConfigure is not seen")
	}
	if err := s.configure(context.Background(), []byte(`{"a":1}`), "v"); err != nil {
		t.Fatal(err)
	}
	if got := <-o.got; got != `{"a":1}` {
		t.Fatalf("OnConfigure got %s", got)
	}
}

// TestFuncsServeUDS: a Funcs serves a Unix-socket connection end to end:
// its handshake, configure, event and cancel functions are called, unset
// events are allowed, and WithSupportedEvents(f.Events()...) announces
// exactly the set events (Configure as 0 on this transport).
func TestFuncsServeUDS(t *testing.T) {
	calls := make(chan string, 16)
	started := make(chan struct{}, 1)
	f := Funcs{
		RequestHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			if ev.URI == "/slow" {
				started <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			}
			r.Decision = agentwire.Block(451)
			return nil
		},
		GuardrailInspect: func(context.Context, *agentwire.GuardrailInspectEvent, *agentwire.AgentResponse) error {
			return errors.New("not reached")
		},
		Handshake: func(_ context.Context, req *agentwire.HandshakeRequest, _ *agentwire.HandshakeResponse) error {
			calls <- "handshake " + req.ProxyID
			return nil
		},
		Configure: func(_ context.Context, cfg json.RawMessage, version string) error {
			calls <- "configure " + version + " " + string(cfg)
			return nil
		},
		Cancel: func(_ context.Context, c agentwire.Cancel) { calls <- "cancel " + c.CorrelationID },
	}
	if got := f.Events(); !slices.Equal(got, []int32{agentwire.EventRequestHeaders, agentwire.EventGuardrailInspect, agentwire.EventConfigureGRPC}) {
		t.Fatalf("Events = %v", got)
	}
	e := startUDS(t, f, WithSupportedEvents(f.Events()...))
	p := dialRaw(t, e.path)
	hs := p.handshake("json")
	if got := hs.Capabilities.SupportedEvents; !slices.Equal(got, []int32{1, 7, 0}) {
		t.Fatalf("announced events %v, want [1 7 0]", got)
	}
	if got := recvTimeout(t, calls, "handshake"); got != "handshake zentinel-proxy" {
		t.Fatalf("call %q", got)
	}
	p.send(frame.TypeConfigure, []byte(`{"config":{"x":1},"config_version":"v9","correlation_id":"cfg"}`))
	if r := p.recvReply(false); r.CorrelationID != "cfg" || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("configure reply %+v", r)
	}
	if got := recvTimeout(t, calls, "configure"); got != `configure v9 {"x":1}` {
		t.Fatalf("call %q", got)
	}
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("f-1", "/"))
	if r := p.recvReply(false); r.CorrelationID != "f-1" || r.Decision.Status != 451 {
		t.Fatalf("reply %+v", r)
	}
	// An event without a function is allowed.
	p.send(frame.TypeRequestBodyChunk, []byte(`{"correlation_id":"f-2","data":"","is_last":true}`))
	if r := p.recvReply(false); r.CorrelationID != "f-2" || r.Decision.Kind != agentwire.DecisionAllow || len(r.Audit.Tags) != 0 {
		t.Fatalf("reply %+v", r)
	}
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("f-3", "/slow"))
	recvTimeout(t, started, "slow handler start")
	p.send(frame.TypeCancel, []byte(`{"correlation_id":"f-3","reason":0,"timestamp_ms":1}`))
	if got := recvTimeout(t, calls, "cancel"); got != "cancel f-3" {
		t.Fatalf("call %q", got)
	}
	if r := p.recvReply(false); r.CorrelationID != "f-3" || !slices.Equal(r.Audit.Tags, []string{TagHandlerError}) {
		t.Fatalf("cancelled reply %+v", r)
	}
}

// TestSupportedEventsOption: WithSupportedEvents replaces the list of the
// default capabilities and of WithCapabilities, in either option order, and
// keeps its own copy.
func TestSupportedEventsOption(t *testing.T) {
	codes := []int32{agentwire.EventRequestBodyChunk, agentwire.EventRequestHeaders}
	caps := agentwire.Capabilities{SupportedEvents: []int32{agentwire.EventWebSocketFrame}, Limits: agentwire.DefaultLimits()}
	for _, order := range []string{"default caps", "caps first", "supported events first"} {
		opt := WithSupportedEvents(codes...)
		codes[0] = 99 // the option copied its arguments
		var opts []Option
		switch order {
		case "default caps":
			opts = []Option{opt}
		case "caps first":
			opts = []Option{WithCapabilities(caps), opt}
		default:
			opts = []Option{opt, WithCapabilities(caps)}
		}
		s := NewServer(BaseHandler{}, opts...)
		codes[0] = agentwire.EventRequestBodyChunk
		got := s.Capabilities().SupportedEvents
		s.Close()
		if !slices.Equal(got, []int32{2, 1}) {
			t.Errorf("%s: supported events %v, want [2 1]", order, got)
		}
	}
	s := NewServer(BaseHandler{}, WithSupportedEvents())
	defer s.Close()
	if got := s.Capabilities().SupportedEvents; len(got) != 0 {
		t.Fatalf("empty list: %v", got)
	}
}
