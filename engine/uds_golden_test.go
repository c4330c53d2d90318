package engine

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/allocs"
	"github.com/agentwire/agentwire/internal/payload"
)

// Golden-vector tests of the Unix-socket transport: the frames it writes
// are the Rust proxy's bytes, it routes replies to the id the Rust proxy
// routes them to, and it digests every agent-to-proxy frame of the vectors.

const goldenDir = "../testdata/golden"

type goldenVector struct {
	Name                string  `json:"name"`
	TypeByte            *string `json:"type_byte"`
	Direction           string  `json:"direction"`
	JSONPayload         *string `json:"json_payload"`
	JSONFrameHex        *string `json:"json_frame_hex"`
	JSONByteExact       bool    `json:"json_byte_exact"`
	JSONRustDecodes     *bool   `json:"json_rust_decodes"`
	MsgpackPayloadHex   *string `json:"msgpack_payload_hex"`
	RustDecodes         *bool   `json:"rust_decodes"`
	ProxyRoutesToCorrID *string `json:"proxy_routes_to_correlation_id"`
}

func loadGolden(t testing.TB, name string) []goldenVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var v []goldenVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUDSGoldenEventFrames decodes every proxy-to-agent event vector and
// re-encodes it through the transport: the JSON frame must be the Rust
// proxy's frame byte for byte; the MessagePack frame must decode back to
// the same event.
func TestUDSGoldenEventFrames(t *testing.T) {
	js := newUDSTransport(nil, nil, frame.MaxLen-1, false, false, nil)
	mp := newUDSTransport(nil, nil, frame.MaxLen-1, true, false, nil)
	n := 0
	for _, v := range loadGolden(t, "events.json") {
		if strings.HasPrefix(v.Name, "binary_helper_") || v.JSONPayload == nil || v.JSONFrameHex == nil {
			continue // the unused helper path (SPEC 6.4) has no encoder here
		}
		p := []byte(*v.JSONPayload)
		want := unhex(t, *v.JSONFrameHex)
		enc := func(tr *udsTransport) ([]byte, any, error) {
			var buf interface {
				ReadOnlyData() []byte
				Free()
			}
			var ev any
			var err error
			switch frame.Type(want[4]) {
			case frame.TypeRequestHeaders:
				var e agentwire.RequestHeadersEvent
				if err = payload.DecodeRequestHeadersJSON(p, &e); err == nil {
					buf, err = tr.requestHeaders(&e, 1)
				}
				ev = e
			case frame.TypeRequestBodyChunk, frame.TypeResponseBodyChunk:
				var e agentwire.BodyChunk
				resp := frame.Type(want[4]) == frame.TypeResponseBodyChunk
				if resp {
					err = payload.DecodeResponseBodyChunkJSON(p, &e)
				} else {
					err = payload.DecodeRequestBodyChunkJSON(p, &e)
				}
				if err == nil {
					buf, err = tr.bodyChunk(&e, resp, 1)
				}
				ev = e
			case frame.TypeResponseHeaders:
				var e agentwire.ResponseHeadersEvent
				if err = payload.DecodeResponseHeadersJSON(p, &e); err == nil {
					buf, err = tr.responseHeaders(&e)
				}
				ev = e
			case frame.TypeRequestComplete:
				var e agentwire.RequestCompleteEvent
				if err = payload.DecodeRequestCompleteJSON(p, &e); err == nil {
					buf, err = tr.requestComplete(&e)
				}
				ev = e
			case frame.TypeWebSocketFrame:
				var e agentwire.WebSocketFrameEvent
				if err = payload.DecodeWebSocketFrameJSON(p, &e); err == nil {
					buf, err = tr.webSocketFrame(&e)
				}
				ev = e
			case frame.TypeGuardrailInspect:
				var e agentwire.GuardrailInspectEvent
				if err = payload.DecodeGuardrailInspectJSON(p, &e); err == nil {
					buf, err = tr.guardrail(&e)
				}
				ev = e
			case frame.TypeConfigure:
				var e agentwire.ConfigureEvent
				if err = payload.DecodeConfigureJSON(p, &e); err == nil {
					buf, err = tr.configure(&e, false, 1)
					tr.takeConfigureID(e.CorrelationID)
				}
				ev = e
			default:
				t.Fatalf("%s: unexpected type %#x", v.Name, want[4])
			}
			if err != nil {
				return nil, nil, err
			}
			out := append([]byte(nil), buf.ReadOnlyData()...)
			buf.Free()
			return out, ev, nil
		}
		got, ev, err := enc(js)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if !bytes.Equal(got, want) {
			// Compare by value where the bytes cannot match (SPEC 2: U+2028).
			var a, b any
			if json.Unmarshal(got[5:], &a) != nil || json.Unmarshal(want[5:], &b) != nil || !reflect.DeepEqual(a, b) ||
				!bytes.Equal(got[4:5], want[4:5]) {
				t.Errorf("%s: JSON frame\n got %x\nwant %x", v.Name, got, want)
			}
		}
		// MessagePack: the frame decodes back to the same event.
		mframe, _, err := enc(mp)
		if err != nil {
			t.Fatalf("%s msgpack: %v", v.Name, err)
		}
		if mframe[4] != want[4] {
			t.Fatalf("%s: msgpack frame type %#x", v.Name, mframe[4])
		}
		mpayload := mframe[5:]
		var back any
		switch e := ev.(type) {
		case agentwire.RequestHeadersEvent:
			var d agentwire.RequestHeadersEvent
			err = payload.DecodeRequestHeadersMsgpack(mpayload, &d)
			back, ev = d.Metadata.CorrelationID+d.URI+d.Method+d.Headers.Get("host"), e.Metadata.CorrelationID+e.URI+e.Method+e.Headers.Get("host")
		case agentwire.BodyChunk:
			var d agentwire.BodyChunk
			if mframe[4] == byte(frame.TypeResponseBodyChunk) {
				err = payload.DecodeResponseBodyChunkMsgpack(mpayload, &d)
			} else {
				err = payload.DecodeRequestBodyChunkMsgpack(mpayload, &d)
			}
			if len(d.Data) == 0 {
				d.Data = e.Data
			}
			back = d
		case agentwire.ResponseHeadersEvent:
			var d agentwire.ResponseHeadersEvent
			err = payload.DecodeResponseHeadersMsgpack(mpayload, &d)
			back = d
		case agentwire.RequestCompleteEvent:
			var d agentwire.RequestCompleteEvent
			err = payload.DecodeRequestCompleteMsgpack(mpayload, &d)
			back = d
		case agentwire.WebSocketFrameEvent:
			var d agentwire.WebSocketFrameEvent
			err = payload.DecodeWebSocketFrameMsgpack(mpayload, &d)
			if len(d.Data) == 0 {
				d.Data = e.Data
			}
			back = d
		case agentwire.GuardrailInspectEvent:
			var d agentwire.GuardrailInspectEvent
			err = payload.DecodeGuardrailInspectMsgpack(mpayload, &d)
			back = d
		case agentwire.ConfigureEvent:
			var d agentwire.ConfigureEvent
			err = payload.DecodeConfigureMsgpack(mpayload, &d)
			back, ev = d.CorrelationID+d.ConfigVersion.Value, e.CorrelationID+e.ConfigVersion.Value
		}
		if err != nil {
			t.Fatalf("%s: msgpack frame does not decode: %v", v.Name, err)
		}
		if !reflect.DeepEqual(back, ev) {
			t.Errorf("%s: msgpack round trip\n got %+v\nwant %+v", v.Name, back, ev)
		}
		n++
	}
	if n < 16 {
		t.Fatalf("only %d event vectors checked", n)
	}
}

