package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestHandshakeHeadersBeforeFirstMessage(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			e := startEnv(t, BaseHandler{}, network, WithAgentID("hs-agent"), WithName("hs"), WithVersion("1.2.3"))
			p := e.openRaw() // fails if the headers do not arrive before we send
			if got := p.header.Get("agentwire-control"); !slices.Equal(got, []string{"1"}) {
				t.Fatalf("agentwire-control header = %v, want [1]", got)
			}
			p.send(handshakeMsg(2, 1))
			hs := p.recv().GetHandshake()
			if hs == nil || !hs.Success || hs.ProtocolVersion != 2 || hs.Error != nil {
				t.Fatalf("handshake answer = %v", hs)
			}
			c := hs.Capabilities
			if c.GetAgentId() != "hs-agent" || c.GetName() != "hs" || c.GetVersion() != "1.2.3" || c.GetProtocolVersion() != 2 {
				t.Fatalf("capabilities identity = %v", c)
			}
			f := c.GetFeatures()
			if !f.StreamingBody || !f.Websocket || !f.Guardrails || !f.ConfigPush || !f.MetricsExport || !f.Cancellation ||
				!f.FlowControl || !f.HealthReporting || f.ConcurrentRequests != DefaultMaxConcurrency {
				t.Fatalf("features = %v, want full", f)
			}
			if l := c.GetLimits(); l.MaxBodySize != 10<<20 || l.MaxConcurrency != DefaultMaxConcurrency || l.PreferredChunkSize != 64<<10 ||
				l.GetMaxProcessingTimeMs() != 5000 {
				t.Fatalf("limits = %v", l)
			}
			if got := c.GetSupportedEvents(); !slices.Equal(got, []int32{1, 2, 3, 4, 5, 6, 7, 8}) {
				t.Fatalf("supported events = %v", got)
			}
			if c.GetHealthConfig().GetReportIntervalMs() != DefaultHealthReportIntervalMS {
				t.Fatalf("health config = %v", c.GetHealthConfig())
			}
		})
	}
}

func TestHandshakeRejectsOfferWithoutV2(t *testing.T) {
	e := startEnv(t, BaseHandler{}, "tcp")
	p := e.openRaw()
	p.send(handshakeMsg(1))
	hs := p.recv().GetHandshake()
	if hs == nil || hs.Success || hs.Error == nil || !strings.Contains(*hs.Error, "version 2") {
		t.Fatalf("handshake answer = %v, want failure naming version 2", hs)
	}
	// Events are still refused after the failed handshake: protocol error.
	p.send(reqHeaders("c1", "/"))
	_, err := p.s.Recv()
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("event after failed handshake: err = %v, want FailedPrecondition", err)
	}
	// A retry with version 2 on a new stream works.
	e.open()
}

func TestEventBeforeHandshakeIsProtocolError(t *testing.T) {
	e := startEnv(t, BaseHandler{}, "tcp")
	p := e.openRaw()
	// Pings are fine before the handshake.
	p.send(ping(1))
	if pong := p.recv().GetPong(); pong.GetSequence() != 1 {
		t.Fatalf("pong before handshake = %v", pong)
	}
	p.send(reqHeaders("c1", "/"))
	_, err := p.s.Recv()
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("err = %v, want FailedPrecondition", err)
	}
	if e.srv.Stats().ProtocolErrors != 1 {
		t.Fatalf("ProtocolErrors = %d", e.srv.Stats().ProtocolErrors)
	}
}

