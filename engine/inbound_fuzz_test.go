package engine

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// inboundSeeds returns AgentToProxy and AgentControl encodings of every
// message kind: replies derived from the golden reply vectors
// (testdata/golden/responses.json), plus health, flow control, metrics,
// config update, log and pong messages.
func inboundSeeds(t testing.TB) [][]byte {
	t.Helper()
	raw, err := os.ReadFile("../testdata/golden/responses.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Decoded string `json:"json_decoded_value"`
		Routes  string `json:"proxy_routes_to_correlation_id"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	add := func(m interface{ MarshalVT() ([]byte, error) }) {
		b, err := m.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	for _, v := range vectors {
		var r struct {
			NeedsMore bool `json:"needs_more"`
			Audit     struct {
				Tags []string `json:"tags"`
			} `json:"audit"`
			Decision json.RawMessage `json:"decision"`
		}
		if json.Unmarshal([]byte(v.Decoded), &r) != nil || r.Decision == nil {
			continue
		}
		resp := &pb.AgentResponse{CorrelationId: v.Routes, NeedsMore: r.NeedsMore, Audit: &pb.AuditMetadata{Tags: r.Audit.Tags}}
		if string(r.Decision) != `"allow"` {
			resp.Decision = &pb.AgentResponse_Block{Block: &pb.BlockDecision{Status: 403}}
		}
		add(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: resp}})
	}
	h := pbconv.HealthStatusToPB(&agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: 2, ValidUntilMS: agentwire.Some[uint64](1)})
	f := pbconv.FlowControlSignalToPB(&agentwire.FlowControlSignal{Action: agentwire.FlowPause, CorrelationID: agentwire.Some("c")})
	m := pbconv.MetricsReportToPB(&agentwire.MetricsReport{Counters: []agentwire.CounterMetric{{Name: "n", Value: 1}}})
	u := pbconv.ConfigUpdateRequestToPB(&agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigRuleUpdate, RequestID: "r"})
	l := pbconv.LogMessageToPB(&agentwire.LogMessage{Level: agentwire.LogWarn, Message: "m"})
	add(&pb.AgentToProxy{Message: &pb.AgentToProxy_Health{Health: h}})
	for _, m := range []float32{float32(math.NaN()), float32(math.Inf(1)), 1e12} {
		// Multipliers that overflowed the stretched timeout into a
		// negative one (TestDegradedMultiplierNeverShortens).
		d := pbconv.HealthStatusToPB(&agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: m})
		add(&pb.AgentToProxy{Message: &pb.AgentToProxy_Health{Health: d}})
		add(&pb.AgentControl{Message: &pb.AgentControl_Health{Health: d}})
	}
	add(&pb.AgentToProxy{Message: &pb.AgentToProxy_FlowControl{FlowControl: f}})
	add(&pb.AgentToProxy{Message: &pb.AgentToProxy_Metrics{Metrics: m}})
	add(&pb.AgentToProxy{Message: &pb.AgentToProxy_ConfigUpdate{ConfigUpdate: u}})
	add(&pb.AgentToProxy{Message: &pb.AgentToProxy_Log{Log: l}})
	add(&pb.AgentToProxy{Message: &pb.AgentToProxy_Pong{Pong: &pb.Pong{Sequence: 1}}})
	add(&pb.AgentToProxy{Message: &pb.AgentToProxy_Handshake{Handshake: &pb.HandshakeResponse{Success: true}}})
	add(&pb.AgentControl{Message: &pb.AgentControl_Health{Health: h}})
	add(&pb.AgentControl{Message: &pb.AgentControl_ConfigUpdate{ConfigUpdate: u}})
	return out
}

// FuzzInbound feeds arbitrary bytes to the session's inbound handlers (the
// gRPC reader's and the control reader's): they must never panic or block,
// must allocate no more than fuzzAllocLimit allows, and a pending request
// must still get its own reply afterwards, within a bounded time.
func FuzzInbound(f *testing.F) {
	for _, b := range inboundSeeds(f) {
		f.Add(b)
	}
	c := memConn(f, WithCallbackQueueSize(4))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := c.sess.Load()
		checkAllocBound(t, b, func() {
			handleAgentToProxy(b, s)
			handleAgentControl(b, s)
		})
		// A health report may stretch the default request timeout, never
		// shorten it.
		if d := s.stretch(c.opts.requestTimeout); d < c.opts.requestTimeout {
			t.Fatalf("input %x made the request timeout %v", b, d)
		}
		// Undo whatever flow or health state the input set.
		s.paused.Store(false)
		s.capacity.Store(-1)
		s.health.Store(nil)
		if m := s.pausedIDs.peek(); m != nil {
			m.Clear()
		}
		s.nPaused.Store(0)
		s.pausedBytes.Store(0)
		var dst agentwire.AgentResponse
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := c.RequestHeadersInto(ctx, headersEvent("after-fuzz"), &dst); err != nil || dst.CorrelationID != "after-fuzz" {
			t.Fatalf("conn unusable after input %x: %v %+v", b, err, dst)
		}
	})
}
