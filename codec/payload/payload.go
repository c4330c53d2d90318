// Package payload encodes and decodes the payloads of Unix-socket frames in
// JSON and MessagePack exactly as the Rust peers (serde_json, rmp_serde)
// write and read them.
//
// The engine and agent packages do this by themselves; this package is for
// tools that need the wire bytes: test harnesses, recorders, replay, other
// transports. A frame is its type byte (codec/frame) and the payload these
// functions produce:
//
//	b, err := payload.Append(nil, payload.Msgpack, frame.TypeRequestHeaders, ev)
//	out, err := frame.AppendFrame(nil, frame.TypeRequestHeaders, b)
//
// The handshake, registration, cancel and ping/pong payloads are JSON on
// every connection, whatever encoding the handshake chose (SPEC 6.7, 6.8):
// for those types both encodings give the same bytes.
//
// Decoders check what they read as strictly as the Rust peers do and never
// panic on any input; a decoded value may keep no reference to data.
package payload

import (
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	wire "github.com/agentwire/agentwire/internal/payload"
)

// Encoding names, as the handshake spells them.
const (
	JSON    = agentwire.EncodingJSON
	Msgpack = agentwire.EncodingMsgpack
)

// ErrUnsupported is returned (wrapped) for an encoding this package does not
// know, or a value whose Go type is not what the frame type carries.
var ErrUnsupported = errors.New("agentwire: payload: unsupported encoding or type")

