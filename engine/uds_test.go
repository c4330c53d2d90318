package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

func TestParseUDSEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/a.sock": "/run/a.sock",
		"unix:/run/a.sock":   "/run/a.sock",
		"unix:rel.sock":      "rel.sock",
		"/run/agent":         "/run/agent",
		"agents/waf.sock":    "agents/waf.sock",
	} {
		ep, err := parseEndpoint(in)
		if err != nil || ep.udsPath != want || ep.target != "" {
			t.Errorf("parseEndpoint(%q) = %+v, %v; want udsPath %q", in, ep, err, want)
		}
	}
	for _, in := range []string{"unix:", "unix://"} {
		if _, err := parseEndpoint(in); err == nil {
			t.Errorf("parseEndpoint(%q): no error", in)
		}
	}
	if _, err := Dial(context.Background(), "unix:///x.sock", WithTLS(nil), WithEncodings("cbor")); err == nil {
		t.Error("Dial accepted an unknown encoding")
	}
}

// udsModes are the encodings every integration test runs with.
var udsModes = []struct {
	name    string
	opts    []Option
	msgpack bool
	raw     bool
}{
	{"json", nil, false, false},
	{"msgpack", []Option{WithMsgpack()}, true, false},
	{"msgpack-raw", []Option{WithMsgpack(), WithRawMsgpackBodies()}, true, true},
}

// TestUDSEveryEvent sends every event kind to the real agent server over a
// Unix socket, checks what the handler saw, and checks that every field of
// a rich reply comes back.
func TestUDSEveryEvent(t *testing.T) {
	for _, m := range udsModes {
		t.Run(m.name, func(t *testing.T) { testUDSEveryEvent(t, m.opts, m.msgpack, m.raw) })
	}
}