func TestHandshakeHooks(t *testing.T) {
	h := newHookHandler()
	e := startEnv(t, h, "tcp")

	// The config carried by the handshake reaches the Configurer; {} does not.
	p := e.openRaw()
	hsm := handshakeMsg(2)
	hsm.GetHandshake().ConfigJson = `{"rules":["a"]}`
	p.send(hsm)
	if hs := p.recv().GetHandshake(); !hs.GetSuccess() {
		t.Fatalf("handshake = %v", hs)
	}
	e.open()
	h.mu.Lock()
	if !slices.Equal(h.configs, []string{`={"rules":["a"]}`}) {
		t.Errorf("configs = %q", h.configs)
	}
	if len(h.handshakes) != 2 || h.handshakes[0].ProxyID != "zentinel-proxy" || !slices.Equal(h.handshakes[0].SupportedVersions, []uint32{2}) {
		t.Errorf("handshakes = %+v", h.handshakes)
	}
	h.rejectHS = "not my proxy"
	h.mu.Unlock()

	p = e.openRaw()
	p.send(handshakeMsg(2))
	if hs := p.recv().GetHandshake(); hs.GetSuccess() || hs.GetError() != "not my proxy" {
		t.Fatalf("rejected handshake = %v", hs)
	}

	h.mu.Lock()
	h.rejectHS = ""
	h.rejectCfg = `{"bad":true}`
	h.mu.Unlock()
	p = e.openRaw()
	hsm = handshakeMsg(2)
	hsm.GetHandshake().ConfigJson = `{"bad":true}`
	p.send(hsm)
	if hs := p.recv().GetHandshake(); hs.GetSuccess() || !strings.Contains(hs.GetError(), "configuration rejected") {
		t.Fatalf("handshake with rejected config = %v", hs)
	}
}

// TestEveryEventKind sends one event of each kind and checks both what the
// handler saw and the reply.
func TestEveryEventKind(t *testing.T) {
	for _, network := range []string{"tcp", "unix", "tcp-default-codec"} {
		t.Run(network, func(t *testing.T) { everyEventKind(t, network) })
	}
}

