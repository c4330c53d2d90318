package pbconv

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/agentwire/agentwire/codec/payload"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// The proxy-side conversions and the agent-side ones (agent.go) must be
// inverses for everything gRPC can carry.

func TestEventsRoundTripThroughAgentSide(t *testing.T) {
	ts := time.UnixMilli(1781256463123).UTC()
	rh := payload.RequestHeadersEvent{
		Metadata: payload.RequestMetadata{
			CorrelationID: "c", RequestID: "r", ClientIP: "10.0.0.1", ClientPort: 443,
			ServerName: payload.Some("h"), Protocol: "HTTP/1.1", TLSVersion: payload.Some("TLSv1.3"),
			RouteID: payload.Some("route"), UpstreamID: payload.Some("up"), Timestamp: ts, Traceparent: "00-aa-bb-01",
		},
		Method: "GET", URI: "/x",
		Headers: payload.Headers{{Name: "b", Values: []string{"1", "2"}}, {Name: "a", Values: []string{"3"}}},
	}
	var rh2 payload.RequestHeadersEvent
	RequestHeadersEventFromPB(&rh2, RequestHeadersEventToPB(&rh, 1))
	if !reflect.DeepEqual(rh, rh2) {
		t.Fatalf("request headers:\n%+v\n%+v", rh, rh2)
	}
	if p := RequestHeadersEventToPB(&payload.RequestHeadersEvent{}, 77); p.HttpVersion != "HTTP/1.1" || p.Metadata.TimestampMs != 77 {
		t.Fatalf("defaults: %v", p)
	}

	bc := payload.BodyChunk{CorrelationID: "c", Data: []byte{0, 1}, IsLast: true, TotalSize: payload.Some[uint64](2), ChunkIndex: 3, BytesTransferred: 2}
	var bc2 payload.BodyChunk
	BodyChunkFromPB(&bc2, BodyChunkToPB(&bc, 5))
	if !reflect.DeepEqual(bc, bc2) {
		t.Fatalf("body chunk: %+v %+v", bc, bc2)
	}

	rs := payload.ResponseHeadersEvent{CorrelationID: "c", Status: 404, Headers: payload.Headers{{Name: "x", Values: []string{"y"}}}}
	var rs2 payload.ResponseHeadersEvent
	ResponseHeadersEventFromPB(&rs2, ResponseHeadersEventToPB(&rs))
	if !reflect.DeepEqual(rs, rs2) {
		t.Fatalf("response headers: %+v %+v", rs, rs2)
	}

	rc := payload.RequestCompleteEvent{CorrelationID: "c", Status: 200, DurationMS: 3, RequestBodySize: 4, ResponseBodySize: 5, UpstreamAttempts: 1, Error: payload.Some("e")}
	var rc2 payload.RequestCompleteEvent
	RequestCompleteEventFromPB(&rc2, RequestCompleteEventToPB(&rc))
	if !reflect.DeepEqual(rc, rc2) {
		t.Fatalf("request complete: %+v %+v", rc, rc2)
	}

	for _, op := range []string{OpcodeText, OpcodeBinary, OpcodePing, OpcodePong, OpcodeClose, OpcodeContinuation} {
		ws := payload.WebSocketFrameEvent{CorrelationID: "c", Opcode: op, Data: []byte("d"), ClientToServer: true, Fin: true}
		var ws2 payload.WebSocketFrameEvent
		WebSocketFrameEventFromPB(&ws2, WebSocketFrameEventToPB(&ws))
		if !reflect.DeepEqual(ws, ws2) {
			t.Fatalf("websocket %s: %+v %+v", op, ws, ws2)
		}
	}

	for _, g := range []payload.GuardrailInspectEvent{
		{CorrelationID: "c", InspectionType: payload.InspectionPromptInjection, Content: "x", Model: payload.Some("m"),
			Categories: []string{"a"}, RouteID: payload.Some("r"), Metadata: map[string]string{"k": "v", "\"q": "\n"}},
		{CorrelationID: "c", InspectionType: payload.InspectionPIIDetection, Content: "y", Categories: []string{}, Metadata: map[string]string{}},
	} {
		var g2 payload.GuardrailInspectEvent
		GuardrailInspectEventFromPB(&g2, GuardrailInspectEventToPB(&g))
		if !reflect.DeepEqual(g, g2) {
			t.Fatalf("guardrail: %+v %+v", g, g2)
		}
	}
	if got := GuardrailContextJSON(&payload.GuardrailInspectEvent{InspectionType: "pii_detection"}); got != `{"categories":[],"inspection_type":"pii_detection","metadata":{},"route_id":null}` {
		t.Fatalf("context json %s", got)
	}

	ce := payload.ConfigureEvent{Config: json.RawMessage(`{"a":1}`), ConfigVersion: payload.Some("v1")}
	var ce2 payload.ConfigureEvent
	ConfigureEventFromPB(&ce2, ConfigureEventToPB(&ce, true, 1))
	if !reflect.DeepEqual(ce, ce2) {
		t.Fatalf("configure: %+v %+v", ce, ce2)
	}
	for r := payload.CancelClientDisconnect; r <= payload.CancelManual; r++ {
		c := payload.Cancel{CorrelationID: "c", Reason: r, TimestampMS: 9}
		if got := CancelFromPB(CancelToPB(c)); got != c {
			t.Fatalf("cancel %v: %+v", r, got)
		}
	}
	hs := payload.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "p", ProxyVersion: "1", Config: json.RawMessage(`{"x":true}`)}
	var hs2 payload.HandshakeRequest
	HandshakeRequestFromPB(&hs2, HandshakeRequestToPB(&hs))
	if !reflect.DeepEqual(hs, hs2) {
		t.Fatalf("handshake: %+v %+v", hs, hs2)
	}
	if HandshakeRequestToPB(&payload.HandshakeRequest{}).ConfigJson != "{}" {
		t.Fatal("empty handshake config must be {}")
	}
	cu := payload.ConfigUpdateResponse{RequestID: "r", Accepted: false, Error: payload.Some("no"), TimestampMS: 3}
	if got := ConfigUpdateResponseFromPB(ConfigUpdateResponseToPB(&cu)); !reflect.DeepEqual(got, cu) {
		t.Fatalf("config response: %+v", got)
	}
}