func testUDSEveryEvent(t *testing.T, opts []Option, msgpack, raw bool) {
	ctx := testCtx(t)
	a := newTestAgent()
	var mu sync.Mutex
	seen := map[string]any{}
	record := func(k string, v any) {
		mu.Lock()
		seen[k] = v
		mu.Unlock()
	}
	binary := []byte{0, 1, 2, 0xff, 0xfe, 'x', '"', '\\', 0x80}
	a.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		cp := *ev
		cp.Headers = append(agentwire.Headers(nil), ev.Headers...)
		record("rh", cp)
		r.Decision = agentwire.Block(403)
		r.Decision.Body = agentwire.Some("denied \"quoted\" ü")
		r.Decision.BlockHeaders = map[string]string{"x-why": "test"}
		r.RequestHeaders = []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-a", Value: "1"}, {Kind: agentwire.HeaderRemove, Name: "cookie"}}
		r.Audit.Tags = []string{"t1", ev.URI}
		r.Audit.RuleIDs = []string{"r1"}
		r.Audit.Confidence = agentwire.Some[float32](0.5)
		r.Audit.Custom = map[string]json.RawMessage{"k": json.RawMessage(`{"n":1}`)}
		r.RoutingMetadata = map[string]string{"route": "b"}
		return nil
	}
	a.reqBody = func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		cp := *ev
		cp.Data = append([]byte(nil), ev.Data...)
		record("rb", cp)
		r.NeedsMore = true
		r.RequestBodyMutation = agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationReplace, Data: []byte("new body"), ChunkIndex: ev.ChunkIndex})
		return nil
	}
	a.respHeaders = func(_ context.Context, ev *agentwire.ResponseHeadersEvent, r *agentwire.AgentResponse) error {
		record("sh", *ev)
		r.ResponseHeaders = []agentwire.HeaderOp{{Kind: agentwire.HeaderAdd, Name: "x-b", Value: "2"}}
		return nil
	}
	a.respBody = func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		cp := *ev
		cp.Data = append([]byte(nil), ev.Data...)
		record("sb", cp)
		r.ResponseBodyMutation = agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationDrop, ChunkIndex: 3})
		return nil
	}
	a.complete = func(_ context.Context, ev *agentwire.RequestCompleteEvent, r *agentwire.AgentResponse) error {
		record("rc", *ev)
		r.Decision = agentwire.Redirect("https://example.com/x", 302)
		return nil
	}
	a.ws = func(_ context.Context, ev *agentwire.WebSocketFrameEvent, r *agentwire.AgentResponse) error {
		cp := *ev
		cp.Data = append([]byte(nil), ev.Data...)
		record("ws", cp)
		r.WebSocketDecision = agentwire.Some(agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: 1008, Reason: "policy"})
		return nil
	}
	a.guard = func(_ context.Context, ev *agentwire.GuardrailInspectEvent, r *agentwire.AgentResponse) error {
		record("gr", *ev)
		r.Decision = agentwire.Challenge("captcha", map[string]string{"site": "k"})
		r.RoutingMetadata = map[string]string{"guardrail_response": `{"detected":false}`}
		return nil
	}
	srv := startUDSAgent(t, a, agent.WithAgentID("waf-1"))
	c := dialUDS(t, srv.path, append([]Option{WithAgentConfig(json.RawMessage(`{"mode":"strict"}`)), WithProxyID("px"), WithProxyVersion("9.9")}, opts...)...)

	u := udsOf(t, c)
	if u.msgpack != msgpack || u.raw != raw {
		t.Fatalf("negotiated msgpack=%v raw=%v, want %v %v", u.msgpack, u.raw, msgpack, raw)
	}
	caps := c.Capabilities()
	if caps.AgentID != "waf-1" || caps.ProtocolVersion != 2 || !caps.Features.Cancellation || caps.Limits.MaxBodySize == 0 {
		t.Fatalf("capabilities %+v", caps)
	}
	a.waitFor(t, "handshake", func() bool { return len(a.handshakes) == 1 })
	a.mu.Lock()
	hs := a.handshakes[0]
	a.mu.Unlock()
	wantEnc := []string{"json"}
	if msgpack {
		wantEnc = []string{"msgpack", "json"}
	}
	if hs.ProxyID != "px" || hs.ProxyVersion != "9.9" || string(hs.Config) != `{"mode":"strict"}` ||
		!reflect.DeepEqual(hs.SupportedVersions, []uint32{2}) || !reflect.DeepEqual(hs.SupportedEncodings, wantEnc) {
		t.Fatalf("handshake seen by the agent: %+v", hs)
	}

	// Request headers, with a zero timestamp (sent as the current time).
	ev := headersEvent("c-1")
	ev.Headers = append(ev.Headers, agentwire.Header{Name: "cookie", Values: []string{"a=1", "b=2"}})
	ev.Metadata.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	before := time.Now().Add(-time.Second)
	r, err := c.RequestHeaders(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.CorrelationID != "c-1" || r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 403 ||
		r.Decision.Body.Value != "denied \"quoted\" ü" || r.Decision.BlockHeaders["x-why"] != "test" ||
		len(r.RequestHeaders) != 2 || r.RequestHeaders[1].Kind != agentwire.HeaderRemove ||
		!reflect.DeepEqual(r.Audit.Tags, []string{"t1", "/c-1"}) || r.Audit.Confidence.Value != 0.5 ||
		string(r.Audit.Custom["k"]) != `{"n":1}` || r.RoutingMetadata["route"] != "b" {
		t.Fatalf("reply %+v", r)
	}
	mu.Lock()
	got := seen["rh"].(agentwire.RequestHeadersEvent)
	mu.Unlock()
	if got.Metadata.CorrelationID != "c-1" || got.Method != "GET" || got.URI != "/c-1" ||
		!reflect.DeepEqual(got.Headers.Values("cookie"), []string{"a=1", "b=2"}) ||
		got.Metadata.Traceparent != ev.Metadata.Traceparent || got.Metadata.Timestamp.Before(before) {
		t.Fatalf("agent saw %+v", got)
	}

	body := &agentwire.BodyChunk{CorrelationID: "c-1", Data: binary, ChunkIndex: 2, BytesTransferred: 9, TotalSize: agentwire.Some[uint64](100)}
	if r, err = c.RequestBodyChunk(ctx, body); err != nil {
		t.Fatal(err)
	}
	if !r.NeedsMore || !r.RequestBodyMutation.Valid || string(r.RequestBodyMutation.Value.Data) != "new body" || r.RequestBodyMutation.Value.ChunkIndex != 2 {
		t.Fatalf("body reply %+v", r)
	}
	mu.Lock()
	gb := seen["rb"].(agentwire.BodyChunk)
	mu.Unlock()
	if !bytes.Equal(gb.Data, binary) || gb.ChunkIndex != 2 || gb.BytesTransferred != 9 || gb.TotalSize.Value != 100 || gb.IsLast {
		t.Fatalf("agent saw body %+v", gb)
	}

	rs := &agentwire.ResponseHeadersEvent{CorrelationID: "c-1", Status: 201, Headers: agentwire.Headers{{Name: "content-type", Values: []string{"text/html"}}}}
	if r, err = c.ResponseHeaders(ctx, rs); err != nil || len(r.ResponseHeaders) != 1 || r.ResponseHeaders[0].Value != "2" {
		t.Fatalf("response headers: %+v %v", r, err)
	}
	rb := &agentwire.BodyChunk{CorrelationID: "c-1", Data: []byte("<html>"), IsLast: true}
	if r, err = c.ResponseBodyChunk(ctx, rb); err != nil || r.ResponseBodyMutation.Value.Action != agentwire.MutationDrop || r.ResponseBodyMutation.Value.ChunkIndex != 3 {
		t.Fatalf("response body: %+v %v", r, err)
	}
	mu.Lock()
	gsb := seen["sb"].(agentwire.BodyChunk)
	gsh := seen["sh"].(agentwire.ResponseHeadersEvent)
	mu.Unlock()
	if string(gsb.Data) != "<html>" || !gsb.IsLast || gsh.Status != 201 || gsh.Headers.Get("content-type") != "text/html" {
		t.Fatalf("agent saw %+v %+v", gsb, gsh)
	}
	rc := &agentwire.RequestCompleteEvent{CorrelationID: "c-1", Status: 200, DurationMS: 12, RequestBodySize: 9, ResponseBodySize: 6, UpstreamAttempts: 1, Error: agentwire.Some("upstream reset")}
	if r, err = c.RequestComplete(ctx, rc); err != nil || r.Decision.Kind != agentwire.DecisionRedirect || r.Decision.URL != "https://example.com/x" {
		t.Fatalf("complete: %+v %v", r, err)
	}
	ws := &agentwire.WebSocketFrameEvent{CorrelationID: "c-1", Opcode: "binary", Data: binary, ClientToServer: true, FrameIndex: 4, Fin: true, RouteID: agentwire.Some("ws"), ClientIP: "10.0.0.1"}
	if r, err = c.WebSocketFrame(ctx, ws); err != nil || r.WebSocketDecision.Value.Kind != agentwire.WebSocketClose || r.WebSocketDecision.Value.Code != 1008 {
		t.Fatalf("websocket: %+v %v", r, err)
	}
	gr := &agentwire.GuardrailInspectEvent{CorrelationID: "c-1", InspectionType: agentwire.InspectionPIIDetection, Content: "my ssn is …", Categories: []string{"ssn"}, Metadata: map[string]string{"m": "v"}}
	if r, err = c.GuardrailInspect(ctx, gr); err != nil || r.Decision.Kind != agentwire.DecisionChallenge || r.Decision.Params["site"] != "k" || r.RoutingMetadata["guardrail_response"] != `{"detected":false}` {
		t.Fatalf("guardrail: %+v %v", r, err)
	}
	mu.Lock()
	grc := seen["rc"].(agentwire.RequestCompleteEvent)
	gws := seen["ws"].(agentwire.WebSocketFrameEvent)
	ggr := seen["gr"].(agentwire.GuardrailInspectEvent)
	mu.Unlock()
	if grc != *rc {
		t.Fatalf("agent saw complete %+v", grc)
	}
	if !bytes.Equal(gws.Data, binary) || gws.Opcode != "binary" || gws.FrameIndex != 4 || !gws.Fin || gws.RouteID.Value != "ws" || gws.ClientIP != "10.0.0.1" {
		t.Fatalf("agent saw frame %+v", gws)
	}
	if ggr.Content != gr.Content || ggr.InspectionType != gr.InspectionType || ggr.Metadata["m"] != "v" || ggr.Categories[0] != "ssn" {
		t.Fatalf("agent saw guardrail %+v", ggr)
	}

	// Configuration: the handshake's reached OnConfigure once (the agent
	// skips the repeated initial 0x17); a later Configure arrives too, and
	// its reply is consumed (no orphan).
	if err := c.Configure(ctx, &agentwire.ConfigureEvent{Config: json.RawMessage(`{"mode":"audit"}`), ConfigVersion: agentwire.Some("v2")}); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "configure", func() bool { return len(a.configs) == 2 })
	a.mu.Lock()
	configs := append([]string(nil), a.configs...)
	a.mu.Unlock()
	if configs[0] != ` {"mode":"strict"}` || configs[1] != `v2 {"mode":"audit"}` {
		t.Fatalf("configs %q", configs)
	}
	// A request after the configure proves its reply was read.
	if _, err := c.RequestHeaders(ctx, headersEvent("c-2")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "configure replies consumed", nil, func() bool { return len(udsOf(t, c).cfgIDs) == 0 })
	if st := c.Stats(); st.Orphans != 0 || st.ProtocolErrors != 0 || st.Received != 8 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUDSAgentSelectsJSON: a proxy offering msgpack talks JSON to an agent
