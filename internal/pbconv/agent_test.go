package pbconv

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// goldenEvent is one proxy → agent event from testdata/golden/events.json,
// as a payload value built from its JSON form.
type goldenEvent struct {
	name string
	typ  string
	ev   any // *agentwire.RequestHeadersEvent, *agentwire.BodyChunk, …
}

func loadGoldenEvents(t testing.TB) []goldenEvent {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/golden/events.json")
	if err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		Name     string `json:"name"`
		TypeByte string `json:"type_byte"`
		JSON     string `json:"json_payload"`
	}
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	var out []goldenEvent
	for _, r := range recs {
		var m map[string]any
		if err := json.Unmarshal([]byte(r.JSON), &m); err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		g := goldenEvent{name: r.Name, typ: r.TypeByte}
		switch r.TypeByte {
		case "0x10":
			g.ev = goldenRequestHeaders(t, m)
		case "0x11", "0x13":
			g.ev = goldenBody(t, m)
		case "0x12":
			g.ev = &agentwire.ResponseHeadersEvent{CorrelationID: str(m["correlation_id"]), Status: uint16(num(m["status"])), Headers: goldenHeaders(m["headers"])}
		case "0x14":
			e := &agentwire.RequestCompleteEvent{CorrelationID: str(m["correlation_id"]), Status: uint16(num(m["status"])), DurationMS: uint64(num(m["duration_ms"])),
				RequestBodySize: uint64(num(m["request_body_size"])), ResponseBodySize: uint64(num(m["response_body_size"])), UpstreamAttempts: uint32(num(m["upstream_attempts"]))}
			if s, ok := m["error"].(string); ok {
				e.Error = agentwire.Some(s)
			}
			g.ev = e
		case "0x15":
			e := &agentwire.WebSocketFrameEvent{CorrelationID: str(m["correlation_id"]), Opcode: str(m["opcode"]), Data: b64(t, m["data"]),
				ClientToServer: m["client_to_server"] == true, FrameIndex: uint64(num(m["frame_index"])), Fin: m["fin"] == true, ClientIP: str(m["client_ip"])}
			if s, ok := m["route_id"].(string); ok {
				e.RouteID = agentwire.Some(s)
			}
			g.ev = e
		case "0x16":
			e := &agentwire.GuardrailInspectEvent{CorrelationID: str(m["correlation_id"]), InspectionType: str(m["inspection_type"]), Content: str(m["content"]),
				Categories: []string{}, Metadata: map[string]string{}}
			if s, ok := m["model"].(string); ok {
				e.Model = agentwire.Some(s)
			}
			if s, ok := m["route_id"].(string); ok {
				e.RouteID = agentwire.Some(s)
			}
			for _, c := range m["categories"].([]any) {
				e.Categories = append(e.Categories, c.(string))
			}
			for k, v := range m["metadata"].(map[string]any) {
				e.Metadata[k] = v.(string)
			}
			g.ev = e
		case "0x17":
			cfg, _ := json.Marshal(m["config"])
			e := &agentwire.ConfigureEvent{Config: cfg}
			if s, ok := m["config_version"].(string); ok {
				e.ConfigVersion = agentwire.Some(s)
			}
			g.ev = e
		default:
			continue
		}
		out = append(out, g)
	}
	if len(out) < 15 {
		t.Fatalf("only %d golden events", len(out))
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func b64(t testing.TB, v any) []byte {
	b, err := base64.StdEncoding.Strict().DecodeString(str(v))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenHeaders converts a JSON header object with names in byte order.
func goldenHeaders(v any) agentwire.Headers {
	m := v.(map[string]any)
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var h agentwire.Headers
	for _, n := range names {
		var vals []string
		for _, x := range m[n].([]any) {
			vals = append(vals, x.(string))
		}
		h = append(h, agentwire.Header{Name: n, Values: vals})
	}
	return h
}

func goldenRequestHeaders(t testing.TB, m map[string]any) *agentwire.RequestHeadersEvent {
	md := m["metadata"].(map[string]any)
	ts, err := time.Parse(time.RFC3339Nano, str(md["timestamp"]))
	if err != nil {
		t.Fatal(err)
	}
	e := &agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: str(md["correlation_id"]), RequestID: str(md["request_id"]), ClientIP: str(md["client_ip"]),
			ClientPort: uint16(num(md["client_port"])), Protocol: str(md["protocol"]), Timestamp: ts, Traceparent: str(md["traceparent"]),
		},
		Method: str(m["method"]), URI: str(m["uri"]), Headers: goldenHeaders(m["headers"]),
	}
	for key, dst := range map[string]*agentwire.Opt[string]{"server_name": &e.Metadata.ServerName, "tls_version": &e.Metadata.TLSVersion,
		"route_id": &e.Metadata.RouteID, "upstream_id": &e.Metadata.UpstreamID} {
		if s, ok := md[key].(string); ok {
			*dst = agentwire.Some(s)
		}
	}
	return e
}

