package pbwire

import (
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// benchEvent is a browser-like request with 15 headers.
func benchEvent() *agentwire.RequestHeadersEvent {
	ev := sampleHeaders()
	for _, n := range []string{"user-agent", "accept-encoding", "accept-language", "cookie", "x-forwarded-for",
		"x-request-id", "content-type", "authorization", "referer", "cache-control", "connection", "sec-ch-ua"} {
		ev.Headers = append(ev.Headers, agentwire.Header{Name: n, Values: []string{"value of " + n + " with some length to it"}})
	}
	return ev
}

// BenchmarkEncodeRequestHeaders compares sizing and encoding into an exactly
// sized buffer with two walks (SizeRequestHeaders + AppendRequestHeaders)
// and with one (MeasureRequestHeaders + AppendMeasuredRequestHeaders).
func BenchmarkEncodeRequestHeaders(b *testing.B) {
	ev := benchEvent()
	buf := make([]byte, 0, 4096)
	b.Run("size+append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := SizeRequestHeaders(ev, nowMS)
			buf = AppendRequestHeaders(buf[:0], ev, nowMS)
			if len(buf) != n {
				b.Fatal("size mismatch")
			}
		}
	})
	b.Run("measure+append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sz := MeasureRequestHeaders(ev, nowMS)
			buf = AppendMeasuredRequestHeaders(buf[:0], ev, sz)
			if len(buf) != sz.Len {
				b.Fatal("size mismatch")
			}
		}
	})
}

// BenchmarkEncodeAgentResponse compares the agent's two ways of writing
// the echo agent's reply: straight from the AgentResponse
// (MeasureAgentResponse + AppendMeasuredAgentResponse) and through
// pbconv.ResponseEncoder and vtprotobuf (SizeVT + MarshalToSizedBufferVT).
func BenchmarkEncodeAgentResponse(b *testing.B) {
	r := &agentwire.AgentResponse{
		CorrelationID:    "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
		RequestHeaders:   []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "X-Agent-Processed", Value: "true"}},
		ProcessingTimeMS: agentwire.Some[uint64](0),
	}
	buf := make([]byte, 0, 256)
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sz, _ := MeasureAgentResponse(r)
			buf = AppendMeasuredAgentResponse(buf[:0], r, sz)
		}
	})
	b.Run("vtproto", func(b *testing.B) {
		b.ReportAllocs()
		var e pbconv.ResponseEncoder
		var out pb.AgentToProxy
		var wrp pb.AgentToProxy_Response
		for b.Loop() {
			wrp.Response = e.Encode(r)
			out.Message = &wrp
			n := out.SizeVT()
			if _, err := out.MarshalToSizedBufferVT(buf[:n]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeAgentResponse decodes the echo agent's reply into the
// destination of the previous reply (Reset in between), as the engine does
// for a caller's repeated calls.
func BenchmarkDecodeAgentResponse(b *testing.B) {
	r := &agentwire.AgentResponse{
		CorrelationID:    "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
		RequestHeaders:   []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"}},
		ProcessingTimeMS: agentwire.Some[uint64](0),
	}
	sz, _ := MeasureAgentResponse(r)
	_, body, err := ScanAgentToProxy(AppendMeasuredAgentResponse(nil, r, sz))
	if err != nil {
		b.Fatal(err)
	}
	var dst agentwire.AgentResponse
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		if err := DecodeAgentResponse(body, &dst); err != nil {
			b.Fatal(err)
		}
	}
}