func everyEventKind(t *testing.T, network string) {
	var mu sync.Mutex
	seen := map[string]string{}
	rec := func(k, v string) { mu.Lock(); seen[k] = v; mu.Unlock() }
	total := uint64(99)
	h := &funcHandler{
		reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			rec("rh", fmt.Sprintf("%s %s %s %s:%d %v ts=%d hdr=%v", ev.Metadata.CorrelationID, ev.Method, ev.URI, ev.Metadata.ClientIP,
				ev.Metadata.ClientPort, ev.Metadata.Protocol, ev.Metadata.Timestamp.UnixMilli(), ev.Headers))
			r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-a", Value: "1"},
				agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: "x-b"})
			r.Audit.Tags = []string{"t1"}
			r.Audit.Custom = map[string]json.RawMessage{"k": json.RawMessage(`"v"`)}
			return nil
		},
		reqBody: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
			rec("rb", fmt.Sprintf("%s %q last=%v idx=%d total=%v bt=%d", ev.CorrelationID, ev.Data, ev.IsLast, ev.ChunkIndex, ev.TotalSize, ev.BytesTransferred))
			r.NeedsMore = true
			return nil
		},
		respHeaders: func(_ context.Context, ev *agentwire.ResponseHeadersEvent, r *agentwire.AgentResponse) error {
			rec("sh", fmt.Sprintf("%s %d %v", ev.CorrelationID, ev.Status, ev.Headers))
			r.ResponseHeaders = append(r.ResponseHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderAdd, Name: "x-r", Value: "2"})
			return nil
		},
		respBody: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
			rec("sb", fmt.Sprintf("%s %q last=%v", ev.CorrelationID, ev.Data, ev.IsLast))
			r.Decision = agentwire.Redirect("https://x/", 302)
			return nil
		},
		complete: func(_ context.Context, ev *agentwire.RequestCompleteEvent, r *agentwire.AgentResponse) error {
			rec("rc", fmt.Sprintf("%s %d %d %d %d att=%d err=%v", ev.CorrelationID, ev.Status, ev.DurationMS, ev.RequestBodySize, ev.ResponseBodySize, ev.UpstreamAttempts, ev.Error))
			return nil
		},
		ws: func(_ context.Context, ev *agentwire.WebSocketFrameEvent, r *agentwire.AgentResponse) error {
			rec("ws", fmt.Sprintf("%s %s %q c2s=%v fin=%v", ev.CorrelationID, ev.Opcode, ev.Data, ev.ClientToServer, ev.Fin))
			r.Decision = agentwire.Challenge("captcha", map[string]string{"site": "k"})
			return nil
		},
		guard: func(_ context.Context, ev *agentwire.GuardrailInspectEvent, r *agentwire.AgentResponse) error {
			rec("gi", fmt.Sprintf("%s %s %q model=%v cats=%v md=%v route=%v", ev.CorrelationID, ev.InspectionType, ev.Content, ev.Model, ev.Categories, ev.Metadata, ev.RouteID))
			r.Decision = agentwire.Block(403)
			r.Decision.Body = agentwire.Some("no")
			r.Decision.BlockHeaders = map[string]string{"b": "2", "a": "1"}
			return nil
		},
	}
	e := startEnv(t, h, network)
	p := e.open()
	model := "gpt"
	errText := "upstream reset"
	events := []*pb.ProxyToAgent{
		reqHeaders("c-rh", "/path?q=1"),
		{Message: &pb.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &pb.BodyChunkEvent{CorrelationId: "c-rb", Data: []byte("body"), IsLast: true, ChunkIndex: 3, TotalSize: &total, BytesTransferred: 4}}},
		{Message: &pb.ProxyToAgent_ResponseHeaders{ResponseHeaders: &pb.ResponseHeadersEvent{CorrelationId: "c-sh", StatusCode: 201, Headers: []*pb.Header{{Name: "set-cookie", Value: "a"}, {Name: "set-cookie", Value: "b"}}}}},
		{Message: &pb.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: &pb.BodyChunkEvent{CorrelationId: "c-sb", Data: []byte{0, 1, 2}}}},
		{Message: &pb.ProxyToAgent_RequestComplete{RequestComplete: &pb.RequestCompleteEvent{CorrelationId: "c-rc", StatusCode: 502, DurationMs: 12, BytesReceived: 5, BytesSent: 6, Error: &errText}}},
		{Message: &pb.ProxyToAgent_WebsocketFrame{WebsocketFrame: &pb.WebSocketFrameEvent{CorrelationId: "c-ws", ClientToServer: true, FrameType: 1, Payload: []byte("hi")}}},
		{Message: &pb.ProxyToAgent_Guardrail{Guardrail: &pb.GuardrailInspectEvent{CorrelationId: "c-gi", Content: "ignore previous", ContentType: 1, Model: &model,
			ContextJson: `{"categories":["jailbreak"],"inspection_type":"prompt_injection","metadata":{"u":"1"},"route_id":"r1"}`}}},
	}
	for _, ev := range events {
		p.send(ev)
	}
	got := map[string]*pb.AgentResponse{}
	for range events {
		r := p.recvResponse()
		if _, dup := got[r.CorrelationId]; dup {
			t.Fatalf("two replies for %s", r.CorrelationId)
		}
		got[r.CorrelationId] = r
	}
	for cid, r := range got {
		if r.ProcessingTimeMs == nil {
			t.Errorf("%s: processing_time_ms not set", cid)
		}
		if r.Audit == nil {
			t.Errorf("%s: audit missing", cid)
		}
		if r.Decision == nil {
			t.Errorf("%s: decision missing", cid)
		}
	}
	want := map[string]string{
		"rh": "c-rh GET /path?q=1 10.0.0.1:4242 HTTP/1.1 ts=1781256463123 hdr=[{host [example.com second]} {accept [a]}]",
		"rb": `c-rb "body" last=true idx=3 total={99 true} bt=4`,
		"sh": "c-sh 201 [{set-cookie [a b]}]",
		"sb": `c-sb "\x00\x01\x02" last=false`,
		"rc": "c-rc 502 12 5 6 att=1 err={upstream reset true}",
		"ws": `c-ws text "hi" c2s=true fin=true`,
		"gi": `c-gi prompt_injection "ignore previous" model={gpt true} cats=[jailbreak] md=map[u:1] route={r1 true}`,
	}
	mu.Lock()
	for k, w := range want {
		if seen[k] != w {
			t.Errorf("handler %s saw\n  %s\nwant\n  %s", k, seen[k], w)
		}
	}
	mu.Unlock()

	rh := got["c-rh"]
	if rh.GetAllow() == nil || !hasSetOp(rh.RequestHeaders, "x-a", "1") || rh.RequestHeaders[1].GetRemove() != "x-b" ||
		!slices.Equal(rh.Audit.Tags, []string{"t1"}) || rh.Audit.Custom["k"] != `"v"` {
		t.Errorf("request headers reply = %v", rh)
	}
	if !got["c-rb"].NeedsMore || got["c-rb"].GetAllow() == nil {
		t.Errorf("request body reply = %v", got["c-rb"])
	}
	if a := got["c-sh"].ResponseHeaders; len(a) != 1 || a[0].GetAdd().GetName() != "x-r" {
		t.Errorf("response headers reply = %v", got["c-sh"])
	}
	if r := got["c-sb"].GetRedirect(); r.GetUrl() != "https://x/" || r.GetStatus() != 302 {
		t.Errorf("response body reply = %v", got["c-sb"])
	}
	if got["c-rc"].GetAllow() == nil {
		t.Errorf("request complete reply = %v", got["c-rc"])
	}
	if c := got["c-ws"].GetChallenge(); c.GetChallengeType() != "captcha" || c.GetParams()["site"] != "k" {
		t.Errorf("websocket reply = %v", got["c-ws"])
	}
	b := got["c-gi"].GetBlock()
	if b.GetStatus() != 403 || b.GetBody() != "no" || len(b.Headers) != 2 || b.Headers[0].Name != "a" || b.Headers[1].Name != "b" {
		t.Errorf("guardrail reply = %v", got["c-gi"])
	}
}