// that only supports JSON.
func TestUDSAgentSelectsJSON(t *testing.T) {
	srv := startUDSAgent(t, newTestAgent(), agent.WithEncodings("json"))
	c := dialUDS(t, srv.path, WithMsgpack())
	if udsOf(t, c).msgpack {
		t.Fatal("msgpack negotiated with a json-only agent")
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("j")); err != nil {
		t.Fatal(err)
	}
}

// TestConnEncoding: Conn.Encoding reports what the handshake chose, and
// nothing once the Conn is closed.
func TestConnEncoding(t *testing.T) {
	for _, c := range []struct {
		agentEncs []string
		want      string
	}{{[]string{"json"}, "json"}, {[]string{"json", "msgpack"}, "msgpack"}} {
		srv := startUDSAgent(t, newTestAgent(), agent.WithEncodings(c.agentEncs...))
		conn := dialUDS(t, srv.path, WithMsgpack())
		if got := conn.Encoding(); got != c.want {
			t.Errorf("agent with %q: Encoding() = %q, want %q", c.agentEncs, got, c.want)
		}
		conn.Close()
		if got := conn.Encoding(); got != "" {
			t.Errorf("after Close: Encoding() = %q", got)
		}
	}
	g := dial(t, startAgent(t, newTestAgent()).addr)
	if got := g.Encoding(); got != EncodingProtobuf {
		t.Errorf("gRPC: Encoding() = %q", got)
	}
}

