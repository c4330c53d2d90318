package payload

import (
	"bytes"
	"strconv"
)

// JSON encoders and decoders for the proxy → agent events (0x10–0x17).
//
// Encoders write exactly the Rust proxy's Unix-socket payload: compact, the
// event's keys sorted byte-wise at every depth (the Rust proxy goes through
// a serde_json::Value), a top-level "correlation_id" added, Options written
// as null except the fields omitted when empty (traceparent, and the
// guardrail event's model and route_id). Header names are written as given
// (the Rust proxy lower-cases them) in byte-wise order.
//
// Decoders accept what the Rust SDK agent accepts (serde rules; see the
// overview at the top of json_scan.go). They overwrite the destination
// completely, reusing its slices' backing arrays.

// jsonMask returns a bit set of field indexes.
func jsonMask(idx ...int) uint64 {
	var m uint64
	for _, i := range idx {
		m |= 1 << i
	}
	return m
}

// jsonAllFields returns a bit set of the first n fields.
func jsonAllFields(n int) uint64 { return 1<<n - 1 }

// jsonDecodeBase64 appends the decoded form of src to dst[:0]: strict
// standard base64 (canonical padding, zero trailing bits, no CR or LF),
// the inputs Rust's base64 0.22 STANDARD accepts (b64.go).
func jsonDecodeBase64(dst, src []byte) ([]byte, bool) {
	out, ok := b64AppendDecodeStrict(dst[:0], src)
	if !ok {
		return dst[:0], false
	}
	return out, true
}

// DecodeBase64Strict decodes standard padded base64 exactly as strictly as
// the Rust proxy's decoder (base64 0.22 STANDARD): missing or extra padding,
// the URL-safe alphabet, CR/LF and non-zero trailing bits are rejected. The
// result is appended to dst[:0]. Safe for concurrent use.
func DecodeBase64Strict(dst, src []byte) ([]byte, error) {
	out, ok := jsonDecodeBase64(dst, src)
	if !ok {
		return out, &JSONError{Msg: "invalid base64 data"}
	}
	return out, nil
}

// readBase64 reads a JSON string holding strict base64 into dst's backing
// array.
func (d *jsonDecoder) readBase64(dst []byte) ([]byte, bool) {
	c := d.ws()
	at := d.pos
	if c == '"' {
		// Fast path: the bytes up to the next quote, decoded as they are.
		// The decoder accepts alphabet characters and final padding only,
		// so when it succeeds the string has no escape (an escaped quote
		// leaves its backslash in the span), no control character and no
		// non-ASCII byte: it is exactly what the string holds. Anything
		// else takes the general path below.
		if end := bytes.IndexByte(d.data[d.pos+1:], '"'); end >= 0 {
			if out, ok := b64AppendDecodeStrict(dst[:0], d.data[d.pos+1:d.pos+1+end]); ok {
				d.pos += end + 2
				d.rawView = false
				return out, true
			}
		}
	}
	b, ok := d.readStringBytes()
	if !ok {
		return dst[:0], false
	}
	out, ok := jsonDecodeBase64(dst, b)
	if !ok {
		return out, d.failAt(at, "invalid base64 data")
	}
	return out, true
}

// ---------------------------------------------------------------------------
// 0x10 RequestHeaders

// AppendRequestHeadersJSON appends the 0x10 payload of ev: the event with a
// top-level "correlation_id" equal to ev.Metadata.CorrelationID. It does not
// allocate when dst has enough capacity (header sets of more than 64 names
// borrow pooled scratch space). Safe for concurrent use with distinct dst.
func AppendRequestHeadersJSON(dst []byte, ev *RequestHeadersEvent) []byte {
	if fastWriters { // see fastpath_on.go
		if out, ok := jsonAppendRequestHeadersFast(dst, ev); ok {
			return out
		}
	}
	return jsonAppendRequestHeadersGeneral(dst, ev)
}

