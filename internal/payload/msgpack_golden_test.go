package payload

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const mpGoldenDir = "../../testdata/golden"

// mpVector is the part of a golden wire vector the MessagePack tests use.
type mpVector struct {
	Name                string  `json:"name"`
	TypeByte            *string `json:"type_byte"`
	EmittedBy           string  `json:"emitted_by"`
	JSONDecodedValue    *string `json:"json_decoded_value"`
	MsgpackPayloadHex   *string `json:"msgpack_payload_hex"`
	RustDecodes         *bool   `json:"rust_decodes"`
	MsgpackDecodedValue *string `json:"msgpack_decoded_value"`
	ProxyRoutesTo       *string `json:"proxy_routes_to_correlation_id"`
}

func mpLoadVectors(t testing.TB, file string) []mpVector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mpGoldenDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var vs []mpVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// mpAllVectors returns every vector that has MessagePack bytes.
func mpAllVectors(t testing.TB) []mpVector {
	var out []mpVector
	for _, f := range []string{"events.json", "responses.json", "control.json"} {
		for _, v := range mpLoadVectors(t, f) {
			if v.MsgpackPayloadHex != nil && v.TypeByte != nil {
				out = append(out, v)
			}
		}
	}
	return out
}

func mpUnhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mpDecoder decodes one message kind into a destination it keeps (so
// repeated calls exercise reuse), renders the destination as the serde
// JSON value of the Rust type, and re-encodes it (every encoder variant).
type mpDecoder struct {
	decode func([]byte) error
	serde  func(testing.TB) any
	encode []func([]byte) ([]byte, error)
}

func mpEnc(f ...func([]byte) []byte) []func([]byte) ([]byte, error) {
	out := make([]func([]byte) ([]byte, error), len(f))
	for i, g := range f {
		out[i] = func(b []byte) ([]byte, error) { return g(b), nil }
	}
	return out
}

func mpNewDecoder(typeByte string) mpDecoder {
	switch typeByte {
	case "0x10":
		v := new(RequestHeadersEvent)
		return mpDecoder{func(b []byte) error { return DecodeRequestHeadersMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeRequestHeaders(v) },
			mpEnc(func(b []byte) []byte { return AppendRequestHeadersMsgpack(b, v) })}
	case "0x11":
		v := new(BodyChunk)
		return mpDecoder{func(b []byte) error { return DecodeRequestBodyChunkMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeBodyChunk(v, "bytes_received") },
			mpEnc(func(b []byte) []byte { return AppendRequestBodyChunkMsgpack(b, v) },
				func(b []byte) []byte { return AppendRequestBodyChunkMsgpackRaw(b, v) })}
	case "0x12":
		v := new(ResponseHeadersEvent)
		return mpDecoder{func(b []byte) error { return DecodeResponseHeadersMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeResponseHeaders(v) },
			mpEnc(func(b []byte) []byte { return AppendResponseHeadersMsgpack(b, v) })}
	case "0x13":
		v := new(BodyChunk)
		return mpDecoder{func(b []byte) error { return DecodeResponseBodyChunkMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeBodyChunk(v, "bytes_sent") },
			mpEnc(func(b []byte) []byte { return AppendResponseBodyChunkMsgpack(b, v) },
				func(b []byte) []byte { return AppendResponseBodyChunkMsgpackRaw(b, v) })}
	case "0x14":
		v := new(RequestCompleteEvent)
		return mpDecoder{func(b []byte) error { return DecodeRequestCompleteMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeRequestComplete(v) },
			mpEnc(func(b []byte) []byte { return AppendRequestCompleteMsgpack(b, v) })}
	case "0x15":
		v := new(WebSocketFrameEvent)
		return mpDecoder{func(b []byte) error { return DecodeWebSocketFrameMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeWebSocketFrame(v) },
			mpEnc(func(b []byte) []byte { return AppendWebSocketFrameMsgpack(b, v) },
				func(b []byte) []byte { return AppendWebSocketFrameMsgpackRaw(b, v) })}
	case "0x16":
		v := new(GuardrailInspectEvent)
		return mpDecoder{func(b []byte) error { return DecodeGuardrailInspectMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeGuardrail(v) },
			mpEnc(func(b []byte) []byte { return AppendGuardrailInspectMsgpack(b, v) })}
	case "0x17":
		v := new(ConfigureEvent)
		return mpDecoder{func(b []byte) error { return DecodeConfigureMsgpack(b, v) },
			func(t testing.TB) any { return mpSerdeConfigure(t, v) },
			[]func([]byte) ([]byte, error){func(b []byte) ([]byte, error) { return AppendConfigureMsgpack(b, v) }}}
	case "0x20":
		v := new(AgentResponse)
		return mpDecoder{func(b []byte) error { return DecodeAgentResponseMsgpack(b, v) },
			func(t testing.TB) any { return mpSerdeAgentResponse(t, v) },
			[]func([]byte) ([]byte, error){
				func(b []byte) ([]byte, error) { return AppendAgentResponseMsgpack(b, v) },
				func(b []byte) ([]byte, error) { return AppendAgentResponseMsgpackRaw(b, v) }}}
	case "0x30":
		v := new(HealthStatus)
		return mpDecoder{func(b []byte) error { return DecodeHealthStatusMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeHealthFull(v) },
			mpEnc(func(b []byte) []byte { return AppendHealthStatusMsgpack(b, v) })}
	case "0x31":
		v := new(MetricsReport)
		return mpDecoder{func(b []byte) error { return DecodeMetricsReportMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeMetrics(v) },
			mpEnc(func(b []byte) []byte { return AppendMetricsReportMsgpack(b, v) })}
	case "0x32":
		v := new(ConfigUpdateRequest)
		return mpDecoder{func(b []byte) error { return DecodeConfigUpdateRequestMsgpack(b, v) },
			func(t testing.TB) any { return mpSerdeConfigUpdate(t, v) },
			[]func([]byte) ([]byte, error){func(b []byte) ([]byte, error) { return AppendConfigUpdateRequestMsgpack(b, v) }}}
	case "0x33":
		v := new(FlowControlSignal)
		return mpDecoder{func(b []byte) error { return DecodeFlowControlSignalMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeFlowFull(v) },
			mpEnc(func(b []byte) []byte { return AppendFlowControlSignalMsgpack(b, v) })}
	case "cur": // ConfigUpdateResponse (no frame type of its own)
		v := new(ConfigUpdateResponse)
		return mpDecoder{func(b []byte) error { return DecodeConfigUpdateResponseMsgpack(b, v) },
			func(testing.TB) any { return mpSerdeConfigUpdateResponse(v) },
			mpEnc(func(b []byte) []byte { return AppendConfigUpdateResponseMsgpack(b, v) })}
	}
	panic("no msgpack decoder for type " + typeByte)
}

// mpDecodeAs decodes data as the message of the given frame type and
// returns the value the way the golden files render it (the serde JSON
// value of the receiving Rust type; for 0x30 / 0x33 the proxy's
// {state} / {action} structs).
func mpDecodeAs(t testing.TB, typeByte string, data []byte) (any, error) {
	t.Helper()
	d := mpNewDecoder(typeByte)
	if err := d.decode(data); err != nil {
		return nil, err
	}
	v := d.serde(t)
	switch typeByte {
	case "0x30":
		return map[string]any{"state": v.(map[string]any)["state"]}, nil
	case "0x33":
		return map[string]any{"action": v.(map[string]any)["action"]}, nil
	}
	return v, nil
}

// TestMsgpackGoldenDecode decodes every golden msgpack_payload_hex.
//
//   - rust_decodes true: must decode to msgpack_decoded_value.
//   - Events the Rust proxy really sends that a Rust agent cannot decode
//     (repeated correlation_id, 11-element metadata): must decode to the
//     json_decoded_value of the same vector.
//   - metrics_report_full (positional metrics without help, what a Rust
//     agent using the crate's type sends): accepted by our documented
//     leniency, value equal to json_decoded_value.
//   - The serde HealthStatus / FlowControlSignal shapes, which the Rust
//     proxy rejects: rejected.
//   - The unused binary-chunk helper: see TestMsgpackBinaryHelperChunks.
func TestMsgpackGoldenDecode(t *testing.T) {
	seen := 0
	for _, v := range mpAllVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			data := mpUnhex(t, *v.MsgpackPayloadHex)
			got, err := mpDecodeAs(t, *v.TypeByte, data)
			switch {
			case strings.HasPrefix(v.Name, "binary_helper_"):
				t.Skip("covered by TestMsgpackBinaryHelperChunks")
			case *v.RustDecodes:
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				mpSameValue(t, "decoded", got, mpParseExpected(t, *v.MsgpackDecodedValue))
			case strings.HasPrefix(v.EmittedBy, "Rust proxy") || v.Name == "metrics_report_full":
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				mpSameValue(t, "decoded (vs json_decoded_value)", got, mpParseExpected(t, *v.JSONDecodedValue))
			case strings.HasPrefix(v.Name, "health_status_serde_") || strings.HasPrefix(v.Name, "flow_control_signal_serde_"):
				if err == nil {
					t.Fatalf("decoded %v; the Rust proxy rejects this shape and so do we", got)
				}
			default:
				t.Fatalf("vector not classified (rust_decodes=false, emitted_by %q)", v.EmittedBy)
			}
			seen++
		})
	}
	if seen < 55 {
		t.Errorf("only %d vectors checked", seen)
	}
}