// Append appends v, the payload of a frame of type t, encoded in enc (JSON or
// Msgpack), to dst. v is a pointer to the model type the frame type carries:
//
//	0x01 *agentwire.HandshakeRequest or *agentwire.RegistrationRequest
//	0x02 *agentwire.HandshakeResponse or *agentwire.RegistrationResponse
//	0x10 *agentwire.RequestHeadersEvent     0x11, 0x13 *agentwire.BodyChunk
//	0x12 *agentwire.ResponseHeadersEvent    0x14 *agentwire.RequestCompleteEvent
//	0x15 *agentwire.WebSocketFrameEvent     0x16 *agentwire.GuardrailInspectEvent
//	0x17 *agentwire.ConfigureEvent          0x20 *agentwire.AgentResponse
//	0x30 *agentwire.HealthStatus            0x31 *agentwire.MetricsReport
//	0x32 *agentwire.ConfigUpdateRequest     0x33 *agentwire.FlowControlSignal
//	0x40 *agentwire.Cancel  0x41 *agentwire.Ping  0x42 *agentwire.Pong
func Append(dst []byte, enc string, t frame.Type, v any) ([]byte, error) {
	mp, err := isMsgpack(enc)
	if err != nil {
		return dst, err
	}
	switch x := v.(type) {
	case *agentwire.HandshakeRequest:
		if t == frame.TypeHandshakeRequest {
			return wire.AppendHandshakeRequestJSON(dst, x), nil
		}
	case *agentwire.RegistrationRequest:
		if t == frame.TypeHandshakeRequest {
			return wire.AppendRegistrationRequestJSON(dst, x), nil
		}
	case *agentwire.HandshakeResponse:
		if t == frame.TypeHandshakeResponse {
			return wire.AppendHandshakeResponseJSON(dst, x), nil
		}
	case *agentwire.RegistrationResponse:
		if t == frame.TypeHandshakeResponse {
			return wire.AppendRegistrationResponseJSON(dst, x), nil
		}
	case *agentwire.RequestHeadersEvent:
		if t == frame.TypeRequestHeaders {
			if mp {
				return wire.AppendRequestHeadersMsgpack(dst, x), nil
			}
			return wire.AppendRequestHeadersJSON(dst, x), nil
		}
	case *agentwire.BodyChunk:
		switch t {
		case frame.TypeRequestBodyChunk:
			if mp {
				return wire.AppendRequestBodyChunkMsgpack(dst, x), nil
			}
			return wire.AppendRequestBodyChunkJSON(dst, x), nil
		case frame.TypeResponseBodyChunk:
			if mp {
				return wire.AppendResponseBodyChunkMsgpack(dst, x), nil
			}
			return wire.AppendResponseBodyChunkJSON(dst, x), nil
		}
	case *agentwire.ResponseHeadersEvent:
		if t == frame.TypeResponseHeaders {
			if mp {
				return wire.AppendResponseHeadersMsgpack(dst, x), nil
			}
			return wire.AppendResponseHeadersJSON(dst, x), nil
		}
	case *agentwire.RequestCompleteEvent:
		if t == frame.TypeRequestComplete {
			if mp {
				return wire.AppendRequestCompleteMsgpack(dst, x), nil
			}
			return wire.AppendRequestCompleteJSON(dst, x), nil
		}
	case *agentwire.WebSocketFrameEvent:
		if t == frame.TypeWebSocketFrame {
			if mp {
				return wire.AppendWebSocketFrameMsgpack(dst, x), nil
			}
			return wire.AppendWebSocketFrameJSON(dst, x), nil
		}
	case *agentwire.GuardrailInspectEvent:
		if t == frame.TypeGuardrailInspect {
			if mp {
				return wire.AppendGuardrailInspectMsgpack(dst, x), nil
			}
			return wire.AppendGuardrailInspectJSON(dst, x), nil
		}
	case *agentwire.ConfigureEvent:
		if t == frame.TypeConfigure {
			if mp {
				return wire.AppendConfigureMsgpack(dst, x)
			}
			return wire.AppendConfigureJSON(dst, x), nil
		}
	case *agentwire.AgentResponse:
		if t == frame.TypeAgentResponse {
			if mp {
				return wire.AppendAgentResponseMsgpack(dst, x)
			}
			return wire.AppendAgentResponseJSON(dst, x), nil
		}
	case *agentwire.HealthStatus:
		if t == frame.TypeHealthStatus {
			if mp {
				return wire.AppendHealthStatusMsgpack(dst, x), nil
			}
			return wire.AppendHealthStatusJSON(dst, x), nil
		}
	case *agentwire.MetricsReport:
		if t == frame.TypeMetricsReport {
			if mp {
				return wire.AppendMetricsReportMsgpack(dst, x), nil
			}
			return wire.AppendMetricsReportJSON(dst, x), nil
		}
	case *agentwire.ConfigUpdateRequest:
		if t == frame.TypeConfigUpdateRequest {
			if mp {
				return wire.AppendConfigUpdateRequestMsgpack(dst, x)
			}
			return wire.AppendConfigUpdateRequestJSON(dst, x), nil
		}
	case *agentwire.FlowControlSignal:
		if t == frame.TypeFlowControl {
			if mp {
				return wire.AppendFlowControlSignalMsgpack(dst, x), nil
			}
			return wire.AppendFlowControlSignalJSON(dst, x), nil
		}
	case *agentwire.Cancel:
		if t == frame.TypeCancel {
			return wire.AppendCancelJSON(dst, x), nil
		}
	case *agentwire.Ping:
		if t == frame.TypePing {
			return wire.AppendPingJSON(dst, x), nil
		}
	case *agentwire.Pong:
		if t == frame.TypePong {
			return wire.AppendPongJSON(dst, x), nil
		}
	}
	return dst, mismatch(t, v)
}