// jsonAppendRequestHeadersGeneral is the general request-headers encoder
// (any header order, any string).
func jsonAppendRequestHeadersGeneral(dst []byte, ev *RequestHeadersEvent) []byte {
	m := &ev.Metadata
	dst = append(dst, `{"correlation_id":`...)
	dst = jsonAppendString(dst, m.CorrelationID)
	dst = append(dst, `,"headers":`...)
	dst = jsonAppendHeaders(dst, ev.Headers)
	dst = append(dst, `,"metadata":{"client_ip":`...)
	dst = jsonAppendString(dst, m.ClientIP)
	dst = append(dst, `,"client_port":`...)
	dst = strconv.AppendUint(dst, uint64(m.ClientPort), 10)
	dst = append(dst, `,"correlation_id":`...)
	dst = jsonAppendString(dst, m.CorrelationID)
	dst = append(dst, `,"protocol":`...)
	dst = jsonAppendString(dst, m.Protocol)
	dst = append(dst, `,"request_id":`...)
	dst = jsonAppendString(dst, m.RequestID)
	dst = append(dst, `,"route_id":`...)
	dst = jsonAppendOptString(dst, m.RouteID)
	dst = append(dst, `,"server_name":`...)
	dst = jsonAppendOptString(dst, m.ServerName)
	dst = append(dst, `,"timestamp":`...)
	dst = jsonAppendTimestamp(dst, m.Timestamp)
	dst = append(dst, `,"tls_cipher":`...)
	dst = jsonAppendOptString(dst, m.TLSCipher)
	dst = append(dst, `,"tls_version":`...)
	dst = jsonAppendOptString(dst, m.TLSVersion)
	if m.Traceparent != "" {
		dst = append(dst, `,"traceparent":`...)
		dst = jsonAppendString(dst, m.Traceparent)
	}
	dst = append(dst, `,"upstream_id":`...)
	dst = jsonAppendOptString(dst, m.UpstreamID)
	dst = append(dst, `},"method":`...)
	dst = jsonAppendString(dst, ev.Method)
	dst = append(dst, `,"uri":`...)
	dst = jsonAppendString(dst, ev.URI)
	return append(dst, '}')
}

var jsonRequestHeadersFields = jsonFields{
	sorted: true,
	names:  []string{"metadata", "method", "uri", "headers"},
	reqMap: jsonAllFields(4),
	reqSeq: jsonAllFields(4),
}

var jsonMetadataFields = jsonFields{
	sorted: true,
	names: []string{"correlation_id", "request_id", "client_ip", "client_port", "server_name",
		"protocol", "tls_version", "tls_cipher", "route_id", "upstream_id", "timestamp", "traceparent"},
	reqMap: jsonMask(0, 1, 2, 3, 5, 10),
	reqSeq: jsonAllFields(12),
}

// DecodeRequestHeadersJSON decodes a 0x10 payload into ev, overwriting it
// and reusing its Headers storage. The top-level "correlation_id" is ignored
// like the Rust agent does (the proxy always sets it equal to
// metadata.correlation_id). A timestamp that is neither RFC 3339 nor epoch
// milliseconds decodes as the zero time. Decoded strings do not alias data;
// small ones share pooled 4 KiB chunks (see DecodeAgentResponseJSON).
// A header name or value equal to the string ev.Headers held at the same
// position is kept as it is rather than copied again, so ev must not hold
// strings that view a buffer which may change (as left by
// DecodeRequestHeadersJSONNoCopy); reset ev.Headers to nil after such use.
func DecodeRequestHeadersJSON(data []byte, ev *RequestHeadersEvent) error {
	d := jsonDecoder{data: data}
	d.requestHeaders(ev)
	return d.done()
}

// DecodeRequestHeadersJSONNoCopy is DecodeRequestHeadersJSON, except that
// strings without escape sequences point into data instead of being copied:
// the caller must keep data unmodified for as long as it uses ev's strings.
func DecodeRequestHeadersJSONNoCopy(data []byte, ev *RequestHeadersEvent) error {
	d := jsonDecoder{data: data, noCopy: true}
	d.requestHeaders(ev)
	return d.done()
}

