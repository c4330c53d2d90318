package frame

import "strconv"

// Type is the UDS frame type byte (SPEC 6.2). The values are those of the
// reference implementation's code, not of its protocol documents, which
// list a different and wrong table.
type Type byte

// Frame types. P→A: sent by the proxy to the agent; A→P: the reverse.
const (
	TypeHandshakeRequest    Type = 0x01 // P→A handshake; A→P reverse-connection registration
	TypeHandshakeResponse   Type = 0x02 // A→P handshake reply; P→A registration reply
	TypeRequestHeaders      Type = 0x10 // P→A
	TypeRequestBodyChunk    Type = 0x11 // P→A
	TypeResponseHeaders     Type = 0x12 // P→A
	TypeResponseBodyChunk   Type = 0x13 // P→A
	TypeRequestComplete     Type = 0x14 // P→A
	TypeWebSocketFrame      Type = 0x15 // P→A
	TypeGuardrailInspect    Type = 0x16 // P→A
	TypeConfigure           Type = 0x17 // P→A
	TypeAgentResponse       Type = 0x20 // A→P
	TypeHealthStatus        Type = 0x30 // A→P
	TypeMetricsReport       Type = 0x31 // A→P
	TypeConfigUpdateRequest Type = 0x32 // A→P
	TypeFlowControl         Type = 0x33 // A→P
	TypeCancel              Type = 0x40 // P→A
	TypePing                Type = 0x41 // P→A
	TypePong                Type = 0x42 // A→P
)

// Valid reports whether t is one of the frame types of SPEC 6.2. A Rust
// reader that receives any other byte drops the connection.
func (t Type) Valid() bool {
	switch t {
	case TypeHandshakeRequest, TypeHandshakeResponse,
		TypeRequestHeaders, TypeRequestBodyChunk, TypeResponseHeaders, TypeResponseBodyChunk,
		TypeRequestComplete, TypeWebSocketFrame, TypeGuardrailInspect, TypeConfigure,
		TypeAgentResponse,
		TypeHealthStatus, TypeMetricsReport, TypeConfigUpdateRequest, TypeFlowControl,
		TypeCancel, TypePing, TypePong:
		return true
	}
	return false
}

// String returns the type's name as used in the reference code, or
// "Type(0xNN)" for an unknown byte.
func (t Type) String() string {
	switch t {
	case TypeHandshakeRequest:
		return "HandshakeRequest"
	case TypeHandshakeResponse:
		return "HandshakeResponse"
	case TypeRequestHeaders:
		return "RequestHeaders"
	case TypeRequestBodyChunk:
		return "RequestBodyChunk"
	case TypeResponseHeaders:
		return "ResponseHeaders"
	case TypeResponseBodyChunk:
		return "ResponseBodyChunk"
	case TypeRequestComplete:
		return "RequestComplete"
	case TypeWebSocketFrame:
		return "WebSocketFrame"
	case TypeGuardrailInspect:
		return "GuardrailInspect"
	case TypeConfigure:
		return "Configure"
	case TypeAgentResponse:
		return "AgentResponse"
	case TypeHealthStatus:
		return "HealthStatus"
	case TypeMetricsReport:
		return "MetricsReport"
	case TypeConfigUpdateRequest:
		return "ConfigUpdateRequest"
	case TypeFlowControl:
		return "FlowControl"
	case TypeCancel:
		return "Cancel"
	case TypePing:
		return "Ping"
	case TypePong:
		return "Pong"
	}
	return "Type(0x" + hex2(byte(t)) + ")"
}

func hex2(b byte) string {
	s := strconv.FormatUint(uint64(b), 16)
	if len(s) == 1 {
		s = "0" + s
	}
	return s
}
