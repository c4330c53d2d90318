package payload

import (
	"github.com/tinylib/msgp/msgp"
)

// Event encoders and decoders (proxy → agent, frame types 0x10–0x17).

// ---------------------------------------------------------------------------
// Headers

// mpAppendHeaders appends h as a map name → [values] with names in byte-wise
// ascending order. Entries that share a name are merged into one key (their
// values concatenated in order), so no key is ever repeated.
func mpAppendHeaders(b []byte, h Headers) []byte {
	if headerNamesAscending(h) {
		b = msgp.AppendMapHeader(b, uint32(len(h)))
		for i := range h {
			b = mpAppendStr(b, h[i].Name)
			b = mpAppendStringList(b, h[i].Values)
		}
		return b
	}
	// Sort an index (on the stack for typical header counts).
	var stack [64]int32
	idx := stack[:0]
	if len(h) > len(stack) {
		idx = make([]int32, 0, len(h))
	}
	idx = headerSortIndex(h, idx[:len(h)])
	distinct := 0
	for i := range idx {
		if i == 0 || h[idx[i]].Name != h[idx[i-1]].Name {
			distinct++
		}
	}
	b = msgp.AppendMapHeader(b, uint32(distinct))
	for i := 0; i < len(idx); {
		name := h[idx[i]].Name
		j, n := i, 0
		for ; j < len(idx) && h[idx[j]].Name == name; j++ {
			n += len(h[idx[j]].Values)
		}
		b = mpAppendStr(b, name)
		b = msgp.AppendArrayHeader(b, uint32(n))
		for ; i < j; i++ {
			for _, v := range h[idx[i]].Values {
				b = mpAppendStr(b, v)
			}
		}
	}
	return b
}

// headerNamesAscending reports whether h's names are in strictly ascending
// byte-wise order (no sort and no merge needed).
func headerNamesAscending(h Headers) bool {
	for i := 1; i < len(h); i++ {
		if h[i-1].Name >= h[i].Name {
			return false
		}
	}
	return true
}

// mpNameBit maps a header name to one of 64 bits (from its length and its
// first and last bytes): names with different bits are different.
func mpNameBit(name []byte) uint64 {
	k := uint(len(name))
	if len(name) > 0 {
		k = k*7 + uint(name[0])*3 + uint(name[len(name)-1])
	}
	return 1 << (k & 63)
}

// mpReadHeaders reads a map name → [values] into *dst, reusing its slices
// and unchanged strings. A repeated name replaces the earlier entry's
// values in place (serde map semantics: last wins).
func mpReadHeaders(b []byte, dst *Headers) ([]byte, error) {
	n, o, err := mpReadMapHeader(b)
	if err != nil {
		return b, err
	}
	h := mpPrealloc(*dst, n, len(o))
	var index map[string]int // only for large inputs
	var seen uint64          // mpNameBit of every name so far (small inputs)
	if n > 32 {
		index = make(map[string]int, n)
	}
	for k := 0; k < n; k++ {
		var name []byte
		// The name is checked for UTF-8 where it is stored, in one pass
		// with the comparison to the slot's old name; a repeated name
		// equals one stored (so checked) earlier in this decode.
		if name, o, err = mpReadStrBytesUnchecked(o); err != nil {
			*dst = h
			return b, err
		}
		at := -1
		if index != nil {
			if i, ok := index[string(name)]; ok {
				at = i
			}
		} else if bit := mpNameBit(name); seen&bit == 0 {
			seen |= bit // no earlier name has this length/first/last byte mix: no scan
		} else {
			for i := range h {
				if h[i].Name == string(name) {
					at = i
					break
				}
			}
		}
		if at < 0 {
			if len(h) < cap(h) {
				h = h[:len(h)+1]
			} else {
				h = append(h, Header{})
			}
			at = len(h) - 1
			if !mpStoreValid(&h[at].Name, name) {
				*dst = h[:at]
				return b, errMpUTF8
			}
			if index != nil {
				index[h[at].Name] = at
			}
		}
		if o, err = mpReadStringList(o, &h[at].Values); err != nil {
			*dst = h
			return b, err
		}
	}
	*dst = h
	return o, nil
}

// ---------------------------------------------------------------------------
// RequestMetadata

var mpMetadata = mpNewStruct("metadata", 11,
	"correlation_id!", "request_id!", "client_ip!", "client_port!", "server_name",
	"protocol!", "tls_version", "tls_cipher", "route_id", "upstream_id", "timestamp!",
	"traceparent")