func goldenBody(t testing.TB, m map[string]any) *agentwire.BodyChunk {
	e := &agentwire.BodyChunk{CorrelationID: str(m["correlation_id"]), Data: b64(t, m["data"]), IsLast: m["is_last"] == true, ChunkIndex: uint32(num(m["chunk_index"]))}
	if v, ok := m["total_size"].(float64); ok {
		e.TotalSize = agentwire.Some(uint64(v))
	}
	if v, ok := m["bytes_received"].(float64); ok {
		e.BytesTransferred = uint64(v)
	}
	if v, ok := m["bytes_sent"].(float64); ok {
		e.BytesTransferred = uint64(v)
	}
	return e
}

// toWire converts a golden payload event with the proxy-side functions and
// runs it through the protobuf wire format.
func toWire(t testing.TB, g goldenEvent) *pb.ProxyToAgent {
	const now = 1781256463123
	m := &pb.ProxyToAgent{}
	switch e := g.ev.(type) {
	case *agentwire.RequestHeadersEvent:
		m.Message = &pb.ProxyToAgent_RequestHeaders{RequestHeaders: RequestHeadersEventToPB(e, now)}
	case *agentwire.BodyChunk:
		if g.typ == "0x11" {
			m.Message = &pb.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: BodyChunkToPB(e, now)}
		} else {
			m.Message = &pb.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: BodyChunkToPB(e, now)}
		}
	case *agentwire.ResponseHeadersEvent:
		m.Message = &pb.ProxyToAgent_ResponseHeaders{ResponseHeaders: ResponseHeadersEventToPB(e)}
	case *agentwire.RequestCompleteEvent:
		m.Message = &pb.ProxyToAgent_RequestComplete{RequestComplete: RequestCompleteEventToPB(e)}
	case *agentwire.WebSocketFrameEvent:
		m.Message = &pb.ProxyToAgent_WebsocketFrame{WebsocketFrame: WebSocketFrameEventToPB(e)}
	case *agentwire.GuardrailInspectEvent:
		m.Message = &pb.ProxyToAgent_Guardrail{Guardrail: GuardrailInspectEventToPB(e)}
	case *agentwire.ConfigureEvent:
		m.Message = &pb.ProxyToAgent_Configure{Configure: ConfigureEventToPB(e, false, now)}
	}
	b, err := m.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	out := &pb.ProxyToAgent{}
	if err := out.UnmarshalVT(b); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoldenEventsRoundTrip sends every golden event through the proxy-side
