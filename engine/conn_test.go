package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

func TestRoundTripEveryEventKind(t *testing.T) {
	a := newTestAgent()
	var seen sync.Map
	a.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		seen.Store("rh", fmt.Sprintf("%s %s %s %v %s", ev.Method, ev.URI, ev.Metadata.ClientIP, ev.Headers.Values("accept"), ev.Metadata.Traceparent))
		r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-a", Value: "1"})
		r.Audit.Tags = []string{"t1"}
		r.Audit.Custom = map[string]json.RawMessage{"n": json.RawMessage("7"), "s": json.RawMessage(`"v"`)}
		return nil
	}
	a.reqBody = func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		seen.Store("rb", fmt.Sprintf("%q %v %d", ev.Data, ev.IsLast, ev.ChunkIndex))
		r.NeedsMore = true
		return nil
	}
	a.respHeaders = func(_ context.Context, ev *agentwire.ResponseHeadersEvent, r *agentwire.AgentResponse) error {
		seen.Store("sh", fmt.Sprintf("%d %v", ev.Status, ev.Headers.Values("set-cookie")))
		r.ResponseHeaders = append(r.ResponseHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: "server"})
		return nil
	}
	a.respBody = func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		seen.Store("sb", fmt.Sprintf("%q", ev.Data))
		r.Decision = agentwire.Block(451)
		r.Decision.Body = agentwire.Some("gone")
		r.Decision.BlockHeaders = map[string]string{"x-why": "legal"}
		return nil
	}
	a.complete = func(_ context.Context, ev *agentwire.RequestCompleteEvent, r *agentwire.AgentResponse) error {
		seen.Store("rc", fmt.Sprintf("%d %d %v", ev.Status, ev.DurationMS, ev.Error))
		return nil
	}
	a.ws = func(_ context.Context, ev *agentwire.WebSocketFrameEvent, r *agentwire.AgentResponse) error {
		seen.Store("ws", fmt.Sprintf("%s %q %v", ev.Opcode, ev.Data, ev.ClientToServer))
		r.Decision = agentwire.Redirect("https://elsewhere/", 302)
		return nil
	}
	a.guard = func(_ context.Context, ev *agentwire.GuardrailInspectEvent, r *agentwire.AgentResponse) error {
		seen.Store("gr", fmt.Sprintf("%s %s %v %v %v", ev.InspectionType, ev.Content, ev.Model, ev.Categories, ev.Metadata))
		r.Decision = agentwire.Challenge("captcha", map[string]string{"k": "v"})
		return nil
	}
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	ctx := testCtx(t)

	rh := headersEvent("c-rh")
	rh.Headers = append(rh.Headers, agentwire.Header{Name: "accept", Values: []string{"a/b", "c/d"}})
	rh.Metadata.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	r, err := c.RequestHeaders(ctx, rh)
	if err != nil {
		t.Fatal(err)
	}
	if r.CorrelationID != "c-rh" || r.Version != 2 || r.Decision.Kind != agentwire.DecisionAllow ||
		len(r.RequestHeaders) != 1 || r.RequestHeaders[0] != (agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-a", Value: "1"}) ||
		len(r.Audit.Tags) != 1 || string(r.Audit.Custom["n"]) != "7" || string(r.Audit.Custom["s"]) != `"v"` || !r.ProcessingTimeMS.Valid {
		t.Fatalf("request headers reply: %+v", r)
	}
	if r, err = c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "c-rh", Data: []byte("body\x00"), ChunkIndex: 2}); err != nil || !r.NeedsMore {
		t.Fatalf("request body: %v %+v", err, r)
	}
	if r, err = c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: "c-rh", Status: 201,
		Headers: agentwire.Headers{{Name: "set-cookie", Values: []string{"a=1", "b=2"}}}}); err != nil ||
		len(r.ResponseHeaders) != 1 || r.ResponseHeaders[0].Kind != agentwire.HeaderRemove {
		t.Fatalf("response headers: %v %+v", err, r)
	}
	if r, err = c.ResponseBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "c-rh", Data: []byte("out"), IsLast: true}); err != nil ||
		r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 451 || r.Decision.Body.Value != "gone" || r.Decision.BlockHeaders["x-why"] != "legal" {
		t.Fatalf("response body: %v %+v", err, r)
	}
	if r, err = c.RequestComplete(ctx, &agentwire.RequestCompleteEvent{CorrelationID: "c-rh", Status: 201, DurationMS: 9, Error: agentwire.Some("x")}); err != nil ||
		r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("request complete: %v %+v", err, r)
	}
	if r, err = c.WebSocketFrame(ctx, &agentwire.WebSocketFrameEvent{CorrelationID: "c-ws", Opcode: "binary", Data: []byte{1, 2}, ClientToServer: true}); err != nil ||
		r.Decision.Kind != agentwire.DecisionRedirect || r.Decision.URL != "https://elsewhere/" || r.Decision.Status != 302 {
		t.Fatalf("websocket: %v %+v", err, r)
	}
	if r, err = c.GuardrailInspect(ctx, &agentwire.GuardrailInspectEvent{CorrelationID: "c-gr", InspectionType: agentwire.InspectionPIIDetection,
		Content: "call me", Model: agentwire.Some("m1"), Categories: []string{"email"}, Metadata: map[string]string{"k": "v"}}); err != nil ||
		r.Decision.Kind != agentwire.DecisionChallenge || r.Decision.Params["k"] != "v" {
		t.Fatalf("guardrail: %v %+v", err, r)
	}

	want := map[string]string{
		"rh": "GET /c-rh 127.0.0.1 [a/b c/d] 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"rb": `"body\x00" false 2`,
		"sh": "201 [a=1 b=2]",
		"sb": `"out"`,
		"rc": "201 9 {x true}",
		"ws": `binary "\x01\x02" true`,
		"gr": "pii_detection call me {m1 true} [email] map[k:v]",
	}
	for k, v := range want {
		got, _ := seen.Load(k)
		if got != v {
			t.Errorf("agent saw %s = %q, want %q", k, got, v)
		}
	}
	st := c.Stats()
	if st.Received != 7 || st.Sent < 7 || st.Errors != 0 || st.InFlight != 0 {
		t.Fatalf("stats: %+v", st)
	}
	caps := c.Capabilities()
	if caps.ProtocolVersion != 2 || caps.AgentID == "" || len(caps.SupportedEvents) == 0 {
		t.Fatalf("capabilities: %+v", caps)
	}
}

