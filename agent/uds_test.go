package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

const goldenCID = "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7"

// keysOf returns the sorted keys of a JSON object.
func keysOf(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestUDSHandshakeShape checks the 0x02 answer against the golden
// UdsHandshakeResponse: every top-level, capability, feature and limit key,
// UDS event numbering, protocol version 2 and the chosen encoding.
func TestUDSHandshakeShape(t *testing.T) {
	e := startUDS(t, BaseHandler{}, WithAgentID("waf-1"), WithVersion("1.2.3"))
	p := dialRaw(t, e.path)
	stock := goldenByName(t, "handshake.json", "handshake_request_stock_proxy")
	p.send(frame.TypeHandshakeRequest, []byte(stock.JSONPayload))
	typ, got := p.recv()
	if typ != frame.TypeHandshakeResponse {
		t.Fatalf("type %v", typ)
	}
	want := goldenByName(t, "handshake.json", "handshake_response_full_features_msgpack")
	var g, w map[string]json.RawMessage
	json.Unmarshal(got, &g)
	json.Unmarshal([]byte(want.JSONPayload), &w)
	if gk, wk := keysOf(t, got), keysOf(t, []byte(want.JSONPayload)); !slices.Equal(gk, wk) {
		t.Errorf("top-level keys %v, want %v", gk, wk)
	}
	var gc, wc map[string]json.RawMessage
	json.Unmarshal(g["capabilities"], &gc)
	json.Unmarshal(w["capabilities"], &wc)
	if gk, wk := keysOf(t, g["capabilities"]), keysOf(t, w["capabilities"]); !slices.Equal(gk, wk) {
		t.Errorf("capability keys %v, want %v", gk, wk)
	}
	for _, k := range []string{"features", "limits"} {
		if gk, wk := keysOf(t, gc[k]), keysOf(t, wc[k]); !slices.Equal(gk, wk) {
			t.Errorf("%s keys %v, want %v", k, gk, wk)
		}
	}
	var hs agentwire.HandshakeResponse
	if err := payload.DecodeHandshakeResponseJSON(got, &hs); err != nil {
		t.Fatalf("strict decode of %s: %v", got, err)
	}
	if !hs.Success || hs.ProtocolVersion != 2 || hs.Encoding != "json" || hs.Error.Valid {
		t.Errorf("answer %s", got)
	}
	if hs.Capabilities.AgentID != "waf-1" || hs.Capabilities.Version != "1.2.3" {
		t.Errorf("capabilities %+v", hs.Capabilities)
	}
	if hs.Capabilities.Features != agentwire.FullFeatures() {
		t.Errorf("features %+v", hs.Capabilities.Features)
	}
	if !slices.Contains(hs.Capabilities.SupportedEvents, 0) || slices.Contains(hs.Capabilities.SupportedEvents, 8) {
		t.Errorf("supported_events %v: want UDS numbering (Configure = 0)", hs.Capabilities.SupportedEvents)
	}
	if string(g["error"]) != "null" {
		t.Errorf("error = %s", g["error"])
	}
}

func TestUDSEncodingNegotiation(t *testing.T) {
	cases := []struct {
		name    string
		offer   []string
		opts    []Option
		want    string // "" = failure
		errPart string
	}{
		{"json only", []string{"json"}, nil, "json", ""},
		{"msgpack first", []string{"msgpack", "json"}, nil, "msgpack", ""},
		{"json first", []string{"json", "msgpack"}, nil, "json", ""},
		{"absent", nil, nil, "json", ""},
		{"msgpack only", []string{"msgpack"}, nil, "msgpack", ""},
		{"msgpack first, disabled", []string{"msgpack", "json"}, []Option{WithEncodings("json")}, "json", ""},
		{"msgpack only, disabled", []string{"msgpack"}, []Option{WithEncodings("json")}, "", "offered encodings"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startUDS(t, BaseHandler{}, tc.opts...)
			p := dialRaw(t, e.path)
			b := p.handshakeRaw(tc.offer)
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			var hs agentwire.HandshakeResponse
			if err := payload.DecodeHandshakeResponseJSON(b, &hs); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if tc.want == "" {
				if hs.Success || !strings.Contains(hs.Error.Value, tc.errPart) {
					t.Fatalf("want failure mentioning %q, got %s", tc.errPart, b)
				}
				if enc, ok := raw["encoding"]; ok && !slices.Contains(tc.offer, strings.Trim(string(enc), `"`)) {
					t.Errorf("failure answers encoding %s, which was not offered", enc)
				}
				p.expectClosed()
				return
			}
			if !hs.Success || string(raw["encoding"]) != `"`+tc.want+`"` {
				t.Fatalf("want success with %q, got %s", tc.want, b)
			}
			// The negotiated encoding is really used for the reply.
			msgpack := tc.want == "msgpack"
			if msgpack {
				p.send(frame.TypeRequestHeaders, reqHeadersMsgpack("n-1", "/"))
			} else {
				p.send(frame.TypeRequestHeaders, reqHeadersJSON("n-1", "/"))
			}
			if r := p.recvReply(msgpack); r.CorrelationID != "n-1" {
				t.Fatalf("reply cid %q", r.CorrelationID)
			}
		})
	}
}

