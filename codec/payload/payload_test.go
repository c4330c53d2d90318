package payload_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/codec/payload"
)

type vector struct {
	Name          string `json:"name"`
	TypeByte      string `json:"type_byte"`
	JSONPayload   string `json:"json_payload"`
	JSONExact     *bool  `json:"json_byte_exact"`
	JSONDecodes   *bool  `json:"json_rust_decodes"`
	MsgpackHex    string `json:"msgpack_payload_hex"`
	MsgpackExact  *bool  `json:"msgpack_byte_exact"`
	MsgpackDecode *bool  `json:"rust_decodes"`
}

// target returns a fresh value of the model type a frame type carries.
func target(file string, t frame.Type) any {
	switch t {
	case frame.TypeHandshakeRequest:
		if file == "reverse.json" {
			return new(agentwire.RegistrationRequest)
		}
		return new(agentwire.HandshakeRequest)
	case frame.TypeHandshakeResponse:
		if file == "reverse.json" {
			return new(agentwire.RegistrationResponse)
		}
		return new(agentwire.HandshakeResponse)
	case frame.TypeRequestHeaders:
		return new(agentwire.RequestHeadersEvent)
	case frame.TypeRequestBodyChunk, frame.TypeResponseBodyChunk:
		return new(agentwire.BodyChunk)
	case frame.TypeResponseHeaders:
		return new(agentwire.ResponseHeadersEvent)
	case frame.TypeRequestComplete:
		return new(agentwire.RequestCompleteEvent)
	case frame.TypeWebSocketFrame:
		return new(agentwire.WebSocketFrameEvent)
	case frame.TypeGuardrailInspect:
		return new(agentwire.GuardrailInspectEvent)
	case frame.TypeConfigure:
		return new(agentwire.ConfigureEvent)
	case frame.TypeAgentResponse:
		return new(agentwire.AgentResponse)
	case frame.TypeHealthStatus:
		return new(agentwire.HealthStatus)
	case frame.TypeMetricsReport:
		return new(agentwire.MetricsReport)
	case frame.TypeConfigUpdateRequest:
		return new(agentwire.ConfigUpdateRequest)
	case frame.TypeFlowControl:
		return new(agentwire.FlowControlSignal)
	case frame.TypeCancel:
		return new(agentwire.Cancel)
	case frame.TypePing:
		return new(agentwire.Ping)
	case frame.TypePong:
		return new(agentwire.Pong)
	}
	return nil
}

// TestGoldenRoundTrip decodes the golden vectors through Decode and encodes
// them back through Append. JSON must come back as the Rust bytes. Go writes
// MessagePack structs as maps where rmp_serde may write arrays (both forms
// are read by both sides), so MessagePack must come back to the same value.
func TestGoldenRoundTrip(t *testing.T) {
	var checked [2]int
	for _, file := range []string{"handshake.json", "events.json", "responses.json", "control.json", "reverse.json"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", file))
		if err != nil {
			t.Fatal(err)
		}
		var vs []vector
		if err := json.Unmarshal(raw, &vs); err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			tb, err := strconv.ParseUint(v.TypeByte, 0, 8)
			if err != nil {
				continue
			}
			ft := frame.Type(tb)
			if target(file, ft) == nil {
				continue
			}
			if ft == frame.TypePong || strings.HasPrefix(v.Name, "binary_helper") {
				continue // an echo of the ping's bytes, and a shape only Rust's binary helper writes
			}
			if v.JSONExact != nil && *v.JSONExact && (v.JSONDecodes == nil || *v.JSONDecodes) && v.JSONPayload != "" {
				dst := target(file, ft)
				if err := payload.Decode(payload.JSON, ft, []byte(v.JSONPayload), dst); err != nil {
					t.Errorf("%s/%s: json decode: %v", file, v.Name, err)
					continue
				}
				out, err := payload.Append(nil, payload.JSON, ft, dst)
				if err != nil || !bytes.Equal(out, []byte(v.JSONPayload)) {
					t.Errorf("%s/%s: json re-encode (%v):\n got %s\nwant %s", file, v.Name, err, out, v.JSONPayload)
				}
				checked[0]++
			}
			if (v.MsgpackDecode == nil || *v.MsgpackDecode) && v.MsgpackHex != "" {
				in, _ := hex.DecodeString(v.MsgpackHex)
				first, again := target(file, ft), target(file, ft)
				if err := payload.Decode(payload.Msgpack, ft, in, first); err != nil {
					t.Errorf("%s/%s: msgpack decode: %v", file, v.Name, err)
					continue
				}
				out, err := payload.Append(nil, payload.Msgpack, ft, first)
				if err == nil {
					err = payload.Decode(payload.Msgpack, ft, out, again)
				}
				if err != nil || !reflect.DeepEqual(sortHeaders(first), sortHeaders(again)) {
					t.Errorf("%s/%s: msgpack round trip (%v):\n got %+v\nwant %+v", file, v.Name, err, again, first)
				}
				checked[1]++
			}
		}
	}
	if checked[0] < 60 || checked[1] < 30 {
		t.Fatalf("only %d JSON and %d MessagePack vectors checked", checked[0], checked[1])
	}
	t.Logf("%d JSON and %d MessagePack vectors round-tripped", checked[0], checked[1])
}

func TestMismatchAndUnknownEncoding(t *testing.T) {
	if _, err := payload.Append(nil, payload.JSON, frame.TypeRequestHeaders, &agentwire.AgentResponse{}); !errors.Is(err, payload.ErrUnsupported) {
		t.Fatalf("type mismatch: %v", err)
	}
	if err := payload.Decode("cbor", frame.TypeAgentResponse, []byte("{}"), &agentwire.AgentResponse{}); !errors.Is(err, payload.ErrUnsupported) {
		t.Fatalf("unknown encoding: %v", err)
	}
	if err := payload.Decode(payload.JSON, frame.TypeAgentResponse, []byte("{}"), agentwire.AgentResponse{}); !errors.Is(err, payload.ErrUnsupported) {
		t.Fatalf("non-pointer: %v", err)
	}
}

// FuzzDecode feeds arbitrary bytes to every frame type's decoder in both
// encodings: no input may panic.
func FuzzDecode(f *testing.F) {
	f.Add(byte(0x10), false, []byte(`{"correlation_id":"a"}`))
	f.Add(byte(0x20), true, []byte{0x80})
	f.Add(byte(0x01), false, []byte(`{"supported_encodings":["json"]}`))
	f.Fuzz(func(t *testing.T, tb byte, mp bool, data []byte) {
		ft := frame.Type(tb)
		enc := payload.JSON
		if mp {
			enc = payload.Msgpack
		}
		for _, file := range []string{"handshake.json", "reverse.json"} {
			if dst := target(file, ft); dst != nil {
				if err := payload.Decode(enc, ft, data, dst); err == nil {
					if _, err := payload.Append(nil, enc, ft, dst); err != nil && !errors.Is(err, payload.ErrUnsupported) {
						// Encoders refuse only what cannot be written (too large); nothing here is.
						t.Logf("re-encode: %v", err)
					}
				}
			}
		}
	})
}

// sortHeaders puts header names in order: the MessagePack encoder writes
// them sorted, as the Rust proxy does, whatever order they arrived in.
func sortHeaders(v any) any {
	var hs *agentwire.Headers
	switch x := v.(type) {
	case *agentwire.RequestHeadersEvent:
		hs = &x.Headers
	case *agentwire.ResponseHeadersEvent:
		hs = &x.Headers
	default:
		return v
	}
	sort.Slice(*hs, func(i, j int) bool { return (*hs)[i].Name < (*hs)[j].Name })
	return v
}
