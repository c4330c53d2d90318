package agent

import (
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/protobuf/encoding/protowire"
)

// fastSeeds are ProxyToAgent messages in wire form for the fast decoder:
// plain ones and the shapes it must hand to the reference decoder.
func fastSeeds(t testing.TB) [][]byte {
	model := "m"
	errText := "e"
	upstream := "u"
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	sn := "example.com"
	full := benchRequest("cid-1")
	md := full.GetRequestHeaders().Metadata
	md.ServerName, md.Traceparent, md.TlsVersion, md.RouteId, md.UpstreamId = &sn, &tp, &sn, &sn, &sn
	full.GetRequestHeaders().HttpVersion = "HTTP/2"
	msgs := []*pb.ProxyToAgent{
		full,
		reqHeaders("c", "/"),
		{Message: &pb.ProxyToAgent_RequestHeaders{RequestHeaders: &pb.RequestHeadersEvent{}}},
		{Message: &pb.ProxyToAgent_ResponseHeaders{ResponseHeaders: &pb.ResponseHeadersEvent{CorrelationId: "c", StatusCode: 70000, Headers: []*pb.Header{{Name: "a", Value: "1"}, {Name: "a", Value: "2"}, {Name: "b"}}}}},
		{Message: &pb.ProxyToAgent_RequestComplete{RequestComplete: &pb.RequestCompleteEvent{CorrelationId: "c", StatusCode: 200, DurationMs: 5, BytesReceived: 1, BytesSent: 2, Upstream: &upstream, FromCache: true, Error: &errText}}},
		{Message: &pb.ProxyToAgent_Guardrail{Guardrail: &pb.GuardrailInspectEvent{CorrelationId: "g", Content: "x", ContentType: 2, Model: &model, ContextJson: `{"inspection_type":"pii_detection","categories":["a"]}`}}},
	}
	var out [][]byte
	for _, m := range msgs {
		b, err := m.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	// Unknown fields inside and outside, a repeated embedded message, a
	// second oneof member, a group, a huge field number.
	rh, _ := reqHeaders("x", "/").GetRequestHeaders().MarshalVT()
	withUnknown := protowire.AppendTag(nil, 2, protowire.BytesType)
	inner := append(append([]byte(nil), rh...), protowire.AppendTag(nil, 99, protowire.VarintType)...)
	inner = protowire.AppendVarint(inner, 7)
	inner = protowire.AppendTag(inner, 98, protowire.Fixed32Type)
	inner = append(inner, 1, 2, 3, 4)
	withUnknown = protowire.AppendBytes(withUnknown, inner)
	out = append(out, withUnknown)
	md2, _ := (&pb.RequestMetadata{RequestId: "second"}).MarshalVT()
	dupMeta := protowire.AppendTag(nil, 2, protowire.BytesType)
	dupMeta = protowire.AppendBytes(dupMeta, protowire.AppendBytes(protowire.AppendTag(append([]byte(nil), rh...), 1, protowire.BytesType), md2))
	out = append(out, dupMeta)
	body, _ := (&pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &pb.BodyChunkEvent{CorrelationId: "b", Data: []byte("xyz")}}}).MarshalVT()
	out = append(out, append(append([]byte(nil), out[1]...), body...))
	group := protowire.AppendTag(nil, 2, protowire.BytesType)
	group = protowire.AppendBytes(group, protowire.AppendTag(protowire.AppendTag(nil, 50, protowire.StartGroupType), 50, protowire.EndGroupType))
	out = append(out, group)
	huge := protowire.AppendTag(nil, 2, protowire.BytesType)
	huge = protowire.AppendBytes(huge, protowire.AppendVarint(protowire.AppendVarint(nil, (1<<32+3)<<3|2), 0))
	out = append(out, huge)
	return out
}