func mpAppendMetadata(b []byte, m *RequestMetadata) []byte {
	n := uint32(11)
	if m.Traceparent != "" {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, m.CorrelationID)
	b = mpAppendKey(b, "request_id")
	b = mpAppendStr(b, m.RequestID)
	b = mpAppendKey(b, "client_ip")
	b = mpAppendStr(b, m.ClientIP)
	b = mpAppendKey(b, "client_port")
	b = msgp.AppendUint16(b, m.ClientPort)
	b = mpAppendKey(b, "server_name")
	b = mpAppendOptStr(b, m.ServerName)
	b = mpAppendKey(b, "protocol")
	b = mpAppendStr(b, m.Protocol)
	b = mpAppendKey(b, "tls_version")
	b = mpAppendOptStr(b, m.TLSVersion)
	b = mpAppendKey(b, "tls_cipher")
	b = mpAppendOptStr(b, m.TLSCipher)
	b = mpAppendKey(b, "route_id")
	b = mpAppendOptStr(b, m.RouteID)
	b = mpAppendKey(b, "upstream_id")
	b = mpAppendOptStr(b, m.UpstreamID)
	b = mpAppendKey(b, "timestamp")
	b = mpAppendTimestamp(b, m.Timestamp)
	if m.Traceparent != "" {
		b = mpAppendKey(b, "traceparent")
		b = mpAppendStr(b, m.Traceparent)
	}
	return b
}

func mpReadMetadata(b []byte, m *RequestMetadata) ([]byte, error) {
	o, seen, err := mpMetadata.decodeSeen(b, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &m.CorrelationID)
		case 1:
			return mpReadStringOr(b, &m.RequestID, m.CorrelationID)
		case 2:
			return mpReadString(b, &m.ClientIP)
		case 3:
			return mpReadU16(b, &m.ClientPort)
		case 4:
			return mpReadOptString(b, &m.ServerName)
		case 5:
			return mpReadString(b, &m.Protocol)
		case 6:
			return mpReadOptString(b, &m.TLSVersion)
		case 7:
			return mpReadOptString(b, &m.TLSCipher)
		case 8:
			return mpReadOptString(b, &m.RouteID)
		case 9:
			return mpReadOptString(b, &m.UpstreamID)
		case 10:
			v, o, err := mpReadStrBytes(b)
			if err == nil {
				m.Timestamp = mpParseTimestamp(v)
			}
			return o, err
		default:
			return mpReadOptStringAsEmpty(b, &m.Traceparent)
		}
	})
	if err != nil {
		return b, err
	}
	mpClearIfAbsent(&m.ServerName, seen, 4)
	mpClearIfAbsent(&m.TLSVersion, seen, 6)
	mpClearIfAbsent(&m.TLSCipher, seen, 7)
	mpClearIfAbsent(&m.RouteID, seen, 8)
	mpClearIfAbsent(&m.UpstreamID, seen, 9)
	if seen&(1<<11) == 0 {
		m.Traceparent = ""
	}
	return o, nil
}

// ---------------------------------------------------------------------------
// RequestHeadersEvent (0x10)

// The envelope's top-level correlation_id is not a field of the Rust type;
// the decoder skips it (as the Rust SDK does) and the event's correlation id
// is Metadata.CorrelationID.
var mpRequestHeaders = mpNewStruct("request_headers", 4, "metadata!", "method!", "uri!", "headers!")

// AppendRequestHeadersMsgpack appends e as a MessagePack event envelope:
// {correlation_id, metadata, method, uri, headers}, the top-level
// correlation_id being e.Metadata.CorrelationID.
func AppendRequestHeadersMsgpack(b []byte, e *RequestHeadersEvent) []byte {
	if fastWriters { // see fastpath_on.go
		if out, ok := mpAppendRequestHeadersFast(b, e); ok {
			return out
		}
	}
	return mpAppendRequestHeadersGeneral(b, e)
}

// mpAppendRequestHeadersGeneral is the general request-headers encoder
// (any header order, any string).
func mpAppendRequestHeadersGeneral(b []byte, e *RequestHeadersEvent) []byte {
	b = msgp.AppendMapHeader(b, 5)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, e.Metadata.CorrelationID)
	b = mpAppendKey(b, "metadata")
	b = mpAppendMetadata(b, &e.Metadata)
	b = mpAppendKey(b, "method")
	b = mpAppendStr(b, e.Method)
	b = mpAppendKey(b, "uri")
	b = mpAppendStr(b, e.URI)
	b = mpAppendKey(b, "headers")
	return mpAppendHeaders(b, e.Headers)
}