func TestPingPong(t *testing.T) {
	e := startEnv(t, BaseHandler{}, "tcp")
	p := e.open()
	for seq := uint64(0); seq < 3; seq++ {
		before := uint64(time.Now().UnixMilli())
		p.send(ping(seq))
		pong := p.recv().GetPong()
		if pong == nil || pong.Sequence != seq || pong.PingTimestampMs != 1000+seq || pong.TimestampMs < before {
			t.Fatalf("pong = %v", pong)
		}
	}
}

func TestHandlerErrorAndPanicUseErrorDecision(t *testing.T) {
	h := &funcHandler{reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Name: "x-partial", Value: "1"})
		switch ev.URI {
		case "/err":
			return errors.New("boom")
		case "/panic":
			panic("kaboom")
		}
		return nil
	}}
	for _, tc := range []struct {
		name string
		opts []Option
		want func(*pb.AgentResponse) bool
	}{
		{"default allow", nil, func(r *pb.AgentResponse) bool { return r.GetAllow() != nil }},
		{"fail closed", []Option{WithErrorDecision(agentwire.Block(503))}, func(r *pb.AgentResponse) bool { return r.GetBlock().GetStatus() == 503 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, h, "tcp", tc.opts...)
			p := e.open()
			for _, uri := range []string{"/err", "/panic"} {
				p.send(reqHeaders("c"+uri, uri))
				r := p.recvResponse()
				if r.CorrelationId != "c"+uri || !tc.want(r) || len(r.RequestHeaders) != 0 || r.ProcessingTimeMs == nil {
					t.Fatalf("%s: reply = %v", uri, r)
				}
			}
			p.send(reqHeaders("ok", "/ok"))
			if r := p.recvResponse(); r.GetAllow() == nil || len(r.RequestHeaders) != 1 {
				t.Fatalf("after errors: reply = %v", r)
			}
			if st := e.srv.Stats(); st.HandlerErrors != 1 || st.HandlerPanics != 1 {
				t.Fatalf("HandlerErrors = %d, HandlerPanics = %d", st.HandlerErrors, st.HandlerPanics)
			}
		})
	}
}