// conversion, the wire, and the agent-side conversion, and compares with the
// original minus what gRPC cannot carry.
func TestGoldenEventsRoundTrip(t *testing.T) {
	for _, g := range loadGoldenEvents(t) {
		t.Run(g.name, func(t *testing.T) {
			m := toWire(t, g)
			var got, want any
			switch x := m.Message.(type) {
			case *pb.ProxyToAgent_RequestHeaders:
				var e agentwire.RequestHeadersEvent
				RequestHeadersEventFromPB(&e, x.RequestHeaders)
				w := *g.ev.(*agentwire.RequestHeadersEvent)
				w.Metadata.TLSCipher = agentwire.Opt[string]{}
				w.Metadata.Timestamp = w.Metadata.Timestamp.Truncate(time.Millisecond).UTC()
				got, want = e, w
			case *pb.ProxyToAgent_RequestBodyChunk:
				var e agentwire.BodyChunk
				BodyChunkFromPB(&e, x.RequestBodyChunk)
				got, want = e, *g.ev.(*agentwire.BodyChunk)
			case *pb.ProxyToAgent_ResponseBodyChunk:
				var e agentwire.BodyChunk
				BodyChunkFromPB(&e, x.ResponseBodyChunk)
				got, want = e, *g.ev.(*agentwire.BodyChunk)
			case *pb.ProxyToAgent_ResponseHeaders:
				var e agentwire.ResponseHeadersEvent
				ResponseHeadersEventFromPB(&e, x.ResponseHeaders)
				got, want = e, *g.ev.(*agentwire.ResponseHeadersEvent)
			case *pb.ProxyToAgent_RequestComplete:
				var e agentwire.RequestCompleteEvent
				RequestCompleteEventFromPB(&e, x.RequestComplete)
				w := *g.ev.(*agentwire.RequestCompleteEvent)
				w.UpstreamAttempts = 1 // not on the gRPC wire; synthesised
				got, want = e, w
			case *pb.ProxyToAgent_WebsocketFrame:
				var e agentwire.WebSocketFrameEvent
				WebSocketFrameEventFromPB(&e, x.WebsocketFrame)
				w := *g.ev.(*agentwire.WebSocketFrameEvent)
				w.FrameIndex, w.Fin, w.RouteID, w.ClientIP = 0, true, agentwire.Opt[string]{}, ""
				got, want = e, w
			case *pb.ProxyToAgent_Guardrail:
				var e agentwire.GuardrailInspectEvent
				GuardrailInspectEventFromPB(&e, x.Guardrail)
				got, want = e, *g.ev.(*agentwire.GuardrailInspectEvent)
			case *pb.ProxyToAgent_Configure:
				var e agentwire.ConfigureEvent
				ConfigureEventFromPB(&e, x.Configure)
				w := *g.ev.(*agentwire.ConfigureEvent)
				got, want = e, w
			default:
				t.Fatalf("unexpected message %T", m.Message)
			}
			if !reflect.DeepEqual(normalize(got), normalize(want)) {
				t.Fatalf("round trip\n got  %+v\n want %+v", got, want)
			}
		})
	}
}

// normalize turns empty byte slices into nil so that "absent" and "empty"
// compare equal (protobuf does not distinguish them).
func normalize(v any) any {
	switch e := v.(type) {
	case agentwire.BodyChunk:
		if len(e.Data) == 0 {
			e.Data = nil
		}
		return e
	case agentwire.WebSocketFrameEvent:
		if len(e.Data) == 0 {
			e.Data = nil
		}
		return e
	}
	return v
}

func TestRequestCompleteUpstreamAttempts(t *testing.T) {
	var e agentwire.RequestCompleteEvent
	RequestCompleteEventFromPB(&e, &pb.RequestCompleteEvent{FromCache: true})
	if e.UpstreamAttempts != 0 {
		t.Fatalf("from cache: attempts %d", e.UpstreamAttempts)
	}
	RequestCompleteEventFromPB(&e, nil)
	if e.UpstreamAttempts != 1 || e.CorrelationID != "" {
		t.Fatalf("nil: %+v", e)
	}
}

func TestOpcodeFromFrameType(t *testing.T) {
	for ft, want := range map[int32]string{0: "continuation", 1: "text", 2: "binary", 3: "ping", 4: "pong", 5: "close", 9: "9", -1: "-1"} {
		if got := OpcodeFromFrameType(ft); got != want {
			t.Errorf("%d → %q, want %q", ft, got, want)
		}
		if ft >= 0 && ft <= 5 && FrameTypeFromOpcode(want) != ft {
			t.Errorf("FrameTypeFromOpcode(%q) is not the inverse", want)
		}
	}
}

func TestGuardrailFallbacks(t *testing.T) {
	var e agentwire.GuardrailInspectEvent
	for _, tc := range []struct {
		src  *pb.GuardrailInspectEvent
		want string
	}{
		{&pb.GuardrailInspectEvent{ContentType: 1}, agentwire.InspectionPromptInjection},
		{&pb.GuardrailInspectEvent{ContentType: 3}, agentwire.InspectionPromptInjection},
		{&pb.GuardrailInspectEvent{ContentType: 2}, agentwire.InspectionPIIDetection},
		{&pb.GuardrailInspectEvent{ContentType: 0, ContextJson: "not json"}, agentwire.InspectionPIIDetection},
		{&pb.GuardrailInspectEvent{ContentType: 1, ContextJson: `{"inspection_type":"pii_detection"}`}, agentwire.InspectionPIIDetection},
	} {
		GuardrailInspectEventFromPB(&e, tc.src)
		if e.InspectionType != tc.want || e.Categories == nil || e.Metadata == nil {
			t.Errorf("%v → %+v", tc.src, e)
		}
	}
}