// TestMsgpackGoldenReuse decodes every vector twice into one destination
// that first held a different message, and checks the result is the same
// as decoding into a fresh value (reuse never leaks old contents).
func TestMsgpackGoldenReuse(t *testing.T) {
	vs := mpAllVectors(t)
	byType := map[string][][]byte{}
	for _, v := range vs {
		byType[*v.TypeByte] = append(byType[*v.TypeByte], mpUnhex(t, *v.MsgpackPayloadHex))
	}
	for typ, payloads := range byType {
		d := mpNewDecoder(typ)
		for i, p := range payloads {
			fresh := mpNewDecoder(typ)
			errFresh := fresh.decode(p)
			// Decode every other payload first, then this one.
			for j, q := range payloads {
				if j != i {
					_ = d.decode(q)
				}
			}
			errReuse := d.decode(p)
			if (errFresh == nil) != (errReuse == nil) {
				t.Fatalf("%s #%d: fresh err %v, reused err %v", typ, i, errFresh, errReuse)
			}
			if errFresh == nil {
				mpSameValue(t, typ, d.serde(t), fresh.serde(t))
			}
		}
	}
}

// TestMsgpackBinaryHelperChunks documents what happens to the positional
// arrays of the unused send_*_body_chunk_binary helpers: the full
// 6-element form decodes with data as the raw bin bytes (what the helper
// means); the 5-element form (total unknown) is ambiguous and is read the
// way rmp_serde reads it, with the fields shifted.
func TestMsgpackBinaryHelperChunks(t *testing.T) {
	raw := []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01}
	for _, v := range mpLoadVectors(t, "events.json") {
		switch v.Name {
		case "binary_helper_request_body_chunk":
			var c BodyChunk
			if err := DecodeRequestBodyChunkMsgpack(mpUnhex(t, *v.MsgpackPayloadHex), &c); err != nil {
				t.Fatal(err)
			}
			got := mpSerdeBodyChunk(&c, "bytes_received")
			mpSameValue(t, v.Name, got, mpParseExpected(t, *v.JSONDecodedValue))
			if string(c.Data) != string(raw) {
				t.Fatalf("data %x", c.Data)
			}
		case "binary_helper_response_body_chunk_unknown_total":
			var c BodyChunk
			if err := DecodeResponseBodyChunkMsgpack(mpUnhex(t, *v.MsgpackPayloadHex), &c); err != nil {
				t.Fatal(err)
			}
			want := BodyChunk{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7", Data: raw, IsLast: true,
				TotalSize: Some[uint64](0), ChunkIndex: 6, BytesTransferred: 0}
			mpSameValue(t, v.Name, mpSerdeBodyChunk(&c, "bytes_sent"), mpSerdeBodyChunk(&want, "bytes_sent"))
		}
	}
}

