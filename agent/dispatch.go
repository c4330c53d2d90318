package agent

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"

	"github.com/agentwire/agentwire"
)

// This file is the transport-independent core: one exchange per event,
// the per-connection in-flight table used for cancellation and the handler
// invocation with its fallback rules. The gRPC transport (grpc.go) and other
// transports embed an exchange in their own per-event state.

// eventKind says which Handler method an exchange is for.
type eventKind uint8

const (
	kindNone eventKind = iota
	kindRequestHeaders
	kindRequestBodyChunk
	kindResponseHeaders
	kindResponseBodyChunk
	kindRequestComplete
	kindWebSocketFrame
	kindGuardrailInspect
)

// exchange is one event and its reply. The event fields are reused between
// events (their slices keep capacity); only the one selected by kind is
// meaningful.
type exchange struct {
	kind eventKind
	cid  string

	ctx    context.Context
	cancel context.CancelFunc
	// rc, when set, is ctx as an allocation-free request context
	// (reqctx.go, Unix-socket transport); cancel is then nil.
	rc *reqCtx
	// dup chains exchanges with the same correlation id in one connection's
	// in-flight table (the newest first). Guarded by the table's mutex.
	dup *exchange
	// run, when set, collects the event's counters for its inline reader
	// to publish (eventrun.go) instead of the server's counters directly.
	run *eventRun

	reqHeaders  agentwire.RequestHeadersEvent
	body        agentwire.BodyChunk
	respHeaders agentwire.ResponseHeadersEvent
	complete    agentwire.RequestCompleteEvent
	ws          agentwire.WebSocketFrameEvent
	guard       agentwire.GuardrailInspectEvent

	resp agentwire.AgentResponse
	// Backing storage for resp's header operations. resp's slices are reset
	// to these on every event, never to whatever slice a handler left there
	// (it may be shared by the handler with other goroutines).
	reqOps  [4]agentwire.HeaderOp
	respOps [4]agentwire.HeaderOp
}

// resetResp pre-initialises x.resp: allow, the correlation id, version 2.
// The reply is cleared in place and then given its four fields: a
// composite literal with them is built on the stack and copied (400
// bytes written twice per event, 4% of the echo agent's time).
func (x *exchange) resetResp() {
	r := &x.resp
	*r = agentwire.AgentResponse{}
	r.CorrelationID = x.cid
	r.Version = agentwire.ProtocolVersion
	r.RequestHeaders = x.reqOps[:0]
	r.ResponseHeaders = x.respOps[:0]
}

// scrub drops the strings and aliased bytes x holds from its last event
// (of kind x.kind; every event struct when the kind is unknown) and reply,
// keeping only the capacity of its header storage, so that a pooled
// exchange does not pin received messages. Call it before resetting kind.
func (x *exchange) scrub() {
	switch x.kind {
	case kindRequestHeaders:
		x.reqHeaders = agentwire.RequestHeadersEvent{Headers: scrubHeaders(x.reqHeaders.Headers)}
	case kindResponseHeaders:
		x.respHeaders = agentwire.ResponseHeadersEvent{Headers: scrubHeaders(x.respHeaders.Headers)}
	case kindRequestBodyChunk, kindResponseBodyChunk:
		x.body = agentwire.BodyChunk{}
	case kindRequestComplete:
		x.complete = agentwire.RequestCompleteEvent{}
	case kindWebSocketFrame:
		x.ws = agentwire.WebSocketFrameEvent{}
	case kindGuardrailInspect:
		x.guard = agentwire.GuardrailInspectEvent{}
	default:
		x.reqHeaders = agentwire.RequestHeadersEvent{Headers: scrubHeaders(x.reqHeaders.Headers)}
		x.respHeaders = agentwire.ResponseHeadersEvent{Headers: scrubHeaders(x.respHeaders.Headers)}
		x.body = agentwire.BodyChunk{}
		x.complete = agentwire.RequestCompleteEvent{}
		x.ws = agentwire.WebSocketFrameEvent{}
		x.guard = agentwire.GuardrailInspectEvent{}
	}
	x.resp = agentwire.AgentResponse{}
	clear(x.reqOps[:])
	clear(x.respOps[:])
}

// scrubHeaders clears the slots of hs the last event used (names and
// values), keeping the storage for reuse. The slots past len(hs) are clean
// already: every event is scrubbed when its call is released, and the
// decoders only write slots below the length they leave.
func scrubHeaders(hs agentwire.Headers) agentwire.Headers {
	for i := range hs {
		hs[i].Name = ""
		clear(hs[i].Values)
		hs[i].Values = hs[i].Values[:0]
	}
	return hs[:0]
}