// TestUDSHandshakeFailures drives the handshake against raw fake agents.
func TestUDSHandshakeFailures(t *testing.T) {
	answer := func(resp string) func(rc *rawConn) {
		return func(rc *rawConn) {
			if _, _, err := rc.rd.ReadFrame(); err != nil {
				return
			}
			_ = rc.writeFrame(frame.TypeHandshakeResponse, []byte(resp))
			_, _, _ = rc.rd.ReadFrame() // until the proxy hangs up
		}
	}
	capsJSON := `{"agent_id":"a","name":"a","version":"1","supported_events":[1],"features":{"streaming_body":false,"websocket":false,"guardrails":false,"config_push":false,"metrics_export":false,"concurrent_requests":1,"cancellation":false,"flow_control":false,"health_reporting":false},"limits":{"max_body_size":1,"max_concurrency":1,"preferred_chunk_size":1}}`
	cases := []struct {
		name   string
		script func(rc *rawConn)
		opts   []Option
		kind   error
		detail string
	}{
		{"msgpack-not-offered", answer(`{"protocol_version":2,"capabilities":` + capsJSON + `,"success":true,"error":null,"encoding":"msgpack"}`), nil, ErrHandshakeRejected, "not offered"},
		{"json-not-offered", answer(`{"protocol_version":2,"capabilities":` + capsJSON + `,"success":true,"error":null,"encoding":"json"}`), []Option{WithEncodings("msgpack")}, ErrHandshakeRejected, "not offered"},
		{"missing-encoding-means-json", answer(`{"protocol_version":2,"capabilities":` + capsJSON + `,"success":true,"error":null}`), []Option{WithEncodings("msgpack")}, ErrHandshakeRejected, `"json"`},
		{"unknown-encoding", answer(`{"protocol_version":2,"capabilities":` + capsJSON + `,"success":true,"error":null,"encoding":"cbor"}`), nil, ErrHandshakeRejected, "undecodable"},
		{"null-encoding", answer(`{"protocol_version":2,"capabilities":` + capsJSON + `,"success":true,"error":null,"encoding":null}`), nil, ErrHandshakeRejected, "undecodable"},
		{"refused", answer(`{"protocol_version":0,"capabilities":` + capsJSON + `,"success":false,"error":"go away"}`), nil, ErrHandshakeRejected, "go away"},
		{"version-1", answer(`{"protocol_version":1,"capabilities":` + capsJSON + `,"success":true,"error":null}`), nil, ErrHandshakeRejected, "version 1"},
		{"missing-feature-key", answer(`{"protocol_version":2,"capabilities":` + strings.Replace(capsJSON, `"health_reporting":false`, `"x":1`, 1) + `,"success":true}`), nil, ErrHandshakeRejected, "health_reporting"},
		{"missing-limit-key", answer(`{"protocol_version":2,"capabilities":` + strings.Replace(capsJSON, `,"preferred_chunk_size":1`, ``, 1) + `,"success":true}`), nil, ErrHandshakeRejected, "preferred_chunk_size"},
		{"wrong-first-frame", func(rc *rawConn) {
			_, _, _ = rc.rd.ReadFrame()
			_ = rc.writeFrame(frame.TypeAgentResponse, []byte(`{}`))
			_, _, _ = rc.rd.ReadFrame()
		}, nil, ErrHandshakeRejected, "AgentResponse"},
		{"unknown-first-frame", func(rc *rawConn) {
			_, _, _ = rc.rd.ReadFrame()
			_ = rc.writeRaw([]byte{0, 0, 0, 1, 0x99})
			_, _, _ = rc.rd.ReadFrame()
		}, nil, ErrHandshakeRejected, "0x99"},
		{"hang-up", func(rc *rawConn) { _, _, _ = rc.rd.ReadFrame() }, nil, ErrConnectFailed, "without a handshake response"},
		{"silent", func(rc *rawConn) { _, _, _ = rc.rd.ReadFrame(); _, _, _ = rc.rd.ReadFrame() }, []Option{WithHandshakeTimeout(150 * time.Millisecond)}, ErrConnectFailed, "timed out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fa := startRawAgent(t, tc.script)
			start := time.Now()
			c, err := Dial(testCtx(t), fa.path, tc.opts...)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			mustKind(t, err, tc.kind)
			if !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("error %q does not mention %q", err, tc.detail)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("Dial took %v", d)
			}
		})
	}
	t.Run("no-listener", func(t *testing.T) {
		_, err := Dial(testCtx(t), sockPath(t))
		mustKind(t, err, ErrConnectFailed)
	})
	t.Run("ctx-ends-during-handshake", func(t *testing.T) {
		fa := startRawAgent(t, func(rc *rawConn) { _, _, _ = rc.rd.ReadFrame(); _, _, _ = rc.rd.ReadFrame() })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := Dial(ctx, fa.path)
		mustKind(t, err, ErrConnectFailed)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v does not wrap the context's", err)
		}
	})
}

