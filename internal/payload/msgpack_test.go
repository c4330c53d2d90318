package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// mpSample is one value with its encoder, the decoder of its frame type
// and its expected serde rendering.
type mpSample struct {
	name   string
	typ    string // frame type, selects the decoder
	encode func(b []byte) ([]byte, error)
	want   func(t testing.TB) any
}

func mpNoErr(f func([]byte) []byte) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) { return f(b), nil }
}

var mpTestTime = time.Date(2026, 6, 12, 9, 27, 43, 123456789, time.UTC)

func mpSampleRequestHeaders() *RequestHeadersEvent {
	return &RequestHeadersEvent{
		Metadata: RequestMetadata{
			CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
			RequestID:     "6f1c0f3e-6a3b-4c7e-9a53-3f0e8b5b2d10",
			ClientIP:      "192.0.2.10",
			ClientPort:    51514,
			ServerName:    Some("api.example.com"),
			Protocol:      "HTTP/1.1",
			TLSVersion:    Some("TLSv1.3"),
			TLSCipher:     Some("TLS_AES_128_GCM_SHA256"),
			RouteID:       Some("api"),
			Timestamp:     mpTestTime,
			Traceparent:   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
		Method: "POST",
		URI:    "/api/items?id=7&sort=asc",
		Headers: Headers{
			{Name: "user-agent", Values: []string{"curl/8.5.0"}},
			{Name: "host", Values: []string{"api.example.com"}},
			{Name: "x-forwarded-for", Values: []string{"203.0.113.5", "198.51.100.7"}},
			{Name: "cookie", Values: []string{"session=abc&x=<1>; theme=\"dark\""}},
			{Name: "x-empty", Values: []string{}},
		},
	}
}

func mpSampleResponse() *AgentResponse {
	return &AgentResponse{
		CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
		Version:       2,
		Decision: Decision{Kind: DecisionBlock, Status: 403, Body: Some("blocked"),
			BlockHeaders: map[string]string{"content-type": "text/plain", "x-waf": "1"}},
		RequestHeaders: []HeaderOp{{Kind: HeaderSet, Name: "x-user-id", Value: "42"},
			{Kind: HeaderAdd, Name: "x-waf-tag", Value: "checked"}, {Kind: HeaderRemove, Name: "cookie"}},
		ResponseHeaders: []HeaderOp{{Kind: HeaderSet, Name: "x-frame-options", Value: "DENY"}},
		RoutingMetadata: map[string]string{"upstream": "canary"},
		Audit: AuditMetadata{
			Tags: []string{"sqli", "owasp-crs"}, RuleIDs: []string{"942100"}, Confidence: Some[float32](0.95),
			ReasonCodes: []string{"SQL_INJECTION"},
			Custom: map[string]json.RawMessage{
				"score":   json.RawMessage(`87`),
				"matched": json.RawMessage(`{"path":"/etc/passwd","rules":[1,2,-3],"ratio":0.25,"big":1e300,"ok":true,"none":null,"esc":"a\"b\\c\u0001\u2028é😀"}`),
				"float":   json.RawMessage(`2.0`),
			},
		},
		NeedsMore:            true,
		RequestBodyMutation:  Some(BodyMutation{Action: MutationReplace, Data: []byte("{\"pw\":\"***\"}\x00\xff"), ChunkIndex: 3}),
		ResponseBodyMutation: Some(BodyMutation{Action: MutationDrop, ChunkIndex: 1}),
		WebSocketDecision:    Some(WebSocketDecision{Kind: WebSocketClose, Code: 1008, Reason: "policy violation"}),
	}
}

func mpSampleMetrics() *MetricsReport {
	return &MetricsReport{
		AgentID: "waf-agent", TimestampMS: 1781256463123, IntervalMS: 10000,
		Counters: []CounterMetric{
			{Name: "agent_requests_total", Help: "Requests processed", Labels: map[string]string{"decision": "allow"}, Value: 9988},
			{Name: "agent_requests_blocked_total", Value: 12},
		},
		Gauges: []GaugeMetric{{Name: "agent_in_flight_requests", Value: 3}},
		Histograms: []HistogramMetric{{
			Name: "agent_requests_duration_seconds", Help: "Processing latency", Sum: 12.5, Count: 10000,
			Labels:  map[string]string{"route": "api"},
			Buckets: []HistogramBucket{{Le: 0.005, Count: 6000}, {Le: 1, Count: 10000}, {Le: math.Inf(1), Count: 10000}},
		}},
	}
}

func mpSamples() []mpSample {
	rh := mpSampleRequestHeaders()
	chunk := &BodyChunk{CorrelationID: "c-1", Data: []byte("\x00\xff binary \xfe body"), IsLast: true,
		TotalSize: Some[uint64](1 << 40), ChunkIndex: 7, BytesTransferred: math.MaxUint64}
	emptyChunk := &BodyChunk{CorrelationID: "c-2"}
	resp := &ResponseHeadersEvent{CorrelationID: "c-1", Status: 200, Headers: Headers{
		{Name: "set-cookie", Values: []string{"a=1; Path=/", "b=2; HttpOnly"}},
		{Name: "content-length", Values: []string{"1234"}}}}
	done := &RequestCompleteEvent{CorrelationID: "c-1", Status: 504, DurationMS: 30001, RequestBodySize: 36,
		UpstreamAttempts: 3, Error: Some("upstream timeout")}
	ws := &WebSocketFrameEvent{CorrelationID: "c-1", Opcode: "close", Data: []byte{0x03, 0xe8, 'b', 'y', 'e'},
		FrameIndex: 17, Fin: true, ClientIP: "192.0.2.10"}
	gr := &GuardrailInspectEvent{CorrelationID: "c-1", InspectionType: InspectionPromptInjection,
		Content: "Ignore previous instructions\n\"quoted\" \u2028 ☕ 😀", Model: Some("gpt-4o"),
		Categories: []string{"ssn", "email"}, RouteID: Some("chat"), Metadata: map[string]string{"k": "v"}}
	grMin := &GuardrailInspectEvent{CorrelationID: "c-1", InspectionType: InspectionPIIDetection, Content: "x"}
	cfg := &ConfigureEvent{CorrelationID: "cfg-1", Config: json.RawMessage(` {"mode":"block","rules":["sqli","xss"],"threshold":5,"nested":{"a":[[],{}]}} `),
		ConfigVersion: Some("v3")}
	cfgNil := &ConfigureEvent{CorrelationID: "cfg-2"}
	allow := &AgentResponse{CorrelationID: "c-1", Version: 2}
	redirect := &AgentResponse{CorrelationID: "c-1", Version: 2, Decision: Redirect("https://login.example.com/", 302),
		RequestBodyMutation: Some(BodyMutation{Action: MutationPass, ChunkIndex: 2}),
		WebSocketDecision:   Some(WebSocketDecision{Kind: WebSocketDrop})}
	challenge := &AgentResponse{CorrelationID: "c-1", Version: 2, Decision: Challenge("captcha", map[string]string{"site_key": "6Lc"}),
		WebSocketDecision: Some(WebSocketDecision{Kind: WebSocketAllow})}
	blockBare := &AgentResponse{CorrelationID: "", Version: 7, Decision: Block(500)}
	full := mpSampleResponse()
	health := &HealthStatus{AgentID: "waf", State: HealthDegraded, Message: Some("slow"), DisabledFeatures: []string{"body"},
		TimeoutMultiplier: 1.5, DrainETAMS: Some[uint64](30000), UnhealthyReason: Some("x"), Recoverable: true,
		ValidUntilMS: Some[uint64](99), TimestampMS: 1781256463123}
	healthMin := &HealthStatus{State: HealthHealthy}
	flow := &FlowControlSignal{CorrelationID: Some("c-1"), Action: FlowUpdateCapacity, BufferAvailable: Some[uint64](65536), TimestampMS: 5}
	flowMin := &FlowControlSignal{Action: FlowPause}
	metrics := mpSampleMetrics()
	metricsEmpty := &MetricsReport{AgentID: "a"}
	updates := []*ConfigUpdateRequest{
		{Kind: ConfigRequestReload, RequestID: "cu-1", TimestampMS: 1},
		{Kind: ConfigRuleUpdate, RequestID: "cu-2", TimestampMS: 2, RuleSet: "crs",
			Rules: []RuleDefinition{
				{ID: "r-1", Priority: -5, Definition: json.RawMessage(`{"match":"path","pattern":"^/admin"}`), Enabled: true, Tags: []string{"admin"}},
				{ID: "r-2", Priority: math.MaxInt32, Description: Some("d")},
			},
			RemoveRules: []string{"r-0999"}},
		{Kind: ConfigListUpdate, RequestID: "cu-3", TimestampMS: 3, ListID: "ip-deny", Add: []string{"203.0.113.9"}},
		{Kind: ConfigRestartRequired, RequestID: "cu-4", TimestampMS: 4, Reason: "new model", GracePeriodMS: 5000},
		{Kind: ConfigError, RequestID: "cu-5", TimestampMS: 5, Error: "invalid regex", Field: Some("rules[3].pattern")},
		{Kind: ConfigError, RequestID: "cu-6", TimestampMS: 6, Error: "bad config"},
	}
	cur := &ConfigUpdateResponse{RequestID: "cu-1", Accepted: false, Error: Some("nope"), TimestampMS: 9}
	curOK := &ConfigUpdateResponse{RequestID: "cu-2", Accepted: true}

	s := []mpSample{
		{"request_headers", "0x10", mpNoErr(func(b []byte) []byte { return AppendRequestHeadersMsgpack(b, rh) }),
			func(testing.TB) any { return mpSerdeRequestHeaders(rh) }},
		{"request_body_chunk", "0x11", mpNoErr(func(b []byte) []byte { return AppendRequestBodyChunkMsgpack(b, chunk) }),
			func(testing.TB) any { return mpSerdeBodyChunk(chunk, "bytes_received") }},
		{"request_body_chunk_raw", "0x11", mpNoErr(func(b []byte) []byte { return AppendRequestBodyChunkMsgpackRaw(b, chunk) }),
			func(testing.TB) any { return mpSerdeBodyChunk(chunk, "bytes_received") }},
		{"request_body_chunk_empty", "0x11", mpNoErr(func(b []byte) []byte { return AppendRequestBodyChunkMsgpack(b, emptyChunk) }),
			func(testing.TB) any { return mpSerdeBodyChunk(emptyChunk, "bytes_received") }},
		{"response_body_chunk", "0x13", mpNoErr(func(b []byte) []byte { return AppendResponseBodyChunkMsgpack(b, chunk) }),
			func(testing.TB) any { return mpSerdeBodyChunk(chunk, "bytes_sent") }},
		{"response_body_chunk_raw", "0x13", mpNoErr(func(b []byte) []byte { return AppendResponseBodyChunkMsgpackRaw(b, emptyChunk) }),
			func(testing.TB) any { return mpSerdeBodyChunk(emptyChunk, "bytes_sent") }},
		{"response_headers", "0x12", mpNoErr(func(b []byte) []byte { return AppendResponseHeadersMsgpack(b, resp) }),
			func(testing.TB) any { return mpSerdeResponseHeaders(resp) }},
		{"request_complete", "0x14", mpNoErr(func(b []byte) []byte { return AppendRequestCompleteMsgpack(b, done) }),
			func(testing.TB) any { return mpSerdeRequestComplete(done) }},
		{"websocket_frame", "0x15", mpNoErr(func(b []byte) []byte { return AppendWebSocketFrameMsgpack(b, ws) }),
			func(testing.TB) any { return mpSerdeWebSocketFrame(ws) }},
		{"websocket_frame_raw", "0x15", mpNoErr(func(b []byte) []byte { return AppendWebSocketFrameMsgpackRaw(b, ws) }),
			func(testing.TB) any { return mpSerdeWebSocketFrame(ws) }},
		{"guardrail_inspect", "0x16", mpNoErr(func(b []byte) []byte { return AppendGuardrailInspectMsgpack(b, gr) }),
			func(testing.TB) any { return mpSerdeGuardrail(gr) }},
		{"guardrail_inspect_min", "0x16", mpNoErr(func(b []byte) []byte { return AppendGuardrailInspectMsgpack(b, grMin) }),
			func(testing.TB) any { return mpSerdeGuardrail(grMin) }},
		{"configure", "0x17", func(b []byte) ([]byte, error) { return AppendConfigureMsgpack(b, cfg) },
			func(t testing.TB) any { return mpSerdeConfigure(t, cfg) }},
		{"configure_nil", "0x17", func(b []byte) ([]byte, error) { return AppendConfigureMsgpack(b, cfgNil) },
			func(t testing.TB) any { return mpSerdeConfigure(t, cfgNil) }},
		{"agent_response_allow", "0x20", func(b []byte) ([]byte, error) { return AppendAgentResponseMsgpack(b, allow) },
			func(t testing.TB) any { return mpSerdeAgentResponse(t, allow) }},
		{"agent_response_full", "0x20", func(b []byte) ([]byte, error) { return AppendAgentResponseMsgpack(b, full) },
			func(t testing.TB) any { return mpSerdeAgentResponse(t, full) }},
		{"agent_response_full_raw", "0x20", func(b []byte) ([]byte, error) { return AppendAgentResponseMsgpackRaw(b, full) },
			func(t testing.TB) any { return mpSerdeAgentResponse(t, full) }},
		{"agent_response_redirect", "0x20", func(b []byte) ([]byte, error) { return AppendAgentResponseMsgpack(b, redirect) },
			func(t testing.TB) any { return mpSerdeAgentResponse(t, redirect) }},
		{"agent_response_challenge", "0x20", func(b []byte) ([]byte, error) { return AppendAgentResponseMsgpackRaw(b, challenge) },
			func(t testing.TB) any { return mpSerdeAgentResponse(t, challenge) }},
		{"agent_response_block_bare", "0x20", func(b []byte) ([]byte, error) { return AppendAgentResponseMsgpack(b, blockBare) },
			func(t testing.TB) any { return mpSerdeAgentResponse(t, blockBare) }},
		{"health", "0x30", mpNoErr(func(b []byte) []byte { return AppendHealthStatusMsgpack(b, health) }),
			func(testing.TB) any { return mpSerdeHealthFull(health) }},
		{"health_min", "0x30", mpNoErr(func(b []byte) []byte { return AppendHealthStatusMsgpack(b, healthMin) }),
			func(testing.TB) any { return mpSerdeHealthFull(healthMin) }},
		{"flow", "0x33", mpNoErr(func(b []byte) []byte { return AppendFlowControlSignalMsgpack(b, flow) }),
			func(testing.TB) any { return mpSerdeFlowFull(flow) }},
		{"flow_min", "0x33", mpNoErr(func(b []byte) []byte { return AppendFlowControlSignalMsgpack(b, flowMin) }),
			func(testing.TB) any { return mpSerdeFlowFull(flowMin) }},
		{"metrics", "0x31", mpNoErr(func(b []byte) []byte { return AppendMetricsReportMsgpack(b, metrics) }),
			func(testing.TB) any { return mpSerdeMetrics(metrics) }},
		{"metrics_empty", "0x31", mpNoErr(func(b []byte) []byte { return AppendMetricsReportMsgpack(b, metricsEmpty) }),
			func(testing.TB) any { return mpSerdeMetrics(metricsEmpty) }},
		{"config_update_response", "cur", mpNoErr(func(b []byte) []byte { return AppendConfigUpdateResponseMsgpack(b, cur) }),
			func(testing.TB) any { return mpSerdeConfigUpdateResponse(cur) }},
		{"config_update_response_ok", "cur", mpNoErr(func(b []byte) []byte { return AppendConfigUpdateResponseMsgpack(b, curOK) }),
			func(testing.TB) any { return mpSerdeConfigUpdateResponse(curOK) }},
	}
	for _, u := range updates {
		s = append(s, mpSample{"config_update_" + mpUpdateKinds[u.Kind], "0x32",
			func(b []byte) ([]byte, error) { return AppendConfigUpdateRequestMsgpack(b, u) },
			func(t testing.TB) any { return mpSerdeConfigUpdate(t, u) }})
	}
	return s
}

// TestMsgpackRoundTrip encodes every sample, checks the bytes are a shape a
// Rust peer accepts (maps everywhere, no repeated key, arrays only for
// list fields), decodes them and compares with the original.
func TestMsgpackRoundTrip(t *testing.T) {
	for _, s := range mpSamples() {
		t.Run(s.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b, err := s.encode(append([]byte(nil), prefix...))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatal("encoder clobbered the buffer prefix")
			}
			b = b[len(prefix):]
			tree := mpMustTree(t, b)
			if _, ok := tree.(map[string]any); !ok {
				t.Fatalf("top level is %T, want a map", tree)
			}
			mpCheckShape(t, tree, "", false)
			d := mpNewDecoder(s.typ)
			if err := d.decode(b); err != nil {
				t.Fatalf("decode: %v", err)
			}
			mpSameValue(t, "round trip", d.serde(t), s.want(t))
			// Encoding again into a used buffer gives identical bytes for
			// values without Go maps (deterministic output).
			b2, err := s.encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(b2) != len(b) {
				t.Fatalf("re-encode length %d, want %d", len(b2), len(b))
			}
		})
	}
}