func TestCancelCancelsContextAndIsNotAnswered(t *testing.T) {
	h := newHookHandler()
	started := make(chan string, 4)
	h.reqHeaders = func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		started <- ev.Metadata.CorrelationID
		<-ctx.Done()
		r.Audit.Tags = append(r.Audit.Tags, "cancelled")
		return nil
	}
	e := startEnv(t, h, "tcp")
	p := e.open()
	p.send(reqHeaders("victim", "/slow"))
	recvTimeout(t, started, "handler start")
	p.send(cancelMsg("victim", 2))
	r := p.recvResponse()
	if r.CorrelationId != "victim" || !slices.Equal(r.Audit.GetTags(), []string{"cancelled"}) {
		t.Fatalf("reply after cancel = %v", r)
	}
	h.waitCall(t, "cancel")
	// A cancel for an unknown id is ignored too; the next message is the pong.
	p.send(cancelMsg("unknown", 1))
	p.send(ping(9))
	if m := p.recv(); m.GetPong().GetSequence() != 9 {
		t.Fatalf("message after cancels = %v, want the pong (cancels are never answered)", m)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.cancels) != 2 || h.cancels[0] != (agentwire.Cancel{CorrelationID: "victim", Reason: agentwire.CancelTimeout, TimestampMS: 7}) {
		t.Fatalf("cancels = %+v", h.cancels)
	}
	if s := e.srv.Stats(); s.Cancels != 2 {
		t.Fatalf("Cancels = %d", s.Cancels)
	}
}

func TestStreamEndCancelsRequests(t *testing.T) {
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return ctx.Err()
	}}
	e := startEnv(t, h, "tcp")
	p := e.open()
	p.send(reqHeaders("c", "/"))
	recvTimeout(t, started, "handler start")
	p.cancel() // the proxy goes away
	if err := recvTimeout(t, ended, "ctx cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("ctx err = %v", err)
	}
}

func TestConcurrentRepliesRoutedByCorrelationID(t *testing.T) {
	var mu sync.Mutex
	release := map[string]chan struct{}{}
	started := make(chan string, 8)
	gate := func(cid string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		ch, ok := release[cid]
		if !ok {
			ch = make(chan struct{})
			release[cid] = ch
		}
		return ch
	}
	h := &funcHandler{reqHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		cid := ev.Metadata.CorrelationID
		started <- cid
		<-gate(cid)
		r.Audit.Tags = append(r.Audit.Tags, "for-"+cid)
		if ev.URI == "/block" {
			r.Decision = agentwire.Block(401)
		}
		return nil
	}}
	e := startEnv(t, h, "unix")
	p := e.open()
	p.send(reqHeaders("A", "/a"))
	p.send(reqHeaders("B", "/block"))
	p.send(reqHeaders("C", "/c"))
	for range 3 {
		recvTimeout(t, started, "handlers to start concurrently")
	}
	for _, cid := range []string{"C", "A", "B"} {
		close(gate(cid))
		r := p.recvResponse()
		if r.CorrelationId != cid || !slices.Equal(r.Audit.GetTags(), []string{"for-" + cid}) {
			t.Fatalf("reply = %v, want the one for %s", r, cid)
		}
		if (cid == "B") != (r.GetBlock().GetStatus() == 401) {
			t.Fatalf("decision for %s = %v", cid, r.Decision)
		}
	}
}

func TestConcurrencyBound(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started <- struct{}{}
		<-release
		running.Add(-1)
		return nil
	}}
	e := startEnv(t, h, "tcp", WithMaxConcurrency(2))
	p := e.open()
	for i := range 5 {
		p.send(reqHeaders(fmt.Sprint("c", i), "/"))
	}
	recvTimeout(t, started, "first handler")
	recvTimeout(t, started, "second handler")
	// The third must not start while two are running; a ping is still
	// answered only after a slot frees (the reader waits), so check the
	// counter instead.
	select {
	case <-started:
		t.Fatal("a third handler started beyond the bound")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	for range 5 {
		p.recvResponse()
	}
	if peak.Load() != 2 {
		t.Fatalf("peak concurrency = %d, want 2", peak.Load())
	}
}

