package agent

import (
	"time"
	"unsafe"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/headerset"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// This file is the agent's fast path for the hot ProxyToAgent events
// (request headers, response headers, request complete, guardrail): the
// message bytes become one immutable string (grpc-go's own buffer when it
// is never reused, see serverCodec; else a copy) and are decoded straight
// into the payload event, every string field becoming a substring of it.
// That costs at most one allocation per event instead of one per string
// field (2 per header), and the strings stay valid forever (a handler that
// keeps one keeps the message text alive).
//
// The decoder only handles the plain shape proxies send: one oneof member,
// each embedded message at most once, no groups, no malformed input. For
// anything else it reports !ok and the caller decodes the same bytes with
// the generated vtprotobuf code and internal/pbconv, which are the
// reference: the fast path's results equal theirs wherever it accepts
// (FuzzFastDecode holds the two together).

// ProxyToAgent field numbers.
const (
	fieldHandshake         = 1
	fieldRequestHeaders    = 2
	fieldRequestBodyChunk  = 3
	fieldResponseHeaders   = 4
	fieldResponseBodyChunk = 5
	fieldWebSocketFrame    = 6
	fieldGuardrail         = 7
	fieldRequestComplete   = 8
)

// Protobuf wire types.
const (
	wtVarint = 0
	wtI64    = 1
	wtLen    = 2
	wtI32    = 5
)

// inbound is the receive target of a ProcessStream reader.
//
// With a codec that calls UnmarshalVT (codec/grpccodec, used by ServeGRPC)
// the bytes of a hot event are kept in raw and decoded by decodeFast; other
// messages are unmarshalled into the embedded pooled ProxyToAgent. With a
// codec that uses protobuf reflection (grpc-go's default) the embedded
// message's promoted ProtoReflect makes inbound look like that message, so
// it is filled as usual and raw stays empty.
type inbound struct {
	*pb.ProxyToAgent
	raw string
}

// UnmarshalVT implements the vtprotobuf unmarshal method the codec looks
// for. It shadows the embedded message's method.
func (in *inbound) UnmarshalVT(b []byte) error {
	if len(b) > 0 && isHotTag(b[0]) {
		in.raw = string(b)
		return nil
	}
	in.raw = ""
	return in.ProxyToAgent.UnmarshalVT(b)
}

// isHotTag reports whether a message starting with tag byte c is one the
// fast path handles (a length-delimited request headers, response headers,
// guardrail or request complete member).
func isHotTag(c byte) bool {
	switch c {
	case fieldRequestHeaders<<3 | wtLen, fieldResponseHeaders<<3 | wtLen, fieldGuardrail<<3 | wtLen, fieldRequestComplete<<3 | wtLen:
		return true
	}
	return false
}

// bytesOf returns the bytes of s without copying. The result must only be
// read (it is passed to UnmarshalVT, which copies what it keeps).
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// wire is a protobuf reader over an immutable string.
type wire struct {
	s  string
	i  int
	ok bool
}

func (w *wire) more() bool { return w.ok && w.i < len(w.s) }

func (w *wire) varint() uint64 {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if w.i >= len(w.s) {
			w.ok = false
			return 0
		}
		c := w.s[w.i]
		w.i++
		v |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return v
		}
	}
	w.ok = false
	return 0
}

// tag reads a field tag. Like the generated code, the field number is the
// tag shifted right by 3 and truncated to int32; zero or negative is
// illegal.
func (w *wire) tag() (num uint64, wt int) {
	t := w.varint()
	n := int32(t >> 3)
	if n <= 0 {
		w.ok = false
		return 0, 0
	}
	return uint64(n), int(t & 7)
}

// str reads the body of a length-delimited field.
func (w *wire) str() string {
	n := w.varint()
	if !w.ok || n > uint64(len(w.s)-w.i) {
		w.ok = false
		return ""
	}
	s := w.s[w.i : w.i+int(n)]
	w.i += int(n)
	return s
}

// skip skips a field of wire type wt (groups are not handled: !ok).
func (w *wire) skip(wt int) {
	switch wt {
	case wtVarint:
		w.varint()
	case wtI64:
		w.advance(8)
	case wtI32:
		w.advance(4)
	case wtLen:
		w.str()
	default:
		w.ok = false
	}
}

func (w *wire) advance(n int) {
	if len(w.s)-w.i < n {
		w.ok = false
		return
	}
	w.i += n
}

// expect checks a known field's wire type.
func (w *wire) expect(wt, want int) bool {
	if wt != want {
		w.ok = false
	}
	return w.ok
}