// TestUDSHandshakeRequestBytes checks the exact 0x01 a proxy without
// configuration sends (SPEC 6.3 example, with agentwire's ids).
func TestUDSHandshakeRequestBytes(t *testing.T) {
	got := make(chan []byte, 1)
	fa := startRawAgent(t, func(rc *rawConn) {
		_, p, err := rc.rd.ReadFrame()
		if err != nil {
			return
		}
		got <- append([]byte(nil), p...)
		resp := agentwire.HandshakeResponse{ProtocolVersion: 2, Capabilities: fullCaps("raw"), Success: true}
		_ = rc.writeFrame(frame.TypeHandshakeResponse, payload.AppendHandshakeResponseJSON(nil, &resp))
		rc.echoLoop()
	})
	c := dialUDS(t, fa.path)
	want := `{"supported_versions":[2],"proxy_id":"agentwire-proxy","proxy_version":"` + DefaultProxyVersion + `","config":null,"supported_encodings":["json"]}`
	if p := <-got; string(p) != want {
		t.Fatalf("handshake payload\n got %s\nwant %s", p, want)
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("x")); err != nil {
		t.Fatal(err)
	}
}

// TestUDSPing measures a round trip to the agent server, and accepts a
// Pong-shaped answer from another agent.
func TestUDSPing(t *testing.T) {
	for _, m := range udsModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			srv := startUDSAgent(t, newTestAgent())
			c := dialUDS(t, srv.path, m.opts...)
			for range 3 {
				rtt, err := c.Ping(testCtx(t))
				if err != nil || rtt <= 0 || rtt > 5*time.Second {
					t.Fatalf("ping: %v %v", rtt, err)
				}
			}
			if st := c.Stats(); st.Pings != 3 || st.Pongs != 3 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
	t.Run("pong-shape", func(t *testing.T) {
		fa := startRawAgent(t, func(rc *rawConn) {
			if rc.handshake("") != nil {
				return
			}
			for {
				typ, p, err := rc.rd.ReadFrame()
				if err != nil {
					return
				}
				if typ == frame.TypePing {
					var ping agentwire.Ping
					if payload.DecodePingJSON(p, &ping) != nil {
						return
					}
					pong := fmt.Sprintf(`{"sequence":%d,"ping_timestamp_ms":%d,"timestamp_ms":%d}`, ping.Sequence, ping.TimestampMS, ping.TimestampMS+1)
					_ = rc.writeFrame(frame.TypePong, []byte(pong))
				}
			}
		})
		c := dialUDS(t, fa.path)
		if rtt, err := c.Ping(testCtx(t)); err != nil || rtt <= 0 {
			t.Fatalf("ping: %v %v", rtt, err)
		}
	})
}

