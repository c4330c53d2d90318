package payload

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// echoReply is the reply of the reference echo agent to request headers:
// allow, and set X-Agent-Processed: true.
func echoReply(id string) *AgentResponse {
	return &AgentResponse{CorrelationID: id,
		RequestHeaders: []HeaderOp{{Kind: HeaderSet, Name: "X-Agent-Processed", Value: "true"}}}
}

// replyScanShapes are replies in the shapes the scans take.
func replyScanShapes() map[string]*AgentResponse {
	ops := func(n int) []HeaderOp {
		var o []HeaderOp
		for i := range n {
			o = append(o, HeaderOp{Kind: HeaderOpKind(i % 3), Name: "h" + strings.Repeat("x", i)})
			if o[i].Kind != HeaderRemove {
				o[i].Value = "v" + strings.Repeat("y", i)
			}
		}
		return o
	}
	return map[string]*AgentResponse{
		"allow":           {CorrelationID: "a"},
		"echo":            echoReply("req-1"),
		"set add remove":  {CorrelationID: "x", RequestHeaders: ops(3), ResponseHeaders: ops(2)},
		"response ops":    {CorrelationID: "x", ResponseHeaders: ops(4)},
		"all ops":         {CorrelationID: "x", RequestHeaders: ops(5), ResponseHeaders: ops(3)},
		"empty strings":   {CorrelationID: "x", RequestHeaders: []HeaderOp{{Kind: HeaderSet}, {Kind: HeaderRemove}}},
		"block":           {CorrelationID: "b", Decision: Decision{Kind: DecisionBlock, Status: 403}},
		"block body":      {CorrelationID: "b", Decision: Decision{Kind: DecisionBlock, Status: 65535, Body: Some("Forbidden: rule 942100 matched")}},
		"block empty":     {CorrelationID: "b", Decision: Decision{Kind: DecisionBlock, Body: Some("")}},
		"needs more":      {CorrelationID: "n", NeedsMore: true},
		"version 3":       {CorrelationID: "v", Version: 3},
		"version max":     {CorrelationID: "v", Version: 1<<32 - 1},
		"printable":       {CorrelationID: " ~!#$%&'()*+,-./:;<=>?@[]^_`{|}", RequestHeaders: []HeaderOp{{Kind: HeaderAdd, Name: "a b", Value: "{}[],:"}}},
		"long id and ops": {CorrelationID: strings.Repeat("i", 300), RequestHeaders: []HeaderOp{{Kind: HeaderSet, Name: strings.Repeat("n", 40), Value: strings.Repeat("v", 600)}}},
	}
}