func TestUDSHandshakeFailures(t *testing.T) {
	t.Run("event first", func(t *testing.T) {
		e := startUDS(t, BaseHandler{})
		p := dialRaw(t, e.path)
		p.send(frame.TypeRequestHeaders, reqHeadersJSON("x", "/"))
		typ, b := p.recv()
		var hs agentwire.HandshakeResponse
		if typ != frame.TypeHandshakeResponse || payload.DecodeHandshakeResponseJSON(b, &hs) != nil || hs.Success {
			t.Fatalf("got %v %s", typ, b)
		}
		p.expectClosed()
	})
	t.Run("bad json", func(t *testing.T) {
		e := startUDS(t, BaseHandler{})
		p := dialRaw(t, e.path)
		p.send(frame.TypeHandshakeRequest, []byte(`{"supported_versions":[2],`))
		_, b := p.recv()
		var hs agentwire.HandshakeResponse
		if payload.DecodeHandshakeResponseJSON(b, &hs) != nil || hs.Success || !hs.Error.Valid {
			t.Fatalf("got %s", b)
		}
		p.expectClosed()
	})
	t.Run("version 2 not offered", func(t *testing.T) {
		e := startUDS(t, BaseHandler{})
		p := dialRaw(t, e.path)
		p.send(frame.TypeHandshakeRequest, []byte(`{"supported_versions":[1],"proxy_id":"p","proxy_version":"1"}`))
		_, b := p.recv()
		var hs agentwire.HandshakeResponse
		if payload.DecodeHandshakeResponseJSON(b, &hs) != nil || hs.Success {
			t.Fatalf("got %s", b)
		}
		p.expectClosed()
	})
	t.Run("hook rejects", func(t *testing.T) {
		h := newHookHandler()
		h.rejectHS = "go away"
		e := startUDS(t, h)
		p := dialRaw(t, e.path)
		b := p.handshakeRaw([]string{"json"})
		var hs agentwire.HandshakeResponse
		if payload.DecodeHandshakeResponseJSON(b, &hs) != nil || hs.Success || hs.Error.Value != "go away" {
			t.Fatalf("got %s", b)
		}
		p.expectClosed()
	})
	t.Run("silent proxy", func(t *testing.T) {
		e := startUDS(t, BaseHandler{}, WithHandshakeTimeout(50*time.Millisecond))
		p := dialRaw(t, e.path)
		p.expectClosed()
	})
	t.Run("handshake config", func(t *testing.T) {
		h := newHookHandler()
		e := startUDS(t, h)
		p := dialRaw(t, e.path)
		g := goldenByName(t, "handshake.json", "handshake_request_with_config")
		p.send(frame.TypeHandshakeRequest, []byte(g.JSONPayload))
		_, b := p.recv()
		var hs agentwire.HandshakeResponse
		if payload.DecodeHandshakeResponseJSON(b, &hs) != nil || !hs.Success {
			t.Fatalf("got %s", b)
		}
		h.mu.Lock()
		if len(h.configs) != 1 || !strings.Contains(h.configs[0], `"paranoia":2`) {
			t.Fatalf("configs %q", h.configs)
		}
		h.mu.Unlock()
		// The same configuration as the first 0x17 (what an agentwire
		// engine sends after connecting) is answered but not applied
		// twice; a later one is applied.
		cfg := `{"allow_list":["10.0.0.0/8"],"mode":"block","paranoia":2}`
		for i := range 2 {
			p.send(frame.TypeConfigure, []byte(`{"config":`+cfg+`,"config_version":"v1","correlation_id":"cfg-`+fmt.Sprint(i)+`"}`))
			if r := p.recvReply(false); r.CorrelationID != "cfg-"+fmt.Sprint(i) || r.Decision.Kind != agentwire.DecisionAllow {
				t.Fatalf("reply %+v", r)
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.configs) != 2 || h.configs[1] != "v1="+cfg {
			t.Fatalf("configs %q", h.configs)
		}
	})
}

// goldenRecorder records what the handler saw per correlation id.
type goldenRecorder struct {
	mu    sync.Mutex
	kinds map[string]bool
	seen  map[string]string // event kind by correlation id
	last  map[string]string // a key field of the decoded event
}

func newGoldenRecorder() *goldenRecorder {
	return &goldenRecorder{seen: map[string]string{}, last: map[string]string{}, kinds: map[string]bool{}}
}

func (g *goldenRecorder) note(cid, kind, detail string) {
	g.mu.Lock()
	g.seen[cid] = kind
	g.kinds[kind] = true
	g.last[cid] = detail
	g.mu.Unlock()
}

func (g *goldenRecorder) handler() *funcHandler {
	return &funcHandler{
		reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			g.note(r.CorrelationID, "request_headers", ev.Method+" "+ev.URI)
			return nil
		},
		reqBody: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
			g.note(r.CorrelationID, "request_body_chunk", fmt.Sprintf("%d bytes", len(ev.Data)))
			return nil
		},
		respHeaders: func(_ context.Context, ev *agentwire.ResponseHeadersEvent, r *agentwire.AgentResponse) error {
			g.note(r.CorrelationID, "response_headers", fmt.Sprint(ev.Status))
			return nil
		},
		respBody: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
			g.note(r.CorrelationID, "response_body_chunk", fmt.Sprintf("%d bytes", len(ev.Data)))
			return nil
		},
		complete: func(_ context.Context, ev *agentwire.RequestCompleteEvent, r *agentwire.AgentResponse) error {
			g.note(r.CorrelationID, "request_complete", fmt.Sprint(ev.Status))
			return nil
		},
		ws: func(_ context.Context, ev *agentwire.WebSocketFrameEvent, r *agentwire.AgentResponse) error {
			g.note(r.CorrelationID, "websocket_frame", ev.Opcode)
			r.WebSocketDecision = agentwire.Some(agentwire.WebSocketDecision{Kind: agentwire.WebSocketDrop})
			return nil
		},
		guard: func(_ context.Context, ev *agentwire.GuardrailInspectEvent, r *agentwire.AgentResponse) error {
			g.note(r.CorrelationID, "guardrail_inspect", ev.InspectionType)
			r.Decision = agentwire.Block(403)
			return nil
		},
	}
}

