//go:build !race

package pbwire

import (
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
)

// Encoding a request-headers event into a buffer with room allocates
// nothing, whether its strings are ASCII (the fast path), other valid
// UTF-8, or need repair.
func TestEncodeRequestHeadersAllocs(t *testing.T) {
	for name, mutate := range map[string]func(*agentwire.RequestHeadersEvent){
		"ascii":   func(*agentwire.RequestHeadersEvent) {},
		"utf8":    func(ev *agentwire.RequestHeadersEvent) { ev.URI = "/café" },
		"invalid": func(ev *agentwire.RequestHeadersEvent) { ev.Headers[0].Values[0] = "caf\xe9" },
	} {
		ev := benchEvent()
		mutate(ev)
		buf := make([]byte, 0, 8192)
		allocs.Zero(t, name, 1000, func() {
			sz := MeasureRequestHeaders(ev, nowMS)
			buf = AppendMeasuredRequestHeaders(buf[:0], ev, sz)
			if len(buf) != sz.Len {
				t.Fatalf("%s: wrote %d bytes, measured %d", name, len(buf), sz.Len)
			}
		})
	}
}

// Decoding the echo agent's reply again into the destination of the
// previous one (Reset in between, as the engine does for each call) reuses
// the header op's name and value and allocates nothing; a reply whose
// header differs from the previous one's still gets its own copies.
func TestDecodeAgentResponseReuseAllocs(t *testing.T) {
	echo := agentwire.AgentResponse{CorrelationID: "c", RequestHeaders: []agentwire.HeaderOp{
		{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"}}}
	sz, _ := MeasureAgentResponse(&echo)
	msg := AppendMeasuredAgentResponse(nil, &echo, sz)
	_, body, err := ScanAgentToProxy(msg)
	if err != nil {
		t.Fatal(err)
	}
	var dst agentwire.AgentResponse
	decode := func() {
		dst.Reset()
		if err := DecodeAgentResponse(body, &dst); err != nil || len(dst.RequestHeaders) != 1 {
			t.Fatalf("%v %+v", err, dst)
		}
	}
	decode()
	allocs.Zero(t, "echo reply into the previous reply's destination", 1000, decode)

	other := echo
	other.RequestHeaders = []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "false"}}
	sz, _ = MeasureAgentResponse(&other)
	_, otherBody, err := ScanAgentToProxy(AppendMeasuredAgentResponse(nil, &other, sz))
	if err != nil {
		t.Fatal(err)
	}
	dst.Reset()
	if err := DecodeAgentResponse(otherBody, &dst); err != nil || dst.RequestHeaders[0].Value != "false" ||
		dst.RequestHeaders[0].Name != "x-agent-processed" {
		t.Fatalf("%v %+v", err, dst.RequestHeaders)
	}
}