func TestConfigureEventOnProcessStream(t *testing.T) {
	h := newHookHandler()
	var cfgSeen atomic.Value
	h.reqHeaders = func(_ context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		h.mu.Lock()
		cfgSeen.Store(strings.Join(h.configs, ";"))
		h.mu.Unlock()
		return nil
	}
	e := startEnv(t, h, "tcp")
	p := e.open()
	v := "v7"
	p.send(&pb.ProxyToAgent{Message: &pb.ProxyToAgent_Configure{Configure: &pb.ConfigureEvent{ConfigJson: `{"mode":"strict"}`, ConfigVersion: &v, TimestampMs: 1}}})
	p.send(reqHeaders("after", "/"))
	r := p.recvResponse() // the configure itself is not answered
	if r.CorrelationId != "after" {
		t.Fatalf("first reply = %v", r)
	}
	if got := cfgSeen.Load(); got != `v7={"mode":"strict"}` {
		t.Fatalf("event after configure saw configs %q", got)
	}
}

func TestConfigureBeforeHandshakeIsProtocolError(t *testing.T) {
	e := startEnv(t, newHookHandler(), "tcp")
	p := e.openRaw()
	p.send(&pb.ProxyToAgent{Message: &pb.ProxyToAgent_Configure{Configure: &pb.ConfigureEvent{ConfigJson: "{}"}}})
	if _, err := p.s.Recv(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("err = %v", err)
	}
}

func TestPushesReachTheProxy(t *testing.T) {
	e := startEnv(t, BaseHandler{}, "tcp", WithAgentID("pusher"))
	p := e.open()
	// Pushes only go to established streams; make sure ours is registered
	// as established by doing one round trip first.
	p.send(ping(1))
	p.recv()

	e.srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: 2, DisabledFeatures: []string{"bodies"}})
	m := p.recv().GetHealth()
	if m.GetAgentId() != "pusher" || m.GetState() != 2 || m.GetTimeoutMultiplier() != 2 || !slices.Equal(m.GetDisabledFeatures(), []string{"bodies"}) || m.GetTimestampMs() == 0 {
		t.Fatalf("health = %v", m)
	}
	e.srv.ReportMetrics(&agentwire.MetricsReport{IntervalMS: 1000, Counters: []agentwire.CounterMetric{{Name: "agent_requests_total", Value: 5}},
		Gauges: []agentwire.GaugeMetric{{Name: "g", Help: "h", Value: 1.5}}, Histograms: []agentwire.HistogramMetric{{Name: "hst", Sum: 1, Count: 2, Buckets: []agentwire.HistogramBucket{{Le: 0.5, Count: 1}}}}})
	mr := p.recv().GetMetrics()
	if mr.GetAgentId() != "pusher" || mr.GetCounters()[0].GetValue() != 5 || mr.GetCounters()[0].Help != nil || mr.GetGauges()[0].GetHelp() != "h" ||
		mr.GetHistograms()[0].GetBuckets()[0].GetLe() != 0.5 || mr.GetIntervalMs() != 1000 {
		t.Fatalf("metrics = %v", mr)
	}
	e.srv.SendFlowControl(agentwire.FlowControlSignal{Action: agentwire.FlowPause, CorrelationID: agentwire.Some("c1")})
	fc := p.recv().GetFlowControl()
	if fc.GetAction() != 1 || fc.GetCorrelationId() != "c1" || fc.GetTimestampMs() == 0 {
		t.Fatalf("flow control = %v", fc)
	}
	e.srv.Log(agentwire.LogMessage{Level: agentwire.LogWarn, Message: "hello", Fields: map[string]string{"a": "b"}})
	lg := p.recv().GetLog()
	if lg.GetLevel() != 3 || lg.GetMessage() != "hello" || lg.GetFields()["a"] != "b" {
		t.Fatalf("log = %v", lg)
	}

	// A proxy that connects later gets the last health report right after
	// its handshake.
	p2 := e.open()
	if h := p2.recv().GetHealth(); h.GetState() != 2 {
		t.Fatalf("health after handshake = %v", h)
	}
}