// decodeFast decodes raw (a whole ProxyToAgent message) into x, setting
// x.kind and x.cid. It reports false when the message is not in the plain
// shape it handles; x is then partly written and must be decoded again by
// the reference path.
func decodeFast(raw string, x *exchange) bool {
	w := wire{s: raw, ok: true}
	num, wt := w.tag()
	if !w.expect(wt, wtLen) {
		return false
	}
	body := w.str()
	if !w.ok || w.i != len(raw) {
		return false // more than one top-level field
	}
	switch num {
	case fieldRequestHeaders:
		x.kind = kindRequestHeaders
		if !decodeRequestHeaders(body, &x.reqHeaders) {
			return false
		}
		x.cid = x.reqHeaders.Metadata.CorrelationID
	case fieldResponseHeaders:
		x.kind = kindResponseHeaders
		if !decodeResponseHeaders(body, &x.respHeaders) {
			return false
		}
		x.cid = x.respHeaders.CorrelationID
	case fieldRequestComplete:
		x.kind = kindRequestComplete
		if !decodeRequestComplete(body, &x.complete) {
			return false
		}
		x.cid = x.complete.CorrelationID
	case fieldGuardrail:
		x.kind = kindGuardrailInspect
		var g pb.GuardrailInspectEvent
		if !decodeGuardrail(body, &g) {
			return false
		}
		pbconv.GuardrailInspectEventFromPB(&x.guard, &g)
		x.cid = x.guard.CorrelationID
	default:
		return false
	}
	return true
}

func decodeRequestHeaders(s string, ev *agentwire.RequestHeadersEvent) bool {
	ev.Metadata = agentwire.RequestMetadata{}
	ev.Method, ev.URI = "", ""
	ev.Headers = ev.Headers[:0]
	var names headerset.Grouper
	w := wire{s: s, ok: true}
	seenMeta := false
	for w.more() {
		if h, ok := w.shortHeader(); ok {
			ev.Headers, w.ok = decodeHeader(h, ev.Headers, &names)
			continue
		}
		num, wt := w.tag()
		if !w.ok {
			return false
		}
		switch num {
		case 1:
			if seenMeta || !w.expect(wt, wtLen) {
				return false // a repeated embedded message merges: reference path
			}
			seenMeta = true
			if m := w.str(); !w.ok || !decodeMetadata(m, &ev.Metadata) {
				return false
			}
		case 2:
			if w.expect(wt, wtLen) {
				ev.Method = w.str()
			}
		case 3:
			if w.expect(wt, wtLen) {
				ev.URI = w.str()
			}
		case 4: // http_version: no payload field
			if w.expect(wt, wtLen) {
				w.str()
			}
		case 5:
			if w.expect(wt, wtLen) {
				h := w.str()
				if w.ok {
					ev.Headers, w.ok = decodeHeader(h, ev.Headers, &names)
				}
			}
		default:
			w.skip(wt)
		}
	}
	return w.ok
}

func decodeMetadata(s string, m *agentwire.RequestMetadata) bool {
	w := wire{s: s, ok: true}
	for w.more() {
		num, wt := w.tag()
		if !w.ok {
			return false
		}
		switch num {
		case 1, 2, 3, 5, 6, 7, 8, 9, 11:
			if !w.expect(wt, wtLen) {
				return false
			}
			v := w.str()
			switch num {
			case 1:
				m.CorrelationID = v
			case 2:
				m.RequestID = v
			case 3:
				m.ClientIP = v
			case 5:
				m.ServerName = agentwire.Some(v)
			case 6:
				m.Protocol = v
			case 7:
				m.TLSVersion = agentwire.Some(v)
			case 8:
				m.RouteID = agentwire.Some(v)
			case 9:
				m.UpstreamID = agentwire.Some(v)
			case 11:
				m.Traceparent = v
			}
		case 4:
			if w.expect(wt, wtVarint) {
				m.ClientPort = uint16(w.varint())
			}
		case 10:
			if w.expect(wt, wtVarint) {
				m.Timestamp = timeFromMS(w.varint())
			}
		default:
			w.skip(wt)
		}
	}
	return w.ok
}

// shortHeader reads a headers field (number 5 of RequestHeadersEvent) whose
// length is below 128, the usual header, without the generic tag and
// length reads; ok is false (and nothing is read) for any other field.
func (w *wire) shortHeader() (h string, ok bool) {
	i := w.i
	if i+1 >= len(w.s) || w.s[i] != 5<<3|wtLen {
		return "", false
	}
	n := int(w.s[i+1])
	if n >= 0x80 || n > len(w.s)-i-2 {
		return "", false
	}
	w.i = i + 2 + n
	return w.s[i+2 : w.i], true
}