func (d *jsonDecoder) requestHeaders(ev *RequestHeadersEvent) bool {
	// Strings equal to the destination's are kept (readStringKeep).
	meta, method, uri := ev.Metadata, ev.Method, ev.URI
	*ev = RequestHeadersEvent{Headers: ev.Headers[:0]}
	var s jsonStruct
	if !d.structBegin(&s, &jsonRequestHeadersFields, "struct RequestHeadersEvent") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			ev.Metadata = meta // requestMetadata keeps equal strings, then clears it
			d.requestMetadata(&ev.Metadata)
		case 1:
			d.readStringKeep(&ev.Method, method)
		case 2:
			d.readStringKeep(&ev.URI, uri)
		case 3:
			ev.Headers = d.readHeaders(ev.Headers)
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) requestMetadata(m *RequestMetadata) bool {
	old := *m // a copying decoder keeps equal strings (readStringKeep)
	*m = RequestMetadata{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonMetadataFields, "struct RequestMetadata") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readStringKeep(&m.CorrelationID, old.CorrelationID)
		case 1:
			// Proxies often send the correlation id as the request id
			// too: share the string (decoded by this call, so valid in a
			// NoCopy decoder as well).
			d.readStringReuse(&m.RequestID, m.CorrelationID)
		case 2:
			d.readStringKeep(&m.ClientIP, old.ClientIP)
		case 3:
			d.readU16(&m.ClientPort)
		case 4:
			d.readOptStringKeep(&m.ServerName, old.ServerName)
		case 5:
			d.readStringKeep(&m.Protocol, old.Protocol)
		case 6:
			d.readOptStringKeep(&m.TLSVersion, old.TLSVersion)
		case 7:
			d.readOptStringKeep(&m.TLSCipher, old.TLSCipher)
		case 8:
			d.readOptStringKeep(&m.RouteID, old.RouteID)
		case 9:
			d.readOptStringKeep(&m.UpstreamID, old.UpstreamID)
		case 10:
			if b, ok := d.readStringBytes(); ok {
				m.Timestamp = jsonParseTimestamp(b)
			}
		case 11:
			if !d.null() {
				d.readStringKeep(&m.Traceparent, old.Traceparent)
			}
		default:
			return d.err == nil
		}
	}
}

// readStringKeep is readString, except that a copying decoder keeps old,
// the string the destination held before this decode, when the value is
// equal to it (a decoder's strings are immutable; see readHeaderValues).
// A NoCopy decoder always points into its own input.
func (d *jsonDecoder) readStringKeep(v *string, old string) bool {
	if d.noCopy {
		return d.readString(v)
	}
	return d.readStringReuse(v, old)
}

// readOptStringKeep is readOptString with readStringKeep.
func (d *jsonDecoder) readOptStringKeep(v *Opt[string], old Opt[string]) bool {
	if d.null() {
		*v = Opt[string]{}
		return true
	}
	v.Valid = true
	return d.readStringKeep(&v.Value, old.Value)
}

// jsonHeaderIndexMin is the header count above which readHeaders switches
// from a linear duplicate search to a map, keeping hostile inputs linear.
const jsonHeaderIndexMin = 32

