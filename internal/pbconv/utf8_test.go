package pbconv

// The agent's messages must carry valid UTF-8 in every
// string field.
//
// The Rust proxy decodes AgentToProxy with prost (tonic-prost 0.14, see
// crates/agent-protocol/Cargo.toml). prost rejects a string field that is
// not valid UTF-8 (prost/src/encoding.rs, string::merge →
// InvalidString) and tonic-prost reports it as a stream error. The Rust
// client's reader (crates/agent-protocol/src/v2/client.rs, connect: `while
// let Ok(Some(msg)) = inbound.message().await`) then exits for good, and
// every later request on that connection times out. protobuf-go's
// proto.Unmarshal applies the same rule to proto3 strings and stands in for
// prost here. The proxy-side converters (the reference for internal/pbwire)
// must obey the same rule towards Rust SDK agents.

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

const badUTF8 = "caf\xe9\xff"

func strictRoundTrip(t *testing.T, name string, m interface {
	MarshalVT() ([]byte, error)
}, into proto.Message) {
	t.Helper()
	b, err := m.MarshalVT()
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	if err := proto.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: a prost-like strict decoder rejects the message: %v", name, err)
	}
}

func TestAgentResponseValidUTF8(t *testing.T) {
	r := &agentwire.AgentResponse{
		CorrelationID: "c1",
		Decision: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 403,
			Body: agentwire.Some("blocked: " + badUTF8), BlockHeaders: map[string]string{"x-why": badUTF8}},
		RequestHeaders:  []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-echo", Value: badUTF8}},
		ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderRemove, Name: badUTF8}},
		Audit: agentwire.AuditMetadata{
			Tags: []string{badUTF8}, RuleIDs: []string{"r1"}, ReasonCodes: []string{badUTF8},
			Custom: map[string]json.RawMessage{"k" + badUTF8: json.RawMessage(`"` + badUTF8 + `"`)},
		},
	}
	tags := r.Audit.Tags
	var e ResponseEncoder
	out := e.Encode(r)
	var got pb.AgentResponse
	strictRoundTrip(t, "response", out, &got)
	if v := got.GetBlock().GetBody(); v != "blocked: caf\uFFFD\uFFFD" {
		t.Fatalf("block body = %q", v)
	}
	if tags[0] != badUTF8 {
		t.Fatalf("the caller's audit tags were modified: %q", tags[0])
	}

	// The same for a redirect and a challenge decision.
	r2 := &agentwire.AgentResponse{CorrelationID: "c2", Decision: agentwire.Decision{Kind: agentwire.DecisionRedirect, Status: 302, URL: "/x" + badUTF8}}
	strictRoundTrip(t, "redirect", e.Encode(r2), &pb.AgentResponse{})
	r3 := &agentwire.AgentResponse{CorrelationID: "c3", Decision: agentwire.Decision{Kind: agentwire.DecisionChallenge,
		ChallengeType: badUTF8, Params: map[string]string{"p": badUTF8}}}
	strictRoundTrip(t, "challenge", e.Encode(r3), &pb.AgentResponse{})
	if r3.Decision.Params["p"] != badUTF8 {
		t.Fatal("the caller's challenge params were modified")
	}
}

func TestAgentControlMessagesValidUTF8(t *testing.T) {
	fields := map[string]string{"f": badUTF8}
	lm := LogMessageToPB(&agentwire.LogMessage{Level: agentwire.LogWarn, Message: "saw " + badUTF8, Fields: fields})
	strictRoundTrip(t, "log", lm, &pb.LogMessage{})
	if fields["f"] != badUTF8 {
		t.Fatal("the caller's log fields were modified")
	}
	hs := HealthStatusToPB(&agentwire.HealthStatus{AgentID: "a", State: agentwire.HealthDegraded,
		Message: agentwire.Some(badUTF8), DisabledFeatures: []string{badUTF8}})
	strictRoundTrip(t, "health", hs, &pb.HealthStatus{})
	mr := MetricsReportToPB(&agentwire.MetricsReport{AgentID: "a",
		Counters: []agentwire.CounterMetric{{Name: "n", Help: badUTF8, Labels: map[string]string{"l": badUTF8}, Value: 1}}})
	strictRoundTrip(t, "metrics", mr, &pb.MetricsReport{})
	cu := ConfigUpdateRequestToPB(&agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigError, RequestID: "r", Error: badUTF8})
	strictRoundTrip(t, "config_update", cu, &pb.ConfigUpdateRequest{})
	caps := CapabilitiesToPB(&agentwire.Capabilities{AgentID: "a", Name: badUTF8, Version: "1"})
	strictRoundTrip(t, "capabilities", caps, &pb.AgentCapabilities{})
}

func TestProxyEventsValidUTF8(t *testing.T) {
	ev := &agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{CorrelationID: "c1", RouteID: agentwire.Some(badUTF8), Traceparent: badUTF8},
		Method:   "GET", URI: "/" + badUTF8,
		Headers: agentwire.Headers{{Name: "x", Values: []string{badUTF8}}},
	}
	strictRoundTrip(t, "request_headers", RequestHeadersEventToPB(ev, 1), &pb.RequestHeadersEvent{})
	if ev.Headers[0].Values[0] != badUTF8 {
		t.Fatal("the caller's headers were modified")
	}
	strictRoundTrip(t, "response_headers", ResponseHeadersEventToPB(&agentwire.ResponseHeadersEvent{
		CorrelationID: "c1", Status: 200, Headers: agentwire.Headers{{Name: "x", Values: []string{badUTF8}}}}), &pb.ResponseHeadersEvent{})
	strictRoundTrip(t, "guardrail", GuardrailInspectEventToPB(&agentwire.GuardrailInspectEvent{
		CorrelationID: "c1", Content: badUTF8, Model: agentwire.Some(badUTF8)}), &pb.GuardrailInspectEvent{})
	strictRoundTrip(t, "request_complete", RequestCompleteEventToPB(&agentwire.RequestCompleteEvent{
		CorrelationID: "c1", Error: agentwire.Some(badUTF8)}), &pb.RequestCompleteEvent{})
}