// DecodeRequestHeadersMsgpack decodes a request-headers event into v,
// reusing v's slices.
func DecodeRequestHeadersMsgpack(data []byte, v *RequestHeadersEvent) error {
	_, _, err := DecodeRequestHeadersMsgpackRoutedIn(data, v, nil)
	return err
}

// mpDecodeRequestHeadersGeneral is the general request-headers decoder
// (any shape serde accepts; the errors with their field paths).
func mpDecodeRequestHeadersGeneral(data []byte, v *RequestHeadersEvent) error {
	o, err := mpRequestHeaders.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadMetadata(b, &v.Metadata)
		case 1:
			return mpReadString(b, &v.Method)
		case 2:
			return mpReadString(b, &v.URI)
		default:
			return mpReadHeaders(b, &v.Headers)
		}
	})
	return mpDone(o, err)
}

// ---------------------------------------------------------------------------
// Body chunks (0x11, 0x13)

var (
	mpRequestBodyChunk = mpEnvelope(mpNewStruct("request_body_chunk", 4,
		"correlation_id!", "data!", "is_last!", "total_size", "chunk_index", "bytes_received"))
	mpResponseBodyChunk = mpEnvelope(mpNewStruct("response_body_chunk", 4,
		"correlation_id!", "data!", "is_last!", "total_size", "chunk_index", "bytes_sent"))
)

// mpEnvelope marks s as an event envelope (repeated correlation_id tolerated).
func mpEnvelope(s *mpStruct) *mpStruct {
	s.envelope = true
	return s
}

func mpAppendBodyChunk(b []byte, c *BodyChunk, counter string, raw bool) []byte {
	b = msgp.AppendMapHeader(b, 6)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, c.CorrelationID)
	b = mpAppendKey(b, "data")
	b = mpAppendData(b, c.Data, raw)
	b = mpAppendKey(b, "is_last")
	b = msgp.AppendBool(b, c.IsLast)
	b = mpAppendKey(b, "total_size")
	b = mpAppendOptU64(b, c.TotalSize)
	b = mpAppendKey(b, "chunk_index")
	b = msgp.AppendUint32(b, c.ChunkIndex)
	b = msgp.AppendString(b, counter)
	return msgp.AppendUint64(b, c.BytesTransferred)
}

// AppendRequestBodyChunkMsgpack appends c as a request-body-chunk event
// {correlation_id, data, is_last, total_size, chunk_index, bytes_received}
// with data as a base64 str (the form a Rust agent accepts).
func AppendRequestBodyChunkMsgpack(b []byte, c *BodyChunk) []byte {
	return mpAppendBodyChunk(b, c, "bytes_received", false)
}

// AppendRequestBodyChunkMsgpackRaw is AppendRequestBodyChunkMsgpack with
// data as a bin of raw bytes: faster and smaller, for agentwire peers only
// (a Rust agent rejects it unless the bytes are UTF-8, and then misreads
// them as base64).
func AppendRequestBodyChunkMsgpackRaw(b []byte, c *BodyChunk) []byte {
	return mpAppendBodyChunk(b, c, "bytes_received", true)
}

// AppendResponseBodyChunkMsgpack appends c as a response-body-chunk event
// (counter key bytes_sent), data as a base64 str.
func AppendResponseBodyChunkMsgpack(b []byte, c *BodyChunk) []byte {
	return mpAppendBodyChunk(b, c, "bytes_sent", false)
}

// AppendResponseBodyChunkMsgpackRaw is AppendResponseBodyChunkMsgpack with
// data as a bin of raw bytes (agentwire peers only).
func AppendResponseBodyChunkMsgpackRaw(b []byte, c *BodyChunk) []byte {
	return mpAppendBodyChunk(b, c, "bytes_sent", true)
}

func mpReadBodyChunk(data []byte, v *BodyChunk, s *mpStruct) error {
	_, err := mpReadBodyChunkView(data, v, s, false)
	return err
}