// TestUDSGoldenEvents sends every golden event, in JSON and (where the
// vector has one) in the Rust proxy's MessagePack form, and checks that each
// is answered with version 2 and its routing correlation id, and that the
// handler saw the decoded event.
func TestUDSGoldenEvents(t *testing.T) {
	vectors := loadGolden(t, "events.json")
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			rec := newGoldenRecorder()
			h := &configHandler{funcHandler: rec.handler()}
			e := startUDS(t, h)
			p := dialRaw(t, e.path)
			p.handshake(enc)
			msgpack := enc == "msgpack"
			sent := 0
			for _, g := range vectors {
				data := []byte(g.JSONPayload)
				if msgpack {
					if data = g.msgpack(t); data == nil {
						continue
					}
				}
				typ := g.typ(t)
				p.send(typ, data)
				sent++
				want := goldenTopCID(t, g)
				typ2, b := p.recv()
				if typ2 != frame.TypeAgentResponse {
					t.Fatalf("%s: got frame %v", g.Name, typ2)
				}
				r := decodeReply(t, b, msgpack)
				if r.CorrelationID != want || r.Version != 2 {
					t.Errorf("%s: reply cid %q version %d, want %q 2", g.Name, r.CorrelationID, r.Version, want)
				}
				if !msgpack {
					// Raw shape: version and audit.custom.correlation_id as a string.
					var raw struct {
						Version *int `json:"version"`
						Audit   struct {
							Custom map[string]any `json:"custom"`
						} `json:"audit"`
					}
					if err := json.Unmarshal(b, &raw); err != nil || raw.Version == nil || *raw.Version != 2 || raw.Audit.Custom["correlation_id"] != want {
						t.Errorf("%s: raw reply %s", g.Name, b)
					}
				}
				switch typ {
				case frame.TypeConfigure:
					h.mu.Lock()
					n := len(h.versions)
					last := ""
					if n > 0 {
						last = h.versions[n-1]
					}
					h.mu.Unlock()
					if last != "v3" || r.Decision.Kind != agentwire.DecisionAllow {
						t.Errorf("%s: configure version %q, decision %v", g.Name, last, r.Decision.Kind)
					}
				case frame.TypeGuardrailInspect:
					if r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 403 {
						t.Errorf("%s: guardrail decision %+v", g.Name, r.Decision)
					}
				case frame.TypeWebSocketFrame:
					if !r.WebSocketDecision.Valid || r.WebSocketDecision.Value.Kind != agentwire.WebSocketDrop {
						t.Errorf("%s: websocket decision %+v", g.Name, r.WebSocketDecision)
					}
				}
			}
			if sent < 10 {
				t.Fatalf("only %d vectors sent", sent)
			}
			st := e.srv.Stats()
			if st.DecodeErrors != 0 {
				t.Errorf("%d decode errors", st.DecodeErrors)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.kinds) != 7 {
				t.Errorf("handler saw kinds %v, want all 7", rec.kinds)
			}
			t.Logf("%d events answered", sent)
		})
	}
}

// goldenTopCID is the routing id of a golden event: its JSON payload's
// top-level correlation_id.
func goldenTopCID(t *testing.T, g goldenVector) string {
	t.Helper()
	var v struct {
		CID string `json:"correlation_id"`
	}
	if err := json.Unmarshal([]byte(g.JSONPayload), &v); err != nil || v.CID == "" {
		t.Fatalf("%s: no top-level correlation_id (%v)", g.Name, err)
	}
	return v.CID
}

// configHandler adds a Configurer to a funcHandler.
type configHandler struct {
	*funcHandler
	mu       sync.Mutex
	versions []string
	reject   bool
}

func (h *configHandler) OnConfigure(_ context.Context, cfg json.RawMessage, version string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.versions = append(h.versions, version)
	if h.reject {
		return errors.New("no thanks")
	}
	return nil
}

func TestUDSConfigureRejected(t *testing.T) {
	h := &configHandler{funcHandler: &funcHandler{}, reject: true}
	e := startUDS(t, h)
	p := dialRaw(t, e.path)
	p.handshake("json")
	g := goldenByName(t, "events.json", "configure")
	p.send(frame.TypeConfigure, []byte(g.JSONPayload))
	r := p.recvReply(false)
	if r.CorrelationID != "cfg-1" || r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 500 ||
		r.Decision.Body.Value != "Configuration rejected" {
		t.Fatalf("reply %+v", r)
	}
}

// TestUDSRoutingID checks that the reply carries the envelope's top-level
// correlation_id, also when it is not the first key or differs from
// metadata.correlation_id, and in both encodings.
func TestUDSRoutingID(t *testing.T) {
	e := startUDS(t, BaseHandler{})
	p := dialRaw(t, e.path)
	p.handshake("json")
	base := reqHeadersJSON("meta-id", "/")
	// Move the top-level key to the end and change it.
	var m map[string]json.RawMessage
	json.Unmarshal(base, &m)
	delete(m, "correlation_id")
	b, _ := json.Marshal(m) // keys sorted: headers, metadata, method, uri
	withEnv := append(b[:len(b)-1:len(b)-1], `,"correlation_id":"route-\u0041"}`...)
	p.send(frame.TypeRequestHeaders, withEnv)
	if r := p.recvReply(false); r.CorrelationID != "route-A" {
		t.Fatalf("cid %q, want route-A", r.CorrelationID)
	}
	// Without a top-level key the metadata id is used.
	p.send(frame.TypeRequestHeaders, b)
	if r := p.recvReply(false); r.CorrelationID != "meta-id" {
		t.Fatalf("cid %q, want meta-id", r.CorrelationID)
	}
}

func TestUDSPingAndUnknownType(t *testing.T) {
	e := startUDS(t, BaseHandler{})
	p := dialRaw(t, e.path)
	p.handshake("json")
	// Unknown type bytes (0x99, and the docs' 0xF0 ping) are skipped.
	for _, typ := range []byte{0x99, 0xF0} {
		raw := []byte{0, 0, 0, 4, typ, 'a', 'b', 'c'}
		p.writeRaw(raw)
	}
	g := goldenByName(t, "control.json", "ping_seq_1")
	p.send(frame.TypePing, []byte(g.JSONPayload))
	typ, b := p.recv()
	if typ != frame.TypePong || string(b) != g.JSONPayload {
		t.Fatalf("got %v %s, want pong echoing %s", typ, b, g.JSONPayload)
	}
	// A valid type a proxy never sends is ignored too.
	p.send(frame.TypeAgentResponse, []byte(`{}`))
	p.ping(7)
	p.expectPongOnly()
	if st := e.srv.Stats(); st.IgnoredFrames != 3 {
		t.Fatalf("IgnoredFrames = %d, want 3", st.IgnoredFrames)
	}
}