func TestAgentMessagesRoundTrip(t *testing.T) {
	// Reply: agent encoder → proxy decoder.
	resp := payload.AgentResponse{
		CorrelationID: "c", Version: 2,
		Decision:        payload.Decision{Kind: payload.DecisionBlock, Status: 403, Body: payload.Some("b"), BlockHeaders: map[string]string{"x": "1"}},
		RequestHeaders:  []payload.HeaderOp{{Kind: payload.HeaderSet, Name: "a", Value: "1"}, {Kind: payload.HeaderRemove, Name: "r"}},
		ResponseHeaders: []payload.HeaderOp{{Kind: payload.HeaderAdd, Name: "z", Value: "2"}},
		Audit: payload.AuditMetadata{Tags: []string{"t"}, RuleIDs: []string{"1"}, Confidence: payload.Some[float32](0.25), ReasonCodes: []string{"R"},
			Custom: map[string]json.RawMessage{"s": json.RawMessage(`"v"`), "o": json.RawMessage(`{"k":[1,2]}`)}},
		NeedsMore:        true,
		ProcessingTimeMS: payload.Some[uint64](4),
	}
	var got payload.AgentResponse
	if err := AgentResponseFromPB(&got, AgentResponseToPB(&resp)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp, got) {
		t.Fatalf("reply:\n%+v\n%+v", resp, got)
	}
	for _, d := range []payload.Decision{payload.Allow(), payload.Redirect("u", 302), payload.Challenge("captcha", map[string]string{"k": "v"})} {
		r := payload.AgentResponse{Version: 2, Decision: d}
		var g payload.AgentResponse
		if err := AgentResponseFromPB(&g, AgentResponseToPB(&r)); err != nil || !reflect.DeepEqual(g.Decision, d) {
			t.Fatalf("decision %v: %v %+v", d.Kind, err, g.Decision)
		}
	}
	var g payload.AgentResponse
	if err := AgentResponseFromPB(&g, &pb.AgentResponse{Decision: &pb.AgentResponse_Block{Block: &pb.BlockDecision{Status: 1000}}}); err != ErrStatusRange {
		t.Fatalf("status 1000: %v", err)
	}

	h := payload.HealthStatus{AgentID: "a", State: payload.HealthDegraded, Message: payload.Some("m"), DisabledFeatures: []string{"x"},
		TimeoutMultiplier: 1.5, DrainETAMS: payload.Some[uint64](1), UnhealthyReason: payload.Some("u"), Recoverable: true,
		ValidUntilMS: payload.Some[uint64](2), TimestampMS: 3}
	if got := HealthStatusFromPB(HealthStatusToPB(&h)); !reflect.DeepEqual(got, h) {
		t.Fatalf("health: %+v", got)
	}
	f := payload.FlowControlSignal{CorrelationID: payload.Some("c"), Action: payload.FlowUpdateCapacity, BufferAvailable: payload.Some[uint64](8), TimestampMS: 1}
	if got := FlowControlSignalFromPB(FlowControlSignalToPB(&f)); got != f {
		t.Fatalf("flow: %+v", got)
	}
	m := payload.MetricsReport{AgentID: "a", TimestampMS: 1, IntervalMS: 2,
		Counters:   []payload.CounterMetric{{Name: "c", Help: "h", Labels: map[string]string{"l": "v"}, Value: 3}},
		Gauges:     []payload.GaugeMetric{{Name: "g", Labels: map[string]string{}, Value: 1.5}},
		Histograms: []payload.HistogramMetric{{Name: "h", Labels: map[string]string{}, Sum: 2, Count: 3, Buckets: []payload.HistogramBucket{{Le: 1, Count: 1}}}}}
	if got := MetricsReportFromPB(MetricsReportToPB(&m)); !reflect.DeepEqual(*got, m) {
		t.Fatalf("metrics: %+v", got)
	}
	for _, u := range []payload.ConfigUpdateRequest{
		{Kind: payload.ConfigRequestReload, RequestID: "1", TimestampMS: 2},
		{Kind: payload.ConfigRuleUpdate, RequestID: "2", RuleSet: "s", RemoveRules: []string{"x"},
			Rules: []payload.RuleDefinition{{ID: "r", Priority: -1, Definition: json.RawMessage(`{"a":1}`), Enabled: true, Description: payload.Some("d"), Tags: []string{"t"}}}},
		{Kind: payload.ConfigListUpdate, RequestID: "3", ListID: "l", Add: []string{"a"}, Remove: []string{}},
		{Kind: payload.ConfigRestartRequired, RequestID: "4", Reason: "r", GracePeriodMS: 5},
		{Kind: payload.ConfigError, RequestID: "5", Error: "e", Field: payload.Some("f")},
	} {
		if got := ConfigUpdateRequestFromPB(ConfigUpdateRequestToPB(&u)); !reflect.DeepEqual(*got, u) {
			t.Fatalf("config update %v:\n%+v\n%+v", u.Kind, *got, u)
		}
	}
	if got := ConfigUpdateRequestFromPB(&pb.ConfigUpdateRequest{RequestId: "x"}); got.Kind != payload.ConfigRequestReload {
		t.Fatalf("missing update_type: %v", got.Kind)
	}
	bad := ConfigUpdateRequestFromPB(&pb.ConfigUpdateRequest{UpdateType: &pb.ConfigUpdateRequest_RuleUpdate{RuleUpdate: &pb.RuleUpdate{
		Rules: []*pb.RuleDefinition{{DefinitionJson: "{not json"}}}}})
	if string(bad.Rules[0].Definition) != "null" {
		t.Fatalf("bad definition: %s", bad.Rules[0].Definition)
	}
	caps := payload.Capabilities{ProtocolVersion: 2, AgentID: "a", Name: "n", Version: "v", SupportedEvents: []int32{1, 2, 8},
		Features: payload.FullFeatures(), Limits: payload.DefaultLimits(), Health: payload.HealthConfig{ReportIntervalMS: 10, IncludeLoadMetrics: true}}
	hr := payload.HandshakeResponse{ProtocolVersion: 2, Capabilities: caps, Success: true}
	if got := HandshakeResponseFromPB(HandshakeResponseToPB(&hr)); !reflect.DeepEqual(got, hr) {
		t.Fatalf("handshake response:\n%+v\n%+v", got, hr)
	}
	lm := LogMessageFromPB(&pb.LogMessage{Level: 4, Message: "m", CorrelationId: new(string), Fields: map[string]string{"k": "v"}, TimestampMs: 1})
	if lm.Level != payload.LogError || !lm.CorrelationID.Valid || lm.Fields["k"] != "v" {
		t.Fatalf("log: %+v", lm)
	}
}

func TestCustomValue(t *testing.T) {
	for in, want := range map[string]string{
		`"abc"`: `"abc"`, `12`: `12`, `{"a":[true]}`: `{"a":[true]}`, `abc`: `"abc"`, ``: `""`,
		"a\"b\x01": `"a\"b\u0001"`, "\xff": "\"\uFFFD\"",
	} {
		if got := string(CustomValue(in)); got != want {
			t.Errorf("CustomValue(%q) = %s, want %s", in, got, want)
		}
		if !json.Valid(CustomValue(in)) {
			t.Errorf("CustomValue(%q) is not JSON", in)
		}
	}
}
