package pbwire

import (
	"encoding/json"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	"github.com/agentwire/agentwire/internal/wiretext"
)

// ProxyToAgent oneof field numbers.
const (
	P2AHandshake         = 1
	P2ARequestHeaders    = 2
	P2ARequestBodyChunk  = 3
	P2AResponseHeaders   = 4
	P2AResponseBodyChunk = 5
	P2AWebSocketFrame    = 6
	P2AGuardrail         = 7
	P2ARequestComplete   = 8
	P2ACancel            = 9
	P2AConfigure         = 10
	P2APing              = 11
)

// ---------------------------------------------------------------------------
// field size and append primitives (proto3 implicit presence: zero values
// of plain fields are not written). String fields are written as their
// internal/wiretext form: a Rust (prost) peer rejects a string that is not
// valid UTF-8 and ends the whole stream.

func sizeTag(num protowire.Number) int { return protowire.SizeTag(num) }

func sizeStr(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return sizeTag(num) + protowire.SizeBytes(wiretext.Len(s))
}

func sizeOptStr(num protowire.Number, o agentwire.Opt[string]) int {
	if !o.Valid {
		return 0
	}
	return sizeTag(num) + protowire.SizeBytes(wiretext.Len(o.Value))
}

func sizeBytes(num protowire.Number, b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return sizeTag(num) + protowire.SizeBytes(len(b))
}

func sizeU64(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return sizeTag(num) + protowire.SizeVarint(v)
}

func sizeI32(num protowire.Number, v int32) int {
	if v == 0 {
		return 0
	}
	return sizeTag(num) + protowire.SizeVarint(uint64(int64(v)))
}

func sizeBool(num protowire.Number, v bool) int {
	if !v {
		return 0
	}
	return sizeTag(num) + 1
}

func sizeMsg(num protowire.Number, bodyLen int) int {
	return sizeTag(num) + protowire.SizeBytes(bodyLen)
}

func appendStr(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return appendText(b, s)
}

func appendOptStr(b []byte, num protowire.Number, o agentwire.Opt[string]) []byte {
	if !o.Valid {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return appendText(b, o.Value)
}

// appendText appends the length-prefixed wire text of s.
func appendText(b []byte, s string) []byte {
	if wiretext.IsASCII(s) {
		b = protowire.AppendVarint(b, uint64(len(s)))
		return append(b, s...)
	}
	b = protowire.AppendVarint(b, uint64(wiretext.Len(s)))
	return wiretext.Append(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendU64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendI32(b []byte, num protowire.Number, v int32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(v)))
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return append(b, 1)
}

func appendMsgHeader(b []byte, num protowire.Number, bodyLen int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(bodyLen))
}

// ---------------------------------------------------------------------------
// headers

func headerBodyLen(name, value string) int {
	return sizeStr(1, name) + sizeStr(2, value)
}

func headersSize(num protowire.Number, h agentwire.Headers) int {
	n := 0
	for i := range h {
		name := h[i].Name
		for _, v := range h[i].Values {
			n += sizeMsg(num, headerBodyLen(name, v))
		}
	}
	return n
}

func appendHeaders(b []byte, num protowire.Number, h agentwire.Headers) []byte {
	for i := range h {
		name := h[i].Name
		for _, v := range h[i].Values {
			b = appendMsgHeader(b, num, headerBodyLen(name, v))
			b = appendStr(b, 1, name)
			b = appendStr(b, 2, v)
		}
	}
	return b
}

// ---------------------------------------------------------------------------
// RequestHeadersEvent

func metadataBodyLen(m *agentwire.RequestMetadata, ts uint64) int {
	return sizeStr(1, m.CorrelationID) +
		sizeStr(2, m.RequestID) +
		sizeStr(3, m.ClientIP) +
		sizeU64(4, uint64(m.ClientPort)) +
		sizeOptStr(5, m.ServerName) +
		sizeStr(6, m.Protocol) +
		sizeOptStr(7, m.TLSVersion) +
		sizeOptStr(8, m.RouteID) +
		sizeOptStr(9, m.UpstreamID) +
		sizeU64(10, ts) +
		sizeStr(11, m.Traceparent)
}