// mpAcceptance is one case of msgpack_acceptance.json.
type mpAcceptance struct {
	TargetType   string `json:"target_type"`
	InputHex     string `json:"input_msgpack_hex"`
	RustAccepts  bool   `json:"rust_accepts"`
	ErrorOrValue string `json:"error_or_value"`
	Notes        string `json:"notes"`
}

func mpLoadAcceptance(t testing.TB) []mpAcceptance {
	data, err := os.ReadFile(filepath.Join(mpGoldenDir, "msgpack_acceptance.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cs []mpAcceptance
	if err := json.Unmarshal(data, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

var mpAcceptanceTypes = map[string]string{
	"RequestHeadersEvent":                  "0x10",
	"RequestBodyChunkEvent":                "0x11",
	"GuardrailInspectEvent":                "0x16",
	"ConfigurePayload":                     "0x17",
	"AgentResponse":                        "0x20",
	"MetricsReport":                        "0x31",
	"HealthStatusMsg {state: Option<i64>}": "0x30",
	"FlowControlMsg {action: Option<i64>}": "0x33",
	"ConfigUpdateRequest":                  "0x32",
}

// TestMsgpackAcceptance runs every msgpack_acceptance.json case through our
// decoder. Cases Rust accepts are accepted with the same meaning, except
// where noted; cases Rust rejects are rejected, except the two shapes the
// Rust proxy itself sends (SPEC 6.11).
func TestMsgpackAcceptance(t *testing.T) {
	cases := mpLoadAcceptance(t)
	if len(cases) != 26 {
		t.Fatalf("%d acceptance cases, want 26", len(cases))
	}
	// Deviations, keyed by case index (notes prefix checked so a reordered
	// file fails loudly).
	type deviation struct {
		notes string
		check func(t *testing.T, got any, err error)
	}
	twelve := mpParseExpected(t, cases[2].ErrorOrValue) // the same event with traceparent nil
	deviations := map[int]deviation{
		1: {"metadata as an 11-element positional array", func(t *testing.T, got any, err error) {
			// What the Rust proxy sends without traceparent: accepted.
			if err != nil {
				t.Fatal(err)
			}
			mpSameValue(t, "11-element metadata", got, twelve)
		}},
		4: {"Duplicate correlation_id key", func(t *testing.T, got any, err error) {
			// The Rust proxy's flatten envelope: accepted, first id wins.
			if err != nil {
				t.Fatal(err)
			}
			mpSameValue(t, "duplicate correlation_id", got, map[string]any{
				"correlation_id": "c-1", "data": "aGk=", "is_last": true, "total_size": nil,
				"chunk_index": 0.0, "bytes_received": 0.0})
		}},
		5: {"data as msgpack bin", func(t *testing.T, got any, err error) {
			// bin data is raw bytes for us ("hi" → base64 "aGk="); Rust
			// takes its UTF-8 text as the base64 string "hi".
			if err != nil {
				t.Fatal(err)
			}
			if d := got.(map[string]any)["data"]; d != "aGk=" {
				t.Fatalf("data = %v, want raw bytes \"hi\" (base64 aGk=)", d)
			}
		}},
		6: {"bin whose bytes are valid UTF-8", func(t *testing.T, got any, err error) {
			// Raw bytes "aGk=" (base64 YUdrPQ==), not the decoded "hi".
			if err != nil {
				t.Fatal(err)
			}
			if d := got.(map[string]any)["data"]; d != "YUdrPQ==" {
				t.Fatalf("data = %v, want raw bytes \"aGk=\"", d)
			}
		}},
	}
	for i, c := range cases {
		t.Run(strconv.Itoa(i)+"_"+c.TargetType, func(t *testing.T) {
			typ, ok := mpAcceptanceTypes[c.TargetType]
			if !ok {
				t.Fatalf("unknown target type %q", c.TargetType)
			}
			got, err := mpDecodeAs(t, typ, mpUnhex(t, c.InputHex))
			if d, ok := deviations[i]; ok {
				if !strings.HasPrefix(c.Notes, d.notes) {
					t.Fatalf("case %d notes %q: file reordered?", i, c.Notes)
				}
				d.check(t, got, err)
				return
			}
			if !c.RustAccepts {
				if err == nil {
					t.Fatalf("accepted %v; Rust rejects it (%s)", got, c.ErrorOrValue)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected (%v); Rust accepts it", err)
			}
			mpSameValue(t, "value", got, mpParseExpected(t, c.ErrorOrValue))
		})
	}
}

// TestMsgpackPeekCorrelationID checks the routing-id helpers on every
// golden vector: events give the id the event decodes to (also where a
// Rust agent fails to decode and recovers only ""), replies give the id
// the Rust proxy routes to.
func TestMsgpackPeekCorrelationID(t *testing.T) {
	for _, v := range mpAllVectors(t) {
		data := mpUnhex(t, *v.MsgpackPayloadHex)
		typ := *v.TypeByte
		switch {
		case typ >= "0x10" && typ <= "0x17":
			id, ok := EventCorrelationIDMsgpack(data)
			var want any
			if *v.RustDecodes {
				want = mpParseExpected(t, *v.MsgpackDecodedValue)
			} else {
				want = mpParseExpected(t, *v.JSONDecodedValue)
			}
			m := want.(map[string]any)
			if typ == "0x10" {
				m = m["metadata"].(map[string]any)
			}
			if !ok || string(id) != m["correlation_id"] {
				t.Errorf("%s: event id %q %v, want %v", v.Name, id, ok, m["correlation_id"])
			}
		case typ == "0x20":
			id, ok := ResponseCorrelationIDMsgpack(data)
			if !ok || v.ProxyRoutesTo == nil || string(id) != *v.ProxyRoutesTo {
				t.Errorf("%s: reply id %q %v, want %v", v.Name, id, ok, *v.ProxyRoutesTo)
			}
		}
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
		ok   bool
	}{
		"custom id number":    {mpBuild(mpMap(1), "audit", mpMap(1), "custom", mpMap(1), "correlation_id", 5), "", false},
		"custom id last wins": {mpBuild(mpMap(1), "audit", mpMap(1), "custom", mpMap(2), "correlation_id", "a", "correlation_id", "b"), "b", true},
		"positional audit":    {mpBuild(mpArr(6), 2, "allow", mpArr(0), mpArr(0), mpMap(0), mpArr(5), mpArr(0), mpArr(0), nil, mpArr(0), mpMap(1), "correlation_id", "p"), "p", true},
		"no audit":            {mpBuild(mpMap(1), "version", 2), "", false},
		"truncated":           {mpBuild(mpMap(1), "audit", mpMap(1), "custom", mpMap(1), "correlation_id")[:20], "", false},
	} {
		id, ok := ResponseCorrelationIDMsgpack(tc.data)
		if ok != tc.ok || string(id) != tc.want {
			t.Errorf("%s: %q %v", name, id, ok)
		}
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
		ok   bool
	}{
		"positional chunk":    {mpBuild(mpArr(4), "c", "", true, nil), "c", true},
		"positional headers":  {mpBuild(mpArr(4), mpArr(11), "m", "r", "ip", 1, nil, "p", nil, nil, nil, nil, "t", "GET", "/", mpMap(0)), "m", true},
		"metadata map":        {mpBuild(mpMap(2), "method", "GET", "metadata", mpMap(1), "correlation_id", "m"), "m", true},
		"envelope id not str": {mpBuild(mpMap(2), "correlation_id", 1, "metadata", mpMap(1), "correlation_id", "m"), "m", true},
		"nothing":             {mpBuild(mpMap(1), "x", 1), "", false},
		"empty":               {nil, "", false},
	} {
		id, ok := EventCorrelationIDMsgpack(tc.data)
		if ok != tc.ok || string(id) != tc.want {
			t.Errorf("%s: %q %v", name, id, ok)
		}
	}
}