// readHeaders reads {"name":["v",...],...} into hs's backing array (reusing
// each entry's Values storage). A repeated name replaces the earlier values
// in place (serde map semantics: last wins).
func (d *jsonDecoder) readHeaders(hs Headers) Headers {
	hs = hs[:0]
	if !d.mapBegin("a map") {
		return hs
	}
	var s jsonSeq
	var index map[string]int
	var seen uint64 // mpNameBit of every name so far (before the index)
	for {
		// A copying decoder tries the name this slot held first: a key
		// equal to it is taken in one pass (jsonSameString, with the
		// colon right after it, as readKey's fast path takes it).
		var k []byte
		if !d.mapSep(&s) {
			break
		}
		sameOld := false // k is the name the next slot holds
		if p := d.pos; !d.noCopy && len(hs) < cap(hs) {
			if old := hs[:len(hs)+1][len(hs)].Name; old != "" {
				if q, same := jsonSameString(d.data, p, old); same && q < len(d.data) && d.data[q] == ':' {
					k = d.data[p+1 : q-1]
					d.pos = q + 1
					d.rawView = true
					sameOld = true
				}
			}
		}
		if k == nil {
			var ok bool
			if k, ok = d.readKey(); !ok {
				break
			}
		}
		pos := -1
		if index != nil {
			if p, found := index[string(k)]; found {
				pos = p
			}
		} else if bit := mpNameBit(k); seen&bit == 0 {
			seen |= bit // no earlier name has this length/first/last byte mix: no scan
		} else {
			for i := range hs {
				if hs[i].Name == string(k) {
					pos = i
					break
				}
			}
		}
		if pos < 0 {
			var name string
			if len(hs) < cap(hs) {
				hs = hs[:len(hs)+1]
				// A copying decoder keeps the name this slot held when
				// it is the same (immutable there; see readHeaderValues).
				if old := hs[len(hs)-1].Name; !d.noCopy && (sameOld || old == string(k)) {
					name = old
				}
			} else {
				hs = append(hs, Header{})
			}
			if name == "" {
				name = d.keyString(k)
			}
			pos = len(hs) - 1
			hs[pos].Name = name
			if index != nil {
				index[name] = pos
			} else if len(hs) > jsonHeaderIndexMin {
				index = make(map[string]int, 2*len(hs))
				for i := range hs {
					index[hs[i].Name] = i
				}
			}
		}
		vals, ok := d.readHeaderValues(hs[pos].Values, "a sequence")
		hs[pos].Values = vals
		if !ok {
			break
		}
	}
	return hs
}

// ---------------------------------------------------------------------------
// 0x11 / 0x13 body chunks

// AppendRequestBodyChunkJSON appends the 0x11 payload of c (counter written
// as bytes_received, data as padded base64). Zero allocations when dst has
// room. Safe for concurrent use with distinct dst.
func AppendRequestBodyChunkJSON(dst []byte, c *BodyChunk) []byte {
	dst = append(dst, `{"bytes_received":`...)
	return jsonAppendBodyChunkRest(dst, c)
}

// AppendResponseBodyChunkJSON appends the 0x13 payload of c (counter written
// as bytes_sent).
func AppendResponseBodyChunkJSON(dst []byte, c *BodyChunk) []byte {
	dst = append(dst, `{"bytes_sent":`...)
	return jsonAppendBodyChunkRest(dst, c)
}

func jsonAppendBodyChunkRest(dst []byte, c *BodyChunk) []byte {
	dst = strconv.AppendUint(dst, c.BytesTransferred, 10)
	dst = append(dst, `,"chunk_index":`...)
	dst = strconv.AppendUint(dst, uint64(c.ChunkIndex), 10)
	dst = append(dst, `,"correlation_id":`...)
	dst = jsonAppendString(dst, c.CorrelationID)
	dst = append(dst, `,"data":`...)
	dst = jsonAppendBase64(dst, c.Data)
	dst = append(dst, `,"is_last":`...)
	dst = jsonAppendBool(dst, c.IsLast)
	dst = append(dst, `,"total_size":`...)
	dst = jsonAppendOptU64(dst, c.TotalSize)
	return append(dst, '}')
}

var (
	jsonRequestChunkFields = jsonFields{
		sorted: true,
		names:  []string{"correlation_id", "data", "is_last", "total_size", "chunk_index", "bytes_received"},
		reqMap: jsonMask(0, 1, 2),
		reqSeq: jsonMask(0, 1, 2, 3),
	}
	jsonResponseChunkFields = jsonFields{
		sorted: true,
		names:  []string{"correlation_id", "data", "is_last", "total_size", "chunk_index", "bytes_sent"},
		reqMap: jsonMask(0, 1, 2),
		reqSeq: jsonMask(0, 1, 2, 3),
	}
)

// DecodeRequestBodyChunkJSON decodes a 0x11 payload into c, reusing c.Data's
// backing array. data must be strict standard base64 (anything else is an
// error; the Rust agent would silently use the text's bytes instead).
func DecodeRequestBodyChunkJSON(data []byte, c *BodyChunk) error {
	d := jsonDecoder{data: data}
	d.bodyChunk(c, &jsonRequestChunkFields)
	return d.done()
}