func TestReplyMatchesCallerUnderConcurrency(t *testing.T) {
	const n = 10000
	a := newTestAgent()
	a.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		r.Audit.Tags = append(r.Audit.Tags, ev.URI)
		return nil
	}
	srv := startAgent(t, a, agent.WithMaxConcurrency(n))
	c := dial(t, srv.addr)
	// Generous: 10,000 calls under -race on a shared 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var bad atomic.Int32
	errs := make(chan error, 1)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cid := fmt.Sprintf("req-%d", i)
			r, err := c.RequestHeaders(ctx, headersEvent(cid))
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				bad.Add(1)
				return
			}
			if r.CorrelationID != cid || len(r.Audit.Tags) != 1 || r.Audit.Tags[0] != "/"+cid {
				bad.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if b := bad.Load(); b != 0 {
		select {
		case err := <-errs:
			t.Fatalf("%d of %d calls failed or mismatched; first error: %v", b, n, err)
		default:
			t.Fatalf("%d of %d replies did not match their caller", b, n)
		}
	}
	if st := c.Stats(); st.Received != n || st.InFlight != 0 || st.Orphans != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDuplicateCorrelationID(t *testing.T) {
	release := make(chan struct{})
	a := holdingAgent(release)
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	ctx := testCtx(t)
	first := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(ctx, headersEvent("dup"))
		first <- err
	}()
	waitUntil(t, "first request in flight", nil, func() bool { return c.Stats().Sent >= 1 })
	_, err := c.RequestHeaders(ctx, headersEvent("dup"))
	mustKind(t, err, ErrDuplicateCorrelationID)
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	if _, err := c.RequestHeaders(ctx, headersEvent("dup")); err != nil {
		t.Fatalf("id reusable after completion: %v", err)
	}
	if c.Stats().Duplicates != 1 {
		t.Fatalf("stats: %+v", c.Stats())
	}
}