func TestHeadersFromPBGroupsAndReuses(t *testing.T) {
	src := []*pb.Header{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}, {Name: "a", Value: "3"}, nil, {Name: "c", Value: ""}}
	h := HeadersFromPB(nil, src)
	want := agentwire.Headers{{Name: "a", Values: []string{"1", "3"}}, {Name: "b", Values: []string{"2"}}, {Name: "c", Values: []string{""}}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %v", h)
	}
	// Reuse: a second, different header set overwrites completely.
	h = HeadersFromPB(h, []*pb.Header{{Name: "z", Value: "9"}})
	if !reflect.DeepEqual(h, agentwire.Headers{{Name: "z", Values: []string{"9"}}}) {
		t.Fatalf("reused: %v", h)
	}
}

// Many distinct names: grouping stays correct past the size where names
// are looked up in a map, and takes linear time. The linear scan this
// replaced needed seconds for 40,000 names and minutes for the 500,000 of
// a 4 MiB message.
func TestHeadersFromPBManyNames(t *testing.T) {
	var src []*pb.Header
	var want agentwire.Headers
	for i := range 300 {
		want = append(want, agentwire.Header{Name: "h" + strconv.Itoa(i), Values: []string{"a", "b", "c"}})
	}
	for _, v := range []string{"a", "b", "c"} {
		for i := range want {
			src = append(src, &pb.Header{Name: want[i].Name, Value: v})
		}
	}
	old := agentwire.Headers{{Name: "x", Values: []string{"stale", "values"}}}
	if got := HeadersFromPB(old, src); !reflect.DeepEqual(got, want) {
		t.Fatalf("grouping of %d names differs", len(want))
	}

	src = src[:0]
	for i := range 100_000 {
		src = append(src, &pb.Header{Name: strconv.Itoa(i), Value: "v"})
	}
	start := time.Now()
	h := HeadersFromPB(nil, src)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("100,000 distinct names took %v", d)
	}
	if len(h) != len(src) || h[len(h)-1].Name != "99999" {
		t.Fatalf("got %d headers", len(h))
	}
}

func TestCancelFromPB(t *testing.T) {
	for r, want := range map[int32]agentwire.CancelReason{0: 0, 1: agentwire.CancelClientDisconnect, 6: agentwire.CancelManual, 7: 0, -3: 0} {
		if got := CancelFromPB(&pb.CancelRequest{CorrelationId: "c", Reason: r}); got.Reason != want || got.CorrelationID != "c" {
			t.Errorf("reason %d → %+v", r, got)
		}
	}
}

// testResponses covers every decision and field the proto can carry.
func testResponses() []agentwire.AgentResponse {
	return []agentwire.AgentResponse{
		{CorrelationID: "allow"},
		{CorrelationID: "block", Decision: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 403, Body: agentwire.Some("denied"),
			BlockHeaders: map[string]string{"x-b": "2", "x-a": "1"}}},
		{CorrelationID: "block-bare", Decision: agentwire.Block(429)},
		{CorrelationID: "redirect", Decision: agentwire.Redirect("https://login/", 302)},
		{CorrelationID: "challenge", Decision: agentwire.Challenge("captcha", map[string]string{"k": "v"})},
		{CorrelationID: "ops", NeedsMore: true, ProcessingTimeMS: agentwire.Some[uint64](3),
			RequestHeaders:  []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "a", Value: "1"}, {Kind: agentwire.HeaderAdd, Name: "b", Value: "2"}, {Kind: agentwire.HeaderRemove, Name: "c"}},
			ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderRemove, Name: "server"}}},
		{CorrelationID: "audit", Audit: agentwire.AuditMetadata{Tags: []string{"t"}, RuleIDs: []string{"r1", "r2"}, Confidence: agentwire.Some[float32](0.5),
			ReasonCodes: []string{"SQLI"}, Custom: map[string]json.RawMessage{"s": json.RawMessage(`"abc"`), "n": json.RawMessage(`42`), "o": json.RawMessage(`{"a":[1]}`)}}},
		// JSON-only fields are dropped.
		{CorrelationID: "json-only", RoutingMetadata: map[string]string{"k": "v"}, RequestBodyMutation: agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationDrop}),
			WebSocketDecision: agentwire.Some(agentwire.WebSocketDecision{Kind: agentwire.WebSocketDrop})},
	}
}