// DecodeResponseBodyChunkJSON decodes a 0x13 payload into c (counter read
// from bytes_sent).
func DecodeResponseBodyChunkJSON(data []byte, c *BodyChunk) error {
	d := jsonDecoder{data: data}
	d.bodyChunk(c, &jsonResponseChunkFields)
	return d.done()
}

func (d *jsonDecoder) bodyChunk(c *BodyChunk, f *jsonFields) bool {
	*c = BodyChunk{Data: c.Data[:0]}
	var s jsonStruct
	if !d.structBegin(&s, f, "struct BodyChunkEvent") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&c.CorrelationID)
		case 1:
			c.Data, _ = d.readBase64(c.Data)
		case 2:
			d.readBool(&c.IsLast)
		case 3:
			d.readOptU64(&c.TotalSize)
		case 4:
			d.readU32(&c.ChunkIndex)
		case 5:
			d.readU64(&c.BytesTransferred)
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x12 ResponseHeaders

// AppendResponseHeadersJSON appends the 0x12 payload of ev.
func AppendResponseHeadersJSON(dst []byte, ev *ResponseHeadersEvent) []byte {
	dst = append(dst, `{"correlation_id":`...)
	dst = jsonAppendString(dst, ev.CorrelationID)
	dst = append(dst, `,"headers":`...)
	dst = jsonAppendHeaders(dst, ev.Headers)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendUint(dst, uint64(ev.Status), 10)
	return append(dst, '}')
}

var jsonResponseHeadersFields = jsonFields{
	sorted: true,
	names:  []string{"correlation_id", "status", "headers"},
	reqMap: jsonAllFields(3),
	reqSeq: jsonAllFields(3),
}

// DecodeResponseHeadersJSON decodes a 0x12 payload into ev.
func DecodeResponseHeadersJSON(data []byte, ev *ResponseHeadersEvent) error {
	d := jsonDecoder{data: data}
	d.responseHeaders(ev)
	return d.done()
}

func (d *jsonDecoder) responseHeaders(ev *ResponseHeadersEvent) bool {
	*ev = ResponseHeadersEvent{Headers: ev.Headers[:0]}
	var s jsonStruct
	if !d.structBegin(&s, &jsonResponseHeadersFields, "struct ResponseHeadersEvent") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&ev.CorrelationID)
		case 1:
			d.readU16(&ev.Status)
		case 2:
			ev.Headers = d.readHeaders(ev.Headers)
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x14 RequestComplete

// AppendRequestCompleteJSON appends the 0x14 payload of ev.
func AppendRequestCompleteJSON(dst []byte, ev *RequestCompleteEvent) []byte {
	dst = append(dst, `{"correlation_id":`...)
	dst = jsonAppendString(dst, ev.CorrelationID)
	dst = append(dst, `,"duration_ms":`...)
	dst = strconv.AppendUint(dst, ev.DurationMS, 10)
	dst = append(dst, `,"error":`...)
	dst = jsonAppendOptString(dst, ev.Error)
	dst = append(dst, `,"request_body_size":`...)
	dst = strconv.AppendUint(dst, ev.RequestBodySize, 10)
	dst = append(dst, `,"response_body_size":`...)
	dst = strconv.AppendUint(dst, ev.ResponseBodySize, 10)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendUint(dst, uint64(ev.Status), 10)
	dst = append(dst, `,"upstream_attempts":`...)
	dst = strconv.AppendUint(dst, uint64(ev.UpstreamAttempts), 10)
	return append(dst, '}')
}

var jsonRequestCompleteFields = jsonFields{
	sorted: true,
	names: []string{"correlation_id", "status", "duration_ms", "request_body_size",
		"response_body_size", "upstream_attempts", "error"},
	reqMap: jsonAllFields(6),
	reqSeq: jsonAllFields(7),
}

// DecodeRequestCompleteJSON decodes a 0x14 payload into ev.
func DecodeRequestCompleteJSON(data []byte, ev *RequestCompleteEvent) error {
	d := jsonDecoder{data: data}
	d.requestComplete(ev)
	return d.done()
}