func appendMetadata(b []byte, m *agentwire.RequestMetadata, ts uint64) []byte {
	b = appendStr(b, 1, m.CorrelationID)
	b = appendStr(b, 2, m.RequestID)
	b = appendStr(b, 3, m.ClientIP)
	b = appendU64(b, 4, uint64(m.ClientPort))
	b = appendOptStr(b, 5, m.ServerName)
	b = appendStr(b, 6, m.Protocol)
	b = appendOptStr(b, 7, m.TLSVersion)
	b = appendOptStr(b, 8, m.RouteID)
	b = appendOptStr(b, 9, m.UpstreamID)
	b = appendU64(b, 10, ts)
	return appendStr(b, 11, m.Traceparent)
}

// SizeRequestHeaders returns the encoded length of the ProxyToAgent message
// AppendRequestHeaders writes for the same arguments.
func SizeRequestHeaders(ev *agentwire.RequestHeadersEvent, nowMS uint64) int {
	return MeasureRequestHeaders(ev, nowMS).Len
}

// AppendRequestHeaders appends ProxyToAgent{request_headers} for ev. A zero
// metadata timestamp is sent as nowMS.
func AppendRequestHeaders(b []byte, ev *agentwire.RequestHeadersEvent, nowMS uint64) []byte {
	return AppendMeasuredRequestHeaders(b, ev, MeasureRequestHeaders(ev, nowMS))
}

// RequestHeadersSize is the measured layout of one request-headers
// message: its encoded length and the nested lengths the encoder needs.
// It is only valid for the event and time it was measured for.
type RequestHeadersSize struct {
	// Len is the encoded length of the whole ProxyToAgent message.
	Len      int
	body, md int
	ts       uint64
	plain    bool // every string is ASCII: written as is
}

// MeasureRequestHeaders measures ev like SizeRequestHeaders and keeps what
// AppendMeasuredRequestHeaders needs, so that encoding into an exactly
// sized buffer walks the headers for their lengths once instead of twice.
func MeasureRequestHeaders(ev *agentwire.RequestHeadersEvent, nowMS uint64) RequestHeadersSize {
	ts := pbconv.TimestampMS(ev.Metadata.Timestamp, nowMS)
	version := pbconv.HTTPVersion(&ev.Metadata)
	// The plain (all-ASCII) layout is measured while the headers are
	// checked, in one walk; a non-ASCII string anywhere sends the event to
	// the generic measurement.
	hn, acc := measurePlainHeaders(ev.Headers)
	m := &ev.Metadata
	acc |= wiretext.OrBytes(ev.Method) | wiretext.OrBytes(ev.URI) | wiretext.OrBytes(version) |
		wiretext.OrBytes(m.CorrelationID) | wiretext.OrBytes(m.RequestID) | wiretext.OrBytes(m.ClientIP) | wiretext.OrBytes(m.ServerName.Value) |
		wiretext.OrBytes(m.Protocol) | wiretext.OrBytes(m.TLSVersion.Value) | wiretext.OrBytes(m.RouteID.Value) | wiretext.OrBytes(m.UpstreamID.Value) |
		wiretext.OrBytes(m.Traceparent)
	if acc&wiretext.HighBits == 0 {
		md := plainMetadataLen(m, ts)
		body := 1 + varLen(md) + md + plainField(ev.Method) + plainField(ev.URI) + plainField(version) + hn
		return RequestHeadersSize{Len: 1 + varLen(body) + body, body: body, md: md, ts: ts, plain: true}
	}
	md := metadataBodyLen(m, ts)
	body := sizeMsg(1, md) +
		sizeStr(2, ev.Method) +
		sizeStr(3, ev.URI) +
		sizeStr(4, version) +
		headersSize(5, ev.Headers)
	return RequestHeadersSize{Len: sizeMsg(P2ARequestHeaders, body), body: body, md: md, ts: ts}
}

// AppendMeasuredRequestHeaders is AppendRequestHeaders with the lengths of
// MeasureRequestHeaders for the same, unchanged event; it appends exactly
// sz.Len bytes.
func AppendMeasuredRequestHeaders(b []byte, ev *agentwire.RequestHeadersEvent, sz RequestHeadersSize) []byte {
	if sz.plain {
		b = append(b, tagLen(P2ARequestHeaders))
		b = appendLen(b, sz.body)
		b = append(b, tagLen(1))
		b = appendLen(b, sz.md)
		b = appendPlainMetadata(b, &ev.Metadata, sz.ts)
		b = appendPlain(b, tagLen(2), ev.Method)
		b = appendPlain(b, tagLen(3), ev.URI)
		b = appendPlain(b, tagLen(4), pbconv.HTTPVersion(&ev.Metadata))
		return appendPlainHeaders(b, 5, ev.Headers)
	}
	b = appendMsgHeader(b, P2ARequestHeaders, sz.body)
	b = appendMsgHeader(b, 1, sz.md)
	b = appendMetadata(b, &ev.Metadata, sz.ts)
	b = appendStr(b, 2, ev.Method)
	b = appendStr(b, 3, ev.URI)
	b = appendStr(b, 4, pbconv.HTTPVersion(&ev.Metadata))
	return appendHeaders(b, 5, ev.Headers)
}

