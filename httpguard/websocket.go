package httpguard

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// Opcode is a WebSocket frame opcode (RFC 6455 section 5.2).
type Opcode uint8

// Opcodes.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// String returns the opcode as the WebSocketFrameEvent spells it
// ("continuation", "text", "binary", "close", "ping", "pong"); "reserved"
// for the others.
func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "reserved"
}

// IsControl reports whether o is a control opcode (close, ping, pong).
func (o Opcode) IsControl() bool { return o&0x8 != 0 }

// Frame is one WebSocket frame parsed by ParseFrame. Raw and Payload alias
// the parsed bytes.
type Frame struct {
	Fin    bool
	RSV    uint8 // the RSV1-3 bits, RSV1 = 4 (set by extensions such as permessage-deflate)
	Opcode Opcode
	Masked bool
	Key    [4]byte // the masking key when Masked
	// Payload is the payload as it is in the bytes: still masked when
	// Masked, until ToggleMask.
	Payload []byte
	// Raw is the whole frame, header included.
	Raw []byte
}

// MaxControlPayload is the largest payload of a control frame.
const MaxControlPayload = 125

// frameError builds an ErrFrame error.
func frameError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFrame}, args...)...)
}

// ErrFrameTooLarge is returned (wrapped in ErrFrame) by ParseFrame for a
// frame whose payload exceeds the limit; the connection should be closed
// with CloseMessageTooBig.
var ErrFrameTooLarge = fmt.Errorf("%w: payload larger than the limit", ErrFrame)

// ParseFrame parses the frame at the start of b into f and returns its
// length, or 0 and no error when b holds only the start of a frame (read
// more and call again). Frames whose payload exceeds maxPayload fail with
// ErrFrameTooLarge as soon as the header says so, before the payload is
// read. It checks the frame's structure (RFC 6455 section 5): no reserved
// opcode, control frames unfragmented with at most 125 bytes, a 64-bit
// length below 2^63; not whether masking is right for the direction, the
// RSV bits (extensions) or the contents. It never panics and allocates
// nothing; f's slices alias b.
func ParseFrame(b []byte, maxPayload int, f *Frame) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	b0, b1 := b[0], b[1]
	*f = Frame{Fin: b0&0x80 != 0, RSV: (b0 >> 4) & 0x7, Opcode: Opcode(b0 & 0x0F), Masked: b1&0x80 != 0}
	switch f.Opcode {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
	default:
		return 0, frameError("reserved opcode 0x%x", uint8(f.Opcode))
	}
	hdr := 2
	length := uint64(b1 & 0x7F)
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		length = uint64(binary.BigEndian.Uint16(b[2:4]))
		hdr = 4
	case 127:
		if len(b) < 10 {
			return 0, nil
		}
		length = binary.BigEndian.Uint64(b[2:10])
		if length>>63 != 0 {
			return 0, frameError("64-bit length with the top bit set")
		}
		hdr = 10
	}
	if f.Opcode.IsControl() {
		if !f.Fin {
			return 0, frameError("fragmented control frame")
		}
		if length > MaxControlPayload {
			return 0, frameError("control frame with a %d-byte payload", length)
		}
	}
	if length > uint64(max(maxPayload, 0)) {
		return 0, ErrFrameTooLarge
	}
	if f.Masked {
		if len(b) < hdr+4 {
			return 0, nil
		}
		copy(f.Key[:], b[hdr:hdr+4])
		hdr += 4
	}
	total := hdr + int(length)
	if len(b) < total {
		return 0, nil
	}
	f.Payload = b[hdr:total:total]
	f.Raw = b[:total:total]
	return total, nil
}

// ToggleMask masks or unmasks the payload in place with the frame's key
// (the operation is its own inverse); nothing for an unmasked frame.
func (f *Frame) ToggleMask() {
	if f.Masked {
		maskBytes(f.Payload, f.Key, 0)
	}
}

// maskBytes XORs b with key, starting at key position pos.
func maskBytes(b []byte, key [4]byte, pos int) {
	if len(b) >= 16 {
		// Eight bytes at a time with the key rotated to pos.
		var k8 [8]byte
		for i := range k8 {
			k8[i] = key[(pos+i)&3]
		}
		kw := binary.LittleEndian.Uint64(k8[:])
		i := 0
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^kw)
		}
		b = b[i:]
		pos += i
	}
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
}

// AppendFrame appends a frame to dst: fin, opcode, the payload, masked
// with *key when key is non-nil (client-to-server frames must be, server
// frames must not). The length is encoded in the fewest bytes.
func AppendFrame(dst []byte, fin bool, op Opcode, payload []byte, key *[4]byte) []byte {
	b0 := byte(op) & 0x0F
	if fin {
		b0 |= 0x80
	}
	var mbit byte
	if key != nil {
		mbit = 0x80
	}
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, b0, mbit|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, mbit|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, mbit|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if key != nil {
		dst = append(dst, key[:]...)
	}
	start := len(dst)
	dst = append(dst, payload...)
	if key != nil {
		maskBytes(dst[start:], *key, 0)
	}
	return dst
}