func TestProcessEventUnary(t *testing.T) {
	e := startEnv(t, &funcHandler{guard: func(_ context.Context, ev *agentwire.GuardrailInspectEvent, r *agentwire.AgentResponse) error {
		r.Decision = agentwire.Block(451)
		return nil
	}}, "tcp")
	ctx := testCtx(t)
	hs, err := e.client.ProcessEvent(ctx, handshakeMsg(2, 1))
	if err != nil || !hs.GetHandshake().GetSuccess() || hs.GetHandshake().GetProtocolVersion() != 2 {
		t.Fatalf("handshake: %v %v", hs, err)
	}
	r, err := e.client.ProcessEvent(ctx, reqHeaders("u1", "/"))
	if err != nil || r.GetResponse().GetCorrelationId() != "u1" || r.GetResponse().GetAllow() == nil || r.GetResponse().ProcessingTimeMs == nil {
		t.Fatalf("request headers: %v %v", r, err)
	}
	r, err = e.client.ProcessEvent(ctx, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Guardrail{Guardrail: &pb.GuardrailInspectEvent{CorrelationId: "g1", Content: "x"}}})
	if err != nil || r.GetResponse().GetBlock().GetStatus() != 451 {
		t.Fatalf("guardrail: %v %v", r, err)
	}
	pong, err := e.client.ProcessEvent(ctx, ping(5))
	if err != nil || pong.GetPong().GetSequence() != 5 || pong.GetPong().GetPingTimestampMs() != 1005 {
		t.Fatalf("ping: %v %v", pong, err)
	}
	for _, bad := range []*pb.ProxyToAgent{cancelMsg("x", 1), {Message: &pb.ProxyToAgent_Configure{Configure: &pb.ConfigureEvent{}}}, {}} {
		if _, err := e.client.ProcessEvent(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%v: err = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	var ctxErr atomic.Value
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		started <- struct{}{}
		<-release
		ctxErr.Store(fmt.Sprint(ctx.Err()))
		r.Decision = agentwire.Block(418)
		return nil
	}}
	e := startEnv(t, h, "tcp")
	p := e.open()
	p.send(reqHeaders("inflight", "/"))
	recvTimeout(t, started, "handler start")

	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(testCtx(t)) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	// New streams are refused while shutting down.
	s2, err := e.client.ProcessStream(testCtx(t))
	if err == nil {
		_, err = s2.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("new stream during shutdown: %v", err)
	}
	close(release)
	r := p.recvResponse()
	if r.CorrelationId != "inflight" || r.GetBlock().GetStatus() != 418 {
		t.Fatalf("in-flight reply = %v", r)
	}
	if _, err := p.s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream end = %v, want Unavailable", err)
	}
	if err := recvTimeout(t, done, "Shutdown"); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if ctxErr.Load() != "<nil>" {
		t.Fatalf("graceful shutdown cancelled the handler context: %v", ctxErr.Load())
	}
	// Idempotent.
	if err := e.srv.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	e.srv.Close()
}

func TestShutdownTimeoutFallsBackToClose(t *testing.T) {
	started := make(chan struct{}, 1)
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		started <- struct{}{}
		<-ctx.Done() // only Close's cancellation ends this handler
		return ctx.Err()
	}}
	e := startEnv(t, h, "tcp")
	p := e.open()
	p.send(reqHeaders("stuck", "/"))
	recvTimeout(t, started, "handler start")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if _, err := p.s.Recv(); err == nil {
		// The reply may or may not make it out before the stream ends;
		// the stream must end in any case.
		if _, err := p.s.Recv(); err == nil {
			t.Fatal("stream still open after Shutdown fell back to Close")
		}
	}
}