// ---------------------------------------------------------------------------
// BodyChunkEvent

func bodyChunkBodyLen(ev *agentwire.BodyChunk, nowMS uint64) int {
	n := sizeStr(1, ev.CorrelationID) +
		sizeU64(2, uint64(ev.ChunkIndex)) +
		sizeBytes(3, ev.Data) +
		sizeBool(4, ev.IsLast) +
		sizeU64(6, ev.BytesTransferred) +
		sizeU64(8, nowMS)
	if ev.TotalSize.Valid {
		n += sizeTag(5) + protowire.SizeVarint(ev.TotalSize.Value)
	}
	return n
}

// SizeBodyChunk returns the encoded length of the ProxyToAgent message
// AppendBodyChunk writes for the same arguments.
func SizeBodyChunk(ev *agentwire.BodyChunk, nowMS uint64) int {
	return sizeMsg(P2ARequestBodyChunk, bodyChunkBodyLen(ev, nowMS))
}

// AppendBodyChunk appends ProxyToAgent{request_body_chunk} (response false)
// or ProxyToAgent{response_body_chunk} (response true) for ev, with
// timestamp_ms nowMS and proxy_buffer_available 0.
func AppendBodyChunk(b []byte, ev *agentwire.BodyChunk, response bool, nowMS uint64) []byte {
	num := protowire.Number(P2ARequestBodyChunk)
	if response {
		num = P2AResponseBodyChunk
	}
	b = appendMsgHeader(b, num, bodyChunkBodyLen(ev, nowMS))
	b = appendStr(b, 1, ev.CorrelationID)
	b = appendU64(b, 2, uint64(ev.ChunkIndex))
	b = appendBytes(b, 3, ev.Data)
	b = appendBool(b, 4, ev.IsLast)
	if ev.TotalSize.Valid {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, ev.TotalSize.Value)
	}
	b = appendU64(b, 6, ev.BytesTransferred)
	return appendU64(b, 8, nowMS)
}

// ---------------------------------------------------------------------------
// ResponseHeadersEvent

func responseHeadersBodyLen(ev *agentwire.ResponseHeadersEvent) int {
	return sizeStr(1, ev.CorrelationID) + sizeU64(2, uint64(ev.Status)) + headersSize(3, ev.Headers)
}

// SizeResponseHeaders returns the encoded length of the ProxyToAgent message
// AppendResponseHeaders writes.
func SizeResponseHeaders(ev *agentwire.ResponseHeadersEvent) int {
	return sizeMsg(P2AResponseHeaders, responseHeadersBodyLen(ev))
}

// AppendResponseHeaders appends ProxyToAgent{response_headers} for ev.
func AppendResponseHeaders(b []byte, ev *agentwire.ResponseHeadersEvent) []byte {
	b = appendMsgHeader(b, P2AResponseHeaders, responseHeadersBodyLen(ev))
	b = appendStr(b, 1, ev.CorrelationID)
	b = appendU64(b, 2, uint64(ev.Status))
	return appendHeaders(b, 3, ev.Headers)
}

// ---------------------------------------------------------------------------
// RequestCompleteEvent

func requestCompleteBodyLen(ev *agentwire.RequestCompleteEvent) int {
	return sizeStr(1, ev.CorrelationID) +
		sizeU64(2, uint64(ev.Status)) +
		sizeU64(3, ev.DurationMS) +
		sizeU64(4, ev.RequestBodySize) +
		sizeU64(5, ev.ResponseBodySize) +
		sizeOptStr(8, ev.Error)
}

// SizeRequestComplete returns the encoded length of the ProxyToAgent message
// AppendRequestComplete writes.
func SizeRequestComplete(ev *agentwire.RequestCompleteEvent) int {
	return sizeMsg(P2ARequestComplete, requestCompleteBodyLen(ev))
}