// TestUDSGarbageEventFailsClosed: an event that cannot be decoded is
// answered at once, with the best-effort correlation id, and by default
// with block 503 (never a silent allow: REFERENCE-DEFECTS B-S8).
func TestUDSGarbageEventFailsClosed(t *testing.T) {
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			e := startUDS(t, BaseHandler{})
			p := dialRaw(t, e.path)
			p.handshake(enc)
			msgpack := enc == "msgpack"
			cases := []struct {
				payload []byte
				cid     string
			}{
				{[]byte(`{"correlation_id":"g-1","metadata":`), "g-1"},
				{[]byte(`{"metadata":{"correlation_id":"g-2"},"method":17}`), "g-2"},
				{[]byte(`not json at all`), ""},
			}
			if msgpack {
				// {correlation_id: "g-1", metadata: nil} (metadata must not be nil)
				cases = append(cases, struct {
					payload []byte
					cid     string
				}{[]byte{0x82, 0xae, 'c', 'o', 'r', 'r', 'e', 'l', 'a', 't', 'i', 'o', 'n', '_', 'i', 'd', 0xa3, 'g', '-', '4', 0xa8, 'm', 'e', 't', 'a', 'd', 'a', 't', 'a', 0xc0}, "g-4"})
			}
			for _, tc := range cases {
				p.send(frame.TypeRequestHeaders, tc.payload)
				r := p.recvReply(msgpack)
				if r.CorrelationID != tc.cid || r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 503 {
					t.Errorf("%q: reply cid %q decision %v", tc.payload, r.CorrelationID, r.Decision.Kind)
				}
			}
			if st := e.srv.Stats(); st.DecodeErrors != uint64(len(cases)) {
				t.Errorf("DecodeErrors = %d, want %d", st.DecodeErrors, len(cases))
			}
		})
	}
	t.Run("websocket frame", func(t *testing.T) {
		e := startUDS(t, BaseHandler{})
		p := dialRaw(t, e.path)
		p.handshake("json")
		p.send(frame.TypeWebSocketFrame, []byte(`{"correlation_id":"w-1","opcode":"text","data":17}`))
		r := p.recvReply(false)
		ws, ok := r.WebSocketDecision.Get()
		if r.CorrelationID != "w-1" || r.Decision.Kind != agentwire.DecisionBlock || !ok ||
			ws.Kind != agentwire.WebSocketClose || ws.Code != 1011 {
			t.Fatalf("reply %+v", r)
		}
	})
	t.Run("explicit fail open", func(t *testing.T) {
		// The handler-error decision does not apply to decode errors.
		e := startUDS(t, BaseHandler{}, WithDecodeErrorDecision(agentwire.Allow()), WithErrorDecision(agentwire.Block(500)))
		p := dialRaw(t, e.path)
		p.handshake("json")
		p.send(frame.TypeRequestBodyChunk, []byte(`{"correlation_id":"g-3","data":"!!"}`))
		r := p.recvReply(false)
		if r.CorrelationID != "g-3" || r.Decision.Kind != agentwire.DecisionAllow {
			t.Fatalf("reply %+v", r)
		}
		p.send(frame.TypeWebSocketFrame, []byte(`{"correlation_id":"w-2","opcode":"text","data":17}`))
		r = p.recvReply(false)
		if ws, ok := r.WebSocketDecision.Get(); r.CorrelationID != "w-2" || !ok || ws.Kind != agentwire.WebSocketAllow {
			t.Fatalf("reply %+v", r)
		}
	})
}

// TestUDSCancel checks that a cancel reaches the request's context, is never
// answered, and that the cancelled request is still answered once.
func TestUDSCancel(t *testing.T) {
	for _, enc := range []string{"json", "msgpack"} {
		t.Run(enc, func(t *testing.T) {
			started := make(chan struct{}, 1)
			cancelled := make(chan error, 1)
			hh := newHookHandler()
			hh.reqHeaders = func(ctx context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
				started <- struct{}{}
				select {
				case <-ctx.Done():
					cancelled <- ctx.Err()
				case <-time.After(testTimeout):
					cancelled <- errors.New("not cancelled")
				}
				r.Decision = agentwire.Block(499)
				return nil
			}
			e := startUDS(t, hh)
			p := dialRaw(t, e.path)
			p.handshake(enc)
			msgpack := enc == "msgpack"
			if msgpack {
				p.send(frame.TypeRequestHeaders, reqHeadersMsgpack(goldenCID, "/slow"))
			} else {
				p.send(frame.TypeRequestHeaders, reqHeadersJSON(goldenCID, "/slow"))
			}
			recvTimeout(t, started, "handler start")
			g := goldenByName(t, "control.json", "cancel_timeout")
			p.send(frame.TypeCancel, []byte(g.JSONPayload))
			if err := recvTimeout(t, cancelled, "cancel"); !errors.Is(err, context.Canceled) {
				t.Fatalf("ctx error %v", err)
			}
			r := p.recvReply(msgpack)
			if r.CorrelationID != goldenCID || r.Decision.Status != 499 {
				t.Fatalf("reply %+v", r)
			}
			// Nothing answers the cancel itself: the next frame is the pong.
			p.ping(1)
			p.expectPongOnly()
			hh.mu.Lock()
			defer hh.mu.Unlock()
			if len(hh.cancels) != 1 || hh.cancels[0].Reason != agentwire.CancelTimeout || hh.cancels[0].CorrelationID != goldenCID {
				t.Fatalf("OnCancel got %+v", hh.cancels)
			}
		})
	}
	t.Run("msgpack-encoded cancel", func(t *testing.T) {
		hh := newHookHandler()
		e := startUDS(t, hh)
		p := dialRaw(t, e.path)
		p.handshake("msgpack")
		// {correlation_id: "c-9", reason: 5, timestamp_ms: 7}
		mp := []byte{0x83, 0xae}
		mp = append(mp, "correlation_id"...)
		mp = append(mp, 0xa3, 'c', '-', '9', 0xa6)
		mp = append(mp, "reason"...)
		mp = append(mp, 0x05, 0xac)
		mp = append(mp, "timestamp_ms"...)
		mp = append(mp, 0x07)
		p.send(frame.TypeCancel, mp)
		hh.waitCall(t, "cancel")
		hh.mu.Lock()
		defer hh.mu.Unlock()
		if hh.cancels[0].CorrelationID != "c-9" || hh.cancels[0].Reason != agentwire.CancelManual {
			t.Fatalf("cancel %+v", hh.cancels[0])
		}
	})
}