// replyScanRefusedJSON are replies the JSON scan leaves to the decoder.
func replyScanRefusedJSON() map[string][]byte {
	echo := string(AppendAgentResponseJSON(nil, echoReply("e")))
	out := map[string][]byte{
		"empty":          nil,
		"not an object":  []byte(`[2,"allow"]`),
		"no id":          []byte(`{"version":2,"decision":"allow"}`),
		"empty id":       []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":""}}}`),
		"id not string":  []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":1}}}`),
		"no version":     []byte(`{"decision":"allow","audit":{"custom":{"correlation_id":"x"}}}`),
		"no decision":    []byte(`{"version":2,"audit":{"custom":{"correlation_id":"x"}}}`),
		"reordered":      []byte(`{"decision":"allow","version":2,"audit":{"custom":{"correlation_id":"x"}}}`),
		"repeated":       []byte(`{"version":2,"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"x"}}}`),
		"unknown key":    []byte(`{"version":2,"decision":"allow","x":1,"audit":{"custom":{"correlation_id":"x"}}}`),
		"whitespace":     []byte(`{"version": 2,"decision":"allow","audit":{"custom":{"correlation_id":"x"}}}`),
		"trailing":       []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"x"}}} `),
		"leading zero":   []byte(`{"version":02,"decision":"allow","audit":{"custom":{"correlation_id":"x"}}}`),
		"float version":  []byte(`{"version":2.0,"decision":"allow","audit":{"custom":{"correlation_id":"x"}}}`),
		"version big":    []byte(`{"version":4294967296,"decision":"allow","audit":{"custom":{"correlation_id":"x"}}}`),
		"status big":     []byte(`{"version":2,"decision":{"block":{"status":65536}},"audit":{"custom":{"correlation_id":"x"}}}`),
		"escaped id":     []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"a\u0062"}}}`),
		"escaped name":   []byte(strings.Replace(echo, "X-Agent", `X\u002dAgent`, 1)),
		"non-ASCII":      []byte(strings.Replace(echo, "true", "vrai é", 1)),
		"custom extra":   []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"x","k":1}}}`),
		"tags":           []byte(`{"version":2,"decision":"allow","audit":{"tags":["t"],"custom":{"correlation_id":"x"}}}`),
		"confidence":     []byte(`{"version":2,"decision":"allow","audit":{"confidence":0.5,"custom":{"correlation_id":"x"}}}`),
		"routing":        []byte(`{"version":2,"decision":"allow","routing_metadata":{"a":"b"},"audit":{"custom":{"correlation_id":"x"}}}`),
		"block headers":  []byte(`{"version":2,"decision":{"block":{"status":403,"headers":{}}},"audit":{"custom":{"correlation_id":"x"}}}`),
		"block reorder":  []byte(`{"version":2,"decision":{"block":{"body":null,"status":403}},"audit":{"custom":{"correlation_id":"x"}}}`),
		"redirect":       AppendAgentResponseJSON(nil, &AgentResponse{CorrelationID: "x", Decision: Decision{Kind: DecisionRedirect, URL: "u", Status: 302}}),
		"mutation":       AppendAgentResponseJSON(nil, &AgentResponse{CorrelationID: "x", RequestBodyMutation: Some(BodyMutation{Action: MutationDrop})}),
		"websocket":      AppendAgentResponseJSON(nil, &AgentResponse{CorrelationID: "x", WebSocketDecision: Some(WebSocketDecision{Kind: WebSocketAllow})}),
		"op value first": []byte(`{"version":2,"decision":"allow","request_headers":[{"set":{"value":"v","name":"n"}}],"audit":{"custom":{"correlation_id":"x"}}}`),
		"op unit":        []byte(`{"version":2,"decision":"allow","request_headers":["set"],"audit":{"custom":{"correlation_id":"x"}}}`),
		"remove value":   []byte(`{"version":2,"decision":"allow","request_headers":[{"remove":{"name":"n","value":"v"}}],"audit":{"custom":{"correlation_id":"x"}}}`),
	}
	many := &AgentResponse{CorrelationID: "x"}
	for range ReplyScanOps + 1 {
		many.RequestHeaders = append(many.RequestHeaders, HeaderOp{Name: "n", Value: "v"})
	}
	out["too many ops"] = AppendAgentResponseJSON(nil, many)
	full := AppendAgentResponseJSON(nil, echoReply("e"))
	for _, n := range []int{1, len(full) / 2, len(full) - 1} {
		out["truncated "+string(full[:n])] = full[:n]
	}
	return out
}

// dirtyReplyOps is dirtyReply with header slices whose spare capacity
// holds the strings of the echo reply, in other backing arrays.
func dirtyReplyOps() *AgentResponse {
	r := dirtyReply()
	r.RequestHeaders = append(make([]HeaderOp, 0, 4), HeaderOp{Kind: HeaderAdd, Name: strings.Clone("X-Agent-Processed"), Value: strings.Clone("true")})[:0]
	r.ResponseHeaders = make([]HeaderOp, 2, 8)
	return r
}

// checkReplyScanJSON checks that when ScanReplyJSON takes p, the decoder
// agrees: it decodes p without error into exactly what DecodeJSON and the
// id give, from a fresh and from dirty destinations.
func checkReplyScanJSON(t *testing.T, p []byte) bool {
	t.Helper()
	var s ReplyScan
	id, ok := ScanReplyJSON(p, &s)
	if !ok {
		return false
	}
	if len(id) == 0 || !replyPlain(id) {
		t.Fatalf("%q: id %q", p, id)
	}
	for _, mk := range []func() *AgentResponse{func() *AgentResponse { return new(AgentResponse) }, dirtyReply, dirtyReplyOps} {
		want, got := mk(), mk()
		if err := DecodeAgentResponseJSON(p, want); err != nil {
			t.Fatalf("%q: scanned, but the decoder fails: %v", p, err)
		}
		s.DecodeJSON(p, got)
		got.CorrelationID = string(id)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: scan\n%#v\ndecoder\n%#v", p, got, want)
		}
	}
	return true
}

// TestReplyScanJSONShapes: the common replies of agentwire's encoder, the
// Rust SDK's (golden vectors) and the shape without default fields
// (internal/loopagent's) are taken, each decoded as the decoder does.
func TestReplyScanJSONShapes(t *testing.T) {
	for name, r := range replyScanShapes() {
		if !checkReplyScanJSON(t, AppendAgentResponseJSON(nil, r)) {
			t.Errorf("%s: refused", name)
		}
	}
	taken := map[string]bool{"allow_default": true, "block_no_body": true, "header_ops_set_add_remove": true, "needs_more": true,
		"guardrail_block_without_metadata": true, "configure_rejected": true}
	for _, v := range jsonLoadVectors(t, "responses.json") {
		if v.TypeByte == nil || *v.TypeByte != "0x20" {
			continue
		}
		if got := checkReplyScanJSON(t, []byte(v.JSONPayload)); got != taken[v.Name] {
			t.Errorf("golden %s: taken %v, want %v", v.Name, got, taken[v.Name])
		}
	}
	loop := []byte(`{"version":2,"decision":"allow","request_headers":[{"set":{"name":"x-agent-processed","value":"true"}}],"audit":{"custom":{"correlation_id":"loop-1"}}}`)
	if !checkReplyScanJSON(t, loop) {
		t.Error("reply without default fields: refused")
	}
}

// TestReplyScanJSONRefuses: other shapes go to the decoder.
func TestReplyScanJSONRefuses(t *testing.T) {
	for name, p := range replyScanRefusedJSON() {
		if checkReplyScanJSON(t, p) {
			t.Errorf("%s: taken", name)
		}
	}
}

// TestReplyScanJSONReusesStrings: a header name and value equal to the
// destination's old ones (also in spare capacity) keep the old strings.
func TestReplyScanJSONReusesStrings(t *testing.T) {
	p := AppendAgentResponseJSON(nil, echoReply("r"))
	var s ReplyScan
	if _, ok := ScanReplyJSON(p, &s); !ok {
		t.Fatal("refused")
	}
	r := dirtyReplyOps()
	old := r.RequestHeaders[:1][0]
	s.DecodeJSON(p, r)
	if len(r.RequestHeaders) != 1 || unsafe.StringData(r.RequestHeaders[0].Name) != unsafe.StringData(old.Name) ||
		unsafe.StringData(r.RequestHeaders[0].Value) != unsafe.StringData(old.Value) {
		t.Fatalf("strings not reused: %+v", r.RequestHeaders)
	}
	// A changed value is a copy, not a view of p.
	p2 := bytes.Replace(p, []byte(`"true"`), []byte(`"more"`), 1)
	if _, ok := ScanReplyJSON(p2, &s); !ok {
		t.Fatal("refused")
	}
	s.DecodeJSON(p2, r)
	v := r.RequestHeaders[0].Value
	copy(p2, bytes.Repeat([]byte{'z'}, len(p2)))
	if v != "more" {
		t.Fatalf("value aliases the payload: %q", v)
	}
}

// replyFuzzSeeds are the fuzzers' starting replies: the shapes, the
// refused ones and the golden vectors.
func replyFuzzSeedsJSON(f *testing.F) {
	for _, r := range replyScanShapes() {
		f.Add(AppendAgentResponseJSON(nil, r))
	}
	for _, p := range replyScanRefusedJSON() {
		f.Add(p)
	}
	for _, v := range jsonLoadVectors(f, "responses.json") {
		f.Add([]byte(v.JSONPayload))
	}
	for _, id := range []string{"a", "bench-1", `q"`, "é", "a\x7f"} {
		f.Add(allowJSON(id))
	}
}

// FuzzReplyScanJSON: on any input the scan does not panic, and whatever it
// takes the decoder decodes to the same reply from fresh and dirty
// destinations (a refused input goes to the decoder, so the engine's
// result is the decoder's either way).
func FuzzReplyScanJSON(f *testing.F) {
	replyFuzzSeedsJSON(f)
	f.Fuzz(func(t *testing.T, p []byte) {
		checkReplyScanJSON(t, p)
	})
}