// TestResponseEncoderRoundTrip encodes with the reusable encoder, goes
// through the wire and decodes with the proxy-side conversion.
func TestResponseEncoderRoundTrip(t *testing.T) {
	var enc ResponseEncoder
	for round := range 2 { // the second round runs on reused storage
		for _, src := range testResponses() {
			m := enc.Encode(&src)
			if m.Audit == nil || m.Decision == nil {
				t.Fatalf("%s: audit or decision missing", src.CorrelationID)
			}
			b, err := m.MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			var wire pb.AgentResponse
			if err := wire.UnmarshalVT(b); err != nil {
				t.Fatal(err)
			}
			var got agentwire.AgentResponse
			if err := AgentResponseFromPB(&got, &wire); err != nil {
				t.Fatal(err)
			}
			want := src
			want.Version = agentwire.ProtocolVersion
			want.RoutingMetadata, want.RequestBodyMutation, want.ResponseBodyMutation, want.WebSocketDecision = nil, agentwire.Opt[agentwire.BodyMutation]{}, agentwire.Opt[agentwire.BodyMutation]{}, agentwire.Opt[agentwire.WebSocketDecision]{}
			if !reflect.DeepEqual(clean(got), clean(want)) {
				t.Fatalf("round %d %s:\n got  %+v\n want %+v", round, src.CorrelationID, got, want)
			}
			if src.CorrelationID == "block" {
				names := []string{wire.GetBlock().Headers[0].Name, wire.GetBlock().Headers[1].Name}
				if !slices.Equal(names, []string{"x-a", "x-b"}) {
					t.Fatalf("block headers not sorted: %v", names)
				}
			}
		}
	}
}

// clean makes empty and nil slices and maps compare equal.
func clean(r agentwire.AgentResponse) agentwire.AgentResponse {
	if len(r.RequestHeaders) == 0 {
		r.RequestHeaders = nil
	}
	if len(r.ResponseHeaders) == 0 {
		r.ResponseHeaders = nil
	}
	if len(r.Audit.Tags) == 0 {
		r.Audit.Tags = nil
	}
	if len(r.Audit.RuleIDs) == 0 {
		r.Audit.RuleIDs = nil
	}
	if len(r.Audit.ReasonCodes) == 0 {
		r.Audit.ReasonCodes = nil
	}
	if len(r.Audit.Custom) == 0 {
		r.Audit.Custom = nil
	}
	if len(r.Decision.Params) == 0 {
		r.Decision.Params = nil
	}
	return r
}