func TestDrainReportsDrainingAndWaits(t *testing.T) {
	e, p, release := startHeldRequest(t, "d1")
	done := make(chan error, 1)
	go func() { done <- e.srv.Drain(testCtx(t)) }()
	if hs := p.recv().GetHealth(); hs.GetState() != int32(agentwire.HealthDraining) {
		t.Fatalf("health = %v, want draining", hs)
	}
	select {
	case err := <-done:
		t.Fatalf("Drain returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r := p.recvResponse(); r.CorrelationId != "d1" {
		t.Fatalf("reply = %v", r)
	}
	if err := recvTimeout(t, done, "Drain"); err != nil {
		t.Fatal(err)
	}
	// The stream keeps working after Drain.
	p.send(ping(3))
	if pong := p.recv().GetPong(); pong.GetSequence() != 3 {
		t.Fatalf("pong after drain = %v", pong)
	}
	// Drain while idle returns at once, even with a done context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Drain(ctx); err != nil {
		t.Fatalf("Drain while idle = %v", err)
	}
}

func TestCloseCancelsInFlight(t *testing.T) {
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return nil
	}}
	e := startEnv(t, h, "unix")
	p := e.open()
	p.send(reqHeaders("x", "/"))
	recvTimeout(t, started, "handler start")
	e.srv.Close()
	if err := recvTimeout(t, ended, "ctx cancellation"); !errors.Is(err, context.Canceled) {
		t.Fatalf("ctx err = %v", err)
	}
	e.srv.Close() // idempotent
	if err := e.srv.ServeGRPC(nil); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeGRPC after Close = %v", err)
	}
}

func TestDuplicateCorrelationIDsInFlight(t *testing.T) {
	started := make(chan struct{}, 4)
	h := &funcHandler{reqHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		started <- struct{}{}
		<-ctx.Done()
		r.Audit.Tags = []string{ev.URI}
		return nil
	}}
	e := startEnv(t, h, "tcp")
	p := e.open()
	p.send(reqHeaders("same", "/1"))
	p.send(reqHeaders("same", "/2"))
	recvTimeout(t, started, "first")
	recvTimeout(t, started, "second")
	p.send(cancelMsg("same", 6))
	uris := []string{p.recvResponse().Audit.Tags[0], p.recvResponse().Audit.Tags[0]}
	slices.Sort(uris)
	if !slices.Equal(uris, []string{"/1", "/2"}) {
		t.Fatalf("replies for %v", uris)
	}
}

func TestInitialConfigureRepeatingHandshakeConfigIsSkipped(t *testing.T) {
	h := newHookHandler()
	e := startEnv(t, h, "tcp")
	p := e.openRaw()
	hs := handshakeMsg(2)
	hs.GetHandshake().ConfigJson = `{"a":1}`
	p.send(hs)
	if !p.recv().GetHandshake().GetSuccess() {
		t.Fatal("handshake failed")
	}
	v := "v1"
	for _, ev := range []*pb.ConfigureEvent{
		{ConfigJson: `{"a":1}`, IsInitial: true, ConfigVersion: &v}, // repeat of the handshake: skipped
		{ConfigJson: `{"a":1}`, ConfigVersion: &v},                  // explicit push: applied
		{ConfigJson: `{"a":2}`, IsInitial: true},                    // different: applied
	} {
		p.send(&pb.ProxyToAgent{Message: &pb.ProxyToAgent_Configure{Configure: ev}})
	}
	p.send(ping(1))
	p.recv() // the configure events are handled before the ping
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := []string{`={"a":1}`, `v1={"a":1}`, `={"a":2}`}; !slices.Equal(h.configs, want) {
		t.Fatalf("configs = %q, want %q", h.configs, want)
	}
}