// TestUDSGoldenControlFrames: cancel and ping frames are the Rust proxy's
// bytes (0-based cancel reason).
func TestUDSGoldenControlFrames(t *testing.T) {
	tr := newUDSTransport(nil, nil, frame.MaxLen-1, true, false, nil) // JSON even in msgpack mode
	n := 0
	for _, v := range loadGolden(t, "control.json") {
		if v.TypeByte == nil || v.JSONFrameHex == nil || v.Direction != "proxy_to_agent" {
			continue
		}
		want := unhex(t, *v.JSONFrameHex)
		var got []byte
		switch frame.Type(want[4]) {
		case frame.TypeCancel:
			var c agentwire.Cancel
			if err := payload.DecodeCancelJSON(want[5:], &c); err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
			b, err := tr.cancel(c.CorrelationID, c.Reason, c.TimestampMS)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b.ReadOnlyData()...)
			b.Free()
		case frame.TypePing:
			var p agentwire.Ping
			if err := payload.DecodePingJSON(want[5:], &p); err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
			b, err := tr.ping(p.Sequence, p.TimestampMS)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b.ReadOnlyData()...)
			b.Free()
		default:
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %x\nwant %x", v.Name, got, want)
		}
		n++
	}
	if n != 8 {
		t.Fatalf("%d control vectors checked, want 8 (6 cancels, 2 pings)", n)
	}
}