// Decode decodes data, the payload of a frame of type t in encoding enc,
// into v, a pointer to the model type the frame type carries (see Append).
// v is overwritten completely.
func Decode(enc string, t frame.Type, data []byte, v any) error {
	mp, err := isMsgpack(enc)
	if err != nil {
		return err
	}
	switch x := v.(type) {
	case *agentwire.HandshakeRequest:
		if t == frame.TypeHandshakeRequest {
			return wire.DecodeHandshakeRequestJSON(data, x)
		}
	case *agentwire.RegistrationRequest:
		if t == frame.TypeHandshakeRequest {
			return wire.DecodeRegistrationRequestJSON(data, x)
		}
	case *agentwire.HandshakeResponse:
		if t == frame.TypeHandshakeResponse {
			return wire.DecodeHandshakeResponseJSON(data, x)
		}
	case *agentwire.RegistrationResponse:
		if t == frame.TypeHandshakeResponse {
			return wire.DecodeRegistrationResponseJSON(data, x)
		}
	case *agentwire.RequestHeadersEvent:
		if t == frame.TypeRequestHeaders {
			if mp {
				return wire.DecodeRequestHeadersMsgpack(data, x)
			}
			return wire.DecodeRequestHeadersJSON(data, x)
		}
	case *agentwire.BodyChunk:
		switch t {
		case frame.TypeRequestBodyChunk:
			if mp {
				return wire.DecodeRequestBodyChunkMsgpack(data, x)
			}
			return wire.DecodeRequestBodyChunkJSON(data, x)
		case frame.TypeResponseBodyChunk:
			if mp {
				return wire.DecodeResponseBodyChunkMsgpack(data, x)
			}
			return wire.DecodeResponseBodyChunkJSON(data, x)
		}
	case *agentwire.ResponseHeadersEvent:
		if t == frame.TypeResponseHeaders {
			if mp {
				return wire.DecodeResponseHeadersMsgpack(data, x)
			}
			return wire.DecodeResponseHeadersJSON(data, x)
		}
	case *agentwire.RequestCompleteEvent:
		if t == frame.TypeRequestComplete {
			if mp {
				return wire.DecodeRequestCompleteMsgpack(data, x)
			}
			return wire.DecodeRequestCompleteJSON(data, x)
		}
	case *agentwire.WebSocketFrameEvent:
		if t == frame.TypeWebSocketFrame {
			if mp {
				return wire.DecodeWebSocketFrameMsgpack(data, x)
			}
			return wire.DecodeWebSocketFrameJSON(data, x)
		}
	case *agentwire.GuardrailInspectEvent:
		if t == frame.TypeGuardrailInspect {
			if mp {
				return wire.DecodeGuardrailInspectMsgpack(data, x)
			}
			return wire.DecodeGuardrailInspectJSON(data, x)
		}
	case *agentwire.ConfigureEvent:
		if t == frame.TypeConfigure {
			if mp {
				return wire.DecodeConfigureMsgpack(data, x)
			}
			return wire.DecodeConfigureJSON(data, x)
		}
	case *agentwire.AgentResponse:
		if t == frame.TypeAgentResponse {
			if mp {
				return wire.DecodeAgentResponseMsgpack(data, x)
			}
			return wire.DecodeAgentResponseJSON(data, x)
		}
	case *agentwire.HealthStatus:
		if t == frame.TypeHealthStatus {
			if mp {
				return wire.DecodeHealthStatusMsgpack(data, x)
			}
			return wire.DecodeHealthStatusJSON(data, x)
		}
	case *agentwire.MetricsReport:
		if t == frame.TypeMetricsReport {
			if mp {
				return wire.DecodeMetricsReportMsgpack(data, x)
			}
			return wire.DecodeMetricsReportJSON(data, x)
		}
	case *agentwire.ConfigUpdateRequest:
		if t == frame.TypeConfigUpdateRequest {
			if mp {
				return wire.DecodeConfigUpdateRequestMsgpack(data, x)
			}
			return wire.DecodeConfigUpdateRequestJSON(data, x)
		}
	case *agentwire.FlowControlSignal:
		if t == frame.TypeFlowControl {
			if mp {
				return wire.DecodeFlowControlSignalMsgpack(data, x)
			}
			return wire.DecodeFlowControlSignalJSON(data, x)
		}
	case *agentwire.Cancel:
		if t == frame.TypeCancel {
			return wire.DecodeCancelJSON(data, x)
		}
	case *agentwire.Ping:
		if t == frame.TypePing {
			return wire.DecodePingJSON(data, x)
		}
	case *agentwire.Pong:
		if t == frame.TypePong {
			return wire.DecodePongJSON(data, x)
		}
	}
	return mismatch(t, v)
}

func isMsgpack(enc string) (bool, error) {
	switch enc {
	case JSON:
		return false, nil
	case Msgpack:
		return true, nil
	}
	return false, fmt.Errorf("%w: encoding %q (want %q or %q)", ErrUnsupported, enc, JSON, Msgpack)
}

func mismatch(t frame.Type, v any) error {
	return fmt.Errorf("%w: frame type %#02x does not carry %T", ErrUnsupported, byte(t), v)
}