// decodeHeader decodes one Header message and adds it to h (grouped by
// name, like pbconv.HeadersFromPB, reusing Values capacity).
func decodeHeader(s string, h agentwire.Headers, names *headerset.Grouper) (agentwire.Headers, bool) {
	// The usual shape: name then value, both present, both shorter than
	// 128 bytes, nothing else.
	if len(s) >= 4 && s[0] == 1<<3|wtLen && s[1] < 0x80 {
		ln := int(s[1])
		if j := 2 + ln; j+2 <= len(s) && s[j] == 2<<3|wtLen && s[j+1] < 0x80 && int(s[j+1]) == len(s)-j-2 {
			return names.Add(h, s[2:j], s[j+2:]), true
		}
	}
	w := wire{s: s, ok: true}
	var name, value string
	for w.more() {
		num, wt := w.tag()
		if !w.ok {
			return h, false
		}
		switch num {
		case 1:
			if w.expect(wt, wtLen) {
				name = w.str()
			}
		case 2:
			if w.expect(wt, wtLen) {
				value = w.str()
			}
		default:
			w.skip(wt)
		}
	}
	if !w.ok {
		return h, false
	}
	return names.Add(h, name, value), true
}

func decodeResponseHeaders(s string, ev *agentwire.ResponseHeadersEvent) bool {
	ev.CorrelationID, ev.Status = "", 0
	ev.Headers = ev.Headers[:0]
	var names headerset.Grouper
	w := wire{s: s, ok: true}
	for w.more() {
		num, wt := w.tag()
		if !w.ok {
			return false
		}
		switch num {
		case 1:
			if w.expect(wt, wtLen) {
				ev.CorrelationID = w.str()
			}
		case 2:
			if w.expect(wt, wtVarint) {
				ev.Status = uint16(uint32(w.varint()))
			}
		case 3:
			if w.expect(wt, wtLen) {
				h := w.str()
				if w.ok {
					ev.Headers, w.ok = decodeHeader(h, ev.Headers, &names)
				}
			}
		default:
			w.skip(wt)
		}
	}
	return w.ok
}

func decodeRequestComplete(s string, ev *agentwire.RequestCompleteEvent) bool {
	*ev = agentwire.RequestCompleteEvent{UpstreamAttempts: 1}
	fromCache := false
	w := wire{s: s, ok: true}
	for w.more() {
		num, wt := w.tag()
		if !w.ok {
			return false
		}
		switch num {
		case 1:
			if w.expect(wt, wtLen) {
				ev.CorrelationID = w.str()
			}
		case 2:
			if w.expect(wt, wtVarint) {
				ev.Status = uint16(uint32(w.varint()))
			}
		case 3:
			if w.expect(wt, wtVarint) {
				ev.DurationMS = w.varint()
			}
		case 4:
			if w.expect(wt, wtVarint) {
				ev.RequestBodySize = w.varint()
			}
		case 5:
			if w.expect(wt, wtVarint) {
				ev.ResponseBodySize = w.varint()
			}
		case 6: // upstream: no payload field
			if w.expect(wt, wtLen) {
				w.str()
			}
		case 7:
			if w.expect(wt, wtVarint) {
				fromCache = w.varint() != 0
			}
		case 8:
			if w.expect(wt, wtLen) {
				ev.Error = agentwire.Some(w.str())
			}
		default:
			w.skip(wt)
		}
	}
	if fromCache {
		ev.UpstreamAttempts = 0
	}
	return w.ok
}

// decodeGuardrail fills a stack GuardrailInspectEvent (strings are
// substrings of s) for pbconv to convert.
func decodeGuardrail(s string, g *pb.GuardrailInspectEvent) bool {
	w := wire{s: s, ok: true}
	for w.more() {
		num, wt := w.tag()
		if !w.ok {
			return false
		}
		switch num {
		case 1:
			if w.expect(wt, wtLen) {
				g.CorrelationId = w.str()
			}
		case 2:
			if w.expect(wt, wtLen) {
				g.Content = w.str()
			}
		case 3:
			if w.expect(wt, wtVarint) {
				g.ContentType = int32(w.varint())
			}
		case 4:
			if w.expect(wt, wtLen) {
				m := w.str()
				g.Model = &m
			}
		case 5:
			if w.expect(wt, wtLen) {
				g.ContextJson = w.str()
			}
		default:
			w.skip(wt)
		}
	}
	return w.ok
}

// timeFromMS converts epoch milliseconds to a UTC time; 0 gives the zero
// time (as internal/pbconv does).
func timeFromMS(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}