// TestUDSPipelinedOutOfOrder sends two requests; the first waits until the
// second has been answered.
func TestUDSPipelinedOutOfOrder(t *testing.T) {
	release := make(chan struct{})
	h := &funcHandler{reqHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		if ev.URI == "/first" {
			<-release
		}
		r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-uri", Value: ev.URI})
		return nil
	}}
	e := startUDS(t, h)
	p := dialRaw(t, e.path)
	p.handshake("json")
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("a", "/first"))
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("b", "/second"))
	if r := p.recvReply(false); r.CorrelationID != "b" || r.RequestHeaders[0].Value != "/second" {
		t.Fatalf("first reply %+v", r)
	}
	close(release)
	if r := p.recvReply(false); r.CorrelationID != "a" || r.RequestHeaders[0].Value != "/first" {
		t.Fatalf("second reply %+v", r)
	}
}

// TestUDSConcurrencyBound checks WithMaxConcurrency: with a bound of 2 the
// third event waits for a slot.
func TestUDSConcurrencyBound(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	h := &funcHandler{reqHeaders: func(ctx context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return nil
	}}
	e := startUDS(t, h, WithMaxConcurrency(2))
	p := dialRaw(t, e.path)
	p.handshake("json")
	for i := range 5 {
		p.send(frame.TypeRequestHeaders, reqHeadersJSON(fmt.Sprint("c", i), "/"))
	}
	waitFor(t, "two handlers", func() bool { return running.Load() == 2 })
	time.Sleep(20 * time.Millisecond)
	if peak.Load() != 2 {
		t.Fatalf("peak %d, want 2", peak.Load())
	}
	close(release)
	got := map[string]bool{}
	for range 5 {
		got[p.recvReply(false).CorrelationID] = true
	}
	if len(got) != 5 {
		t.Fatalf("replies %v", got)
	}
}

func TestUDSHalfFrameThenClose(t *testing.T) {
	e := startUDS(t, BaseHandler{})
	p := dialRaw(t, e.path)
	p.handshake("json")
	waitFor(t, "connection registered", func() bool { return e.srv.Stats().Conns == 1 })
	p.writeRaw([]byte{0, 0, 0, 100, byte(frame.TypeRequestHeaders), '{', '"'})
	p.c.Close()
	waitFor(t, "connection gone", func() bool { return e.srv.Stats().Conns == 0 })
}

func TestUDSOversizedFrame(t *testing.T) {
	e := startUDS(t, BaseHandler{}, WithMaxFrameSize(4096))
	good := dialRaw(t, e.path)
	good.handshake("json")
	bad := dialRaw(t, e.path)
	bad.handshake("json")
	bad.writeRaw([]byte{0, 0, 0x10, 0x01, byte(frame.TypeRequestHeaders)}) // LEN 4097
	bad.expectClosed()
	good.send(frame.TypeRequestHeaders, reqHeadersJSON("ok", "/"))
	if r := good.recvReply(false); r.CorrelationID != "ok" {
		t.Fatalf("reply %+v", r)
	}
	// The protocol limit (16 MiB) applies without the option.
	e2 := startUDS(t, BaseHandler{})
	p := dialRaw(t, e2.path)
	p.handshake("json")
	p.writeRaw([]byte{0x01, 0x00, 0x00, 0x01, byte(frame.TypeRequestHeaders)}) // 16 MiB + 1
	p.expectClosed()
	if st := e2.srv.Stats(); st.ProtocolErrors != 1 {
		t.Errorf("ProtocolErrors = %d", st.ProtocolErrors)
	}
}

func TestUDSHandlerErrorAndPanic(t *testing.T) {
	h := &funcHandler{
		reqHeaders: func(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error {
			return errors.New("boom")
		},
		reqBody: func(context.Context, *agentwire.BodyChunk, *agentwire.AgentResponse) error { panic("kaboom") },
	}
	e := startUDS(t, h, WithErrorDecision(agentwire.Block(503)))
	p := dialRaw(t, e.path)
	p.handshake("json")
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("e-1", "/"))
	if r := p.recvReply(false); r.CorrelationID != "e-1" || r.Decision.Status != 503 {
		t.Fatalf("reply %+v", r)
	}
	p.send(frame.TypeRequestBodyChunk, []byte(`{"correlation_id":"e-2","data":"","is_last":true}`))
	if r := p.recvReply(false); r.CorrelationID != "e-2" || r.Decision.Status != 503 {
		t.Fatalf("reply %+v", r)
	}
	if st := e.srv.Stats(); st.HandlerErrors != 1 || st.HandlerPanics != 1 {
		t.Fatalf("HandlerErrors = %d, HandlerPanics = %d", st.HandlerErrors, st.HandlerPanics)
	}
}

// TestUDSMsgpackUnencodableReply: an audit.custom value that is not JSON
// cannot be carried in MessagePack; the error decision goes out instead.
func TestUDSMsgpackUnencodableReply(t *testing.T) {
	h := &funcHandler{reqHeaders: func(_ context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		r.Audit.Custom = map[string]json.RawMessage{"bad": json.RawMessage("{nope")}
		r.Decision = agentwire.Block(401)
		return nil
	}}
	e := startUDS(t, h)
	p := dialRaw(t, e.path)
	p.handshake("msgpack")
	p.send(frame.TypeRequestHeaders, reqHeadersMsgpack("u-1", "/"))
	if r := p.recvReply(true); r.CorrelationID != "u-1" || r.Decision.Kind != agentwire.DecisionAllow ||
		!slices.Equal(r.Audit.Tags, []string{TagHandlerError}) || len(r.Audit.Custom) != 0 {
		t.Fatalf("reply %+v", r)
	}
	if st := e.srv.Stats(); st.HandlerErrors != 1 || st.HandlerPanics != 0 {
		t.Fatalf("HandlerErrors = %d, HandlerPanics = %d", st.HandlerErrors, st.HandlerPanics)
	}
}