// inflightTable maps correlation ids to the exchanges being handled on one
// connection, so that a cancel can reach their contexts. Safe for concurrent
// use.
type inflightTable struct {
	mu sync.Mutex
	// m holds the newest exchange per id; older ones with the same id hang
	// off its dup chain.
	m map[string]*exchange
}

func (t *inflightTable) add(x *exchange) {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[string]*exchange)
	}
	x.dup = t.m[x.cid]
	t.m[x.cid] = x
	t.mu.Unlock()
}

func (t *inflightTable) remove(x *exchange) {
	t.mu.Lock()
	head := t.m[x.cid]
	switch {
	case head == x:
		if x.dup == nil {
			delete(t.m, x.cid)
		} else {
			t.m[x.cid] = x.dup
		}
	case head != nil:
		for p := head; p.dup != nil; p = p.dup {
			if p.dup == x {
				p.dup = x.dup
				break
			}
		}
	}
	x.dup = nil
	t.mu.Unlock()
}

// cancel cancels the context of every exchange with id cid and reports how
// many there were.
func (t *inflightTable) cancel(cid string) int {
	n := 0
	t.mu.Lock()
	for p := t.m[cid]; p != nil; p = p.dup {
		if p.rc != nil {
			p.rc.cancel(context.Canceled)
		} else {
			p.cancel()
		}
		n++
	}
	t.mu.Unlock()
	return n
}

// begin prepares x for its handler call: a request context derived from
// parent, registration in the in-flight table, the reply pre-initialised to
// allow with the correlation id, and the server's in-flight count.
func (s *Server) begin(parent context.Context, t *inflightTable, x *exchange) {
	x.ctx, x.cancel = context.WithCancel(parent)
	if t != nil {
		t.add(x)
	}
	x.resetResp()
	s.inflight.Add(1)
	s.stats.events.Add(1)
}

// beginWith is begin with an allocation-free request context from a
// connection's slab (reqctx.go) instead of context.WithCancel.
func (s *Server) beginWith(rc *reqCtx, t *inflightTable, x *exchange) {
	x.ctx, x.rc, x.cancel = rc, rc, nil
	if t != nil {
		t.add(x)
	}
	x.resetResp()
	s.inflight.Add(1)
	if x.run != nil {
		x.run.events++
	} else {
		s.stats.events.Add(1)
	}
}

// end releases what begin or beginWith acquired.
func (s *Server) end(t *inflightTable, x *exchange) {
	if t != nil {
		t.remove(x)
	}
	if x.rc != nil {
		x.rc.cancel(context.Canceled)
	} else {
		x.cancel()
	}
	x.ctx, x.cancel, x.rc = nil, nil, nil
	if s.inflight.Add(-1) == 0 && s.draining.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// invoke calls the handler for x and completes x.resp: on error or panic
// the reply is replaced by the error decision and tagged (handlerFailed);
// processing_time_ms is set.
//
// The handler's context carries the remote span context of a
// request-headers event's traceparent, and the server span with
// WithTracerProvider (trace.go).
func (s *Server) invoke(x *exchange) {
	if x.kind == kindRequestHeaders && x.reqHeaders.Metadata.Traceparent != "" {
		remoteParent(x)
	}
	if tr := s.cfg.tracing.tracer; tr != nil {
		s.tracedInvoke(tr, x)
		return
	}
	s.invokeHandler(x)
}

// invokeHandler is invoke without tracing; it reports whether the handler
// failed, and whether by a panic.
func (s *Server) invokeHandler(x *exchange) (failed, panicked bool) {
	start := monoNow()
	panicked, err := s.call(x)
	d := monoNow() - start
	if err != nil {
		s.handlerFailed(x, err, panicked)
	}
	x.resp.CorrelationID = x.cid
	x.resp.ProcessingTimeMS = agentwire.Some(uint64(d.Milliseconds()))
	if x.run != nil {
		x.run.record(&s.stats.byEvent, x.kind, x.resp.Decision.Kind, d)
	} else {
		s.stats.byEvent.record(x.kind, x.resp.Decision.Kind, d)
	}
	return err != nil, panicked
}

// call runs the handler method for x.kind, turning a panic into an error
// (and panicked true).
func (s *Server) call(x *exchange) (panicked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			panicked, err = true, fmt.Errorf("agentwire: handler panic: %v\n%s", r, buf)
		}
	}()
	switch x.kind {
	case kindRequestHeaders:
		return false, s.h.OnRequestHeaders(x.ctx, &x.reqHeaders, &x.resp)
	case kindRequestBodyChunk:
		return false, s.h.OnRequestBodyChunk(x.ctx, &x.body, &x.resp)
	case kindResponseHeaders:
		return false, s.h.OnResponseHeaders(x.ctx, &x.respHeaders, &x.resp)
	case kindResponseBodyChunk:
		return false, s.h.OnResponseBodyChunk(x.ctx, &x.body, &x.resp)
	case kindRequestComplete:
		return false, s.h.OnRequestComplete(x.ctx, &x.complete, &x.resp)
	case kindWebSocketFrame:
		return false, s.h.OnWebSocketFrame(x.ctx, &x.ws, &x.resp)
	case kindGuardrailInspect:
		return false, s.h.OnGuardrailInspect(x.ctx, &x.guard, &x.resp)
	}
	return false, fmt.Errorf("agentwire: no handler for event kind %d", x.kind)
}