// mpReadBodyChunkView decodes a body chunk; with view, a bin data is left
// in data (v.Data a view of it, see DecodeRequestBodyChunkMsgpackView).
func mpReadBodyChunkView(data []byte, v *BodyChunk, s *mpStruct, view bool) (viewed bool, err error) {
	v.Data = v.Data[:0]
	v.TotalSize = Opt[uint64]{}
	v.ChunkIndex = 0
	v.BytesTransferred = 0
	o, err := s.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &v.CorrelationID)
		case 1:
			if view && len(b) > 0 && mpIsBin(b[0]) {
				d, o, err := msgp.ReadBytesZC(b)
				if err != nil {
					return b, errMpShort
				}
				// A repeated data key leaves the last one; the storage
				// given up here is the caller's to keep (see below).
				v.Data, viewed = d[:len(d):len(d)], true
				return o, nil
			}
			if viewed {
				// A bin then a str: decode into fresh storage, never
				// into the view.
				v.Data, viewed = nil, false
			}
			return mpReadData(b, &v.Data)
		case 2:
			return mpReadBool(b, &v.IsLast)
		case 3:
			return mpReadOptU64(b, &v.TotalSize)
		case 4:
			return mpReadU32(b, &v.ChunkIndex)
		default:
			return mpReadU64(b, &v.BytesTransferred)
		}
	})
	return viewed, mpDone(o, err)
}

// DecodeRequestBodyChunkMsgpackView is DecodeRequestBodyChunkMsgpack,
// except that data sent as a bin (raw bytes) is not copied: v.Data is then
// a view of data (capacity limited to its length), valid as long as data
// is, and viewed is true; the storage v.Data had stays the caller's (keep
// it before the call to reuse it). Base64 data is decoded into v.Data's
// capacity as usual (viewed false).
func DecodeRequestBodyChunkMsgpackView(data []byte, v *BodyChunk) (viewed bool, err error) {
	return mpReadBodyChunkView(data, v, mpRequestBodyChunk, true)
}

// DecodeResponseBodyChunkMsgpackView is DecodeResponseBodyChunkMsgpack
// without copying bin data, like DecodeRequestBodyChunkMsgpackView.
func DecodeResponseBodyChunkMsgpackView(data []byte, v *BodyChunk) (viewed bool, err error) {
	return mpReadBodyChunkView(data, v, mpResponseBodyChunk, true)
}

// DecodeRequestBodyChunkMsgpack decodes a request-body-chunk event into v,
// reusing v.Data's capacity. data may be a base64 str or a bin; a repeated
// correlation_id key (the Rust proxy's envelope) is tolerated, the first
// one wins.
func DecodeRequestBodyChunkMsgpack(data []byte, v *BodyChunk) error {
	return mpReadBodyChunk(data, v, mpRequestBodyChunk)
}

// DecodeResponseBodyChunkMsgpack decodes a response-body-chunk event
// (counter key bytes_sent) into v, like DecodeRequestBodyChunkMsgpack.
func DecodeResponseBodyChunkMsgpack(data []byte, v *BodyChunk) error {
	return mpReadBodyChunk(data, v, mpResponseBodyChunk)
}

// ---------------------------------------------------------------------------
// ResponseHeadersEvent (0x12)

var mpResponseHeaders = mpEnvelope(mpNewStruct("response_headers", 3,
	"correlation_id!", "status!", "headers!"))

// AppendResponseHeadersMsgpack appends e as {correlation_id, status, headers}.
func AppendResponseHeadersMsgpack(b []byte, e *ResponseHeadersEvent) []byte {
	b = msgp.AppendMapHeader(b, 3)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, e.CorrelationID)
	b = mpAppendKey(b, "status")
	b = msgp.AppendUint16(b, e.Status)
	b = mpAppendKey(b, "headers")
	return mpAppendHeaders(b, e.Headers)
}

// DecodeResponseHeadersMsgpack decodes a response-headers event into v.
func DecodeResponseHeadersMsgpack(data []byte, v *ResponseHeadersEvent) error {
	o, err := mpResponseHeaders.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &v.CorrelationID)
		case 1:
			return mpReadU16(b, &v.Status)
		default:
			return mpReadHeaders(b, &v.Headers)
		}
	})
	return mpDone(o, err)
}

// ---------------------------------------------------------------------------
// RequestCompleteEvent (0x14)

var mpRequestComplete = mpEnvelope(mpNewStruct("request_complete", 7,
	"correlation_id!", "status!", "duration_ms!", "request_body_size!", "response_body_size!",
	"upstream_attempts!", "error"))

