package engine

import (
	"time"

	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// Encoders of the Unix-socket transport: each builds one whole frame (LEN,
// type, payload) in a pooled buffer, encoding the payload in place
// (frame.BeginFrame / EndFrame, no copy). Events use the negotiated
// encoding; cancel and ping are always JSON (SPEC 6.7, 6.8). Body and
// WebSocket data is base64 in JSON and in MessagePack, or a raw bin in
// MessagePack with WithRawMsgpackBodies (agentwire agents only).
//
// Buffers are sized from an estimate of the payload; an estimate that is
// too small only costs a reallocation (the grown buffer is pooled when its
// size is a pool tier, dropped otherwise).

// begin starts a frame of type typ with room for about hint payload bytes.
func (t *udsTransport) begin(typ frame.Type, hint int) (*[]byte, int) {
	bp := newOutBuffer(hint + frame.HeaderSize)
	var start int
	*bp, start = frame.BeginFrame(*bp, typ)
	return bp, start
}

// finish ends the frame (see end) and wraps the buffer.
func (t *udsTransport) finish(bp *[]byte, start int) (mem.Buffer, error) {
	if err := t.end(*bp, start); err != nil {
		outPool.Put(bp)
		return nil, err
	}
	return wrapOut(bp), nil
}

// end checks the payload size of the frame begun at start of b and fills in
// its LEN.
func (t *udsTransport) end(b []byte, start int) error {
	if n := len(b) - start - frame.HeaderSize; n > t.maxPayload {
		return tooLarge(n, t.maxPayload)
	}
	if err := frame.EndFrame(b, start); err != nil {
		return &Error{Kind: ErrMessageTooLarge, Err: err}
	}
	return nil
}

// Size estimates (payload bytes, without escaping overhead).

func headersHint(h agentwire.Headers) int {
	n := 2
	for i := range h {
		n += len(h[i].Name) + 6
		for _, v := range h[i].Values {
			n += len(v) + 3
		}
	}
	return n
}

func optLen(o agentwire.Opt[string]) int { return len(o.Value) }

func b64Len(n int) int { return (n + 2) / 3 * 4 }

func (t *udsTransport) dataHint(n int) int {
	if t.raw {
		return n + 5
	}
	return b64Len(n) + 5
}

// requestHeaders is the encoder's form, into a pooled buffer. The session
// does not call it for this transport: the writer encodes request headers
// itself (appendRequestHeadersEvent).
func (t *udsTransport) requestHeaders(ev *agentwire.RequestHeadersEvent, now uint64) (mem.Buffer, error) {
	m := &ev.Metadata
	hint := 360 + 2*len(m.CorrelationID) + len(m.RequestID) + len(m.ClientIP) + len(m.Protocol) +
		optLen(m.ServerName) + optLen(m.TLSVersion) + optLen(m.TLSCipher) + optLen(m.RouteID) +
		optLen(m.UpstreamID) + len(m.Traceparent) + len(ev.Method) + len(ev.URI) + headersHint(ev.Headers)
	bp := newOutBuffer(hint + frame.HeaderSize)
	b, err := t.appendRequestHeaders(*bp, ev, now)
	*bp = b
	if err != nil {
		outPool.Put(bp)
		return nil, err
	}
	return wrapOut(bp), nil
}

// appendRequestHeaders appends the whole request-headers frame to dst (the
// writer's path: appendRequestHeadersEvent). On error dst may hold a
// partial frame past its original length.
func (t *udsTransport) appendRequestHeaders(dst []byte, ev *agentwire.RequestHeadersEvent, now uint64) ([]byte, error) {
	if ev.Metadata.Timestamp.IsZero() {
		cp := *ev
		cp.Metadata.Timestamp = time.UnixMilli(int64(now)).UTC()
		ev = &cp
	}
	dst, start := frame.BeginFrame(dst, frame.TypeRequestHeaders)
	if t.msgpack {
		dst = payload.AppendRequestHeadersMsgpack(dst, ev)
	} else {
		dst = payload.AppendRequestHeadersJSON(dst, ev)
	}
	return dst, t.end(dst, start)
}

func (t *udsTransport) bodyChunk(ev *agentwire.BodyChunk, response bool, now uint64) (mem.Buffer, error) {
	typ := frame.TypeRequestBodyChunk
	if response {
		typ = frame.TypeResponseBodyChunk
	}
	bp, start := t.begin(typ, 160+len(ev.CorrelationID)+t.dataHint(len(ev.Data)))
	switch {
	case !t.msgpack && response:
		*bp = payload.AppendResponseBodyChunkJSON(*bp, ev)
	case !t.msgpack:
		*bp = payload.AppendRequestBodyChunkJSON(*bp, ev)
	case response && t.raw:
		*bp = payload.AppendResponseBodyChunkMsgpackRaw(*bp, ev)
	case response:
		*bp = payload.AppendResponseBodyChunkMsgpack(*bp, ev)
	case t.raw:
		*bp = payload.AppendRequestBodyChunkMsgpackRaw(*bp, ev)
	default:
		*bp = payload.AppendRequestBodyChunkMsgpack(*bp, ev)
	}
	return t.finish(bp, start)
}

func (t *udsTransport) responseHeaders(ev *agentwire.ResponseHeadersEvent) (mem.Buffer, error) {
	bp, start := t.begin(frame.TypeResponseHeaders, 64+len(ev.CorrelationID)+headersHint(ev.Headers))
	if t.msgpack {
		*bp = payload.AppendResponseHeadersMsgpack(*bp, ev)
	} else {
		*bp = payload.AppendResponseHeadersJSON(*bp, ev)
	}
	return t.finish(bp, start)
}

func (t *udsTransport) requestComplete(ev *agentwire.RequestCompleteEvent) (mem.Buffer, error) {
	bp, start := t.begin(frame.TypeRequestComplete, 200+len(ev.CorrelationID)+optLen(ev.Error))
	if t.msgpack {
		*bp = payload.AppendRequestCompleteMsgpack(*bp, ev)
	} else {
		*bp = payload.AppendRequestCompleteJSON(*bp, ev)
	}
	return t.finish(bp, start)
}

func (t *udsTransport) webSocketFrame(ev *agentwire.WebSocketFrameEvent) (mem.Buffer, error) {
	hint := 200 + len(ev.CorrelationID) + len(ev.Opcode) + optLen(ev.RouteID) + len(ev.ClientIP) + t.dataHint(len(ev.Data))
	bp, start := t.begin(frame.TypeWebSocketFrame, hint)
	switch {
	case !t.msgpack:
		*bp = payload.AppendWebSocketFrameJSON(*bp, ev)
	case t.raw:
		*bp = payload.AppendWebSocketFrameMsgpackRaw(*bp, ev)
	default:
		*bp = payload.AppendWebSocketFrameMsgpack(*bp, ev)
	}
	return t.finish(bp, start)
}

func (t *udsTransport) guardrail(ev *agentwire.GuardrailInspectEvent) (mem.Buffer, error) {
	hint := 160 + len(ev.CorrelationID) + len(ev.InspectionType) + len(ev.Content) + optLen(ev.Model) + optLen(ev.RouteID)
	for _, c := range ev.Categories {
		hint += len(c) + 3
	}
	for k, v := range ev.Metadata {
		hint += len(k) + len(v) + 6
	}
	bp, start := t.begin(frame.TypeGuardrailInspect, hint)
	if t.msgpack {
		*bp = payload.AppendGuardrailInspectMsgpack(*bp, ev)
	} else {
		*bp = payload.AppendGuardrailInspectJSON(*bp, ev)
	}
	return t.finish(bp, start)
}

// configure encodes a 0x17 Configure (SPEC 6.10). The agent answers it with
// an ordinary reply; its correlation id (ev's, or a generated one) is
// remembered so that the reader recognises that reply (a rejection is
// logged). initial has no Unix-socket form.
func (t *udsTransport) configure(ev *agentwire.ConfigureEvent, _ bool, _ uint64) (mem.Buffer, error) {
	cp := *ev
	cp.CorrelationID = t.configureID(ev.CorrelationID)
	bp, start := t.begin(frame.TypeConfigure, 80+len(cp.CorrelationID)+len(cp.Config)+optLen(cp.ConfigVersion))
	if t.msgpack {
		var err error
		if *bp, err = payload.AppendConfigureMsgpack(*bp, &cp); err != nil {
			t.takeConfigureID(cp.CorrelationID)
			outPool.Put(bp)
			return nil, &Error{Kind: ErrInvalidEvent, Detail: "configuration cannot be encoded", Err: err}
		}
	} else {
		*bp = payload.AppendConfigureJSON(*bp, &cp)
	}
	buf, err := t.finish(bp, start)
	if err != nil {
		t.takeConfigureID(cp.CorrelationID)
	}
	return buf, err
}

// cancel encodes a 0x40 Cancel, always JSON, with the Unix socket's
// 0-based reason (SPEC 6.8, fact 13).
func (t *udsTransport) cancel(cid string, reason agentwire.CancelReason, now uint64) (mem.Buffer, error) {
	bp, start := t.begin(frame.TypeCancel, 80+len(cid))
	*bp = payload.AppendCancelJSON(*bp, &agentwire.Cancel{CorrelationID: cid, Reason: reason, TimestampMS: now})
	return t.finish(bp, start)
}

// ping encodes a 0x41 Ping, always JSON (SPEC 6.7).
func (t *udsTransport) ping(seq, now uint64) (mem.Buffer, error) {
	bp, start := t.begin(frame.TypePing, 64)
	*bp = payload.AppendPingJSON(*bp, &agentwire.Ping{Sequence: seq, TimestampMS: now})
	return t.finish(bp, start)
}

// The Unix-socket protocol has no control plane (drain, shutdown and
// config-update answers have no frame type, SPEC 6.2); the core never calls
// these because hasControl is false.

func (t *udsTransport) drain(uint64, uint64) (mem.Buffer, error)    { return nil, errNoControl }
func (t *udsTransport) shutdown(uint64, uint64) (mem.Buffer, error) { return nil, errNoControl }
func (t *udsTransport) configResponse(*agentwire.ConfigUpdateResponse) (mem.Buffer, error) {
	return nil, errNoControl
}