// TestMsgpackEventEnvelope checks the event envelope: a map whose first key
// is correlation_id, never repeated.
func TestMsgpackEventEnvelope(t *testing.T) {
	for _, s := range mpSamples() {
		if s.typ < "0x10" || s.typ > "0x17" {
			continue
		}
		b, err := s.encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		n, o, err := msgp.ReadMapHeaderBytes(b)
		if err != nil || n == 0 {
			t.Fatalf("%s: not a map", s.name)
		}
		k, _, err := msgp.ReadStringBytes(o)
		if err != nil || k != "correlation_id" {
			t.Fatalf("%s: first key %q, want correlation_id", s.name, k)
		}
	}
	// Request headers: top-level id = metadata id, keys in the Rust order.
	b := AppendRequestHeadersMsgpack(nil, mpSampleRequestHeaders())
	_, o, _ := msgp.ReadMapHeaderBytes(b)
	var keys []string
	for i := 0; i < 5; i++ {
		var k string
		k, o, _ = msgp.ReadStringBytes(o)
		keys = append(keys, k)
		o, _ = msgp.Skip(o)
	}
	if strings.Join(keys, ",") != "correlation_id,metadata,method,uri,headers" {
		t.Fatalf("keys %v", keys)
	}
	tree := mpMustTree(t, b).(map[string]any)
	if tree["correlation_id"] != "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7" {
		t.Fatalf("envelope id %v", tree["correlation_id"])
	}
	if _, ok := tree["metadata"].(map[string]any); !ok {
		t.Fatal("metadata must be a map")
	}
}