// TestUDSGoldenReplyRouting: every reply vector routes to the id the Rust
// proxy routes it to, in JSON and in MessagePack; an empty id is
// unroutable (it matches nothing in the Rust proxy either).
func TestUDSGoldenReplyRouting(t *testing.T) {
	js := newUDSTransport(nil, nil, frame.MaxLen-1, false, false, nil)
	mp := newUDSTransport(nil, nil, frame.MaxLen-1, true, false, nil)
	n := 0
	for _, v := range loadGolden(t, "responses.json") {
		if v.ProxyRoutesToCorrID == nil {
			continue
		}
		want := *v.ProxyRoutesToCorrID
		check := func(tr *udsTransport, p []byte, enc string) {
			got, err := tr.routeReply(p)
			switch {
			case want == "" && err == nil:
				t.Errorf("%s %s: routed to %q, want unroutable", v.Name, enc, got)
			case want != "" && (err != nil || got != want):
				t.Errorf("%s %s: routed to %q (%v), want %q", v.Name, enc, got, err, want)
			}
			n++
		}
		if v.JSONPayload != nil {
			check(js, []byte(*v.JSONPayload), "json")
		}
		if v.MsgpackPayloadHex != nil && v.RustDecodes != nil && *v.RustDecodes {
			check(mp, unhex(t, *v.MsgpackPayloadHex), "msgpack")
		}
	}
	if n < 40 {
		t.Fatalf("only %d routings checked", n)
	}
}

