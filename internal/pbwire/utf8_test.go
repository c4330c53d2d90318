package pbwire

// Strings on the wire must be valid UTF-8.
//
// The reference decodes every gRPC message with prost (crates/agent-protocol
// uses tonic-prost 0.14 / prost 0.14, see crates/agent-protocol/Cargo.toml).
// prost's `string` decoder rejects a string field whose bytes are not valid
// UTF-8 (prost/src/encoding.rs, string::merge → DecodeErrorKind::InvalidString),
// and tonic-prost turns that into a stream error (Status::internal). The Rust
// SDK agent's ProcessStream loop (crates/agent-protocol/src/v2/server.rs,
// process_stream) stops at the first inbound error, so one event carrying,
// say, a Latin-1 header value would end the stream for every request on it.
// protobuf-go's proto.Unmarshal applies the same UTF-8 rule to proto3
// strings, so it stands in for prost here.

import (
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

func strictDecode(t *testing.T, name string, b []byte) *pb.ProxyToAgent {
	t.Helper()
	var m pb.ProxyToAgent
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: a prost-like strict decoder rejects the message: %v", name, err)
	}
	return &m
}

func TestEncodersWriteValidUTF8(t *testing.T) {
	const bad = "caf\xe9\xff" // Latin-1 bytes, legal as HTTP obs-text
	const now = 1_700_000_000_000

	rh := &agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: "c1", RequestID: bad, ClientIP: "10.0.0.1", Protocol: "HTTP/1.1",
			RouteID: agentwire.Some(bad), ServerName: agentwire.Some(bad), Traceparent: bad,
		},
		Method: "GET", URI: "/p?q=" + bad,
		Headers: agentwire.Headers{{Name: "x-latin1", Values: []string{bad, "ok"}}},
	}
	m := strictDecode(t, "request_headers", AppendRequestHeaders(nil, rh, now))
	got := m.GetRequestHeaders()
	if v := got.GetHeaders()[0].GetValue(); v != "caf\uFFFD\uFFFD" {
		t.Fatalf("header value = %q, want invalid bytes replaced by U+FFFD", v)
	}
	if u := got.GetUri(); !utf8.ValidString(u) {
		t.Fatalf("uri not UTF-8: %q", u)
	}
	if n, e := SizeRequestHeaders(rh, now), len(AppendRequestHeaders(nil, rh, now)); n != e {
		t.Fatalf("SizeRequestHeaders %d != encoded length %d", n, e)
	}

	resp := &agentwire.ResponseHeadersEvent{CorrelationID: "c1", Status: 200,
		Headers: agentwire.Headers{{Name: "set-cookie", Values: []string{bad}}}}
	b := AppendResponseHeaders(nil, resp)
	strictDecode(t, "response_headers", b)
	if n := SizeResponseHeaders(resp); n != len(b) {
		t.Fatalf("SizeResponseHeaders %d != %d", n, len(b))
	}

	g := &agentwire.GuardrailInspectEvent{CorrelationID: "c1", InspectionType: agentwire.InspectionPIIDetection,
		Content: "prompt " + bad, Model: agentwire.Some(bad)}
	ctx := GuardrailContext(nil, g)
	b = AppendGuardrail(nil, g, ctx)
	strictDecode(t, "guardrail", b)
	if n := SizeGuardrail(g, ctx); n != len(b) {
		t.Fatalf("SizeGuardrail %d != %d", n, len(b))
	}

	rc := &agentwire.RequestCompleteEvent{CorrelationID: "c1", Status: 502, Error: agentwire.Some("upstream said " + bad)}
	b = AppendRequestComplete(nil, rc)
	strictDecode(t, "request_complete", b)
	if n := SizeRequestComplete(rc); n != len(b) {
		t.Fatalf("SizeRequestComplete %d != %d", n, len(b))
	}

	hs := &agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: bad, ProxyVersion: "1"}
	b = AppendHandshake(nil, hs)
	strictDecode(t, "handshake", b)
	if n := SizeHandshake(hs); n != len(b) {
		t.Fatalf("SizeHandshake %d != %d", n, len(b))
	}
}