// checkFast decodes b with both decoders and fails if the fast one accepts
// something the reference rejects or decodes differently. x is reused
// across calls on purpose (stale state must not leak).
func checkFast(t *testing.T, b []byte, x *exchange) bool {
	if len(b) == 0 || !isHotTag(b[0]) {
		return false
	}
	if !decodeFast(string(b), x) {
		return false
	}
	var m pb.ProxyToAgent
	if err := m.UnmarshalVT(b); err != nil {
		t.Fatalf("fast decoder accepted what the reference rejects (%v): %x", err, b)
	}
	var got, want any
	switch e := m.Message.(type) {
	case *pb.ProxyToAgent_RequestHeaders:
		var ref agentwire.RequestHeadersEvent
		pbconv.RequestHeadersEventFromPB(&ref, e.RequestHeaders)
		if x.kind != kindRequestHeaders || x.cid != ref.Metadata.CorrelationID {
			t.Fatalf("kind/cid %v %q", x.kind, x.cid)
		}
		g := x.reqHeaders
		g.Headers, ref.Headers = emptyNil(g.Headers), emptyNil(ref.Headers)
		got, want = g, ref
	case *pb.ProxyToAgent_ResponseHeaders:
		var ref agentwire.ResponseHeadersEvent
		pbconv.ResponseHeadersEventFromPB(&ref, e.ResponseHeaders)
		if x.kind != kindResponseHeaders || x.cid != ref.CorrelationID {
			t.Fatalf("kind/cid %v %q", x.kind, x.cid)
		}
		g := x.respHeaders
		g.Headers, ref.Headers = emptyNil(g.Headers), emptyNil(ref.Headers)
		got, want = g, ref
	case *pb.ProxyToAgent_RequestComplete:
		var ref agentwire.RequestCompleteEvent
		pbconv.RequestCompleteEventFromPB(&ref, e.RequestComplete)
		if x.kind != kindRequestComplete || x.cid != ref.CorrelationID {
			t.Fatalf("kind/cid %v %q", x.kind, x.cid)
		}
		got, want = x.complete, ref
	case *pb.ProxyToAgent_Guardrail:
		var ref agentwire.GuardrailInspectEvent
		pbconv.GuardrailInspectEventFromPB(&ref, e.Guardrail)
		if x.kind != kindGuardrailInspect || x.cid != ref.CorrelationID {
			t.Fatalf("kind/cid %v %q", x.kind, x.cid)
		}
		got, want = x.guard, ref
	default:
		t.Fatalf("fast decoder accepted a %T message: %x", m.Message, b)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoders differ on %x:\n fast %+v\n ref  %+v", b, got, want)
	}
	return true
}

func emptyNil(h agentwire.Headers) agentwire.Headers {
	if len(h) == 0 {
		return nil
	}
	return h
}

func TestFastDecodeSeeds(t *testing.T) {
	var x exchange
	accepted := 0
	for _, b := range fastSeeds(t) {
		if checkFast(t, b, &x) {
			accepted++
		}
	}
	if accepted < 7 {
		t.Fatalf("fast path accepted only %d seeds", accepted)
	}
}

// FuzzFastDecode holds the fast decoder to the reference (vtprotobuf +
// pbconv): whatever it accepts, the reference accepts and decodes to the
// same payload event, within the allocation bound; decoding into an
// exchange that holds a full earlier event (reproducibly) or whatever the
// previous inputs left (as pooled exchanges do) changes nothing.
func FuzzFastDecode(f *testing.F) {
	seeds := fastSeeds(f)
	for _, b := range seeds {
		f.Add(b)
	}
	var persistent exchange
	f.Fuzz(func(t *testing.T, b []byte) {
		var fresh exchange
		s := string(b)
		checkAllocBound(t, b, func() { decodeFast(s, &fresh) })
		var x exchange
		if !checkFast(t, seeds[0], &x) {
			t.Fatal("the fast decoder refuses the full seed")
		}
		checkFast(t, b, &x)
		checkFast(t, b, &persistent)
	})
}

// TestFastDecodeManyHeaderNames: the fast decoder groups values by name in
// first-seen order like the reference, also past the point where it
// switches from a scan to an index, and many distinct names cost linear
// time (a linear scan per header took minutes for 100,000 names).
func TestFastDecodeManyHeaderNames(t *testing.T) {
	ev := &pb.RequestHeadersEvent{Metadata: &pb.RequestMetadata{CorrelationId: "c"}, Method: "GET", Uri: "/"}
	for _, v := range []string{"a", "b"} {
		for i := range 300 {
			ev.Headers = append(ev.Headers, &pb.Header{Name: "h" + strconv.Itoa(i), Value: v})
		}
	}
	b, err := (&pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestHeaders{RequestHeaders: ev}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	var x exchange
	if !checkFast(t, b, &x) {
		t.Fatal("fast path refused 600 headers")
	}
	if h := x.reqHeaders.Headers; len(h) != 300 || h[299].Name != "h299" || len(h[299].Values) != 2 {
		t.Fatalf("grouped into %d headers", len(h))
	}

	ev.Headers = ev.Headers[:0]
	for i := range 100_000 {
		ev.Headers = append(ev.Headers, &pb.Header{Name: strconv.Itoa(i), Value: "v"})
	}
	if b, err = (&pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestHeaders{RequestHeaders: ev}}).MarshalVT(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !decodeFast(string(b), &x) {
		t.Fatal("fast path refused 100,000 headers")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("100,000 distinct names took %v", d)
	}
	if len(x.reqHeaders.Headers) != 100_000 {
		t.Fatalf("got %d headers", len(x.reqHeaders.Headers))
	}
}