// AppendRequestCompleteMsgpack appends e as a request-complete event map.
func AppendRequestCompleteMsgpack(b []byte, e *RequestCompleteEvent) []byte {
	b = msgp.AppendMapHeader(b, 7)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, e.CorrelationID)
	b = mpAppendKey(b, "status")
	b = msgp.AppendUint16(b, e.Status)
	b = mpAppendKey(b, "duration_ms")
	b = msgp.AppendUint64(b, e.DurationMS)
	b = mpAppendKey(b, "request_body_size")
	b = msgp.AppendUint64(b, e.RequestBodySize)
	b = mpAppendKey(b, "response_body_size")
	b = msgp.AppendUint64(b, e.ResponseBodySize)
	b = mpAppendKey(b, "upstream_attempts")
	b = msgp.AppendUint32(b, e.UpstreamAttempts)
	b = mpAppendKey(b, "error")
	return mpAppendOptStr(b, e.Error)
}

// DecodeRequestCompleteMsgpack decodes a request-complete event into v.
func DecodeRequestCompleteMsgpack(data []byte, v *RequestCompleteEvent) error {
	v.Error = Opt[string]{}
	o, err := mpRequestComplete.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &v.CorrelationID)
		case 1:
			return mpReadU16(b, &v.Status)
		case 2:
			return mpReadU64(b, &v.DurationMS)
		case 3:
			return mpReadU64(b, &v.RequestBodySize)
		case 4:
			return mpReadU64(b, &v.ResponseBodySize)
		case 5:
			return mpReadU32(b, &v.UpstreamAttempts)
		default:
			return mpReadOptString(b, &v.Error)
		}
	})
	return mpDone(o, err)
}

// ---------------------------------------------------------------------------
// WebSocketFrameEvent (0x15)

var mpWebSocketFrame = mpEnvelope(mpNewStruct("websocket_frame", 8,
	"correlation_id!", "opcode!", "data!", "client_to_server!", "frame_index!", "fin!",
	"route_id", "client_ip!"))

func mpAppendWebSocketFrame(b []byte, e *WebSocketFrameEvent, raw bool) []byte {
	b = msgp.AppendMapHeader(b, 8)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, e.CorrelationID)
	b = mpAppendKey(b, "opcode")
	b = mpAppendStr(b, e.Opcode)
	b = mpAppendKey(b, "data")
	b = mpAppendData(b, e.Data, raw)
	b = mpAppendKey(b, "client_to_server")
	b = msgp.AppendBool(b, e.ClientToServer)
	b = mpAppendKey(b, "frame_index")
	b = msgp.AppendUint64(b, e.FrameIndex)
	b = mpAppendKey(b, "fin")
	b = msgp.AppendBool(b, e.Fin)
	b = mpAppendKey(b, "route_id")
	b = mpAppendOptStr(b, e.RouteID)
	b = mpAppendKey(b, "client_ip")
	return mpAppendStr(b, e.ClientIP)
}

// AppendWebSocketFrameMsgpack appends e as a WebSocket-frame event map with
// data as a base64 str.
func AppendWebSocketFrameMsgpack(b []byte, e *WebSocketFrameEvent) []byte {
	return mpAppendWebSocketFrame(b, e, false)
}

// AppendWebSocketFrameMsgpackRaw is AppendWebSocketFrameMsgpack with data
// as a bin of raw bytes (agentwire peers only).
func AppendWebSocketFrameMsgpackRaw(b []byte, e *WebSocketFrameEvent) []byte {
	return mpAppendWebSocketFrame(b, e, true)
}

// DecodeWebSocketFrameMsgpack decodes a WebSocket-frame event into v,
// reusing v.Data; data may be a base64 str or a bin.
func DecodeWebSocketFrameMsgpack(data []byte, v *WebSocketFrameEvent) error {
	v.Data = v.Data[:0]
	v.RouteID = Opt[string]{}
	o, err := mpWebSocketFrame.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &v.CorrelationID)
		case 1:
			return mpReadString(b, &v.Opcode)
		case 2:
			return mpReadData(b, &v.Data)
		case 3:
			return mpReadBool(b, &v.ClientToServer)
		case 4:
			return mpReadU64(b, &v.FrameIndex)
		case 5:
			return mpReadBool(b, &v.Fin)
		case 6:
			return mpReadOptString(b, &v.RouteID)
		default:
			return mpReadString(b, &v.ClientIP)
		}
	})
	return mpDone(o, err)
}

// ---------------------------------------------------------------------------
// GuardrailInspectEvent (0x16)

// model and route_id are Options without a serde default: required in the
// positional form, which may only leave out the trailing defaulted metadata.
var mpGuardrailInspect = mpEnvelope(mpNewStruct("guardrail_inspect", 6,
	"correlation_id!", "inspection_type!", "content!", "model", "categories", "route_id",
	"metadata"))