func TestUDSPushes(t *testing.T) {
	for _, tc := range []struct {
		enc    string
		inline bool
	}{{"json", false}, {"msgpack", false}, {"json", true}, {"msgpack", true}} {
		enc := tc.enc
		name := enc
		opts := []Option{WithAgentID("push-agent")}
		if tc.inline {
			// Pushes go through the short-lived push writer (uds_push.go).
			name += "/inline"
			opts = append(opts, WithInlineHandlers())
		}
		t.Run(name, func(t *testing.T) {
			e := startUDS(t, BaseHandler{}, opts...)
			p := dialRaw(t, e.path)
			p.handshake(enc)
			msgpack := enc == "msgpack"
			waitFor(t, "connection registered", func() bool { return e.srv.Stats().Conns == 1 })

			e.srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: 1.5})
			typ, b := p.recv()
			var hs agentwire.HealthStatus
			var err error
			if msgpack {
				err = payload.DecodeHealthStatusMsgpack(b, &hs)
			} else {
				err = payload.DecodeHealthStatusJSON(b, &hs)
				var raw struct{ State *int }
				if json.Unmarshal(b, &raw) != nil || raw.State == nil || *raw.State != 2 {
					t.Errorf("health JSON %s lacks integer state", b)
				}
			}
			if typ != frame.TypeHealthStatus || err != nil || hs.State != agentwire.HealthDegraded || hs.AgentID != "push-agent" {
				t.Fatalf("health frame %v %x: %v %+v", typ, b, err, hs)
			}

			e.srv.ReportMetrics(&agentwire.MetricsReport{IntervalMS: 1000, Counters: []agentwire.CounterMetric{{Name: "agent_requests_total", Value: 3}}})
			typ, b = p.recv()
			var mr agentwire.MetricsReport
			if msgpack {
				err = payload.DecodeMetricsReportMsgpack(b, &mr)
			} else {
				err = payload.DecodeMetricsReportJSON(b, &mr)
			}
			if typ != frame.TypeMetricsReport || err != nil || mr.AgentID != "push-agent" || len(mr.Counters) != 1 {
				t.Fatalf("metrics frame %v: %v %+v", typ, err, mr)
			}

			e.srv.SendFlowControl(agentwire.FlowControlSignal{Action: agentwire.FlowPause})
			typ, b = p.recv()
			var fc agentwire.FlowControlSignal
			if msgpack {
				err = payload.DecodeFlowControlSignalMsgpack(b, &fc)
			} else {
				err = payload.DecodeFlowControlSignalJSON(b, &fc)
			}
			if typ != frame.TypeFlowControl || err != nil || fc.Action != agentwire.FlowPause {
				t.Fatalf("flow frame %v: %v %+v", typ, err, fc)
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err = e.srv.RequestConfigUpdate(ctx, &agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigRequestReload, RequestID: "cu-1"})
			if !errors.Is(err, ErrNoControlStream) {
				t.Fatalf("RequestConfigUpdate: %v", err)
			}
			typ, b = p.recv()
			var cu agentwire.ConfigUpdateRequest
			if msgpack {
				err = payload.DecodeConfigUpdateRequestMsgpack(b, &cu)
			} else {
				err = payload.DecodeConfigUpdateRequestJSON(b, &cu)
			}
			if typ != frame.TypeConfigUpdateRequest || err != nil || cu.RequestID != "cu-1" {
				t.Fatalf("config update frame %v: %v %+v", typ, err, cu)
			}

			// A later connection receives the last health report right
			// after its handshake.
			p2 := dialRaw(t, e.path)
			p2.handshake(enc)
			if typ, _ := p2.recv(); typ != frame.TypeHealthStatus {
				t.Fatalf("new connection got %v first", typ)
			}
		})
	}
}