// mpAcceptanceTree returns the tree of acceptance case i.
func mpAcceptanceTree(t *testing.T, cases []mpAcceptance, i int, notes string) any {
	t.Helper()
	if !cases[i].RustAccepts || !strings.HasPrefix(cases[i].Notes, notes) {
		t.Fatalf("acceptance case %d is not %q", i, notes)
	}
	return mpMustTree(t, mpUnhex(t, cases[i].InputHex))
}

// TestMsgpackEmitsRustAcceptedShapes encodes the values of the
// msgpack_acceptance.json cases that show the recommended map shapes and
// checks our bytes are the same tree (key order and integer widths aside):
// case 0 request headers, 3 body chunk, 7 guardrail, 8 configure, 9 allow,
// 10 block with map payload, 16 header op map payload, 18 WebSocket close,
// 22 metrics, 23 health, 24 flow control, 25 config update.
func TestMsgpackEmitsRustAcceptedShapes(t *testing.T) {
	cases := mpLoadAcceptance(t)
	same := func(name string, ours []byte, want any) {
		t.Helper()
		got := mpMustTree(t, ours)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got  %#v\n want %#v", name, got, want)
		}
	}
	ts, _ := time.Parse(time.RFC3339, "2026-06-12T09:27:43Z")

	want0 := mpAcceptanceTree(t, cases, 0, "Recommended Go-proxy shape").(map[string]any)
	want0["metadata"].(map[string]any)["timestamp"] = "2026-06-12T09:27:43+00:00" // any string is accepted
	same("case 0", AppendRequestHeadersMsgpack(nil, &RequestHeadersEvent{
		Metadata: RequestMetadata{CorrelationID: "c-1", RequestID: "r-1", ClientIP: "10.0.0.1", ClientPort: 40000,
			Protocol: "HTTP/1.1", RouteID: Some("api"), Timestamp: ts},
		Method: "GET", URI: "/", Headers: Headers{{Name: "host", Values: []string{"example.com"}}},
	}), want0)

	same("case 3", AppendRequestBodyChunkMsgpack(nil, &BodyChunk{CorrelationID: "c-1", Data: []byte("hi"),
		IsLast: true, BytesTransferred: 2}), mpAcceptanceTree(t, cases, 3, "Map with correlation_id once"))

	same("case 7", AppendGuardrailInspectMsgpack(nil, &GuardrailInspectEvent{CorrelationID: "c-1",
		InspectionType: InspectionPIIDetection, Content: "x"}), mpAcceptanceTree(t, cases, 7, "Map with only required keys"))

	b, err := AppendConfigureMsgpack(nil, &ConfigureEvent{CorrelationID: "cfg-1", Config: json.RawMessage(`{"a":1}`),
		ConfigVersion: Some("v1")})
	if err != nil {
		t.Fatal(err)
	}
	same("case 8", b, mpAcceptanceTree(t, cases, 8, "Configure as a map"))

	resp := func(r AgentResponse) []byte {
		b, err := AppendAgentResponseMsgpack(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	same("case 9", resp(AgentResponse{CorrelationID: "c-1"}), mpAcceptanceTree(t, cases, 9, "Recommended Go-agent shape"))
	same("case 10", resp(AgentResponse{CorrelationID: "c-1", Decision: Decision{Kind: DecisionBlock, Status: 403, Body: Some("no")}}),
		mpAcceptanceTree(t, cases, 10, "Struct variant with a MAP payload"))
	got16 := mpMustTree(t, resp(AgentResponse{CorrelationID: "c-1", RequestHeaders: []HeaderOp{{Kind: HeaderSet, Name: "x", Value: "1"}}}))
	want16 := mpAcceptanceTree(t, cases, 16, "HeaderOp payload as map or as array").(map[string]any)
	if !reflect.DeepEqual(got16.(map[string]any)["request_headers"].([]any)[0], want16["request_headers"].([]any)[0]) {
		t.Errorf("case 16: set op %#v", got16)
	}
	same("case 18", resp(AgentResponse{CorrelationID: "c-1", WebSocketDecision: Some(WebSocketDecision{Kind: WebSocketClose, Code: 1000, Reason: "bye"})}),
		mpAcceptanceTree(t, cases, 18, "WebSocketDecision close as map payload"))

	same("case 22", AppendMetricsReportMsgpack(nil, &MetricsReport{AgentID: "a", TimestampMS: 1, IntervalMS: 1000,
		Counters: []CounterMetric{{Name: "c", Value: 1}},
		Histograms: []HistogramMetric{{Name: "h", Sum: 0.5, Count: 1,
			Buckets: []HistogramBucket{{Le: 0.5, Count: 1}, {Le: math.Inf(1), Count: 1}}}},
	}), mpAcceptanceTree(t, cases, 22, "Map form with help omitted"))

	// Health and flow control: a bare state / action is exactly the Rust
	// proxy's {state} / {action}; the other fields are extra keys, which
	// serde ignores (unknown keys are skipped, SPEC 2).
	same("case 23", AppendHealthStatusMsgpack(nil, &HealthStatus{State: HealthHealthy}),
		mpAcceptanceTree(t, cases, 23, "Map {state}"))
	same("case 24", AppendFlowControlSignalMsgpack(nil, &FlowControlSignal{Action: FlowPause}),
		mpAcceptanceTree(t, cases, 24, "Map {action}"))
	h := mpMustTree(t, AppendHealthStatusMsgpack(nil, &HealthStatus{AgentID: "a", State: HealthHealthy, TimestampMS: 5})).(map[string]any)
	if h["state"] != mpTInt("1") || len(h) != 3 {
		t.Errorf("health with extras: %#v", h)
	}

	b, err = AppendConfigUpdateRequestMsgpack(nil, &ConfigUpdateRequest{Kind: ConfigListUpdate, RequestID: "r",
		TimestampMS: 1, ListID: "l", Add: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	same("case 25", b, mpAcceptanceTree(t, cases, 25, "Internally tagged enum as a map"))
}

// TestMsgpackEncoderDetails covers encoder rules not visible in round trips.
func TestMsgpackEncoderDetails(t *testing.T) {
	t.Run("version_default", func(t *testing.T) {
		b, _ := AppendAgentResponseMsgpack(nil, &AgentResponse{})
		var r AgentResponse
		if err := DecodeAgentResponseMsgpack(b, &r); err != nil || r.Version != ProtocolVersion {
			t.Fatalf("version %d err %v", r.Version, err)
		}
	})
	t.Run("custom_correlation_id_replaced", func(t *testing.T) {
		b, err := AppendAgentResponseMsgpack(nil, &AgentResponse{CorrelationID: "real",
			Audit: AuditMetadata{Custom: map[string]json.RawMessage{"correlation_id": json.RawMessage(`"stale"`), "k": nil}}})
		if err != nil {
			t.Fatal(err)
		}
		custom := mpMustTree(t, b).(map[string]any)["audit"].(map[string]any)["custom"].(map[string]any)
		if !reflect.DeepEqual(custom, map[string]any{"correlation_id": "real", "k": nil}) {
			t.Fatalf("custom %#v", custom)
		}
	})
	t.Run("invalid_json_fails_cleanly", func(t *testing.T) {
		prefix := []byte("keep")
		for _, raw := range []string{`{`, `{"a":}`, `[1,]`, `tru`, `"\x"`, `01`, `1.`, `{"a":1}x`, `"` + "\xff" + `"`, `{1:2}`} {
			b, err := AppendConfigureMsgpack(append([]byte(nil), prefix...), &ConfigureEvent{Config: json.RawMessage(raw)})
			if err == nil || string(b) != "keep" {
				t.Errorf("%q: err %v, buffer %q", raw, err, b)
			}
			b, err = AppendAgentResponseMsgpack(append([]byte(nil), prefix...), &AgentResponse{
				Audit: AuditMetadata{Custom: map[string]json.RawMessage{"x": json.RawMessage(raw)}}})
			if err == nil || string(b) != "keep" {
				t.Errorf("custom %q: err %v, buffer %q", raw, err, b)
			}
		}
	})
	t.Run("unknown_kinds_fail", func(t *testing.T) {
		for _, r := range []AgentResponse{
			{Decision: Decision{Kind: 9}},
			{RequestHeaders: []HeaderOp{{Kind: 7}}},
			{RequestBodyMutation: Some(BodyMutation{Action: 5})},
			{WebSocketDecision: Some(WebSocketDecision{Kind: 4})},
		} {
			if b, err := AppendAgentResponseMsgpack([]byte("x"), &r); err == nil || string(b) != "x" {
				t.Errorf("%+v: err %v", r, err)
			}
		}
		if _, err := AppendConfigUpdateRequestMsgpack(nil, &ConfigUpdateRequest{Kind: 9}); err == nil {
			t.Error("config update kind 9 encoded")
		}
	})
	t.Run("invalid_utf8_replaced", func(t *testing.T) {
		b := AppendRequestCompleteMsgpack(nil, &RequestCompleteEvent{CorrelationID: "a\xffb\xc0", Error: Some("\xed\xa0\x80")})
		var e RequestCompleteEvent
		if err := DecodeRequestCompleteMsgpack(b, &e); err != nil {
			t.Fatal(err)
		}
		if e.CorrelationID != "a\uFFFDb\uFFFD" || e.Error.Value != "\uFFFD\uFFFD\uFFFD" {
			t.Fatalf("%q %q", e.CorrelationID, e.Error.Value)
		}
	})
	t.Run("headers_sorted_and_merged", func(t *testing.T) {
		h := Headers{{Name: "b", Values: []string{"1"}}, {Name: "a", Values: []string{"x"}}, {Name: "b", Values: []string{"2", "3"}}}
		b := AppendResponseHeadersMsgpack(nil, &ResponseHeadersEvent{Headers: h})
		tree := mpMustTree(t, b).(map[string]any)["headers"]
		if !reflect.DeepEqual(tree, map[string]any{"a": []any{"x"}, "b": []any{"1", "2", "3"}}) {
			t.Fatalf("headers %#v", tree)
		}
		// Byte order: names ascending.
		if i, j := bytes.Index(b, []byte("\xa1a\x91")), bytes.Index(b, []byte("\xa1b\x93")); i < 0 || j < i {
			t.Fatalf("names not sorted: %x", b)
		}
		// Many names (index sort off the stack).
		var big Headers
		for i := 99; i >= 0; i-- {
			big = append(big, Header{Name: string(rune('A'+i%26)) + strings.Repeat("x", i), Values: []string{"v"}})
		}
		var e ResponseHeadersEvent
		if err := DecodeResponseHeadersMsgpack(AppendResponseHeadersMsgpack(nil, &ResponseHeadersEvent{Headers: big}), &e); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(e.Headers); i++ {
			if e.Headers[i-1].Name >= e.Headers[i].Name {
				t.Fatalf("not ascending at %d", i)
			}
		}
		if len(e.Headers) != 100 {
			t.Fatalf("%d headers", len(e.Headers))
		}
	})
	t.Run("timestamp_format", func(t *testing.T) {
		for ns, want := range map[int]string{
			0: "2026-06-12T09:27:43+00:00", 123000000: "2026-06-12T09:27:43.123+00:00",
			123456000: "2026-06-12T09:27:43.123456+00:00", 123456789: "2026-06-12T09:27:43.123456789+00:00",
			100: "2026-06-12T09:27:43.000000100+00:00",
		} {
			loc := time.FixedZone("x", -7*3600)
			ts := time.Date(2026, 6, 12, 2, 27, 43, ns, loc)
			if got := string(mpFormatTimestamp(nil, ts)); got != want {
				t.Errorf("ns %d: %s, want %s", ns, got, want)
			}
			if back := mpParseTimestamp([]byte(want)); !back.Equal(ts) {
				t.Errorf("parse %s: %v", want, back)
			}
		}
	})
	t.Run("histogram_bounds", func(t *testing.T) {
		m := &MetricsReport{Histograms: []HistogramMetric{{Name: "h", Buckets: []HistogramBucket{
			{Le: math.Inf(1)}, {Le: math.Inf(-1)}, {Le: math.NaN()}, {Le: -0.5}}}}}
		var back MetricsReport
		if err := DecodeMetricsReportMsgpack(AppendMetricsReportMsgpack(nil, m), &back); err != nil {
			t.Fatal(err)
		}
		bk := back.Histograms[0].Buckets
		if !math.IsInf(bk[0].Le, 1) || !math.IsInf(bk[1].Le, -1) || !math.IsNaN(bk[2].Le) || bk[3].Le != -0.5 {
			t.Fatalf("%v", bk)
		}
	})
}

// mpBuild assembles MessagePack test input from parts: strings are str
// values, []byte are appended verbatim (use for headers and raw values).
func mpBuild(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			b = msgp.AppendString(b, v)
		case []byte:
			b = append(b, v...)
		case int:
			b = msgp.AppendInt64(b, int64(v))
		case bool:
			b = msgp.AppendBool(b, v)
		case nil:
			b = msgp.AppendNil(b)
		default:
			panic("mpBuild: unsupported part")
		}
	}
	return b
}

func mpMap(n int) []byte    { return msgp.AppendMapHeader(nil, uint32(n)) }
func mpArr(n int) []byte    { return msgp.AppendArrayHeader(nil, uint32(n)) }
func mpBin(s string) []byte { return msgp.AppendBytes(nil, []byte(s)) }

// TestMsgpackDecoderLeniency covers the lenient forms rmp_serde accepts
// (and so must we) and the documented extras.
func TestMsgpackDecoderLeniency(t *testing.T) {
	var c BodyChunk
	ok := func(name string, data []byte, check func() bool) {
		t.Helper()
		if err := DecodeRequestBodyChunkMsgpack(data, &c); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if !check() {
			t.Errorf("%s: got %+v", name, c)
		}
	}
	ok("positional 4 (defaults trail)", mpBuild(mpArr(4), "id", "aGk=", true, nil), func() bool {
		return c.CorrelationID == "id" && string(c.Data) == "hi" && c.IsLast && !c.TotalSize.Valid && c.ChunkIndex == 0
	})
	ok("integer field keys", mpBuild(mpMap(3), []byte{0x00}, "id", []byte{0x01}, "aGk=", []byte{0x02}, false), func() bool {
		return c.CorrelationID == "id" && string(c.Data) == "hi"
	})
	ok("integer key beyond fields ignored", mpBuild(mpMap(4), "correlation_id", "id", "data", "", "is_last", true, []byte{0x09}, 5), func() bool {
		return c.CorrelationID == "id"
	})
	ok("bin keys and bin string", mpBuild(mpMap(3), mpBin("correlation_id"), mpBin("id"), "data", "", mpBin("is_last"), true), func() bool {
		return c.CorrelationID == "id"
	})
	ok("wide ints", mpBuild(mpMap(5), "correlation_id", "x", "data", "", "is_last", true,
		"chunk_index", []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 7}, "total_size", []byte{0xd3, 0, 0, 0, 0, 0, 0, 0, 9}), func() bool {
		return c.ChunkIndex == 7 && c.TotalSize == Some[uint64](9)
	})
	ok("unknown keys of any type skipped", mpBuild(mpMap(4), "correlation_id", "x", "zzz", []byte{0xc7, 1, 5, 0}, "data", "", "is_last", true), func() bool {
		return c.CorrelationID == "x"
	})

	var r AgentResponse
	okR := func(name string, data []byte, check func() bool) {
		t.Helper()
		if err := DecodeAgentResponseMsgpack(data, &r); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if !check() {
			t.Errorf("%s: got %+v", name, r)
		}
	}
	okR("decision index 1 with array payload", mpBuild(mpArr(2), 2, mpMap(1), []byte{0x01}, mpArr(3), 403, nil, nil), func() bool {
		return r.Decision.Kind == DecisionBlock && r.Decision.Status == 403
	})
	okR("unit variant {allow: nil}", mpBuild(mpArr(2), 2, mpMap(1), "allow", nil), func() bool {
		return r.Decision.Kind == DecisionAllow
	})
	okR("websocket index 1", mpBuild(mpMap(3), "version", 2, "decision", "allow", "websocket_decision", 1), func() bool {
		return r.WebSocketDecision == Some(WebSocketDecision{Kind: WebSocketDrop})
	})
	okR("confidence int", mpBuild(mpMap(3), "version", 2, "decision", "allow", "audit", mpMap(1), "confidence", 1), func() bool {
		return r.Audit.Confidence == Some[float32](1)
	})
	okR("mutation bin and empty bin", mpBuild(mpMap(4), "version", 2, "decision", "allow",
		"request_body_mutation", mpMap(1), "data", mpBin("\x00raw"), "response_body_mutation", mpArr(2), mpBin(""), 4), func() bool {
		return r.RequestBodyMutation.Value.Action == MutationReplace && string(r.RequestBodyMutation.Value.Data) == "\x00raw" &&
			r.ResponseBodyMutation.Value.Action == MutationDrop && r.ResponseBodyMutation.Value.ChunkIndex == 4
	})
	okR("custom id not a string routes as empty", mpBuild(mpMap(3), "version", 2, "decision", "allow",
		"audit", mpMap(1), "custom", mpMap(2), "correlation_id", 5, "n", []byte{0xca, 0x3f, 0x80, 0, 0}), func() bool {
		return r.CorrelationID == "" && string(r.Audit.Custom["n"]) == "1.0" && len(r.Audit.Custom) == 1
	})
	okR("internal tag map order", mpBuild(mpMap(2), "version", 2, "decision", "allow"), func() bool { return true })

	var u ConfigUpdateRequest
	if err := DecodeConfigUpdateRequestMsgpack(mpBuild(mpMap(3), "request_id", "r", "timestamp_ms", 1,
		"update_type", mpMap(3), "reason", "x", "grace_period_ms", 5, "type", "restart_required"), &u); err != nil ||
		u.Kind != ConfigRestartRequired || u.Reason != "x" || u.GracePeriodMS != 5 {
		t.Errorf("tag last: %v %+v", err, u)
	}
	if err := DecodeConfigUpdateRequestMsgpack(mpBuild(mpArr(3), mpArr(1), 0, "r", 1), &u); err != nil || u.Kind != ConfigRequestReload {
		t.Errorf("tag as index: %v %+v", err, u)
	}

	var h HealthStatus
	if err := DecodeHealthStatusMsgpack(mpBuild(mpMap(1), "state", nil), &h); err != nil || h.State != HealthUnspecified {
		t.Errorf("state nil: %v", err)
	}
	if err := DecodeHealthStatusMsgpack(mpBuild(mpMap(1), "other", 1), &h); err != nil {
		t.Errorf("no state: %v", err)
	}
	var m MetricsReport
	if err := DecodeMetricsReportMsgpack(mpBuild(mpArr(6), "a", 1, 2, mpArr(1), mpArr(3), "c", mpMap(0), 5,
		mpArr(1), mpArr(4), "g", nil, mpMap(0), 2, mpArr(1), mpArr(5), "h", mpMap(1), "k", "v", 1, 2, mpArr(1), mpArr(2), "Infinity", 3), &m); err != nil {
		t.Fatalf("positional metrics: %v", err)
	}
	if m.Counters[0].Value != 5 || m.Gauges[0].Value != 2 || m.Histograms[0].Labels["k"] != "v" || !math.IsInf(m.Histograms[0].Buckets[0].Le, 1) {
		t.Errorf("positional metrics: %+v", m)
	}
}

