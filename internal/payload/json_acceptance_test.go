package payload

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// Every acceptance.json case whose target type exists in Go is run through
// our decoder: it must accept exactly what serde_json accepts. Accepted
// inputs are re-encoded and compared by value with error_or_value (serde's
// re-serialization, defaults filled in), after the normalizations listed in
// jsonAcceptanceNormalize for the places where the Go model deliberately
// differs.

type jsonAcceptanceCase struct {
	TargetType   string `json:"target_type"`
	DecodedBy    string `json:"decoded_by"`
	InputJSON    string `json:"input_json"`
	RustAccepts  bool   `json:"rust_accepts"`
	ErrorOrValue string `json:"error_or_value"`
	Notes        string `json:"notes"`
}

func jsonLoadAcceptance(tb testing.TB) []jsonAcceptanceCase {
	tb.Helper()
	raw, err := os.ReadFile(jsonGoldenPath("acceptance.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var cs []jsonAcceptanceCase
	if err := json.Unmarshal(raw, &cs); err != nil {
		tb.Fatal(err)
	}
	return cs
}

// jsonHistogramWrap embeds a HistogramBucket case in a MetricsReport.
func jsonHistogramWrap(bucket string) string {
	return `{"agent_id":"a","timestamp_ms":1,"interval_ms":1,"histograms":[{"name":"h","sum":0,"count":0,"buckets":[` +
		bucket + `]}]}`
}

func jsonAcceptanceCodec(target string) (jsonCodec, bool) {
	switch {
	case target == "AgentResponse":
		return jsonCodecAgentResponse, true
	case target == "UdsHandshakeResponse":
		return jsonCodecHandshakeResponse, true
	case target == "UdsHandshakeRequest":
		return jsonCodecHandshakeRequest, true
	case target == "RegistrationRequest":
		return jsonCodecRegistrationRequest, true
	case target == "RegistrationResponse":
		return jsonCodecRegistrationResponse, true
	case target == "RequestHeadersEvent":
		return jsonCodecRequestHeaders, true
	case target == "RequestBodyChunkEvent":
		return jsonCodecRequestChunk, true
	case target == "WebSocketFrameEvent":
		return jsonCodecWebSocketFrame, true
	case target == "GuardrailInspectEvent":
		return jsonCodecGuardrailInspect, true
	case target == "ConfigurePayload":
		return jsonCodecConfigure, true
	case target == "MetricsReport", target == "HistogramBucket":
		return jsonCodecMetrics, true
	case target == "ConfigUpdateRequest":
		return jsonCodecConfigUpdate, true
	case strings.HasPrefix(target, "HealthStatusMsg"):
		return jsonCodecHealth, true
	case strings.HasPrefix(target, "FlowControlMsg"):
		return jsonCodecFlow, true
	}
	return jsonCodec{}, false
}

func TestJSONAcceptance(t *testing.T) {
	ran, skipped := 0, 0
	for i, c := range jsonLoadAcceptance(t) {
		if strings.HasPrefix(c.TargetType, "base64") {
			ran++
			jsonCheckBase64Case(t, i, c)
			continue
		}
		codec, ok := jsonAcceptanceCodec(c.TargetType)
		if !ok {
			skipped++
			t.Logf("case %d: target %s has no Go type; skipped", i, c.TargetType)
			continue
		}
		ran++
		input := c.InputJSON
		if c.TargetType == "HistogramBucket" {
			input = jsonHistogramWrap(input)
		}
		got, err := codec.decode([]byte(input))
		if (err == nil) != c.RustAccepts {
			t.Errorf("case %d %s %s: accepted=%v (err %v), Rust accepts=%v (%s)",
				i, c.TargetType, c.InputJSON, err == nil, err, c.RustAccepts, c.ErrorOrValue)
			continue
		}
		if err != nil {
			continue
		}
		out := codec.encode(got)
		var mine, want any
		if e := json.Unmarshal(out, &mine); e != nil {
			t.Errorf("case %d: re-encoded output is not JSON: %v: %s", i, e, out)
			continue
		}
		if e := json.Unmarshal([]byte(c.ErrorOrValue), &want); e != nil {
			t.Fatalf("case %d: bad expected value: %v", i, e)
		}
		if c.TargetType == "HistogramBucket" {
			mine = mine.(map[string]any)["histograms"].([]any)[0].(map[string]any)["buckets"].([]any)[0]
		}
		jsonAcceptanceNormalize(c.TargetType, mine, want)
		if !reflect.DeepEqual(mine, want) {
			t.Errorf("case %d %s %s: re-encoded value differs\n got: %s\nwant: %s",
				i, c.TargetType, c.InputJSON, out, c.ErrorOrValue)
		}
	}
	t.Logf("%d acceptance cases checked, %d skipped (no Go type)", ran, skipped)
}

// jsonAcceptanceNormalize removes the documented differences between the Go
// model and Rust's re-serialization before comparing.
func jsonAcceptanceNormalize(target string, mine, want any) {
	m, _ := mine.(map[string]any)
	w, _ := want.(map[string]any)
	switch {
	case target == "AgentResponse":
		// Go writes version 2 for 0 and always writes the routing id
		// (a non-string id decodes as "").
		if w["version"] == float64(0) {
			w["version"] = float64(ProtocolVersion)
		}
		custom := w["audit"].(map[string]any)["custom"].(map[string]any)
		if _, isString := custom["correlation_id"].(string); !isString {
			custom["correlation_id"] = ""
		}
	case target == "UdsHandshakeResponse":
		// An absent encoding stays absent in Go (it means json).
		if _, ok := m["encoding"]; !ok {
			m["encoding"] = EncodingJSON
		}
	case target == "HistogramBucket":
		// Go writes a NaN bound as "NaN" (which Rust reads back) instead of
		// serde_json's null (which Rust rejects).
		if w["le"] == nil {
			w["le"] = "NaN"
		}
	case strings.HasPrefix(target, "HealthStatusMsg"):
		if w["state"] == nil {
			w["state"] = float64(0)
		}
	case target == "RequestHeadersEvent":
		// The top-level routing id is added by the encoder; a timestamp
		// that is not RFC 3339 decodes as the zero time.
		delete(m, "correlation_id")
		mm, wm := m["metadata"].(map[string]any), w["metadata"].(map[string]any)
		if jsonParseTimestamp([]byte(wm["timestamp"].(string))).IsZero() {
			mm["timestamp"] = wm["timestamp"]
		}
	}
}

func jsonCheckBase64Case(t *testing.T, i int, c jsonAcceptanceCase) {
	var text string
	if err := json.Unmarshal([]byte(c.InputJSON), &text); err != nil {
		t.Fatalf("case %d: %v", i, err)
	}
	got, err := DecodeBase64Strict(nil, []byte(text))
	if (err == nil) != c.RustAccepts {
		t.Errorf("base64 case %d %q: accepted=%v, Rust accepts=%v", i, text, err == nil, c.RustAccepts)
		return
	}
	if err == nil {
		want := strings.TrimPrefix(c.ErrorOrValue, "bytes(hex)=")
		if hex.EncodeToString(got) != want {
			t.Errorf("base64 case %d: got %x, want %s", i, got, want)
		}
	}
	// The same strictness applies to body mutations inside a reply: a
	// rejected text is kept as MutationInvalid rather than failing the reply.
	reply := `{"version":2,"decision":"allow","response_body_mutation":{"data":` + c.InputJSON + `}}`
	var r AgentResponse
	if err := DecodeAgentResponseJSON([]byte(reply), &r); err != nil {
		t.Errorf("base64 case %d in a reply: %v", i, err)
		return
	}
	action := r.ResponseBodyMutation.Value.Action
	switch {
	case text == "" && action != MutationDrop,
		text != "" && c.RustAccepts && action != MutationReplace,
		!c.RustAccepts && action != MutationInvalid:
		t.Errorf("base64 case %d in a reply: action %d", i, action)
	}
}