func TestControlConversions(t *testing.T) {
	caps := agentwire.Capabilities{ProtocolVersion: 2, AgentID: "a", Name: "n", Version: "v", SupportedEvents: []int32{1, 8},
		Features: agentwire.FullFeatures(), Limits: agentwire.DefaultLimits(), Health: agentwire.HealthConfig{ReportIntervalMS: 5, IncludeLoadMetrics: true}}
	caps.Limits.MaxMemory = agentwire.Some[uint64](1 << 30)
	if got := CapabilitiesFromPB(CapabilitiesToPB(&caps)); !reflect.DeepEqual(got, caps) {
		t.Errorf("capabilities:\n got  %+v\n want %+v", got, caps)
	}
	hr := agentwire.HandshakeResponse{ProtocolVersion: 2, Capabilities: caps, Success: false, Error: agentwire.Some("no")}
	if got := HandshakeResponseFromPB(HandshakeResponseToPB(&hr)); !reflect.DeepEqual(got, hr) {
		t.Errorf("handshake response:\n got  %+v\n want %+v", got, hr)
	}
	hs := agentwire.HealthStatus{AgentID: "a", State: agentwire.HealthUnhealthy, Message: agentwire.Some("m"), DisabledFeatures: []string{"x"}, TimeoutMultiplier: 1.5,
		DrainETAMS: agentwire.Some[uint64](4), UnhealthyReason: agentwire.Some("r"), Recoverable: true, ValidUntilMS: agentwire.Some[uint64](9), TimestampMS: 10}
	if got := HealthStatusFromPB(HealthStatusToPB(&hs)); !reflect.DeepEqual(got, hs) {
		t.Errorf("health:\n got  %+v\n want %+v", got, hs)
	}
	fc := agentwire.FlowControlSignal{CorrelationID: agentwire.Some("c"), Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](100), TimestampMS: 3}
	if got := FlowControlSignalFromPB(FlowControlSignalToPB(&fc)); !reflect.DeepEqual(got, fc) {
		t.Errorf("flow control:\n got  %+v\n want %+v", got, fc)
	}
	for _, cu := range []agentwire.ConfigUpdateRequest{
		{Kind: agentwire.ConfigRequestReload, RequestID: "1", TimestampMS: 1},
		{Kind: agentwire.ConfigRuleUpdate, RequestID: "2", RuleSet: "crs", Rules: []agentwire.RuleDefinition{{ID: "r", Priority: -1, Definition: json.RawMessage(`{"a":1}`), Enabled: true, Description: agentwire.Some("d"), Tags: []string{"t"}}}, RemoveRules: []string{"old"}},
		{Kind: agentwire.ConfigListUpdate, RequestID: "3", ListID: "l", Add: []string{"a"}, Remove: []string{"b"}},
		{Kind: agentwire.ConfigRestartRequired, RequestID: "4", Reason: "upgrade", GracePeriodMS: 100},
		{Kind: agentwire.ConfigError, RequestID: "5", Error: "bad", Field: agentwire.Some("f")},
	} {
		got := ConfigUpdateRequestFromPB(ConfigUpdateRequestToPB(&cu))
		if !reflect.DeepEqual(*got, cu) {
			t.Errorf("config update %s:\n got  %+v\n want %+v", cu.RequestID, *got, cu)
		}
	}
	lm := agentwire.LogMessage{Level: agentwire.LogError, Message: "x", CorrelationID: agentwire.Some("c"), Fields: map[string]string{"k": "v"}, TimestampMS: 2}
	if got := LogMessageFromPB(LogMessageToPB(&lm)); !reflect.DeepEqual(*got, lm) {
		t.Errorf("log:\n got  %+v\n want %+v", *got, lm)
	}
	mr := agentwire.MetricsReport{AgentID: "a", TimestampMS: 1, IntervalMS: 2,
		Counters:   []agentwire.CounterMetric{{Name: "c", Help: "h", Labels: map[string]string{"l": "v"}, Value: 3}},
		Gauges:     []agentwire.GaugeMetric{{Name: "g", Labels: map[string]string{}, Value: 1.5}},
		Histograms: []agentwire.HistogramMetric{{Name: "h", Labels: map[string]string{}, Sum: 2, Count: 1, Buckets: []agentwire.HistogramBucket{{Le: 1, Count: 1}}}}}
	mp := MetricsReportToPB(&mr)
	if mp.Gauges[0].Help != nil || mp.Counters[0].GetHelp() != "h" || mp.Histograms[0].Buckets[0].Le != 1 {
		t.Errorf("metrics = %v", mp)
	}
	cr := ConfigUpdateResponseFromPB(ConfigUpdateResponseToPB(&agentwire.ConfigUpdateResponse{RequestID: "r", Accepted: true, Error: agentwire.Some("e"), TimestampMS: 4}))
	if cr != (agentwire.ConfigUpdateResponse{RequestID: "r", Accepted: true, Error: agentwire.Some("e"), TimestampMS: 4}) {
		t.Errorf("config response = %+v", cr)
	}
	var hq agentwire.HandshakeRequest
	HandshakeRequestFromPB(&hq, &pb.HandshakeRequest{SupportedVersions: []uint32{2, 1}, ProxyId: "p", ProxyVersion: "v", ConfigJson: `{"a":1}`})
	if !slices.Equal(hq.SupportedVersions, []uint32{2, 1}) || hq.ProxyID != "p" || string(hq.Config) != `{"a":1}` {
		t.Errorf("handshake request = %+v", hq)
	}
	HandshakeRequestFromPB(&hq, &pb.HandshakeRequest{})
	if hq.Config != nil {
		t.Errorf("empty config_json → %q, want nil", hq.Config)
	}
}