func (d *jsonDecoder) requestComplete(ev *RequestCompleteEvent) bool {
	*ev = RequestCompleteEvent{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonRequestCompleteFields, "struct RequestCompleteEvent") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&ev.CorrelationID)
		case 1:
			d.readU16(&ev.Status)
		case 2:
			d.readU64(&ev.DurationMS)
		case 3:
			d.readU64(&ev.RequestBodySize)
		case 4:
			d.readU64(&ev.ResponseBodySize)
		case 5:
			d.readU32(&ev.UpstreamAttempts)
		case 6:
			d.readOptString(&ev.Error)
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x15 WebSocketFrame

// AppendWebSocketFrameJSON appends the 0x15 payload of ev (data as base64).
func AppendWebSocketFrameJSON(dst []byte, ev *WebSocketFrameEvent) []byte {
	dst = append(dst, `{"client_ip":`...)
	dst = jsonAppendString(dst, ev.ClientIP)
	dst = append(dst, `,"client_to_server":`...)
	dst = jsonAppendBool(dst, ev.ClientToServer)
	dst = append(dst, `,"correlation_id":`...)
	dst = jsonAppendString(dst, ev.CorrelationID)
	dst = append(dst, `,"data":`...)
	dst = jsonAppendBase64(dst, ev.Data)
	dst = append(dst, `,"fin":`...)
	dst = jsonAppendBool(dst, ev.Fin)
	dst = append(dst, `,"frame_index":`...)
	dst = strconv.AppendUint(dst, ev.FrameIndex, 10)
	dst = append(dst, `,"opcode":`...)
	dst = jsonAppendString(dst, ev.Opcode)
	dst = append(dst, `,"route_id":`...)
	dst = jsonAppendOptString(dst, ev.RouteID)
	return append(dst, '}')
}

var jsonWebSocketFrameFields = jsonFields{
	sorted: true,
	names: []string{"correlation_id", "opcode", "data", "client_to_server", "frame_index",
		"fin", "route_id", "client_ip"},
	reqMap: jsonMask(0, 1, 2, 3, 4, 5, 7),
	reqSeq: jsonAllFields(8),
}

// DecodeWebSocketFrameJSON decodes a 0x15 payload into ev, reusing ev.Data's
// backing array. The opcode is any string, as in Rust.
func DecodeWebSocketFrameJSON(data []byte, ev *WebSocketFrameEvent) error {
	d := jsonDecoder{data: data}
	d.webSocketFrame(ev)
	return d.done()
}

func (d *jsonDecoder) webSocketFrame(ev *WebSocketFrameEvent) bool {
	*ev = WebSocketFrameEvent{Data: ev.Data[:0]}
	var s jsonStruct
	if !d.structBegin(&s, &jsonWebSocketFrameFields, "struct WebSocketFrameEvent") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&ev.CorrelationID)
		case 1:
			d.readString(&ev.Opcode)
		case 2:
			ev.Data, _ = d.readBase64(ev.Data)
		case 3:
			d.readBool(&ev.ClientToServer)
		case 4:
			d.readU64(&ev.FrameIndex)
		case 5:
			d.readBool(&ev.Fin)
		case 6:
			d.readOptString(&ev.RouteID)
		case 7:
			d.readString(&ev.ClientIP)
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x16 GuardrailInspect

// AppendGuardrailInspectJSON appends the 0x16 payload of ev. Model and
// RouteID are left out when absent; categories and metadata are always
// written ([] and {} when empty). InspectionType is written as given.
func AppendGuardrailInspectJSON(dst []byte, ev *GuardrailInspectEvent) []byte {
	dst = append(dst, `{"categories":`...)
	dst = jsonAppendStrings(dst, ev.Categories)
	dst = append(dst, `,"content":`...)
	dst = jsonAppendString(dst, ev.Content)
	dst = append(dst, `,"correlation_id":`...)
	dst = jsonAppendString(dst, ev.CorrelationID)
	dst = append(dst, `,"inspection_type":`...)
	dst = jsonAppendString(dst, ev.InspectionType)
	dst = append(dst, `,"metadata":`...)
	dst = jsonAppendStringMap(dst, ev.Metadata)
	if ev.Model.Valid {
		dst = append(dst, `,"model":`...)
		dst = jsonAppendString(dst, ev.Model.Value)
	}
	if ev.RouteID.Valid {
		dst = append(dst, `,"route_id":`...)
		dst = jsonAppendString(dst, ev.RouteID.Value)
	}
	return append(dst, '}')
}