// WebSocket close codes (RFC 6455 section 7.4.1).
const (
	CloseNormal         uint16 = 1000
	CloseGoingAway      uint16 = 1001
	CloseProtocolError  uint16 = 1002
	ClosePolicyViolated uint16 = 1008
	CloseMessageTooBig  uint16 = 1009
	CloseInternalError  uint16 = 1011
)

// CloseCodeSendable reports whether code may be sent in a close frame:
// 1000-1003, 1007-1014 and the application range 3000-4999 (1004-1006
// and 1015 are reserved and must never be sent, RFC 6455 section 7.4).
func CloseCodeSendable(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// maxCloseReason is the longest reason a close frame holds (125 - 2).
const maxCloseReason = MaxControlPayload - 2

// AppendCloseFrame appends a close frame with code and reason. A code that
// may not be sent becomes ClosePolicyViolated; a reason that is not valid
// UTF-8 is left out, and a longer one is cut to 123 bytes at a character
// boundary.
func AppendCloseFrame(dst []byte, code uint16, reason string, key *[4]byte) []byte {
	if !CloseCodeSendable(code) {
		code = ClosePolicyViolated
	}
	if !utf8.ValidString(reason) {
		reason = ""
	}
	if len(reason) > maxCloseReason {
		cut := maxCloseReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	var p [MaxControlPayload]byte
	binary.BigEndian.PutUint16(p[:2], code)
	n := 2 + copy(p[2:], reason)
	return AppendFrame(dst, true, OpClose, p[:n], key)
}

// WebSocketStream numbers the frames of one upgraded connection and fills
// their events. The zero value is ready once its fields are set; not safe
// for concurrent use by two goroutines of the same direction (one
// goroutine per direction is fine).
type WebSocketStream struct {
	CorrelationID string
	RouteID       agentwire.Opt[string]
	ClientIP      string

	next [2]uint64 // frame_index per direction: [0] server→client, [1] client→server
}

// Event fills dst with the event of frame f (SPEC 2.2): opcode, the
// payload (f must be unmasked already: Data aliases f.Payload), the
// direction, the frame's index in its direction (from 0), fin.
func (s *WebSocketStream) Event(dst *agentwire.WebSocketFrameEvent, f *Frame, clientToServer bool) {
	dir := 0
	if clientToServer {
		dir = 1
	}
	*dst = agentwire.WebSocketFrameEvent{
		CorrelationID:  s.CorrelationID,
		Opcode:         f.Opcode.String(),
		Data:           f.Payload,
		ClientToServer: clientToServer,
		FrameIndex:     s.next[dir],
		Fin:            f.Fin,
		RouteID:        s.RouteID,
		ClientIP:       s.ClientIP,
	}
	s.next[dir]++
}

// WebSocketDecisionOf returns what to do with a frame given the verdict on
// its event:
//
//   - the agent's websocket_decision when its reply has one;
//   - otherwise an agent decision that is not allow (a frame blocked like a
//     request) closes the connection with ClosePolicyViolated, and an allow
//     allows;
//   - a synthetic verdict that blocks (the agent failed and is fail-closed,
//     or its breaker is open) closes with CloseInternalError and reason
//     "Service Unavailable", as the Rust proxy closes with 1011; one that
//     allows (fail-open) allows.
func WebSocketDecisionOf(v *engine.Verdict) agentwire.WebSocketDecision {
	if v.Synthetic {
		if v.Allowed() {
			return agentwire.WebSocketDecision{}
		}
		return agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: CloseInternalError, Reason: http.StatusText(http.StatusServiceUnavailable)}
	}
	if v.Reply != nil && v.Reply.WebSocketDecision.Valid {
		return v.Reply.WebSocketDecision.Value
	}
	if !v.Allowed() {
		return agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: ClosePolicyViolated}
	}
	return agentwire.WebSocketDecision{}
}

// StripWebSocketExtensions removes Sec-WebSocket-Extensions from an
// upgrade request's headers, so that no extension (permessage-deflate) is
// negotiated and agents see frame payloads as the application wrote them,
// not compressed. Call it on requests whose frames agents inspect.
func StripWebSocketExtensions(h http.Header) { delete(h, "Sec-Websocket-Extensions") }

// IsWebSocketUpgrade reports whether r asks to switch to the WebSocket
// protocol (RFC 6455 section 4.1: Connection contains "upgrade" and
// Upgrade contains "websocket", case-insensitively).
func IsWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header["Connection"], "upgrade") && headerHasToken(r.Header["Upgrade"], "websocket")
}

// headerHasToken reports whether a comma-separated header contains token
// (ASCII case-insensitive).
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for len(v) > 0 {
			var part string
			part, v = cutComma(v)
			if equalFoldASCII(trimOWS(part), token) {
				return true
			}
		}
	}
	return false
}

func cutComma(s string) (string, string) {
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
