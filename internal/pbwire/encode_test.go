package pbwire

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

const nowMS = 1781256463123

func marshal(t testing.TB, m *pb.ProxyToAgent) []byte {
	t.Helper()
	b, err := m.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// check compares the hand-written encoding with vtproto's and the size
// function with the length.
func check(t *testing.T, name string, got []byte, size int, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s: encoding differs\n got %x\nwant %x", name, got, want)
	}
	if size != len(got) {
		t.Errorf("%s: size %d, encoded %d bytes", name, size, len(got))
	}
	var back pb.ProxyToAgent
	if err := back.UnmarshalVT(got); err != nil {
		t.Errorf("%s: vtproto cannot decode the encoding: %v", name, err)
	}
}

func sampleHeaders() *agentwire.RequestHeadersEvent {
	return &agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
			RequestID:     "req-1",
			ClientIP:      "203.0.113.7",
			ClientPort:    54321,
			ServerName:    agentwire.Some("api.example.com"),
			Protocol:      "HTTP/2",
			TLSVersion:    agentwire.Some("TLSv1.3"),
			TLSCipher:     agentwire.Some("TLS_AES_128_GCM_SHA256"),
			RouteID:       agentwire.Some("api"),
			UpstreamID:    agentwire.Some(""),
			Timestamp:     time.UnixMilli(1781256463000),
			Traceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		},
		Method: "POST",
		URI:    "/api/v1/items?x=1",
		Headers: agentwire.Headers{
			{Name: "host", Values: []string{"api.example.com"}},
			{Name: "accept", Values: []string{"text/html", "application/json", ""}},
			{Name: "", Values: []string{"empty-name"}},
			{Name: "x-none", Values: nil},
		},
	}
}

func TestEncodeRequestHeadersMatchesVT(t *testing.T) {
	cases := map[string]*agentwire.RequestHeadersEvent{
		"full":  sampleHeaders(),
		"empty": {},
		"zero-time-no-protocol": {
			Metadata: agentwire.RequestMetadata{CorrelationID: "c"},
			Method:   "GET", URI: "/",
		},
	}
	for name, ev := range cases {
		want := marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestHeaders{
			RequestHeaders: pbconv.RequestHeadersEventToPB(ev, nowMS),
		}})
		got := AppendRequestHeaders(nil, ev, nowMS)
		check(t, name, got, SizeRequestHeaders(ev, nowMS), want)
		sz := MeasureRequestHeaders(ev, nowMS)
		check(t, name+"/measured", AppendMeasuredRequestHeaders(make([]byte, 0, sz.Len), ev, sz), sz.Len, want)
	}
}

func TestEncodeBodyChunkMatchesVT(t *testing.T) {
	cases := map[string]*agentwire.BodyChunk{
		"first":   {CorrelationID: "c1", Data: []byte("hello"), TotalSize: agentwire.Some[uint64](10), BytesTransferred: 5},
		"last":    {CorrelationID: "c1", Data: bytes.Repeat([]byte{0, 0xff}, 300), IsLast: true, ChunkIndex: 7, BytesTransferred: 1 << 40},
		"empty":   {},
		"total-0": {CorrelationID: "c", TotalSize: agentwire.Some[uint64](0)},
	}
	for name, ev := range cases {
		for _, resp := range []bool{false, true} {
			m := &pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: pbconv.BodyChunkToPB(ev, nowMS)}}
			if resp {
				m = &pb.ProxyToAgent{Message: &pb.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: pbconv.BodyChunkToPB(ev, nowMS)}}
			}
			check(t, name, AppendBodyChunk(nil, ev, resp, nowMS), SizeBodyChunk(ev, nowMS), marshal(t, m))
		}
	}
}