// TestMsgpackDecoderRejects covers what must be rejected.
func TestMsgpackDecoderRejects(t *testing.T) {
	chunk := func(parts ...any) error { var c BodyChunk; return DecodeRequestBodyChunkMsgpack(mpBuild(parts...), &c) }
	resp := func(parts ...any) error {
		var r AgentResponse
		return DecodeAgentResponseMsgpack(mpBuild(parts...), &r)
	}
	meta := func(n int, parts ...any) error {
		var e RequestHeadersEvent
		all := append([]any{mpMap(4), "metadata", mpArr(n)}, parts...)
		all = append(all, "method", "GET", "uri", "/", "headers", mpMap(0))
		return DecodeRequestHeadersMsgpack(mpBuild(all...), &e)
	}
	base := []any{"c", "r", "ip", 1, nil, "HTTP/1.1", nil, nil, nil, nil, "2026-06-12T09:27:43Z"}
	cases := map[string]error{
		"empty input":                chunk(),
		"trailing bytes":             chunk(mpMap(3), "correlation_id", "x", "data", "", "is_last", true, nil),
		"missing required":           chunk(mpMap(2), "correlation_id", "x", "data", ""),
		"nil for non-option":         chunk(mpMap(3), "correlation_id", nil, "data", "", "is_last", true),
		"nil data":                   chunk(mpMap(3), "correlation_id", "x", "data", nil, "is_last", true),
		"float for int":              chunk(mpMap(4), "correlation_id", "x", "data", "", "is_last", true, "chunk_index", []byte{0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0}),
		"negative for unsigned":      chunk(mpMap(4), "correlation_id", "x", "data", "", "is_last", true, "chunk_index", -1),
		"u32 overflow":               chunk(mpMap(4), "correlation_id", "x", "data", "", "is_last", true, "chunk_index", []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}),
		"int for bool":               chunk(mpMap(3), "correlation_id", "x", "data", "", "is_last", 1),
		"duplicate non-id field":     chunk(mpMap(4), "correlation_id", "x", "data", "", "data", "", "is_last", true),
		"array too long":             chunk(mpArr(7), "x", "", true, nil, 0, 0, 0),
		"array too short":            chunk(mpArr(3), "x", "", true),
		"invalid utf8 str":           chunk(mpMap(3), "correlation_id", []byte{0xa2, 0xff, 0xfe}, "data", "", "is_last", true),
		"invalid utf8 bin":           chunk(mpMap(3), "correlation_id", mpBin("\xff"), "data", "", "is_last", true),
		"base64 no padding":          chunk(mpMap(3), "correlation_id", "x", "data", "aGk", "is_last", true),
		"base64 url alphabet":        chunk(mpMap(3), "correlation_id", "x", "data", "-_8=", "is_last", true),
		"base64 newline":             chunk(mpMap(3), "correlation_id", "x", "data", "aGVs\nbG8=", "is_last", true),
		"base64 trailing bits":       chunk(mpMap(3), "correlation_id", "x", "data", "aGVsbG9=", "is_last", true),
		"base64 extra padding":       chunk(mpMap(3), "correlation_id", "x", "data", "aGVsbG8==", "is_last", true),
		"not a struct":               chunk("x"),
		"huge map header":            chunk([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}),
		"huge array header":          chunk([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}),
		"truncated str":              chunk(mpMap(1), []byte{0xa5, 'a'}),
		"metadata 10 elements":       meta(10, base[:10]...),
		"metadata 13 elements":       meta(13, append(append([]any{}, base...), "tp", "x")...),
		"unknown variant":            resp(mpMap(2), "version", 2, "decision", "permit"),
		"variant index out of range": resp(mpMap(2), "version", 2, "decision", 4),
		"unit variant with payload":  resp(mpMap(2), "version", 2, "decision", mpMap(1), "allow", mpMap(0)),
		"struct variant bare":        resp(mpMap(2), "version", 2, "decision", "block"),
		"two-entry enum map":         resp(mpMap(2), "version", 2, "decision", mpMap(2), "allow", nil, "block", nil),
		"missing version":            resp(mpMap(1), "decision", "allow"),
		"status over u16":            resp(mpMap(2), "version", 2, "decision", mpMap(1), "block", mpArr(3), 70000, nil, nil),
		"nil audit":                  resp(mpMap(3), "version", 2, "decision", "allow", "audit", nil),
		"nil needs_more":             resp(mpMap(3), "version", 2, "decision", "allow", "needs_more", nil),
		"custom bin value":           resp(mpMap(3), "version", 2, "decision", "allow", "audit", mpMap(1), "custom", mpMap(1), "k", mpBin("x")),
		"custom int key":             resp(mpMap(3), "version", 2, "decision", "allow", "audit", mpMap(1), "custom", mpMap(1), "k", mpMap(1), 1, 2),
		"custom ext value":           resp(mpMap(3), "version", 2, "decision", "allow", "audit", mpMap(1), "custom", mpMap(1), "k", []byte{0xd4, 1, 1}),
		"remove op too long":         resp(mpMap(3), "version", 2, "decision", "allow", "request_headers", mpArr(1), mpMap(1), "remove", mpArr(2), "a", "b"),
		"header op unit":             resp(mpMap(3), "version", 2, "decision", "allow", "request_headers", mpArr(1), "set"),
		"mutation data int":          resp(mpMap(3), "version", 2, "decision", "allow", "request_body_mutation", mpMap(1), "data", 1),
		"mutation array empty":       resp(mpMap(3), "version", 2, "decision", "allow", "request_body_mutation", mpArr(0)),
		"confidence string":          resp(mpMap(3), "version", 2, "decision", "allow", "audit", mpMap(1), "confidence", "0.5"),
	}
	var u ConfigUpdateRequest
	cases["update no tag"] = DecodeConfigUpdateRequestMsgpack(mpBuild(mpMap(3), "update_type", mpMap(1), "reason", "x", "request_id", "r", "timestamp_ms", 1), &u)
	cases["update two tags"] = DecodeConfigUpdateRequestMsgpack(mpBuild(mpMap(3), "update_type", mpMap(2), "type", "request_reload", "type", "request_reload", "request_id", "r", "timestamp_ms", 1), &u)
	cases["update unknown tag"] = DecodeConfigUpdateRequestMsgpack(mpBuild(mpMap(3), "update_type", mpMap(1), "type", "reboot", "request_id", "r", "timestamp_ms", 1), &u)
	cases["update field missing"] = DecodeConfigUpdateRequestMsgpack(mpBuild(mpArr(3), mpArr(2), "config_error", "e", "r", 1), &u)
	cases["rule definition missing"] = DecodeConfigUpdateRequestMsgpack(mpBuild(mpArr(3), mpArr(4), "rule_update", "s", mpArr(1), mpMap(2), "id", "x", "priority", 1, mpArr(0), "r", 1), &u)
	var h HealthStatus
	cases["health empty array"] = DecodeHealthStatusMsgpack(mpBuild(mpArr(0)), &h)
	cases["health state float"] = DecodeHealthStatusMsgpack(mpBuild(mpMap(1), "state", []byte{0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}), &h)
	cases["health state over i32"] = DecodeHealthStatusMsgpack(mpBuild(mpMap(1), "state", []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}), &h)
	var f FlowControlSignal
	cases["flow two elements"] = DecodeFlowControlSignalMsgpack(mpBuild(mpArr(2), 1, 2), &f)
	var m MetricsReport
	cases["bucket le abc"] = DecodeMetricsReportMsgpack(mpBuild(mpMap(4), "agent_id", "a", "timestamp_ms", 1, "interval_ms", 1,
		"histograms", mpArr(1), mpMap(4), "name", "h", "sum", 1, "count", 1, "buckets", mpArr(1), mpMap(2), "le", "abc", "count", 1), &m)
	cases["bucket le hex"] = DecodeMetricsReportMsgpack(mpBuild(mpMap(4), "agent_id", "a", "timestamp_ms", 1, "interval_ms", 1,
		"histograms", mpArr(1), mpMap(4), "name", "h", "sum", 1, "count", 1, "buckets", mpArr(1), mpMap(2), "le", "0x1p-2", "count", 1), &m)
	cases["bucket le nil"] = DecodeMetricsReportMsgpack(mpBuild(mpMap(4), "agent_id", "a", "timestamp_ms", 1, "interval_ms", 1,
		"histograms", mpArr(1), mpMap(4), "name", "h", "sum", 1, "count", 1, "buckets", mpArr(1), mpMap(2), "le", nil, "count", 1), &m)
	cases["histogram without buckets"] = DecodeMetricsReportMsgpack(mpBuild(mpMap(4), "agent_id", "a", "timestamp_ms", 1, "interval_ms", 1,
		"histograms", mpArr(1), mpMap(3), "name", "h", "sum", 1, "count", 1), &m)
	cases["nil labels"] = DecodeMetricsReportMsgpack(mpBuild(mpMap(4), "agent_id", "a", "timestamp_ms", 1, "interval_ms", 1,
		"counters", mpArr(1), mpMap(3), "name", "c", "labels", nil, "value", 1), &m)
	var g GuardrailInspectEvent
	cases["unknown inspection type"] = DecodeGuardrailInspectMsgpack(mpBuild(mpMap(3), "correlation_id", "c", "inspection_type", "toxicity", "content", "x"), &g)
	var deep ConfigureEvent
	nest := bytes.Repeat([]byte{0x91}, mpMaxDepth+5)
	cases["json nesting too deep"] = DecodeConfigureMsgpack(mpBuild(mpMap(1), "config", nest, nil), &deep)

	for name, err := range cases {
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "agentwire: ") {
			t.Errorf("%s: error %q lacks the agentwire prefix", name, err)
		}
	}
	// Errors carry the field path and unwrap to the cause.
	err := chunk(mpMap(3), "correlation_id", "x", "data", "aGk", "is_last", true)
	if !errors.Is(err, errMpBase64) || !strings.Contains(err.Error(), "request_body_chunk.data") {
		t.Errorf("error %v", err)
	}
}