var mpInspectionTypes = []string{InspectionPromptInjection, InspectionPIIDetection}

// AppendGuardrailInspectMsgpack appends e as a guardrail-inspect event map.
// Absent model / route_id and empty categories / metadata are left out
// (all have defaults on the Rust side). InspectionType is written as is; a
// Rust agent accepts only InspectionPromptInjection and
// InspectionPIIDetection.
func AppendGuardrailInspectMsgpack(b []byte, e *GuardrailInspectEvent) []byte {
	n := uint32(3)
	if e.Model.Valid {
		n++
	}
	if len(e.Categories) > 0 {
		n++
	}
	if e.RouteID.Valid {
		n++
	}
	if len(e.Metadata) > 0 {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, e.CorrelationID)
	b = mpAppendKey(b, "inspection_type")
	b = mpAppendStr(b, e.InspectionType)
	b = mpAppendKey(b, "content")
	b = mpAppendStr(b, e.Content)
	if e.Model.Valid {
		b = mpAppendKey(b, "model")
		b = mpAppendStr(b, e.Model.Value)
	}
	if len(e.Categories) > 0 {
		b = mpAppendKey(b, "categories")
		b = mpAppendStringList(b, e.Categories)
	}
	if e.RouteID.Valid {
		b = mpAppendKey(b, "route_id")
		b = mpAppendStr(b, e.RouteID.Value)
	}
	if len(e.Metadata) > 0 {
		b = mpAppendKey(b, "metadata")
		b = mpAppendStringMap(b, e.Metadata)
	}
	return b
}

// DecodeGuardrailInspectMsgpack decodes a guardrail-inspect event into v.
// inspection_type must be prompt_injection or pii_detection.
func DecodeGuardrailInspectMsgpack(data []byte, v *GuardrailInspectEvent) error {
	v.Model = Opt[string]{}
	v.RouteID = Opt[string]{}
	v.Categories = v.Categories[:0]
	clear(v.Metadata)
	o, err := mpGuardrailInspect.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &v.CorrelationID)
		case 1:
			idx, hasPayload, o, err := mpReadVariant(b, mpInspectionTypes)
			if err != nil {
				return b, err
			}
			v.InspectionType = mpInspectionTypes[idx]
			return mpUnitPayload(hasPayload, o)
		case 2:
			return mpReadString(b, &v.Content)
		case 3:
			return mpReadOptString(b, &v.Model)
		case 4:
			return mpReadStringList(b, &v.Categories)
		case 5:
			return mpReadOptString(b, &v.RouteID)
		default:
			return mpReadStringMap(b, &v.Metadata)
		}
	})
	return mpDone(o, err)
}

// ---------------------------------------------------------------------------
// ConfigureEvent (0x17)

var mpConfigure = mpEnvelope(mpNewStruct("configure", 0,
	"correlation_id", "config", "config_version"))

// AppendConfigureMsgpack appends e as {correlation_id, config,
// config_version}; the config JSON text is written as a native MessagePack
// value (nil Config as nil). It fails only if e.Config is not valid JSON.
func AppendConfigureMsgpack(b []byte, e *ConfigureEvent) ([]byte, error) {
	start := len(b)
	b = msgp.AppendMapHeader(b, 3)
	b = mpAppendKey(b, "correlation_id")
	b = mpAppendStr(b, e.CorrelationID)
	b = mpAppendKey(b, "config")
	b, err := mpAppendJSON(b, e.Config)
	if err != nil {
		return b[:start], mpWrap("configure.config", err)
	}
	b = mpAppendKey(b, "config_version")
	return mpAppendOptStr(b, e.ConfigVersion), nil
}

// DecodeConfigureMsgpack decodes a configure event into v. Every field has
// a default (correlation_id "", config null, config_version None); the
// config value is converted to JSON text (nil becomes "null").
func DecodeConfigureMsgpack(data []byte, v *ConfigureEvent) error {
	v.CorrelationID = ""
	v.Config = nil
	v.ConfigVersion = Opt[string]{}
	o, err := mpConfigure.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &v.CorrelationID)
		case 1:
			js, o, err := mpReadJSON(nil, b, 0)
			if err == nil {
				v.Config = js
			}
			return o, err
		default:
			return mpReadOptString(b, &v.ConfigVersion)
		}
	})
	return mpDone(o, err)
}