func TestUDSSocketFile(t *testing.T) {
	t.Run("modes", func(t *testing.T) {
		for _, tc := range []struct {
			opts []Option
			want os.FileMode
		}{{nil, 0o600}, {[]Option{WithSocketMode(0o660)}, 0o660}} {
			srv := NewServer(BaseHandler{}, tc.opts...)
			path := filepath.Join(sockDir(t), "a.sock")
			done := make(chan error, 1)
			go func() { done <- srv.ListenAndServeUDS(path) }()
			waitFor(t, "socket file", func() bool { _, err := os.Lstat(path); return err == nil })
			fi, err := os.Lstat(path)
			if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tc.want {
				t.Errorf("mode %v (%v), want socket %v", fi.Mode(), err, tc.want)
			}
			p := dialRaw(t, path)
			p.handshake("json")
			srv.Close()
			if err := <-done; !errors.Is(err, ErrServerClosed) {
				t.Errorf("ListenAndServeUDS: %v", err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket file left behind: %v", err)
			}
			if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 0 {
				t.Errorf("directory not clean: %v", ents)
			}
		}
	})
	t.Run("stale socket replaced", func(t *testing.T) {
		path := filepath.Join(sockDir(t), "a.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		srv := NewServer(BaseHandler{})
		done := make(chan error, 1)
		go func() { done <- srv.ListenAndServeUDS(path) }()
		waitFor(t, "new listener", func() bool {
			c, err := net.Dial("unix", path)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Fatal(err)
		}
	})
	t.Run("live socket kept", func(t *testing.T) {
		path := filepath.Join(sockDir(t), "a.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		srv := NewServer(BaseHandler{})
		defer srv.Close()
		err = srv.ListenAndServeUDS(path)
		if !errors.Is(err, ErrSocketInUse) {
			t.Fatalf("err %v, want ErrSocketInUse", err)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("live socket removed: %v", err)
		}
	})
	t.Run("regular file kept", func(t *testing.T) {
		path := filepath.Join(sockDir(t), "a.sock")
		if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		srv := NewServer(BaseHandler{})
		defer srv.Close()
		if err := srv.ListenAndServeUDS(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("err %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "precious" {
			t.Fatal("file changed")
		}
	})
	t.Run("after close", func(t *testing.T) {
		srv := NewServer(BaseHandler{})
		srv.Close()
		if err := srv.ListenAndServeUDS(filepath.Join(sockDir(t), "a.sock")); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestUDSShutdownGraceful(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		close(started)
		<-release
		if ctx.Err() != nil {
			r.Decision = agentwire.Block(500) // must not happen on a graceful shutdown
		}
		return nil
	}}
	e := startUDS(t, h)
	p := dialRaw(t, e.path)
	p.handshake("json")
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("s-1", "/"))
	<-started
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(context.Background()) }()
	// New connections are refused while shutting down.
	waitFor(t, "listener closed", func() bool {
		c, err := net.Dial("unix", e.path)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	time.Sleep(10 * time.Millisecond)
	close(release)
	r := p.recvReply(false)
	if r.CorrelationID != "s-1" || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("reply %+v", r)
	}
	p.expectClosed()
	if err := recvTimeout(t, done, "Shutdown"); err != nil {
		t.Fatal(err)
	}
	if err := recvTimeout(t, e.served, "ServeUDS"); !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}
	e.served <- ErrServerClosed // for the cleanup
}

func TestUDSCloseCancels(t *testing.T) {
	started := make(chan struct{})
	h := &funcHandler{reqHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		close(started)
		<-ctx.Done()
		return nil
	}}
	e := startUDS(t, h)
	p := dialRaw(t, e.path)
	p.handshake("json")
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("c-1", "/"))
	<-started
	e.srv.Close()
	e.srv.Close() // idempotent
	p.expectClosed()
}

func TestUDSDrain(t *testing.T) {
	e := startUDS(t, BaseHandler{})
	p := dialRaw(t, e.path)
	p.handshake("json")
	waitFor(t, "registered", func() bool { return e.srv.Stats().Conns == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := e.srv.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	typ, b := p.recv()
	var hs agentwire.HealthStatus
	if typ != frame.TypeHealthStatus || payload.DecodeHealthStatusJSON(b, &hs) != nil || hs.State != agentwire.HealthDraining {
		t.Fatalf("got %v %s", typ, b)
	}
	// The open connection is still served; a new one is refused.
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("d-1", "/"))
	if r := p.recvReply(false); r.CorrelationID != "d-1" {
		t.Fatal(r)
	}
	p2 := dialRaw(t, e.path)
	b = p2.handshakeRaw([]string{"json"})
	var ans agentwire.HandshakeResponse
	if payload.DecodeHandshakeResponseJSON(b, &ans) != nil || ans.Success || !strings.Contains(ans.Error.Value, "draining") {
		t.Fatalf("handshake while draining: %s", b)
	}
}

// TestUDSManyConnections runs several connections with pipelined requests
// in both encodings at once (exercises the worker pool and writer under
// -race).
func TestUDSManyConnections(t *testing.T) {
	h := &funcHandler{reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-uri", Value: ev.URI})
		return nil
	}}
	e := startUDS(t, h, WithMaxConcurrency(8))
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := dialRaw(t, e.path)
			msgpack := c%2 == 1
			if msgpack {
				p.handshake("msgpack")
			} else {
				p.handshake("json")
			}
			const n = 200
			go func() {
				var buf []byte
				for i := range n {
					cid := fmt.Sprintf("c%d-%d", c, i)
					var pl []byte
					if msgpack {
						pl = reqHeadersMsgpack(cid, "/"+cid)
					} else {
						pl = reqHeadersJSON(cid, "/"+cid)
					}
					buf, _ = frame.AppendFrame(buf[:0], frame.TypeRequestHeaders, pl)
					if _, err := p.c.Write(buf); err != nil {
						return
					}
				}
			}()
			seen := map[string]bool{}
			for range n {
				typ, b, err := p.tryRecv(testTimeout)
				if err != nil {
					t.Errorf("conn %d: %v", c, err)
					return
				}
				if typ != frame.TypeAgentResponse {
					continue
				}
				var r agentwire.AgentResponse
				if msgpack {
					err = payload.DecodeAgentResponseMsgpack(b, &r)
				} else {
					err = payload.DecodeAgentResponseJSON(b, &r)
				}
				if err != nil || len(r.RequestHeaders) != 1 || r.RequestHeaders[0].Value != "/"+r.CorrelationID {
					t.Errorf("conn %d: bad reply %+v %v", c, r, err)
					return
				}
				seen[r.CorrelationID] = true
			}
			if len(seen) != n {
				t.Errorf("conn %d: %d distinct replies", c, len(seen))
			}
		}()
	}
	wg.Wait()
}

func TestUDSOptionsValidation(t *testing.T) {
	for _, o := range []Option{
		WithEncodings("msgpack"), WithEncodings("json", "cbor"), WithSocketMode(os.ModeSetuid | 0o600),
		WithHandshakeTimeout(0), WithMaxFrameSize(10), WithMaxFrameSize(frame.MaxLen + 1),
	} {
		if _, err := newServer(BaseHandler{}, o); err == nil {
			t.Errorf("option accepted")
		}
	}
}