func TestInvalidEvents(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	c := dial(t, srv.addr, WithMaxSendSize(2048))
	ctx := testCtx(t)
	_, err := c.RequestHeaders(ctx, nil)
	mustKind(t, err, ErrInvalidEvent)
	// An empty correlation id is generated, not refused (cid_test.go).
	ev := headersEvent("")
	r, err := c.RequestHeaders(ctx, ev)
	if err != nil || ev.Metadata.CorrelationID == "" || r.CorrelationID != ev.Metadata.CorrelationID {
		t.Fatalf("empty correlation id: %v, event id %q, reply id %q", err, ev.Metadata.CorrelationID, r.CorrelationID)
	}
	err = c.RequestHeadersInto(ctx, headersEvent("bad\xff"), new(agentwire.AgentResponse))
	mustKind(t, err, ErrInvalidEvent)
	// Refused calls are failed calls: Stats.Errors counts them.
	if st := c.Stats(); st.Errors != 2 || st.InFlight != 0 {
		t.Fatalf("after two refused calls: %+v", st)
	}
	_, err = c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "big", Data: make([]byte, 4096)})
	mustKind(t, err, ErrMessageTooLarge)
	if !strings.Contains(err.Error(), "limit 2048") {
		t.Fatalf("message too large error is not explicit: %v", err)
	}
	if _, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "small", Data: make([]byte, 1024)}); err != nil {
		t.Fatal(err)
	}
	mustKind(t, c.Cancel("x", 0), ErrInvalidEvent)
	mustKind(t, c.Configure(ctx, &agentwire.ConfigureEvent{Config: json.RawMessage("{nope")}), ErrInvalidEvent)
}

