package pbconv

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// The proxy-side conversions and the agent-side ones (agent.go) must be
// inverses for everything gRPC can carry.

func TestEventsRoundTripThroughAgentSide(t *testing.T) {
	ts := time.UnixMilli(1781256463123).UTC()
	rh := agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: "c", RequestID: "r", ClientIP: "10.0.0.1", ClientPort: 443,
			ServerName: agentwire.Some("h"), Protocol: "HTTP/1.1", TLSVersion: agentwire.Some("TLSv1.3"),
			RouteID: agentwire.Some("route"), UpstreamID: agentwire.Some("up"), Timestamp: ts, Traceparent: "00-aa-bb-01",
		},
		Method: "GET", URI: "/x",
		Headers: agentwire.Headers{{Name: "b", Values: []string{"1", "2"}}, {Name: "a", Values: []string{"3"}}},
	}
	var rh2 agentwire.RequestHeadersEvent
	RequestHeadersEventFromPB(&rh2, RequestHeadersEventToPB(&rh, 1))
	if !reflect.DeepEqual(rh, rh2) {
		t.Fatalf("request headers:\n%+v\n%+v", rh, rh2)
	}
	if p := RequestHeadersEventToPB(&agentwire.RequestHeadersEvent{}, 77); p.HttpVersion != "HTTP/1.1" || p.Metadata.TimestampMs != 77 {
		t.Fatalf("defaults: %v", p)
	}

	bc := agentwire.BodyChunk{CorrelationID: "c", Data: []byte{0, 1}, IsLast: true, TotalSize: agentwire.Some[uint64](2), ChunkIndex: 3, BytesTransferred: 2}
	var bc2 agentwire.BodyChunk
	BodyChunkFromPB(&bc2, BodyChunkToPB(&bc, 5))
	if !reflect.DeepEqual(bc, bc2) {
		t.Fatalf("body chunk: %+v %+v", bc, bc2)
	}

	rs := agentwire.ResponseHeadersEvent{CorrelationID: "c", Status: 404, Headers: agentwire.Headers{{Name: "x", Values: []string{"y"}}}}
	var rs2 agentwire.ResponseHeadersEvent
	ResponseHeadersEventFromPB(&rs2, ResponseHeadersEventToPB(&rs))
	if !reflect.DeepEqual(rs, rs2) {
		t.Fatalf("response headers: %+v %+v", rs, rs2)
	}

	rc := agentwire.RequestCompleteEvent{CorrelationID: "c", Status: 200, DurationMS: 3, RequestBodySize: 4, ResponseBodySize: 5, UpstreamAttempts: 1, Error: agentwire.Some("e")}
	var rc2 agentwire.RequestCompleteEvent
	RequestCompleteEventFromPB(&rc2, RequestCompleteEventToPB(&rc))
	if !reflect.DeepEqual(rc, rc2) {
		t.Fatalf("request complete: %+v %+v", rc, rc2)
	}

	for _, op := range []string{OpcodeText, OpcodeBinary, OpcodePing, OpcodePong, OpcodeClose, OpcodeContinuation} {
		ws := agentwire.WebSocketFrameEvent{CorrelationID: "c", Opcode: op, Data: []byte("d"), ClientToServer: true, Fin: true}
		var ws2 agentwire.WebSocketFrameEvent
		WebSocketFrameEventFromPB(&ws2, WebSocketFrameEventToPB(&ws))
		if !reflect.DeepEqual(ws, ws2) {
			t.Fatalf("websocket %s: %+v %+v", op, ws, ws2)
		}
	}

	for _, g := range []agentwire.GuardrailInspectEvent{
		{CorrelationID: "c", InspectionType: agentwire.InspectionPromptInjection, Content: "x", Model: agentwire.Some("m"),
			Categories: []string{"a"}, RouteID: agentwire.Some("r"), Metadata: map[string]string{"k": "v", "\"q": "\n"}},
		{CorrelationID: "c", InspectionType: agentwire.InspectionPIIDetection, Content: "y", Categories: []string{}, Metadata: map[string]string{}},
	} {
		var g2 agentwire.GuardrailInspectEvent
		GuardrailInspectEventFromPB(&g2, GuardrailInspectEventToPB(&g))
		if !reflect.DeepEqual(g, g2) {
			t.Fatalf("guardrail: %+v %+v", g, g2)
		}
	}
	if got := GuardrailContextJSON(&agentwire.GuardrailInspectEvent{InspectionType: "pii_detection"}); got != `{"categories":[],"inspection_type":"pii_detection","metadata":{},"route_id":null}` {
		t.Fatalf("context json %s", got)
	}

	ce := agentwire.ConfigureEvent{Config: json.RawMessage(`{"a":1}`), ConfigVersion: agentwire.Some("v1")}
	var ce2 agentwire.ConfigureEvent
	ConfigureEventFromPB(&ce2, ConfigureEventToPB(&ce, true, 1))
	if !reflect.DeepEqual(ce, ce2) {
		t.Fatalf("configure: %+v %+v", ce, ce2)
	}
	for r := agentwire.CancelClientDisconnect; r <= agentwire.CancelManual; r++ {
		c := agentwire.Cancel{CorrelationID: "c", Reason: r, TimestampMS: 9}
		if got := CancelFromPB(CancelToPB(c)); got != c {
			t.Fatalf("cancel %v: %+v", r, got)
		}
	}
	hs := agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "p", ProxyVersion: "1", Config: json.RawMessage(`{"x":true}`)}
	var hs2 agentwire.HandshakeRequest
	HandshakeRequestFromPB(&hs2, HandshakeRequestToPB(&hs))
	if !reflect.DeepEqual(hs, hs2) {
		t.Fatalf("handshake: %+v %+v", hs, hs2)
	}
	if HandshakeRequestToPB(&agentwire.HandshakeRequest{}).ConfigJson != "{}" {
		t.Fatal("empty handshake config must be {}")
	}
	cu := agentwire.ConfigUpdateResponse{RequestID: "r", Accepted: false, Error: agentwire.Some("no"), TimestampMS: 3}
	if got := ConfigUpdateResponseFromPB(ConfigUpdateResponseToPB(&cu)); !reflect.DeepEqual(got, cu) {
		t.Fatalf("config response: %+v", got)
	}
}