// FuzzAgentDecode feeds arbitrary bytes to the agent's decode path: protobuf
// unmarshal into ProxyToAgent, then the conversion for whatever event it
// holds. It must never panic, and the conversion must stay within
// the checkDecodeAllocs bound of the input size (the unmarshal itself is bounded by
// codec/grpccodec's FuzzUnmarshal). Seeds are the golden events in wire
// form.
func FuzzAgentDecode(f *testing.F) {
	for _, g := range loadGoldenEvents(f) {
		b, err := toWire(f, g).MarshalVT()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	hs, _ := (&pb.ProxyToAgent{Message: &pb.ProxyToAgent_Handshake{Handshake: &pb.HandshakeRequest{SupportedVersions: []uint32{2, 1}, ConfigJson: "{}"}}}).MarshalVT()
	f.Add(hs)
	cn, _ := (&pb.ProxyToAgent{Message: &pb.ProxyToAgent_Cancel{Cancel: &pb.CancelRequest{CorrelationId: "c", Reason: 3}}}).MarshalVT()
	f.Add(cn)
	var (
		rh  agentwire.RequestHeadersEvent
		bc  agentwire.BodyChunk
		sh  agentwire.ResponseHeadersEvent
		rc  agentwire.RequestCompleteEvent
		ws  agentwire.WebSocketFrameEvent
		gi  agentwire.GuardrailInspectEvent
		ce  agentwire.ConfigureEvent
		hq  agentwire.HandshakeRequest
		enc ResponseEncoder
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := pb.ProxyToAgentFromVTPool()
		defer m.ReturnToVTPool()
		if err := m.UnmarshalVT(data); err != nil {
			return
		}
		checkDecodeAllocs(t, "conversion", len(data), func() {
			switch x := m.Message.(type) {
			case *pb.ProxyToAgent_RequestHeaders:
				RequestHeadersEventFromPB(&rh, x.RequestHeaders)
			case *pb.ProxyToAgent_RequestBodyChunk:
				BodyChunkFromPB(&bc, x.RequestBodyChunk)
			case *pb.ProxyToAgent_ResponseBodyChunk:
				BodyChunkFromPB(&bc, x.ResponseBodyChunk)
			case *pb.ProxyToAgent_ResponseHeaders:
				ResponseHeadersEventFromPB(&sh, x.ResponseHeaders)
			case *pb.ProxyToAgent_RequestComplete:
				RequestCompleteEventFromPB(&rc, x.RequestComplete)
			case *pb.ProxyToAgent_WebsocketFrame:
				WebSocketFrameEventFromPB(&ws, x.WebsocketFrame)
			case *pb.ProxyToAgent_Guardrail:
				GuardrailInspectEventFromPB(&gi, x.Guardrail)
			case *pb.ProxyToAgent_Configure:
				ConfigureEventFromPB(&ce, x.Configure)
			case *pb.ProxyToAgent_Handshake:
				HandshakeRequestFromPB(&hq, x.Handshake)
			case *pb.ProxyToAgent_Cancel:
				_ = CancelFromPB(x.Cancel)
			case *pb.ProxyToAgent_Ping:
				_ = PingFromPB(x.Ping)
			}
		})
		resp := agentwire.AgentResponse{}
		switch m.Message.(type) {
		case *pb.ProxyToAgent_RequestHeaders:
			resp.CorrelationID = rh.Metadata.CorrelationID
			for _, h := range rh.Headers {
				resp.RequestHeaders = append(resp.RequestHeaders, agentwire.HeaderOp{Name: h.Name, Value: h.Values[0]})
			}
		case *pb.ProxyToAgent_Guardrail:
			resp.Decision = agentwire.Block(403)
			resp.Decision.BlockHeaders = gi.Metadata
		}
		if _, err := enc.Encode(&resp).MarshalVT(); err != nil {
			t.Fatal(err)
		}
	})
}

// An agent that leaves out limits and health_config gets the reference's
// defaults (10 MiB bodies, 100 in flight, 64 KiB chunks, 5 s processing,
// health every 10 s with load metrics), as the Rust proxy reads it.
func TestCapabilitiesFromPBMissingParts(t *testing.T) {
	got := CapabilitiesFromPB(&pb.AgentCapabilities{ProtocolVersion: 2, AgentId: "a"})
	if !reflect.DeepEqual(got.Limits, agentwire.DefaultLimits()) {
		t.Fatalf("limits %+v", got.Limits)
	}
	if want := (agentwire.HealthConfig{ReportIntervalMS: 10000, IncludeLoadMetrics: true}); got.Health != want {
		t.Fatalf("health %+v", got.Health)
	}
	if got.Features != (agentwire.Features{}) {
		t.Fatalf("features %+v", got.Features)
	}
}