func (k eventKind) String() string {
	switch k {
	case kindRequestHeaders:
		return "request_headers"
	case kindRequestBodyChunk:
		return "request_body_chunk"
	case kindResponseHeaders:
		return "response_headers"
	case kindResponseBodyChunk:
		return "response_body_chunk"
	case kindRequestComplete:
		return "request_complete"
	case kindWebSocketFrame:
		return "websocket_frame"
	case kindGuardrailInspect:
		return "guardrail_inspect"
	}
	return "none"
}

// ---------------------------------------------------------------------------
// Hooks shared by transports

// handshake builds the server's answer to req, running the Handshaker and
// Configurer hooks. It runs on the connection's reader.
func (s *Server) handshake(ctx context.Context, req *agentwire.HandshakeRequest, resp *agentwire.HandshakeResponse) {
	resp.ProtocolVersion = agentwire.ProtocolVersion
	resp.Capabilities = s.caps
	if s.handshaker != nil {
		// The hook may edit the answer: not the server's own slice.
		resp.Capabilities.SupportedEvents = slices.Clone(s.caps.SupportedEvents)
	}
	resp.Success = true
	resp.Error = agentwire.Opt[string]{}
	offered := false
	for _, v := range req.SupportedVersions {
		if v == agentwire.ProtocolVersion {
			offered = true
			break
		}
	}
	if !offered {
		resp.Success = false
		resp.Error = agentwire.Some(fmt.Sprintf("agentwire: protocol version 2 not offered (proxy offered %v)", req.SupportedVersions))
		return
	}
	if s.handshaker != nil {
		err := safeHook(func() error { return s.handshaker.OnHandshake(ctx, req, resp) })
		if err != nil {
			resp.Success = false
			resp.Error = agentwire.Some(err.Error())
		}
		if !resp.Success {
			if !resp.Error.Valid {
				resp.Error = agentwire.Some("agentwire: handshake rejected by agent")
			}
			return
		}
	}
	if s.configurer != nil && meaningfulConfig(req.Config) {
		if err := s.configure(ctx, req.Config, ""); err != nil {
			resp.Success = false
			resp.Error = agentwire.Some("agentwire: configuration rejected: " + err.Error())
		}
	}
}

// meaningfulConfig reports whether a handshake's config is worth handing to
// the Configurer: the Rust proxy always sends {} (gRPC) or null (UDS).
func meaningfulConfig(c []byte) bool {
	t := trimSpace(c)
	switch string(t) {
	case "", "{}", "null":
		return false
	}
	return true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// configure runs the Configurer hook (nil error when there is none).
func (s *Server) configure(ctx context.Context, cfg []byte, version string) error {
	if s.configurer == nil {
		return nil
	}
	err := safeHook(func() error { return s.configurer.OnConfigure(ctx, cfg, version) })
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "agentwire: configuration rejected", slog.String("version", version), slog.Any("error", err))
	}
	return err
}

// cancelled records a cancel and runs the Canceller hook.
func (s *Server) cancelled(ctx context.Context, c agentwire.Cancel) {
	s.stats.cancels.Add(1)
	if s.canceller != nil {
		_ = safeHook(func() error { s.canceller.OnCancel(ctx, c); return nil })
	}
}

// safeHook runs f, turning a panic into an error.
func safeHook(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("agentwire: hook panic: %v", r)
		}
	}()
	return f()
}