func TestNotSubscribed(t *testing.T) {
	caps := agentwire.Capabilities{SupportedEvents: []int32{agentwire.EventRequestHeaders}, Limits: agentwire.DefaultLimits()}
	srv := startAgent(t, newTestAgent(), agent.WithCapabilities(caps))
	c := dial(t, srv.addr)
	ctx := testCtx(t)
	if _, err := c.RequestHeaders(ctx, headersEvent("a")); err != nil {
		t.Fatal(err)
	}
	_, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "a"})
	mustKind(t, err, ErrNotSubscribed)
	_, err = c.GuardrailInspect(ctx, &agentwire.GuardrailInspectEvent{CorrelationID: "a"})
	mustKind(t, err, ErrNotSubscribed)
	// Configuration is always allowed.
	if err := c.Configure(ctx, &agentwire.ConfigureEvent{Config: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
}

func TestPingMeasuresRTT(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	c := dial(t, srv.addr)
	for range 3 {
		rtt, err := c.Ping(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if rtt <= 0 || rtt > testTimeout {
			t.Fatalf("rtt %v", rtt)
		}
	}
	if st := c.Stats(); st.Pings != 3 || st.Pongs != 3 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestConfigurationDelivery(t *testing.T) {
	a := newTestAgent()
	srv := startAgent(t, a)
	c := dial(t, srv.addr, WithAgentConfig(json.RawMessage(`{"rules":1}`)), WithProxyID("edge-1"), WithProxyVersion("9.9"))
	// The agent server applies the handshake configuration and skips the
	// identical initial configure event that follows it (the wire carries
	// both; TestRustLikeAgent checks that).
	a.waitFor(t, "handshake configuration", func() bool { return len(a.configs) >= 1 })
	a.mu.Lock()
	hs := a.handshakes[0]
	first := append([]string(nil), a.configs...)
	a.mu.Unlock()
	if string(hs.Config) != `{"rules":1}` || hs.ProxyID != "edge-1" || hs.ProxyVersion != "9.9" || len(hs.SupportedVersions) != 1 || hs.SupportedVersions[0] != 2 {
		t.Fatalf("handshake: %+v", hs)
	}
	if first[0] != ` {"rules":1}` {
		t.Fatalf("configs: %q", first)
	}
	if err := c.Configure(testCtx(t), &agentwire.ConfigureEvent{Config: json.RawMessage(`{"rules":2}`), ConfigVersion: agentwire.Some("v2")}); err != nil {
		t.Fatal(err)
	}
	// Configure is ordered before later events: the hook has run once a
	// later request is answered.
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	last := a.configs[len(a.configs)-1]
	a.mu.Unlock()
	if last != `v2 {"rules":2}` {
		t.Fatalf("configure: %q", last)
	}
}

func TestCloseIsIdempotentAndFailsPending(t *testing.T) {
	a := newTestAgent()
	a.reqHeaders = func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		<-ctx.Done()
		return nil
	}
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	errc := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(context.Background(), headersEvent("p"))
		errc <- err
	}()
	waitUntil(t, "request in flight", nil, func() bool { return c.Stats().Sent >= 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mustKind(t, <-errc, ErrClosed)
	_, err := c.RequestHeaders(testCtx(t), headersEvent("q"))
	mustKind(t, err, ErrClosed)
	_, err = c.Ping(testCtx(t))
	mustKind(t, err, ErrClosed)
	mustKind(t, c.Cancel("q", agentwire.CancelManual), ErrClosed)
	if c.Health().Connected {
		t.Fatal("closed Conn reports connected")
	}
}

func TestDialErrors(t *testing.T) {
	ctx := testCtx(t)
	if _, err := Dial(ctx, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "WithInsecure") {
		t.Fatalf("plaintext without WithInsecure: %v", err)
	}
	if _, err := Dial(ctx, "grpcs://127.0.0.1:1", WithInsecure()); err == nil {
		t.Fatal("grpcs with WithInsecure accepted")
	}
	if _, err := Dial(ctx, "grpc://127.0.0.1:1", WithInsecure(), WithRingSize(1)); err == nil {
		t.Fatal("ring size 1 accepted")
	}
	if _, err := Dial(ctx, "unix:///nonexistent/agent.sock", WithWriteTimeout(-time.Second)); err == nil || !strings.Contains(err.Error(), "write timeout") {
		t.Fatalf("negative write timeout: %v", err)
	}
	// Nothing listens: the connect timeout bounds Dial.
	start := time.Now()
	_, err := Dial(ctx, "grpc://127.0.0.1:1", WithInsecure(), WithConnectTimeout(200*time.Millisecond))
	mustKind(t, err, ErrConnectFailed)
	if time.Since(start) > 3*time.Second {
		t.Fatalf("dial took %v", time.Since(start))
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]endpoint{
		"grpc://127.0.0.1:50051":    {target: "dns:///127.0.0.1:50051", plain: true},
		"http://agent:80/":          {target: "dns:///agent:80", plain: true},
		"grpcs://agent.example:443": {target: "dns:///agent.example:443", tls: true},
		"https://agent:8443":        {target: "dns:///agent:8443", tls: true},
		"localhost:9000":            {target: "dns:///localhost:9000"},
		"[::1]:9000":                {target: "dns:///[::1]:9000"},
		"grpc+unix:///run/a.sock":   {target: "unix:///run/a.sock", unix: true},
	} {
		got, err := parseEndpoint(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "ftp://x:1", "nohost", "grpc+unix://relative"} {
		if _, err := parseEndpoint(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestEncodedBytesReachAgentIntact(t *testing.T) {
	// A 200 KiB body crosses several HTTP/2 frames and the pooled-buffer
	// tiers; the agent must see it byte for byte.
	a := newTestAgent()
	var got []byte
	var mu sync.Mutex
	a.reqBody = func(_ context.Context, ev *agentwire.BodyChunk, _ *agentwire.AgentResponse) error {
		mu.Lock()
		got = append([]byte(nil), ev.Data...)
		mu.Unlock()
		return nil
	}
	srv := startAgent(t, a)
	c := dial(t, srv.addr)
	body := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16)
	if _, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: "big", Data: body, IsLast: true}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(got, body) {
		t.Fatalf("body differs: %d bytes received", len(got))
	}
}

// A correlation id that is not valid UTF-8 is refused before it goes out:
// every transport carries it as text (repaired to U+FFFD), so the reply
// would name a different id and the call could only time out.
func TestInvalidUTF8CorrelationIDRefused(t *testing.T) {
	c := memConn(t)
	mustKind(t, func() error { _, err := c.RequestHeaders(testCtx(t), headersEvent("bad\xff")); return err }(), ErrInvalidEvent)
	mustKind(t, c.Cancel("bad\xff", agentwire.CancelManual), ErrInvalidEvent)
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("good-é")); err != nil {
		t.Fatal(err)
	}
}
