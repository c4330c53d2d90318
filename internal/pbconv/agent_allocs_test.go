//go:build !race

package pbconv

import (
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// TestAgentHotPathAllocs proves the agent's per-event conversions allocate
// nothing once their destination storage is warm.
func TestAgentHotPathAllocs(t *testing.T) {
	src := &pb.RequestHeadersEvent{
		Metadata: &pb.RequestMetadata{CorrelationId: "c", RequestId: "r", ClientIp: "1.2.3.4", ClientPort: 1, Protocol: "HTTP/1.1", TimestampMs: 1781256463123},
		Method:   "GET", Uri: "/x",
	}
	for _, n := range []string{"host", "accept", "user-agent", "cookie", "accept", "x-forwarded-for", "accept-encoding", "cookie"} {
		src.Headers = append(src.Headers, &pb.Header{Name: n, Value: "v"})
	}
	var ev agentwire.RequestHeadersEvent
	RequestHeadersEventFromPB(&ev, src)
	allocs.Zero(t, "RequestHeadersEventFromPB", 1000, func() { RequestHeadersEventFromPB(&ev, src) })
	body := &pb.BodyChunkEvent{CorrelationId: "c", Data: make([]byte, 4096), IsLast: true}
	var bc agentwire.BodyChunk
	allocs.Zero(t, "BodyChunkFromPB", 1000, func() { BodyChunkFromPB(&bc, body) })

	resp := &agentwire.AgentResponse{
		CorrelationID:    "c",
		Decision:         agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 403, Body: agentwire.Some("no"), BlockHeaders: map[string]string{"b": "1", "a": "2"}},
		RequestHeaders:   []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "X-Agent-Processed", Value: "true"}, {Kind: agentwire.HeaderRemove, Name: "y"}},
		ResponseHeaders:  []agentwire.HeaderOp{{Kind: agentwire.HeaderAdd, Name: "z", Value: "1"}},
		Audit:            agentwire.AuditMetadata{Tags: []string{"t"}, Confidence: agentwire.Some[float32](1)},
		ProcessingTimeMS: agentwire.Some[uint64](1),
	}
	var enc ResponseEncoder
	enc.Encode(resp)
	buf := make([]byte, 0, 1024)
	allocs.Zero(t, "ResponseEncoder.Encode+marshal", 1000, func() {
		m := enc.Encode(resp)
		n := m.SizeVT()
		if _, err := m.MarshalToSizedBufferVT(buf[:n]); err != nil {
			t.Fatal(err)
		}
	})
}