func TestBestEffortID(t *testing.T) {
	cases := []struct {
		in      string
		msgpack bool
		want    string
	}{
		{`{"correlation_id":"a"}`, false, "a"},
		{`{"x":[1,{"correlation_id":"no"}],"correlation_id":"b"}`, false, "b"},
		{`{"correlation_id":"","metadata":{"correlation_id":"m"}}`, false, "m"},
		{`{"metadata":{"x":"y","correlation_id":"m2"},"correlation_id":5}`, false, "m2"},
		{`{"correlation_id":"esc\"aped\u00e9"}`, false, `esc"apedé`},
		{`{"metadata":{"correlation_id":"m3"},"oops"`, false, "m3"},
		{`[1,2]`, false, ""},
		{``, false, ""},
		{`{"correlation_id":"j"}`, true, "j"}, // JSON in a msgpack connection
	}
	for _, tc := range cases {
		if got := bestEffortID([]byte(tc.in), tc.msgpack); got != tc.want {
			t.Errorf("bestEffortID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// MessagePack golden events: the id is found in every form, including
	// the 11-element metadata array and duplicate keys.
	for _, g := range loadGolden(t, "events.json") {
		mp := g.msgpack(t)
		if mp == nil {
			continue
		}
		if got, want := bestEffortID(mp, true), goldenTopCID(t, g); got != want {
			t.Errorf("%s: bestEffortID = %q, want %q", g.Name, got, want)
		}
	}
	if !bytes.Equal(jsonCIDPrefix, []byte(`{"correlation_id":"`)) {
		t.Fatal("prefix changed")
	}
}

// TestUDSLargeFrames sends an event larger than the reader's 64 KiB buffer
// and answers with a reply larger than the writer's batch buffer.
func TestUDSLargeFrames(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB
	h := &funcHandler{reqBody: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
		if !bytes.Equal(ev.Data, body) {
			r.Decision = agentwire.Block(400)
			return nil
		}
		r.RequestBodyMutation = agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationReplace, Data: bytes.ToUpper(ev.Data)})
		return nil
	}}
	e := startUDS(t, h)
	p := dialRaw(t, e.path)
	p.handshake("json")
	ev := agentwire.BodyChunk{CorrelationID: "big", Data: body, IsLast: true, TotalSize: agentwire.Some(uint64(len(body)))}
	for range 3 {
		p.send(frame.TypeRequestBodyChunk, payload.AppendRequestBodyChunkJSON(nil, &ev))
		p.ping(1)
		// The pong and the reply may come in either order.
		gotPong, gotReply := false, false
		for !gotPong || !gotReply {
			typ, b := p.recv()
			switch typ {
			case frame.TypePong:
				gotPong = true
			case frame.TypeAgentResponse:
				gotReply = true
				r := decodeReply(t, b, false)
				if r.CorrelationID != "big" || r.Decision.Kind != agentwire.DecisionAllow || !bytes.Equal(r.RequestBodyMutation.Value.Data, bytes.ToUpper(body)) {
					t.Fatalf("reply cid %q decision %+v", r.CorrelationID, r.Decision)
				}
			default:
				t.Fatalf("unexpected frame %v", typ)
			}
		}
	}
}

// TestUDSShutdownDuringHandshake: a connection that never completes its
// handshake does not hold up Shutdown for the handshake timeout.
func TestUDSShutdownDuringHandshake(t *testing.T) {
	e := startUDS(t, BaseHandler{})
	p := dialRaw(t, e.path)
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	p.expectClosed()
}

// TestUDSProxyStopsReading: a proxy that keeps sending but never reads
// its replies gets the connection closed once an agent write has blocked
// for the write timeout, in both handler modes, instead of holding the
// connection (and, inline, its reader) forever.
func TestUDSProxyStopsReading(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) {
			opts := []Option{WithWriteTimeout(150 * time.Millisecond)}
			if inline {
				opts = append(opts, WithInlineHandlers())
			}
			e := startUDS(t, BaseHandler{}, opts...)
			p := dialRaw(t, e.path)
			defer p.close()
			p.handshake("json")
			var batch []byte
			for i := range 64 {
				batch, _ = frame.AppendFrame(batch, frame.TypeRequestHeaders, reqHeadersJSON(fmt.Sprint("r-", i), "/"))
			}
			// Keep sending, never read. Once the agent gives up on its
			// blocked write and closes, a write here fails; without the
			// timeout it would block until this deadline.
			start := time.Now()
			p.c.SetWriteDeadline(start.Add(5 * time.Second))
			var err error
			for err == nil {
				_, err = p.c.Write(batch)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the agent kept the connection open for %v: %v", time.Since(start), err)
			}
			t.Logf("connection closed by the agent after %v (%v)", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// TestUDSInlineRepliesLeaveEarly: with inline handlers, the replies to the
// first events of a batch read together are written while later events of
// the same batch are still being handled (every inlineFlushBytes), not
// only once the whole batch is done: the proxy can read the first reply
// while the last handler is still blocked.
func TestUDSInlineRepliesLeaveEarly(t *testing.T) {
	const n = 24
	firstRead := make(chan struct{})
	h := &funcHandler{reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		if ev.Metadata.CorrelationID == fmt.Sprint("b-", n-1) {
			select { // the last event of the batch waits for the proxy
			case <-firstRead:
			case <-time.After(testTimeout):
			}
		}
		return nil
	}}
	e := startUDS(t, h, WithInlineHandlers())
	p := dialRaw(t, e.path)
	defer p.close()
	p.handshake("json")
	var batch []byte
	for i := range n {
		batch, _ = frame.AppendFrame(batch, frame.TypeRequestHeaders, reqHeadersJSON(fmt.Sprint("b-", i), "/"))
	}
	p.writeRaw(batch) // one write: the agent reads the events together
	typ, b, err := p.tryRecv(2 * time.Second)
	if err != nil {
		t.Fatalf("no reply while the batch's last handler is blocked: %v", err)
	}
	close(firstRead)
	var r agentwire.AgentResponse
	if typ != frame.TypeAgentResponse || payload.DecodeAgentResponseJSON(b, &r) != nil || r.CorrelationID != "b-0" {
		t.Fatalf("first frame %v %s", typ, b)
	}
	for i := 1; i < n; i++ {
		if r := p.recvReply(false); r.CorrelationID != fmt.Sprint("b-", i) {
			t.Fatalf("reply %d is for %q", i, r.CorrelationID)
		}
	}
}