// TestMsgpackHeaderDecoding: duplicate names (last wins, first position),
// reuse, and the map index used for large header sets.
func TestMsgpackHeaderDecoding(t *testing.T) {
	for _, n := range []int{3, 40} {
		parts := []any{mpMap(3), "correlation_id", "c", "status", 200, "headers", mpMap(n + 1)}
		for i := 0; i < n; i++ {
			parts = append(parts, "h"+strings.Repeat("x", i), mpArr(1), "v")
		}
		parts = append(parts, "h", mpArr(2), "last", "wins")
		var e ResponseHeadersEvent
		e.Headers = Headers{{Name: "stale", Values: []string{"old", "old2"}}}
		if err := DecodeResponseHeadersMsgpack(mpBuild(parts...), &e); err != nil {
			t.Fatal(err)
		}
		if len(e.Headers) != n || e.Headers[0].Name != "h" || strings.Join(e.Headers[0].Values, ",") != "last,wins" {
			t.Fatalf("n=%d: %+v", n, e.Headers[:2])
		}
	}
}

// TestMsgpackReuseStillChecksUTF8: decoders keep a string equal to the one
// already in the destination, but must still reject invalid text, whether
// the slot held other text or the very same invalid bytes (put there by a
// caller, or left in spare slice capacity).
func TestMsgpackReuseStillChecksUTF8(t *testing.T) {
	const badText = "\xff\xfe"
	preset := map[string]func(e *ResponseHeadersEvent){
		"id": func(e *ResponseHeadersEvent) { e.CorrelationID = badText },
		"name": func(e *ResponseHeadersEvent) {
			h := Headers{{Name: badText, Values: []string{"v"}}}
			e.Headers = h[:0]
		},
		"single value": func(e *ResponseHeadersEvent) { e.Headers = Headers{{Name: "h", Values: []string{badText}}} },
		"second value": func(e *ResponseHeadersEvent) { e.Headers = Headers{{Name: "h", Values: []string{"v", badText}}} },
	}
	bad := []byte{0xa2, 0xff, 0xfe}
	event := func(name, value1, value2 any) []byte {
		vals := []any{mpArr(1), value1}
		if value2 != nil {
			vals = []any{mpArr(2), value1, value2}
		}
		parts := []any{mpMap(3), "correlation_id", "c", "status", 200, "headers", mpMap(1), name}
		return mpBuild(append(parts, vals...)...)
	}
	for name, in := range map[string][]byte{
		"name":         event(bad, "v", nil),
		"single value": event("h", bad, nil),
		"second value": event("h", "v", bad),
		"id":           mpBuild(mpMap(3), "correlation_id", bad, "status", 200, "headers", mpMap(0)),
	} {
		var e ResponseHeadersEvent
		if err := DecodeResponseHeadersMsgpack(event("h", "v", "w"), &e); err != nil {
			t.Fatal(err)
		}
		if err := DecodeResponseHeadersMsgpack(in, &e); !errors.Is(err, errMpUTF8) {
			t.Errorf("%s: invalid UTF-8 into a reused event: err %v", name, err)
		}
		var fresh ResponseHeadersEvent
		if err := DecodeResponseHeadersMsgpack(in, &fresh); !errors.Is(err, errMpUTF8) {
			t.Errorf("%s: invalid UTF-8 into a fresh event: err %v", name, err)
		}
		var same ResponseHeadersEvent
		preset[name](&same)
		if err := DecodeResponseHeadersMsgpack(in, &same); !errors.Is(err, errMpUTF8) {
			t.Errorf("%s: invalid UTF-8 into an event already holding the same bytes: err %v", name, err)
		}
	}
}

