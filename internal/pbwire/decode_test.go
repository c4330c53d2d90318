package pbwire

import (
	"encoding/json"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// goldenResponses turns the serde-decoded AgentResponse values of
// testdata/golden/responses.json into the proto replies an agentwire agent
// would send for them (custom values as JSON text, correlation id in the
// proto field).
func goldenResponses(t testing.TB) []*pb.AgentResponse {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/golden/responses.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Name    string `json:"name"`
		Decoded string `json:"json_decoded_value"`
		Routes  string `json:"proxy_routes_to_correlation_id"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	var out []*pb.AgentResponse
	for _, v := range vectors {
		var r struct {
			Decision        json.RawMessage   `json:"decision"`
			RequestHeaders  []json.RawMessage `json:"request_headers"`
			ResponseHeaders []json.RawMessage `json:"response_headers"`
			Audit           *struct {
				Tags        []string                   `json:"tags"`
				RuleIDs     []string                   `json:"rule_ids"`
				Confidence  *float32                   `json:"confidence"`
				ReasonCodes []string                   `json:"reason_codes"`
				Custom      map[string]json.RawMessage `json:"custom"`
			} `json:"audit"`
			NeedsMore bool `json:"needs_more"`
		}
		if err := json.Unmarshal([]byte(v.Decoded), &r); err != nil || r.Decision == nil {
			continue // not an AgentResponse (e.g. the guardrail result object)
		}
		m := &pb.AgentResponse{CorrelationId: v.Routes, NeedsMore: r.NeedsMore}
		var dec map[string]json.RawMessage
		if json.Unmarshal(r.Decision, &dec) == nil {
			for kind, body := range dec {
				switch kind {
				case "block":
					var b struct {
						Status  uint32            `json:"status"`
						Body    *string           `json:"body"`
						Headers map[string]string `json:"headers"`
					}
					mustJSON(t, body, &b)
					bd := &pb.BlockDecision{Status: b.Status, Body: b.Body}
					keys := make([]string, 0, len(b.Headers))
					for k := range b.Headers {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					for _, k := range keys {
						bd.Headers = append(bd.Headers, &pb.Header{Name: k, Value: b.Headers[k]})
					}
					m.Decision = &pb.AgentResponse_Block{Block: bd}
				case "redirect":
					var rd pb.RedirectDecision
					mustJSON(t, body, &rd)
					m.Decision = &pb.AgentResponse_Redirect{Redirect: &rd}
				case "challenge":
					var c struct {
						Type   string            `json:"challenge_type"`
						Params map[string]string `json:"params"`
					}
					mustJSON(t, body, &c)
					m.Decision = &pb.AgentResponse_Challenge{Challenge: &pb.ChallengeDecision{ChallengeType: c.Type, Params: c.Params}}
				}
			}
		} else {
			m.Decision = &pb.AgentResponse_Allow{Allow: &pb.AllowDecision{}}
		}
		ops := func(list []json.RawMessage) []*pb.HeaderOp {
			var out []*pb.HeaderOp
			for _, o := range list {
				var op map[string]struct {
					Name  string `json:"name"`
					Value string `json:"value"`
				}
				mustJSON(t, o, &op)
				for k, h := range op {
					switch k {
					case "set":
						out = append(out, &pb.HeaderOp{Operation: &pb.HeaderOp_Set{Set: &pb.Header{Name: h.Name, Value: h.Value}}})
					case "add":
						out = append(out, &pb.HeaderOp{Operation: &pb.HeaderOp_Add{Add: &pb.Header{Name: h.Name, Value: h.Value}}})
					case "remove":
						out = append(out, &pb.HeaderOp{Operation: &pb.HeaderOp_Remove{Remove: h.Name}})
					}
				}
			}
			return out
		}
		m.RequestHeaders = ops(r.RequestHeaders)
		m.ResponseHeaders = ops(r.ResponseHeaders)
		if a := r.Audit; a != nil {
			pa := &pb.AuditMetadata{Tags: a.Tags, RuleIds: a.RuleIDs, Confidence: a.Confidence, ReasonCodes: a.ReasonCodes}
			if len(a.Custom) > 0 {
				pa.Custom = map[string]string{}
				for k, val := range a.Custom {
					pa.Custom[k] = string(val)
				}
			}
			m.Audit = pa
		}
		out = append(out, m)
	}
	if len(out) < 15 {
		t.Fatalf("only %d golden replies converted", len(out))
	}
	return out
}

func mustJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// viaVT decodes b the reference way: vtproto UnmarshalVT, then pbconv.
// kind is the envelope member (0 when absent); err is non-nil when either
// step fails.
func viaVT(b []byte) (kind int, resp agentwire.AgentResponse, pong agentwire.Pong, err error) {
	var m pb.AgentToProxy
	if err = m.UnmarshalVT(b); err != nil {
		return 0, resp, pong, err
	}
	switch x := m.Message.(type) {
	case *pb.AgentToProxy_Response:
		err = pbconv.AgentResponseFromPB(&resp, x.Response)
		return A2PResponse, resp, pong, err
	case *pb.AgentToProxy_Pong:
		return A2PPong, resp, pbconv.PongFromPB(x.Pong), nil
	case nil:
		return 0, resp, pong, nil
	}
	return -1, resp, pong, nil
}

// viaWire decodes b with this package. multi reports the fallback case
// (several oneof members).
func viaWire(b []byte) (kind int, resp agentwire.AgentResponse, pong agentwire.Pong, multi bool, err error) {
	kind, body, err := ScanAgentToProxy(b)
	if err != nil {
		return 0, resp, pong, IsMultipleOneof(err), err
	}
	switch kind {
	case A2PResponse:
		cid, err := ResponseCorrelationID(body)
		if err != nil {
			return kind, resp, pong, false, err
		}
		resp.CorrelationID = string(cid)
		err = DecodeAgentResponse(body, &resp)
		return kind, resp, pong, false, err
	case A2PPong:
		pong, err = DecodePong(body)
		return kind, resp, pong, false, err
	}
	return kind, resp, pong, false, nil
}

// normalize makes NaN confidences comparable.
func normalize(r *agentwire.AgentResponse) {
	if r.Audit.Confidence.Valid && math.IsNaN(float64(r.Audit.Confidence.Value)) {
		r.Audit.Confidence.Value = 0
	}
}

func diff(t *testing.T, b []byte) {
	vk, vr, vp, verr := viaVT(b)
	wk, wr, wp, multi, werr := viaWire(b)
	if multi {
		return // the engine hands this case to vtproto
	}
	if vk == -1 || (wk != A2PResponse && wk != A2PPong && werr == nil) {
		return // other members are decoded by vtproto in the engine
	}
	if (verr == nil) != (werr == nil) {
		t.Fatalf("accept mismatch on %x: vtproto err=%v, pbwire err=%v", b, verr, werr)
	}
	if verr != nil {
		return
	}
	if vk != wk {
		t.Fatalf("kind mismatch on %x: %d vs %d", b, vk, wk)
	}
	normalize(&vr)
	normalize(&wr)
	if !reflect.DeepEqual(vr, wr) {
		t.Fatalf("response mismatch on %x\n vt   %#v\n wire %#v", b, vr, wr)
	}
	if vp != wp {
		t.Fatalf("pong mismatch on %x: %+v vs %+v", b, vp, wp)
	}
	if wk == A2PResponse {
		// Decoded again into used destinations (Reset keeps the old
		// header ops in the slices' capacity, whose strings the decoder
		// reuses where equal): the same reply, and one of other ops.
		_, body, _ := ScanAgentToProxy(b)
		again := wr
		again.RequestHeaders = slices.Clone(wr.RequestHeaders)
		again.ResponseHeaders = slices.Clone(wr.ResponseHeaders)
		for _, used := range []agentwire.AgentResponse{again, usedResponse()} {
			used.Reset()
			used.CorrelationID = wr.CorrelationID
			if err := DecodeAgentResponse(body, &used); err != nil {
				t.Fatalf("into a used destination, %x: %v", b, err)
			}
			normalize(&used)
			if len(used.RequestHeaders) == 0 && wr.RequestHeaders == nil {
				used.RequestHeaders = nil
			}
			if len(used.ResponseHeaders) == 0 && wr.ResponseHeaders == nil {
				used.ResponseHeaders = nil
			}
			if !reflect.DeepEqual(used, wr) {
				t.Fatalf("into a used destination, %x\n got  %#v\n want %#v", b, used, wr)
			}
		}
	}
}

// usedResponse returns a response whose header ops a decoder may reuse.
func usedResponse() agentwire.AgentResponse {
	return agentwire.AgentResponse{
		RequestHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"},
			{Kind: agentwire.HeaderRemove, Name: "a"}, {Kind: agentwire.HeaderAdd, Name: "", Value: "v"}},
		ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderAdd, Name: "a", Value: ""}, {Kind: agentwire.HeaderSet, Name: "b", Value: "b"}},
	}
}

func TestDecodeGoldenResponses(t *testing.T) {
	for _, m := range goldenResponses(t) {
		b, err := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: m}}).MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		diff(t, b)
		_, r, _, _, err := viaWire(b)
		if err != nil {
			t.Fatalf("%v on %+v", err, m)
		}
		if _, ok := r.Audit.Custom["correlation_id"]; ok {
			t.Fatal("reserved correlation_id key kept in audit.custom")
		}
		if r.CorrelationID != m.CorrelationId || r.Version != 2 {
			t.Fatalf("correlation id %q version %d", r.CorrelationID, r.Version)
		}
	}
}

func TestDecodeAgentResponseCases(t *testing.T) {
	conf := float32(0.5)
	body := "nope"
	full := &pb.AgentResponse{
		CorrelationId: "c-1",
		Decision: &pb.AgentResponse_Block{Block: &pb.BlockDecision{Status: 451, Body: &body, Headers: []*pb.Header{
			{Name: "a", Value: "1"}, {Name: "a", Value: "2"}, {Name: "b", Value: ""},
		}}},
		RequestHeaders:   []*pb.HeaderOp{{}, {Operation: &pb.HeaderOp_Remove{Remove: "cookie"}}},
		ResponseHeaders:  []*pb.HeaderOp{{Operation: &pb.HeaderOp_Add{Add: &pb.Header{Name: "x", Value: "y"}}}},
		Audit:            &pb.AuditMetadata{Tags: []string{"t"}, Confidence: &conf, Custom: map[string]string{"s": `"abc"`, "raw": "abc", "n": "12", "correlation_id": `"x"`, "e": ""}},
		ProcessingTimeMs: new(uint64),
		NeedsMore:        true,
	}
	b, _ := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: full}}).MarshalVT()
	diff(t, b)
	_, r, _, _, err := viaWire(b)
	if err != nil {
		t.Fatal(err)
	}
	want := agentwire.AgentResponse{
		CorrelationID: "c-1",
		Version:       2,
		Decision: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 451, Body: agentwire.Some("nope"),
			BlockHeaders: map[string]string{"a": "2", "b": ""}},
		RequestHeaders:  []agentwire.HeaderOp{{Kind: agentwire.HeaderRemove, Name: "cookie"}},
		ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderAdd, Name: "x", Value: "y"}},
		Audit: agentwire.AuditMetadata{Tags: []string{"t"}, Confidence: agentwire.Some[float32](0.5),
			Custom: map[string]json.RawMessage{"s": json.RawMessage(`"abc"`), "raw": json.RawMessage(`"abc"`), "n": json.RawMessage("12"), "e": json.RawMessage(`""`)}},
		NeedsMore:        true,
		ProcessingTimeMS: agentwire.Some[uint64](0),
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got  %#v\nwant %#v", r, want)
	}

	// Status range: > 999 is a protocol error in both decoders.
	big := &pb.AgentResponse{CorrelationId: "c", Decision: &pb.AgentResponse_Redirect{Redirect: &pb.RedirectDecision{Url: "u", Status: 65939}}}
	b, _ = (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: big}}).MarshalVT()
	diff(t, b)
	if _, _, _, _, err := viaWire(b); err != ErrStatusRange {
		t.Fatalf("status 65939: err %v", err)
	}
	// No decision at all reads as allow.
	b, _ = (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{CorrelationId: "z"}}}).MarshalVT()
	diff(t, b)

	// Hand-made merges: block twice (fields merge), block then allow
	// (replaced), set op given twice.
	merged := []byte{
		0x12, 0x11, // AgentToProxy.response, len 17
		0x1a, 0x03, 0x08, 0x93, 0x03, // block{status 403}
		0x1a, 0x03, 0x12, 0x01, 'x', // block{body "x"}
		0x52, 0x05, 0x0a, 0x03, 0x0a, 0x01, 'n', // request_headers: set{name n}
	}
	diff(t, merged)
	_, r, _, _, err = viaWire(merged)
	if err != nil || r.Decision.Status != 403 || r.Decision.Body.Value != "x" || len(r.RequestHeaders) != 1 {
		t.Fatalf("merge: %v %+v", err, r)
	}
	replaced := []byte{0x12, 0x07, 0x1a, 0x03, 0x08, 0x93, 0x03, 0x12, 0x00}
	diff(t, replaced)
	_, r, _, _, _ = viaWire(replaced)
	if r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("allow after block: %+v", r.Decision)
	}
}

func TestDecodePong(t *testing.T) {
	b, _ := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Pong{Pong: &pb.Pong{Sequence: 9, PingTimestampMs: 5, TimestampMs: 7}}}).MarshalVT()
	diff(t, b)
	_, _, p, _, err := viaWire(b)
	if err != nil || p != (agentwire.Pong{Sequence: 9, PingTimestampMS: 5, TimestampMS: 7}) {
		t.Fatalf("%v %+v", err, p)
	}
}

func TestScanAgentToProxyRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"truncated":        {0x12, 0x05, 0x0a},
		"wrong wire type":  {0x10, 0x01},
		"field zero":       {0x02, 0x00},
		"end group":        {0x14},
		"varint overflow":  {0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"unbalanced group": {0x4b, 0x08, 0x01},
	} {
		if _, _, err := ScanAgentToProxy(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
		var m pb.AgentToProxy
		if m.UnmarshalVT(b) == nil {
			t.Errorf("%s: vtproto accepts it, the case is wrong", name)
		}
	}
	if _, _, err := ScanAgentToProxy([]byte{0x3a, 0x00, 0x3a, 0x00}); !IsMultipleOneof(err) {
		t.Fatalf("two members: %v", err)
	}
}

// FuzzDecodeAgentToProxy is the differential test: the hand-written
// decoder must accept exactly what vtproto+pbconv accept and produce the
// same values. This package's decoder and pbconv's conversion of what
// vtproto decoded must each stay within the checkDecodeAllocs bound (vtproto's own
// UnmarshalVT is bounded by codec/grpccodec's FuzzUnmarshal). Seeds: every
// golden reply as an agentwire agent sends it, plus hand-made edge cases.
func FuzzDecodeAgentToProxy(f *testing.F) {
	for _, m := range goldenResponses(f) {
		b, err := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: m}}).MarshalVT()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	pong, _ := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Pong{Pong: &pb.Pong{Sequence: 1, TimestampMs: 2}}}).MarshalVT()
	f.Add(pong)
	f.Add([]byte{0x12, 0x07, 0x1a, 0x03, 0x08, 0x93, 0x03, 0x12, 0x00})
	f.Add([]byte{0x12, 0x0a, 0x62, 0x08, 0x2a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'})
	f.Add([]byte{0x12, 0x05, 0x62, 0x03, 0x2a, 0x01, 0x08})
	f.Add([]byte{0x12, 0x04, 0x7b, 0x08, 0x01, 0x7c})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeAllocs(t, "pbwire", len(b), func() { _, _, _, _, _ = viaWire(b) })
		var m pb.AgentToProxy
		if m.UnmarshalVT(b) == nil && m.GetResponse() != nil {
			r, resp := m.GetResponse(), agentwire.AgentResponse{}
			checkDecodeAllocs(t, "pbconv", len(b), func() { _ = pbconv.AgentResponseFromPB(&resp, r) })
		}
		diff(t, b)
	})
}