// TestUDSCancelReachesAgent: abandoning a call cancels the handler's
// context on the agent (0x40, 0-based reason on the wire).
func TestUDSCancelReachesAgent(t *testing.T) {
	for _, m := range udsModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			a := newTestAgent()
			ended := make(chan error, 2)
			a.reqHeaders = func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
				select {
				case <-ctx.Done():
					ended <- ctx.Err()
				case <-time.After(5 * time.Second):
					ended <- errors.New("handler context never cancelled")
				}
				return ctx.Err()
			}
			srv := startUDSAgent(t, a)
			c := dialUDS(t, srv.path, m.opts...)

			ctx, cancel := context.WithCancel(testCtx(t))
			go func() {
				time.Sleep(50 * time.Millisecond)
				cancel()
			}()
			_, err := c.RequestHeaders(ctx, headersEvent("slow"))
			mustKind(t, err, ErrCanceled)
			if err := <-ended; !errors.Is(err, context.Canceled) {
				t.Fatalf("agent handler: %v", err)
			}
			a.waitFor(t, "cancel notice", func() bool { return len(a.cancels) == 1 })
			a.mu.Lock()
			got := a.cancels[0]
			a.mu.Unlock()
			if got.CorrelationID != "slow" || got.Reason != agentwire.CancelClientDisconnect {
				t.Fatalf("agent saw cancel %+v", got)
			}

			// Conn.Cancel of a call in flight, reason manual.
			done := make(chan error, 1)
			go func() {
				_, err := c.RequestHeaders(testCtx(t), headersEvent("manual"))
				done <- err
			}()
			waitUntil(t, "call in flight", nil, func() bool { return c.Stats().InFlight == 1 })
			if err := c.Cancel("manual", agentwire.CancelManual); err != nil {
				t.Fatal(err)
			}
			mustKind(t, <-done, ErrCanceled)
			if err := <-ended; !errors.Is(err, context.Canceled) {
				t.Fatalf("agent handler: %v", err)
			}
			a.waitFor(t, "second cancel", func() bool { return len(a.cancels) == 2 })
			a.mu.Lock()
			got = a.cancels[1]
			a.mu.Unlock()
			if got.CorrelationID != "manual" || got.Reason != agentwire.CancelManual {
				t.Fatalf("agent saw cancel %+v", got)
			}
		})
	}
}

// TestUDSCancelWireReason checks the 0-based reason byte for byte.
func TestUDSCancelWireReason(t *testing.T) {
	got := make(chan string, 1)
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		for {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ == frame.TypeCancel {
				got <- string(p)
			}
		}
	})
	c := dialUDS(t, fa.path)
	if err := c.Cancel("abc", agentwire.CancelTimeout); err != nil {
		t.Fatal(err)
	}
	p := <-got
	if !strings.HasPrefix(p, `{"correlation_id":"abc","reason":1,"timestamp_ms":`) {
		t.Fatalf("cancel payload %s", p)
	}
}

