package grpccodec

import (
	"bytes"
	"strconv"

	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/protobuf/proto"
)

const testCorrelationID = "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7"

// requestHeaders returns a RequestHeadersEvent with 15 realistic headers.
func requestHeaders() *pb.RequestHeadersEvent {
	hs := [][2]string{
		{"host", "api.example.com"},
		{"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"},
		{"accept", "application/json, text/plain, */*"},
		{"accept-encoding", "gzip, deflate, br, zstd"},
		{"accept-language", "en-US,en;q=0.9,de;q=0.8"},
		{"content-type", "application/json"},
		{"content-length", "1834"},
		{"cookie", "session=3f1c0f3e6a3b4c7e9a533f0e8b5b2d10; theme=dark; consent=1"},
		{"authorization", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig"},
		{"x-forwarded-for", "203.0.113.5"},
		{"x-forwarded-for", "198.51.100.7"},
		{"x-forwarded-proto", "https"},
		{"x-request-id", "6f1c0f3e-6a3b-4c7e-9a53-3f0e8b5b2d10"},
		{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		{"origin", "https://app.example.com"},
	}
	ev := &pb.RequestHeadersEvent{
		Metadata: &pb.RequestMetadata{
			CorrelationId: testCorrelationID,
			RequestId:     "6f1c0f3e-6a3b-4c7e-9a53-3f0e8b5b2d10",
			ClientIp:      "192.0.2.10",
			ClientPort:    51514,
			Protocol:      "HTTP/1.1",
			RouteId:       proto.String("api"),
			UpstreamId:    proto.String("backend-pool"),
			TimestampMs:   1781256463123,
			Traceparent:   proto.String("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
		},
		Method:      "POST",
		Uri:         "/api/items?id=7&sort=asc",
		HttpVersion: "HTTP/1.1",
	}
	for _, h := range hs {
		ev.Headers = append(ev.Headers, &pb.Header{Name: h[0], Value: h[1]})
	}
	return ev
}

func bodyChunk(n int) *pb.BodyChunkEvent {
	total := uint64(n * 3)
	return &pb.BodyChunkEvent{
		CorrelationId:        testCorrelationID,
		ChunkIndex:           1,
		Data:                 bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n],
		IsLast:               false,
		TotalSize:            &total,
		BytesTransferred:     uint64(n),
		ProxyBufferAvailable: 1 << 20,
		TimestampMs:          1781256463123,
	}
}

// requests are the ProxyToAgent messages of the interop tests, one per
// correlation id.
func requests() []*pb.ProxyToAgent {
	hs := requestHeaders()
	out := []*pb.ProxyToAgent{
		{Message: &pb.ProxyToAgent_Handshake{Handshake: &pb.HandshakeRequest{
			SupportedVersions: []uint32{2, 1}, ProxyId: "zentinel-proxy", ProxyVersion: "0.6.20", ConfigJson: "{}",
		}}},
		{Message: &pb.ProxyToAgent_RequestHeaders{RequestHeaders: hs}},
	}
	for i, n := range []int{0, 1 << 10, 16 << 10, 64 << 10, 1 << 20} {
		c := bodyChunk(n)
		c.CorrelationId = "chunk-" + strconv.Itoa(i)
		out = append(out, &pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: c}})
	}
	return out
}

// correlationOf returns the correlation id a request is answered with.
func correlationOf(m *pb.ProxyToAgent) string {
	switch x := m.Message.(type) {
	case *pb.ProxyToAgent_Handshake:
		return "handshake"
	case *pb.ProxyToAgent_RequestHeaders:
		return x.RequestHeaders.GetMetadata().GetCorrelationId()
	case *pb.ProxyToAgent_RequestBodyChunk:
		return x.RequestBodyChunk.GetCorrelationId()
	}
	return ""
}

// response returns the reply to the request with correlation id id. The
// reply for a large chunk is itself large, so both directions cross
// several HTTP/2 frames.
func response(id string, large bool) *pb.AgentToProxy {
	body := "blocked by policy"
	if large {
		body = string(bytes.Repeat([]byte("x"), 200<<10))
	}
	return &pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{
		CorrelationId: id,
		Decision: &pb.AgentResponse_Block{Block: &pb.BlockDecision{
			Status:  403,
			Body:    &body,
			Headers: []*pb.Header{{Name: "content-type", Value: "text/plain"}},
		}},
		RequestHeaders: []*pb.HeaderOp{
			{Operation: &pb.HeaderOp_Set{Set: &pb.Header{Name: "x-agent", Value: "waf"}}},
			{Operation: &pb.HeaderOp_Remove{Remove: "cookie"}},
		},
		Audit: &pb.AuditMetadata{
			Tags:       []string{"sqli", "blocked"},
			RuleIds:    []string{"942100"},
			Confidence: proto.Float32(0.95),
			Custom:     map[string]string{"correlation_id": id},
		},
		ProcessingTimeMs: proto.Uint64(3),
	}}}
}