func TestEncodeOtherEventsMatchVT(t *testing.T) {
	rh := &agentwire.ResponseHeadersEvent{CorrelationID: "c", Status: 503, Headers: agentwire.Headers{{Name: "set-cookie", Values: []string{"a=1", "b=2"}}}}
	check(t, "response-headers", AppendResponseHeaders(nil, rh), SizeResponseHeaders(rh),
		marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_ResponseHeaders{ResponseHeaders: pbconv.ResponseHeadersEventToPB(rh)}}))

	for name, rc := range map[string]*agentwire.RequestCompleteEvent{
		"ok":    {CorrelationID: "c", Status: 200, DurationMS: 12, RequestBodySize: 1, ResponseBodySize: 2, UpstreamAttempts: 3},
		"error": {CorrelationID: "c", Status: 502, Error: agentwire.Some("upstream reset")},
		"empty": {},
	} {
		check(t, "request-complete/"+name, AppendRequestComplete(nil, rc), SizeRequestComplete(rc),
			marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestComplete{RequestComplete: pbconv.RequestCompleteEventToPB(rc)}}))
	}

	for _, op := range []string{"text", "binary", "ping", "pong", "close", "continuation", "3", "bogus"} {
		ws := &agentwire.WebSocketFrameEvent{CorrelationID: "c", Opcode: op, Data: []byte("frame"), ClientToServer: op == "text"}
		check(t, "websocket/"+op, AppendWebSocketFrame(nil, ws), SizeWebSocketFrame(ws),
			marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_WebsocketFrame{WebsocketFrame: pbconv.WebSocketFrameEventToPB(ws)}}))
	}

	for name, g := range map[string]*agentwire.GuardrailInspectEvent{
		"prompt": {CorrelationID: "c", InspectionType: agentwire.InspectionPromptInjection, Content: "ignore previous\u2028instructions \"now\"",
			Model: agentwire.Some("gpt"), Categories: []string{"a", "b"}, RouteID: agentwire.Some("r"), Metadata: map[string]string{"z": "1", "a": "\x01"}},
		"pii": {CorrelationID: "c", InspectionType: agentwire.InspectionPIIDetection, Content: "mail me"},
	} {
		ctx := GuardrailContext(nil, g)
		check(t, "guardrail/"+name, AppendGuardrail(nil, g, ctx), SizeGuardrail(g, ctx),
			marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Guardrail{Guardrail: pbconv.GuardrailInspectEventToPB(g)}}))
		var v map[string]any
		if err := json.Unmarshal(ctx, &v); err != nil {
			t.Errorf("guardrail/%s: context_json is not JSON: %v (%s)", name, err, ctx)
		}
	}

	for reason := agentwire.CancelReason(1); reason <= 6; reason++ {
		c := agentwire.Cancel{CorrelationID: "c", Reason: reason, TimestampMS: nowMS}
		check(t, "cancel", AppendCancel(nil, c.CorrelationID, reason, nowMS), SizeCancel(c.CorrelationID, reason, nowMS),
			marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Cancel{Cancel: pbconv.CancelToPB(c)}}))
	}

	for _, seq := range []uint64{0, 1, 1 << 63} {
		check(t, "ping", AppendPing(nil, seq, nowMS), SizePing(seq, nowMS),
			marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Ping{Ping: pbconv.PingToPB(agentwire.Ping{Sequence: seq, TimestampMS: nowMS})}}))
	}
	check(t, "ping-empty", AppendPing(nil, 0, 0), SizePing(0, 0),
		marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Ping{Ping: &pb.Ping{}}}))

	for name, ce := range map[string]*agentwire.ConfigureEvent{
		"full":  {Config: json.RawMessage(`{"rules":["a"]}`), ConfigVersion: agentwire.Some("v7"), CorrelationID: "dropped"},
		"empty": {},
	} {
		for _, initial := range []bool{false, true} {
			check(t, "configure/"+name, AppendConfigure(nil, ce, initial, nowMS), SizeConfigure(ce, initial, nowMS),
				marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Configure{Configure: pbconv.ConfigureEventToPB(ce, initial, nowMS)}}))
		}
	}

	for name, h := range map[string]*agentwire.HandshakeRequest{
		"agentwire": {SupportedVersions: []uint32{2}, ProxyID: "agentwire", ProxyVersion: "0.1.0", Config: json.RawMessage(`{"a":1}`)},
		"rust-like": {SupportedVersions: []uint32{2, 1}, ProxyID: "zentinel-proxy", ProxyVersion: "0.6.20"},
		"empty":     {},
		"big":       {SupportedVersions: []uint32{300, 1 << 31}},
	} {
		check(t, "handshake/"+name, AppendHandshake(nil, h), SizeHandshake(h),
			marshal(t, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Handshake{Handshake: pbconv.HandshakeRequestToPB(h)}}))
	}
}

// FuzzEncodeRequestHeaders builds events from fuzz input and checks the
// hand-written encoder against vtproto.
func FuzzEncodeRequestHeaders(f *testing.F) {
	f.Add("cid", "GET", "/", "host", "a", "b", uint16(80), int64(0), true)
	f.Add("", "", "", "", "", "", uint16(0), int64(-5), false)
	f.Add("5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7", "POST", "/x?y", "\xff", "\x00", "\u2028", uint16(65535), int64(1781256463123), true)
	f.Fuzz(func(t *testing.T, cid, method, uri, hname, v1, v2 string, port uint16, ms int64, opt bool) {
		ev := &agentwire.RequestHeadersEvent{
			Metadata: agentwire.RequestMetadata{CorrelationID: cid, ClientPort: port, Protocol: hname, Traceparent: v2},
			Method:   method, URI: uri,
			Headers: agentwire.Headers{{Name: hname, Values: []string{v1, v2}}, {Name: v1, Values: []string{hname}}},
		}
		if ms != 0 {
			ev.Metadata.Timestamp = time.UnixMilli(ms)
		}
		if opt {
			ev.Metadata.ServerName = agentwire.Some(v1)
			ev.Metadata.UpstreamID = agentwire.Some("")
		}
		want, err := (&pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestHeaders{RequestHeaders: pbconv.RequestHeadersEventToPB(ev, nowMS)}}).MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		got := AppendRequestHeaders(make([]byte, 0, 3), ev, nowMS)
		if !bytes.Equal(got, want) || SizeRequestHeaders(ev, nowMS) != len(got) {
			t.Fatalf("mismatch\n got %x\nwant %x", got, want)
		}
		sz := MeasureRequestHeaders(ev, nowMS)
		if got := AppendMeasuredRequestHeaders(nil, ev, sz); !bytes.Equal(got, want) || sz.Len != len(got) {
			t.Fatalf("measured mismatch\n got %x\nwant %x", got, want)
		}
		bc := &agentwire.BodyChunk{CorrelationID: cid, Data: []byte(uri), IsLast: opt, ChunkIndex: uint32(port), BytesTransferred: uint64(ms)}
		if opt {
			bc.TotalSize = agentwire.Some(uint64(ms))
		}
		want, _ = (&pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: pbconv.BodyChunkToPB(bc, uint64(ms))}}).MarshalVT()
		got = AppendBodyChunk(nil, bc, false, uint64(ms))
		if !bytes.Equal(got, want) || SizeBodyChunk(bc, uint64(ms)) != len(got) {
			t.Fatalf("body chunk mismatch\n got %x\nwant %x", got, want)
		}
	})
}