// AppendRequestComplete appends ProxyToAgent{request_complete} for ev.
func AppendRequestComplete(b []byte, ev *agentwire.RequestCompleteEvent) []byte {
	b = appendMsgHeader(b, P2ARequestComplete, requestCompleteBodyLen(ev))
	b = appendStr(b, 1, ev.CorrelationID)
	b = appendU64(b, 2, uint64(ev.Status))
	b = appendU64(b, 3, ev.DurationMS)
	b = appendU64(b, 4, ev.RequestBodySize)
	b = appendU64(b, 5, ev.ResponseBodySize)
	return appendOptStr(b, 8, ev.Error)
}

// ---------------------------------------------------------------------------
// WebSocketFrameEvent

func webSocketBodyLen(ev *agentwire.WebSocketFrameEvent) int {
	return sizeStr(1, ev.CorrelationID) +
		sizeBool(2, ev.ClientToServer) +
		sizeI32(3, pbconv.FrameTypeFromOpcode(ev.Opcode)) +
		sizeBytes(4, ev.Data)
}

// SizeWebSocketFrame returns the encoded length of the ProxyToAgent message
// AppendWebSocketFrame writes.
func SizeWebSocketFrame(ev *agentwire.WebSocketFrameEvent) int {
	return sizeMsg(P2AWebSocketFrame, webSocketBodyLen(ev))
}

// AppendWebSocketFrame appends ProxyToAgent{websocket_frame} for ev.
func AppendWebSocketFrame(b []byte, ev *agentwire.WebSocketFrameEvent) []byte {
	b = appendMsgHeader(b, P2AWebSocketFrame, webSocketBodyLen(ev))
	b = appendStr(b, 1, ev.CorrelationID)
	b = appendBool(b, 2, ev.ClientToServer)
	b = appendI32(b, 3, pbconv.FrameTypeFromOpcode(ev.Opcode))
	return appendBytes(b, 4, ev.Data)
}

// ---------------------------------------------------------------------------
// GuardrailInspectEvent

// GuardrailContext returns the context_json text for ev, appended to dst
// (see pbconv.GuardrailContextJSON). Pass the result to SizeGuardrail and
// AppendGuardrail.
func GuardrailContext(dst []byte, ev *agentwire.GuardrailInspectEvent) []byte {
	return pbconv.AppendGuardrailContextJSON(dst, ev)
}

func guardrailBodyLen(ev *agentwire.GuardrailInspectEvent, ctxJSON []byte) int {
	return sizeStr(1, ev.CorrelationID) +
		sizeStr(2, ev.Content) +
		sizeI32(3, pbconv.GuardrailContentType(ev.InspectionType)) +
		sizeOptStr(4, ev.Model) +
		sizeBytes(5, ctxJSON)
}

// SizeGuardrail returns the encoded length of the ProxyToAgent message
// AppendGuardrail writes.
func SizeGuardrail(ev *agentwire.GuardrailInspectEvent, ctxJSON []byte) int {
	return sizeMsg(P2AGuardrail, guardrailBodyLen(ev, ctxJSON))
}

// AppendGuardrail appends ProxyToAgent{guardrail} for ev with the given
// context_json text (from GuardrailContext).
func AppendGuardrail(b []byte, ev *agentwire.GuardrailInspectEvent, ctxJSON []byte) []byte {
	b = appendMsgHeader(b, P2AGuardrail, guardrailBodyLen(ev, ctxJSON))
	b = appendStr(b, 1, ev.CorrelationID)
	b = appendStr(b, 2, ev.Content)
	b = appendI32(b, 3, pbconv.GuardrailContentType(ev.InspectionType))
	b = appendOptStr(b, 4, ev.Model)
	return appendBytes(b, 5, ctxJSON)
}

// ---------------------------------------------------------------------------
// CancelRequest, Ping, ConfigureEvent, HandshakeRequest

func cancelBodyLen(cid string, reason agentwire.CancelReason, nowMS uint64) int {
	return sizeStr(1, cid) + sizeI32(2, int32(reason)) + sizeU64(3, nowMS)
}

// SizeCancel returns the encoded length of the ProxyToAgent message
// AppendCancel writes.
func SizeCancel(cid string, reason agentwire.CancelReason, nowMS uint64) int {
	return sizeMsg(P2ACancel, cancelBodyLen(cid, reason, nowMS))
}