func TestAgentMessagesRoundTrip(t *testing.T) {
	// Reply: agent encoder → proxy decoder.
	resp := agentwire.AgentResponse{
		CorrelationID: "c", Version: 2,
		Decision:        agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 403, Body: agentwire.Some("b"), BlockHeaders: map[string]string{"x": "1"}},
		RequestHeaders:  []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "a", Value: "1"}, {Kind: agentwire.HeaderRemove, Name: "r"}},
		ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderAdd, Name: "z", Value: "2"}},
		Audit: agentwire.AuditMetadata{Tags: []string{"t"}, RuleIDs: []string{"1"}, Confidence: agentwire.Some[float32](0.25), ReasonCodes: []string{"R"},
			Custom: map[string]json.RawMessage{"s": json.RawMessage(`"v"`), "o": json.RawMessage(`{"k":[1,2]}`)}},
		NeedsMore:        true,
		ProcessingTimeMS: agentwire.Some[uint64](4),
	}
	var got agentwire.AgentResponse
	if err := AgentResponseFromPB(&got, AgentResponseToPB(&resp)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp, got) {
		t.Fatalf("reply:\n%+v\n%+v", resp, got)
	}
	for _, d := range []agentwire.Decision{agentwire.Allow(), agentwire.Redirect("u", 302), agentwire.Challenge("captcha", map[string]string{"k": "v"})} {
		r := agentwire.AgentResponse{Version: 2, Decision: d}
		var g agentwire.AgentResponse
		if err := AgentResponseFromPB(&g, AgentResponseToPB(&r)); err != nil || !reflect.DeepEqual(g.Decision, d) {
			t.Fatalf("decision %v: %v %+v", d.Kind, err, g.Decision)
		}
	}
	var g agentwire.AgentResponse
	if err := AgentResponseFromPB(&g, &pb.AgentResponse{Decision: &pb.AgentResponse_Block{Block: &pb.BlockDecision{Status: 1000}}}); err != ErrStatusRange {
		t.Fatalf("status 1000: %v", err)
	}

	h := agentwire.HealthStatus{AgentID: "a", State: agentwire.HealthDegraded, Message: agentwire.Some("m"), DisabledFeatures: []string{"x"},
		TimeoutMultiplier: 1.5, DrainETAMS: agentwire.Some[uint64](1), UnhealthyReason: agentwire.Some("u"), Recoverable: true,
		ValidUntilMS: agentwire.Some[uint64](2), TimestampMS: 3}
	if got := HealthStatusFromPB(HealthStatusToPB(&h)); !reflect.DeepEqual(got, h) {
		t.Fatalf("health: %+v", got)
	}
	f := agentwire.FlowControlSignal{CorrelationID: agentwire.Some("c"), Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](8), TimestampMS: 1}
	if got := FlowControlSignalFromPB(FlowControlSignalToPB(&f)); got != f {
		t.Fatalf("flow: %+v", got)
	}
	m := agentwire.MetricsReport{AgentID: "a", TimestampMS: 1, IntervalMS: 2,
		Counters:   []agentwire.CounterMetric{{Name: "c", Help: "h", Labels: map[string]string{"l": "v"}, Value: 3}},
		Gauges:     []agentwire.GaugeMetric{{Name: "g", Labels: map[string]string{}, Value: 1.5}},
		Histograms: []agentwire.HistogramMetric{{Name: "h", Labels: map[string]string{}, Sum: 2, Count: 3, Buckets: []agentwire.HistogramBucket{{Le: 1, Count: 1}}}}}
	if got := MetricsReportFromPB(MetricsReportToPB(&m)); !reflect.DeepEqual(*got, m) {
		t.Fatalf("metrics: %+v", got)
	}
	for _, u := range []agentwire.ConfigUpdateRequest{
		{Kind: agentwire.ConfigRequestReload, RequestID: "1", TimestampMS: 2},
		{Kind: agentwire.ConfigRuleUpdate, RequestID: "2", RuleSet: "s", RemoveRules: []string{"x"},
			Rules: []agentwire.RuleDefinition{{ID: "r", Priority: -1, Definition: json.RawMessage(`{"a":1}`), Enabled: true, Description: agentwire.Some("d"), Tags: []string{"t"}}}},
		{Kind: agentwire.ConfigListUpdate, RequestID: "3", ListID: "l", Add: []string{"a"}, Remove: []string{}},
		{Kind: agentwire.ConfigRestartRequired, RequestID: "4", Reason: "r", GracePeriodMS: 5},
		{Kind: agentwire.ConfigError, RequestID: "5", Error: "e", Field: agentwire.Some("f")},
	} {
		if got := ConfigUpdateRequestFromPB(ConfigUpdateRequestToPB(&u)); !reflect.DeepEqual(*got, u) {
			t.Fatalf("config update %v:\n%+v\n%+v", u.Kind, *got, u)
		}
	}
	if got := ConfigUpdateRequestFromPB(&pb.ConfigUpdateRequest{RequestId: "x"}); got.Kind != agentwire.ConfigRequestReload {
		t.Fatalf("missing update_type: %v", got.Kind)
	}
	bad := ConfigUpdateRequestFromPB(&pb.ConfigUpdateRequest{UpdateType: &pb.ConfigUpdateRequest_RuleUpdate{RuleUpdate: &pb.RuleUpdate{
		Rules: []*pb.RuleDefinition{{DefinitionJson: "{not json"}}}}})
	if string(bad.Rules[0].Definition) != "null" {
		t.Fatalf("bad definition: %s", bad.Rules[0].Definition)
	}
	caps := agentwire.Capabilities{ProtocolVersion: 2, AgentID: "a", Name: "n", Version: "v", SupportedEvents: []int32{1, 2, 8},
		Features: agentwire.FullFeatures(), Limits: agentwire.DefaultLimits(), Health: agentwire.HealthConfig{ReportIntervalMS: 10, IncludeLoadMetrics: true}}
	hr := agentwire.HandshakeResponse{ProtocolVersion: 2, Capabilities: caps, Success: true}
	if got := HandshakeResponseFromPB(HandshakeResponseToPB(&hr)); !reflect.DeepEqual(got, hr) {
		t.Fatalf("handshake response:\n%+v\n%+v", got, hr)
	}
	lm := LogMessageFromPB(&pb.LogMessage{Level: 4, Message: "m", CorrelationId: new(string), Fields: map[string]string{"k": "v"}, TimestampMs: 1})
	if lm.Level != agentwire.LogError || !lm.CorrelationID.Valid || lm.Fields["k"] != "v" {
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