var jsonGuardrailInspectFields = jsonFields{
	sorted: true,
	names: []string{"correlation_id", "inspection_type", "content", "model", "categories",
		"route_id", "metadata"},
	reqMap: jsonMask(0, 1, 2),
	reqSeq: jsonMask(0, 1, 2, 3, 5),
}

// DecodeGuardrailInspectJSON decodes a 0x16 payload into ev, reusing its
// Categories storage and (cleared) Metadata map. inspection_type must be
// "prompt_injection" or "pii_detection".
func DecodeGuardrailInspectJSON(data []byte, ev *GuardrailInspectEvent) error {
	d := jsonDecoder{data: data}
	d.guardrailInspect(ev)
	return d.done()
}

func (d *jsonDecoder) guardrailInspect(ev *GuardrailInspectEvent) bool {
	md := ev.Metadata
	clear(md)
	*ev = GuardrailInspectEvent{Categories: ev.Categories[:0], Metadata: md}
	var s jsonStruct
	if !d.structBegin(&s, &jsonGuardrailInspectFields, "struct GuardrailInspectEvent") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&ev.CorrelationID)
		case 1:
			d.ws()
			at := d.pos
			b, ok := d.readStringBytes()
			if !ok {
				break
			}
			switch string(b) {
			case InspectionPromptInjection:
				ev.InspectionType = InspectionPromptInjection
			case InspectionPIIDetection:
				ev.InspectionType = InspectionPIIDetection
			default:
				d.failAt(at, "unknown variant `"+string(b)+"`, expected `prompt_injection` or `pii_detection`")
			}
		case 2:
			d.readString(&ev.Content)
		case 3:
			d.readOptString(&ev.Model)
		case 4:
			ev.Categories, _ = d.readStringSlice(ev.Categories, "a sequence")
		case 5:
			d.readOptString(&ev.RouteID)
		case 6:
			d.readStringMap(&ev.Metadata, "a map")
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x17 Configure

// AppendConfigureJSON appends the 0x17 payload of ev:
// {"config":…,"config_version":…,"correlation_id":…}. Config is written
// verbatim (without surrounding whitespace) when it is one valid JSON value,
// and as null when it is nil or invalid. For byte-identical output with the
// Rust proxy, Config's own object keys must already be sorted.
func AppendConfigureJSON(dst []byte, ev *ConfigureEvent) []byte {
	dst = append(dst, `{"config":`...)
	dst = jsonAppendRaw(dst, ev.Config)
	dst = append(dst, `,"config_version":`...)
	dst = jsonAppendOptString(dst, ev.ConfigVersion)
	dst = append(dst, `,"correlation_id":`...)
	dst = jsonAppendString(dst, ev.CorrelationID)
	return append(dst, '}')
}

var jsonConfigureFields = jsonFields{
	sorted: true,
	names:  []string{"correlation_id", "config", "config_version"},
}

// DecodeConfigureJSON decodes a 0x17 payload into ev. Every field has a
// default (Rust SDK ConfigurePayload): missing correlation_id is "", missing
// or null config is nil. Config is copied (it does not alias data).
func DecodeConfigureJSON(data []byte, ev *ConfigureEvent) error {
	d := jsonDecoder{data: data}
	d.configure(ev)
	return d.done()
}

func (d *jsonDecoder) configure(ev *ConfigureEvent) bool {
	*ev = ConfigureEvent{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonConfigureFields, "struct ConfigurePayload") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&ev.CorrelationID)
		case 1:
			d.readRaw((*[]byte)(&ev.Config))
		case 2:
			d.readOptString(&ev.ConfigVersion)
		default:
			return d.err == nil
		}
	}
}