// TestUDSGoldenAcceptanceRouting: for every AgentResponse acceptance case,
// the fast scan never disagrees with the full decoder.
func TestUDSGoldenAcceptanceRouting(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(goldenDir, "acceptance.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		TargetType  string `json:"target_type"`
		InputJSON   string `json:"input_json"`
		RustAccepts bool   `json:"rust_accepts"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		if c.TargetType != "AgentResponse" {
			continue
		}
		checkRouteConsistent(t, []byte(c.InputJSON))
		n++
	}
	if n < 60 {
		t.Fatalf("only %d cases", n)
	}
}

// checkRouteConsistent asserts the routing invariant on one JSON reply:
// when the full decoder accepts it with a non-empty id, routing finds that
// id; when the scan finds an id, it is the one the decoder reports.
func checkRouteConsistent(t testing.TB, p []byte) {
	t.Helper()
	tr := newUDSTransport(nil, nil, frame.MaxLen-1, false, false, nil)
	var full agentwire.AgentResponse
	derr := payload.DecodeAgentResponseJSON(p, &full)
	got, rerr := tr.routeReply(p)
	if derr == nil && full.CorrelationID != "" && (rerr != nil || got != full.CorrelationID) {
		t.Fatalf("%q: routed to %q (%v), decoder says %q", p, got, rerr, full.CorrelationID)
	}
	if derr == nil && full.CorrelationID == "" && rerr == nil {
		t.Fatalf("%q: routed to %q, decoder finds no id", p, got)
	}
	if start, end, esc, ok := replyIDJSON(p); ok && derr == nil {
		id := string(p[start:end])
		if esc {
			var s string
			if json.Unmarshal([]byte(`"`+id+`"`), &s) != nil {
				return
			}
			id = s
		}
		if id != full.CorrelationID {
			t.Fatalf("%q: scan found %q, decoder %q", p, id, full.CorrelationID)
		}
	}
}

// FuzzReplyIDJSON checks the routing scan against the full decoder on
// arbitrary input (seeded with every reply vector); the scan never
// allocates, and routing (which may fall back to a full decode) allocates
// within fuzzAllocLimit.
func FuzzReplyIDJSON(f *testing.F) {
	for _, v := range loadGolden(f, "responses.json") {
		if v.JSONPayload != nil {
			f.Add([]byte(*v.JSONPayload))
		}
	}
	f.Add([]byte(`[2,"allow",[],[],{},[[],[],null,[],{"correlation_id":"arr\u0041y"}]]`))
	f.Add([]byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"a","correlation_id":7}}}`))
	f.Add([]byte(`{"audit":{"custom":{"correlation_id":"x"}},"audit":{}}`))
	tr := newUDSTransport(nil, nil, frame.MaxLen-1, false, false, nil)
	f.Fuzz(func(t *testing.T, p []byte) {
		if allocs.AtMost(t, "replyIDJSON", 1, 0, func() { replyIDJSON(p) }) != 0 {
			t.Fatalf("replyIDJSON allocated on %q", p)
		}
		checkAllocBound(t, p, func() { _, _ = tr.routeReply(p) })
		checkRouteConsistent(t, p)
	})
}

// TestUDSGoldenAgentFrames feeds every agent-to-proxy vector frame (health,
// metrics, config update, flow control, pong, replies) to a live Conn: each
// is applied or counted, none kills the connection. Health and flow control
// are read in their integer form (state / action, SPEC 6.9), the only one
// the Rust proxy reads; the serde-tagged forms of the crate's own types are
// counted as protocol errors, like the one reply with an empty id.
func TestUDSGoldenAgentFrames(t *testing.T) {
	var frames [][]byte
	for _, file := range []string{"control.json", "responses.json"} {
		for _, v := range loadGolden(t, file) {
			if v.Direction == "agent_to_proxy" && v.JSONFrameHex != nil {
				frames = append(frames, unhex(t, *v.JSONFrameHex))
			}
		}
	}
	// The health vectors leave the agent DRAINING: end with HEALTHY.
	healthy, _ := frame.AppendFrame(nil, frame.TypeHealthStatus, []byte(`{"state":1}`))
	frames = append(frames, healthy)
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		for _, f := range frames {
			if rc.writeRaw(f) != nil {
				return
			}
		}
		rc.echoLoop()
	})
	c := dialUDS(t, fa.path, WithOnConfigUpdate(func(*agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse {
		return agentwire.ConfigUpdateResponse{Accepted: true}
	}))
	total := func(st Stats) uint64 {
		return st.HealthReports + st.MetricsReports + st.ConfigUpdates + st.FlowSignals + st.Pongs + st.Orphans + st.ProtocolErrors
	}
	deadline := time.Now().Add(5 * time.Second)
	for total(c.Stats()) < uint64(len(frames)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := c.Stats()
	if total(st) != uint64(len(frames)) || st.ConnectionLost != 0 || st.HealthReports != 3 || st.MetricsReports != 2 || st.ConfigUpdates != 6 || st.FlowSignals != 2 || st.Pongs != 1 {
		t.Fatalf("%d frames; stats %+v", len(frames), st)
	}
	// The connection is still usable afterwards.
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); err != nil {
		t.Fatal(err)
	}
}