// TestUDSAgentReports: health, flow control, metrics and config-update
// requests pushed by the real agent server reach the Conn.
func TestUDSAgentReports(t *testing.T) {
	for _, m := range udsModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			ctx := testCtx(t)
			srv := startUDSAgent(t, newTestAgent(), agent.WithAgentID("rep"))
			metrics := make(chan *agentwire.MetricsReport, 1)
			health := make(chan agentwire.HealthStatus, 4)
			cfgReqs := make(chan *agentwire.ConfigUpdateRequest, 1)
			c := dialUDS(t, srv.path, append([]Option{
				WithOnMetrics(func(r *agentwire.MetricsReport) { metrics <- r }),
				WithOnHealth(func(h agentwire.HealthStatus) { health <- h }),
				WithOnConfigUpdate(func(r *agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse {
					cfgReqs <- r
					return agentwire.ConfigUpdateResponse{Accepted: true}
				}),
			}, m.opts...)...)

			// Health: DRAINING refuses new calls, HEALTHY admits them again.
			srv.srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthDraining, Message: agentwire.Some("bye")})
			if h := <-health; h.State != agentwire.HealthDraining || h.AgentID != "rep" || h.Message.Value != "bye" {
				t.Fatalf("health %+v", h)
			}
			_, err := c.RequestHeaders(ctx, headersEvent("h1"))
			mustKind(t, err, ErrDraining)
			srv.srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthHealthy})
			<-health
			if _, err := c.RequestHeaders(ctx, headersEvent("h2")); err != nil {
				t.Fatal(err)
			}

			// Flow control: connection-wide pause/resume, per id, capacity.
			srv.srv.SendFlowControl(agentwire.FlowControlSignal{Action: agentwire.FlowPause})
			waitUntil(t, "pause", nil, func() bool { return c.Health().Paused })
			_, err = c.RequestHeaders(ctx, headersEvent("f1"))
			mustKind(t, err, ErrFlowPaused)
			srv.srv.SendFlowControl(agentwire.FlowControlSignal{Action: agentwire.FlowResume})
			waitUntil(t, "resume", nil, func() bool { return !c.Health().Paused })
			srv.srv.SendFlowControl(agentwire.FlowControlSignal{Action: agentwire.FlowPause, CorrelationID: agentwire.Some("only-me")})
			waitUntil(t, "per-id pause", nil, func() bool { return c.Stats().FlowSignals == 3 })
			_, err = c.RequestHeaders(ctx, headersEvent("only-me"))
			mustKind(t, err, ErrFlowPaused)
			if _, err := c.RequestHeaders(ctx, headersEvent("someone-else")); err != nil {
				t.Fatal(err)
			}
			srv.srv.SendFlowControl(agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](7)})
			waitUntil(t, "capacity", nil, func() bool { return c.Health().Capacity == 7 })

			// Metrics.
			srv.srv.ReportMetrics(&agentwire.MetricsReport{IntervalMS: 1000,
				Counters: []agentwire.CounterMetric{{Name: "agent_requests_total", Help: "requests", Labels: map[string]string{"k": "v"}, Value: 42}},
				Gauges:   []agentwire.GaugeMetric{{Name: "agent_in_flight_requests", Value: 1.5}},
			})
			mr := <-metrics
			if mr.AgentID != "rep" || len(mr.Counters) != 1 || mr.Counters[0].Value != 42 || mr.Counters[0].Labels["k"] != "v" || mr.Gauges[0].Value != 1.5 {
				t.Fatalf("metrics %+v", mr)
			}

			// Config update: delivered to the callback; the answer has no
			// frame type and is counted as unanswered.
			_, err = srv.srv.RequestConfigUpdate(ctx, &agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigRuleUpdate, RequestID: "u-1", RuleSet: "crs",
				Rules: []agentwire.RuleDefinition{{ID: "942100", Priority: 1, Definition: json.RawMessage(`{"op":"rx"}`), Enabled: true}}})
			if !errors.Is(err, agent.ErrNoControlStream) {
				t.Fatalf("RequestConfigUpdate: %v", err)
			}
			cr := <-cfgReqs
			if cr.RequestID != "u-1" || cr.Kind != agentwire.ConfigRuleUpdate || cr.RuleSet != "crs" || len(cr.Rules) != 1 || string(cr.Rules[0].Definition) != `{"op":"rx"}` {
				t.Fatalf("config update %+v", cr)
			}
			waitUntil(t, "config answer counted", nil, func() bool { return c.Stats().ConfigUnanswered == 1 })
			if st := c.Stats(); st.HealthReports != 2 || st.MetricsReports != 1 || st.ConfigUpdates != 1 || st.ProtocolErrors != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestUDSNotSubscribed: an agent's supported_events (Unix-socket