// AppendCancel appends ProxyToAgent{cancel} (gRPC reason numbering 1…6).
func AppendCancel(b []byte, cid string, reason agentwire.CancelReason, nowMS uint64) []byte {
	b = appendMsgHeader(b, P2ACancel, cancelBodyLen(cid, reason, nowMS))
	b = appendStr(b, 1, cid)
	b = appendI32(b, 2, int32(reason))
	return appendU64(b, 3, nowMS)
}

// SizePing returns the encoded length of ProxyToAgent{ping}.
func SizePing(seq, nowMS uint64) int {
	return sizeMsg(P2APing, sizeU64(1, seq)+sizeU64(2, nowMS))
}

// AppendPing appends ProxyToAgent{ping}.
func AppendPing(b []byte, seq, nowMS uint64) []byte {
	b = appendMsgHeader(b, P2APing, sizeU64(1, seq)+sizeU64(2, nowMS))
	b = appendU64(b, 1, seq)
	return appendU64(b, 2, nowMS)
}

func configureBodyLen(cfg json.RawMessage, version agentwire.Opt[string], isInitial bool, nowMS uint64) int {
	cj := wiretext.Len(stringView(cfg))
	if cj == 0 {
		cj = len("null")
	}
	return sizeTag(1) + protowire.SizeBytes(cj) + sizeOptStr(2, version) + sizeBool(3, isInitial) + sizeU64(4, nowMS)
}

// SizeConfigure returns the encoded length of the ProxyToAgent message
// AppendConfigure writes.
func SizeConfigure(ev *agentwire.ConfigureEvent, isInitial bool, nowMS uint64) int {
	return sizeMsg(P2AConfigure, configureBodyLen(ev.Config, ev.ConfigVersion, isInitial, nowMS))
}

// AppendConfigure appends ProxyToAgent{configure}: config_json is the
// event's JSON text ("null" when empty).
func AppendConfigure(b []byte, ev *agentwire.ConfigureEvent, isInitial bool, nowMS uint64) []byte {
	b = appendMsgHeader(b, P2AConfigure, configureBodyLen(ev.Config, ev.ConfigVersion, isInitial, nowMS))
	if len(ev.Config) == 0 {
		b = appendStr(b, 1, "null")
	} else {
		b = appendStr(b, 1, stringView(ev.Config))
	}
	b = appendOptStr(b, 2, ev.ConfigVersion)
	b = appendBool(b, 3, isInitial)
	return appendU64(b, 4, nowMS)
}

func handshakeBodyLen(h *agentwire.HandshakeRequest) int {
	n := 0
	if len(h.SupportedVersions) > 0 {
		packed := 0
		for _, v := range h.SupportedVersions {
			packed += protowire.SizeVarint(uint64(v))
		}
		n += sizeMsg(1, packed)
	}
	cj := wiretext.Len(stringView(h.Config))
	if cj == 0 {
		cj = len("{}")
	}
	return n + sizeStr(2, h.ProxyID) + sizeStr(3, h.ProxyVersion) + sizeTag(4) + protowire.SizeBytes(cj)
}

// SizeHandshake returns the encoded length of the ProxyToAgent message
// AppendHandshake writes.
func SizeHandshake(h *agentwire.HandshakeRequest) int {
	return sizeMsg(P2AHandshake, handshakeBodyLen(h))
}

// AppendHandshake appends ProxyToAgent{handshake}: supported_versions
// packed, config_json the Config text ("{}" when empty).
func AppendHandshake(b []byte, h *agentwire.HandshakeRequest) []byte {
	b = appendMsgHeader(b, P2AHandshake, handshakeBodyLen(h))
	if len(h.SupportedVersions) > 0 {
		packed := 0
		for _, v := range h.SupportedVersions {
			packed += protowire.SizeVarint(uint64(v))
		}
		b = appendMsgHeader(b, 1, packed)
		for _, v := range h.SupportedVersions {
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	b = appendStr(b, 2, h.ProxyID)
	b = appendStr(b, 3, h.ProxyVersion)
	if len(h.Config) == 0 {
		return appendStr(b, 4, "{}")
	}
	return appendStr(b, 4, stringView(h.Config))
}

// stringView returns the bytes of b as a string without copying; the
// result is only read, while b is unchanged.
func stringView(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
