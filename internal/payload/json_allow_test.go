package payload

import (
	"encoding/json"
	"testing"
)

func allowJSON(id string) []byte {
	return []byte(allowJSONHead + id + allowJSONTail)
}

// TestAllowReplyJSONWriters: the allow reply of the Rust SDK's agents (the
// golden vector) and of agentwire's own encoder are recognised whole by
// ScanReplyJSON's first step (scanAllowJSON), with their ids.
func TestAllowReplyJSONWriters(t *testing.T) {
	var golden string
	for _, v := range jsonLoadVectors(t, "responses.json") {
		if v.Name == "allow_default" {
			golden = v.JSONPayload
		}
	}
	if golden == "" {
		t.Fatal("no allow_default vector")
	}
	if id, ok := scanAllowJSON([]byte(golden)); !ok || string(id.of([]byte(golden))) != "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7" {
		t.Fatalf("golden allow reply: %q %v", id, ok)
	}
	own := AppendAgentResponseJSON(nil, &AgentResponse{CorrelationID: "req-42"})
	if id, ok := scanAllowJSON(own); !ok || string(id.of(own)) != "req-42" {
		t.Fatalf("agentwire's allow reply %s: %q %v", own, id, ok)
	}
}

// TestAllowReplyJSONOthers: everything but the canonical allow reply with a
// plain id is left to the field-by-field scan.
func TestAllowReplyJSONOthers(t *testing.T) {
	for name, r := range map[string]*AgentResponse{
		"block":      {CorrelationID: "x", Decision: Decision{Kind: DecisionBlock, Status: 403}},
		"header op":  {CorrelationID: "x", RequestHeaders: []HeaderOp{{Kind: HeaderSet, Name: "a", Value: "b"}}},
		"needs more": {CorrelationID: "x", NeedsMore: true},
		"tag":        {CorrelationID: "x", Audit: AuditMetadata{Tags: []string{"t"}}},
		"custom":     {CorrelationID: "x", Audit: AuditMetadata{Custom: map[string]json.RawMessage{"k": json.RawMessage(`1`)}}},
		"routing":    {CorrelationID: "x", RoutingMetadata: map[string]string{"k": "v"}},
		"version 3":  {CorrelationID: "x", Version: 3},
	} {
		if _, ok := scanAllowJSON(AppendAgentResponseJSON(nil, r)); ok {
			t.Errorf("%s: recognised as the plain allow reply", name)
		}
	}
	for _, id := range []string{"", `a\"b`, `a\\b`, "a\x01b", "é"} {
		if _, ok := scanAllowJSON(allowJSON(id)); ok {
			t.Errorf("id %q: recognised", id)
		}
	}
	full := allowJSON("abc")
	for _, p := range [][]byte{full[:len(full)-1], full[1:], append(append([]byte{}, full...), ' '), append([]byte(" "), full...), nil} {
		if _, ok := scanAllowJSON(p); ok {
			t.Errorf("%q: recognised", p)
		}
	}
}

// dirtyReply returns a reply with every reusable part in use, as a
// destination reused after a rich reply would be.
func dirtyReply() *AgentResponse {
	return &AgentResponse{
		CorrelationID: "old", Version: 7, NeedsMore: true,
		Decision:        Decision{Kind: DecisionBlock, Status: 403, BlockHeaders: map[string]string{"a": "b"}, Params: map[string]string{"c": "d"}, Body: Some("no")},
		RequestHeaders:  []HeaderOp{{Kind: HeaderSet, Name: "a", Value: "b"}},
		ResponseHeaders: []HeaderOp{{Kind: HeaderRemove, Name: "c"}},
		RoutingMetadata: map[string]string{"r": "s"},
		Audit: AuditMetadata{Tags: []string{"t"}, RuleIDs: []string{"r"}, ReasonCodes: []string{"c"}, Confidence: Some[float32](0.5),
			Custom: map[string]json.RawMessage{"k": json.RawMessage(`1`)}},
		RequestBodyMutation:  Some(BodyMutation{Action: MutationReplace, Data: []byte("data")}),
		ResponseBodyMutation: Some(BodyMutation{Action: MutationDrop, Data: []byte("x")}),
		WebSocketDecision:    Some(WebSocketDecision{Kind: WebSocketClose, Code: 1000}),
	}
}

// TestAllowReplyJSONLikeDecoder: replies the whole-match step takes
// decode as the decoder decodes them, from fresh and dirty destinations.
func TestAllowReplyJSONLikeDecoder(t *testing.T) {
	for _, id := range []string{"a", "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7", "bench-1z", " ~!#$%&'()*+,-./:;<=>?@[]^_`{|}\x7f"} {
		p := allowJSON(id)
		if _, ok := scanAllowJSON(p); !ok {
			t.Fatalf("id %q: not recognised", id)
		}
		if !checkReplyScanJSON(t, p) {
			t.Fatalf("id %q: refused by ScanReplyJSON", id)
		}
	}
}

// BenchmarkAllowReplyJSON: the canonical allow reply decoded field by
// field (decode) against ScanReplyJSON, which matches it whole, and
// DecodeJSON (scan).
func BenchmarkAllowReplyJSON(b *testing.B) {
	p := allowJSON("bench-1a2b3c4d")
	var r AgentResponse
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := DecodeAgentResponseJSON(p, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		var s ReplyScan
		for range b.N {
			if _, ok := ScanReplyJSON(p, &s); !ok {
				b.Fatal("not recognised")
			}
			s.DecodeJSON(p, &r)
		}
	})
}