// numbering) limit what the Conn sends.
func TestUDSNotSubscribed(t *testing.T) {
	fa := startRawAgent(t, func(rc *rawConn) {
		if _, _, err := rc.rd.ReadFrame(); err != nil {
			return
		}
		caps := fullCaps("sub")
		caps.SupportedEvents = []int32{0, 1}
		resp := agentwire.HandshakeResponse{ProtocolVersion: 2, Capabilities: caps, Success: true}
		_ = rc.writeFrame(frame.TypeHandshakeResponse, payload.AppendHandshakeResponseJSON(nil, &resp))
		rc.echoLoop()
	})
	c := dialUDS(t, fa.path)
	if ev := c.Capabilities().SupportedEvents; !reflect.DeepEqual(ev, []int32{8, 1}) {
		t.Fatalf("supported events %v, want [8 1] (proto numbering)", ev)
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("a")); err != nil {
		t.Fatal(err)
	}
	_, err := c.ResponseHeaders(testCtx(t), &agentwire.ResponseHeadersEvent{CorrelationID: "a", Status: 200})
	mustKind(t, err, ErrNotSubscribed)
}

// TestUDSReusedDestination: a dst reused across calls, and several callers
// sharing the reader's scratch reply (JSON replies are decoded there and
// swapped into dst), always end up with exactly their own reply: nothing
// of an earlier reply survives in dst, whatever it held.
func TestUDSReusedDestination(t *testing.T) {
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			a := newTestAgent()
			a.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
				if strings.HasPrefix(ev.Metadata.CorrelationID, "rich-") {
					r.Decision = agentwire.Block(451)
					r.RequestHeaders = []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-id", Value: ev.Metadata.CorrelationID}}
					r.RoutingMetadata = map[string]string{"id": ev.Metadata.CorrelationID}
					r.Audit.Tags = []string{"t-" + ev.Metadata.CorrelationID}
					r.Audit.Custom = map[string]json.RawMessage{"n": json.RawMessage(`1`)}
				}
				return nil
			}
			srv := startUDSAgent(t, a)
			var opts []Option
			if enc == "msgpack" {
				opts = append(opts, WithMsgpack())
			}
			c := dialUDS(t, srv.path, opts...)
			ctx := testCtx(t)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					var dst agentwire.AgentResponse
					for i := 0; i < 50; i++ {
						id := fmt.Sprintf("plain-%d-%d", w, i)
						if (i+w)%2 == 0 {
							id = fmt.Sprintf("rich-%d-%d", w, i)
						}
						if err := c.RequestHeadersInto(ctx, headersEvent(id), &dst); err != nil {
							errs <- err
							return
						}
						rich := strings.HasPrefix(id, "rich-")
						ok := dst.CorrelationID == id
						if rich {
							ok = ok && dst.Decision.Kind == agentwire.DecisionBlock && dst.Decision.Status == 451 &&
								len(dst.RequestHeaders) == 1 && dst.RequestHeaders[0].Value == id &&
								len(dst.RoutingMetadata) == 1 && dst.RoutingMetadata["id"] == id &&
								len(dst.Audit.Tags) == 1 && dst.Audit.Tags[0] == "t-"+id &&
								len(dst.Audit.Custom) == 1 && string(dst.Audit.Custom["n"]) == "1"
						} else {
							ok = ok && dst.Decision.Kind == agentwire.DecisionAllow && len(dst.RequestHeaders) == 0 &&
								len(dst.RoutingMetadata) == 0 && len(dst.Audit.Tags) == 0 && len(dst.Audit.Custom) == 0
						}
						if !ok {
							errs <- fmt.Errorf("%s: got %+v", id, dst)
							return
						}
					}
				}(w)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