// TestMsgpackJSONValues checks the JSON text ↔ MessagePack conversion.
func TestMsgpackJSONValues(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{`null`, `null`},
		{` true `, `true`},
		{`0`, `0`},
		{`-1`, `-1`},
		{`18446744073709551615`, `18446744073709551615`},
		{`-9223372036854775808`, `-9223372036854775808`},
		{`18446744073709551616`, `18446744073709552000.0`},
		{`2.0`, `2.0`},
		{`-0.5e-3`, `-0.0005`},
		{`1e300`, `1e+300`},
		{`1E400`, `null`},
		{`"a\"\\\/\b\f\n\r\t\u0001\u00e9\ud83d\ude00\u2028"`, "\"a\\\"\\\\/\\b\\f\\n\\r\\t\\u0001é😀\u2028\""},
		{`"\ud800x"`, "\"\uFFFDx\""},
		{`[]`, `[]`},
		{`{}`, `{}`},
		{`{"b":[1,{"c":null}],"a":"x"}`, `{"b":[1,{"c":null}],"a":"x"}`},
	} {
		b, err := mpAppendJSON(nil, []byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		js, rest, err := mpReadJSON(nil, b, 0)
		if err != nil || len(rest) != 0 {
			t.Errorf("%s: back: %v", tc.in, err)
			continue
		}
		if string(js) != tc.out {
			t.Errorf("%s: got %s, want %s", tc.in, js, tc.out)
		}
	}
	// Headers that need more than one byte (16+ entries, 32+ bytes).
	var sb strings.Builder
	sb.WriteString("{")
	for i := 0; i < 70000; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`"k`)
		sb.WriteString(strings.Repeat("z", i%40))
		sb.WriteString(`":[`)
		sb.WriteString(`"` + strings.Repeat("s", i%300) + `"]`)
	}
	sb.WriteString("}")
	b, err := mpAppendJSON(nil, []byte(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	js, _, err := mpReadJSON(nil, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(js) != sb.String() {
		t.Fatal("large object did not round-trip")
	}
	if b[0] != 0xdf { // map32 for 70000 entries
		t.Fatalf("header %#x", b[0])
	}
}

// TestMsgpackBodyChunkView: the view decoder leaves bin data in the input
// (capacity capped, so appending cannot write into the input) and decodes
// base64 into the destination's own storage, with the same result as the
// copying decoder.
func TestMsgpackBodyChunkView(t *testing.T) {
	c := &BodyChunk{CorrelationID: "v", Data: []byte("some body bytes"), IsLast: true, ChunkIndex: 2, BytesTransferred: 9}
	for _, raw := range []bool{true, false} {
		var in []byte
		if raw {
			in = AppendRequestBodyChunkMsgpackRaw(nil, c)
		} else {
			in = AppendRequestBodyChunkMsgpack(nil, c)
		}
		own := make([]byte, 0, 64)
		v := BodyChunk{Data: own}
		viewed, err := DecodeRequestBodyChunkMsgpackView(in, &v)
		if err != nil {
			t.Fatal(err)
		}
		var want BodyChunk
		if err := DecodeRequestBodyChunkMsgpack(in, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(v, want) {
			t.Fatalf("raw %v: view decoder gave %+v, copying decoder %+v", raw, v, want)
		}
		if viewed != raw {
			t.Fatalf("raw %v: viewed %v", raw, viewed)
		}
		inside := false
		for i := range in {
			if len(v.Data) > 0 && &v.Data[0] == &in[i] {
				inside = true
			}
		}
		if raw && (!inside || cap(v.Data) != len(v.Data)) {
			t.Fatalf("bin data not a capped view of the input (inside %v, len %d cap %d)", inside, len(v.Data), cap(v.Data))
		}
		if !raw && (inside || &v.Data[0] != &own[:1][0]) {
			t.Fatal("base64 data not decoded into the destination's storage")
		}
	}
}
