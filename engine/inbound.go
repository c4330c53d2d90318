package engine

import (
	"unsafe"

	"github.com/agentwire/agentwire/internal/pbconv"
	"github.com/agentwire/agentwire/internal/pbwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// bytesView returns a string sharing b's memory, for map lookups only.
//
// This is the package's one unsafe conversion. The reply's correlation id
// is looked up in the pending map straight from the receive buffer; the
// string must not outlive b or be stored anywhere (the pending map's
// lookups hash and compare the key without retaining it). Values that are kept use the
// pending request's own id string instead.
func bytesView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// handleAgentToProxy decodes one AgentToProxy message (protobuf bytes,
// valid only during the call) and delivers it to s. It never blocks: replies
// complete their waiter through a buffered channel, reports go to the
// dispatcher queue.
//
// Replies and pongs take the hand-written path (internal/pbwire), which
// allocates nothing for a plain allow; every other message, and the odd
// message that repeats its oneof, goes through vtproto and pbconv.
func handleAgentToProxy(b []byte, s *session) {
	kind, body, err := pbwire.ScanAgentToProxy(b)
	if err != nil {
		if pbwire.IsMultipleOneof(err) {
			handleAgentToProxySlow(b, s)
			return
		}
		s.protocolError("undecodable AgentToProxy", err)
		return
	}
	switch kind {
	case pbwire.A2PResponse:
		cid, err := pbwire.ResponseCorrelationID(body)
		if err != nil {
			s.protocolError("undecodable AgentResponse", err)
			return
		}
		p := s.claim(bytesView(cid))
		if p == nil {
			return
		}
		s.ackReply(p)
		dst := p.dst
		dst.Reset()
		dst.CorrelationID = p.id
		if err := pbwire.DecodeAgentResponse(body, dst); err != nil {
			s.complete(p, &Error{Kind: ErrProtocol, CorrelationID: p.id, Detail: "undecodable reply", Err: err})
			return
		}
		s.complete(p, nil)
	case pbwire.A2PPong:
		pong, err := pbwire.DecodePong(body)
		if err != nil {
			s.protocolError("undecodable Pong", err)
			return
		}
		s.onPong(pong)
	case 0:
		s.protocolError("empty AgentToProxy", nil)
	default:
		handleAgentToProxySlow(b, s)
	}
}

// handleAgentToProxySlow decodes b with vtproto and converts with pbconv.
func handleAgentToProxySlow(b []byte, s *session) {
	var m pb.AgentToProxy
	if err := m.UnmarshalVT(b); err != nil {
		s.protocolError("undecodable AgentToProxy", err)
		return
	}
	switch x := m.Message.(type) {
	case *pb.AgentToProxy_Response:
		p := s.claim(x.Response.GetCorrelationId())
		if p == nil {
			return
		}
		s.ackReply(p)
		dst := p.dst
		dst.Reset()
		if err := pbconv.AgentResponseFromPB(dst, x.Response); err != nil {
			s.complete(p, &Error{Kind: ErrProtocol, CorrelationID: p.id, Detail: "invalid reply", Err: err})
			return
		}
		dst.CorrelationID = p.id
		s.complete(p, nil)
	case *pb.AgentToProxy_Pong:
		s.onPong(pbconv.PongFromPB(x.Pong))
	case *pb.AgentToProxy_Health:
		s.onHealth(pbconv.HealthStatusFromPB(x.Health))
	case *pb.AgentToProxy_FlowControl:
		s.onFlow(pbconv.FlowControlSignalFromPB(x.FlowControl))
	case *pb.AgentToProxy_Metrics:
		s.onMetrics(pbconv.MetricsReportFromPB(x.Metrics), len(b))
	case *pb.AgentToProxy_Log:
		s.onLog(pbconv.LogMessageFromPB(x.Log), len(b))
	case *pb.AgentToProxy_ConfigUpdate:
		s.onConfigUpdate(pbconv.ConfigUpdateRequestFromPB(x.ConfigUpdate), len(b))
	case *pb.AgentToProxy_Handshake:
		s.protocolError("handshake after the handshake", nil)
	default:
		s.protocolError("unknown AgentToProxy message", nil)
	}
}

// handleAgentControl decodes one AgentControl message from the agentwire
// control stream.
func handleAgentControl(b []byte, s *session) {
	var m pb.AgentControl
	if err := m.UnmarshalVT(b); err != nil {
		s.protocolError("undecodable AgentControl", err)
		return
	}
	switch x := m.Message.(type) {
	case *pb.AgentControl_Health:
		s.onHealth(pbconv.HealthStatusFromPB(x.Health))
	case *pb.AgentControl_Metrics:
		s.onMetrics(pbconv.MetricsReportFromPB(x.Metrics), len(b))
	case *pb.AgentControl_ConfigUpdate:
		s.onConfigUpdate(pbconv.ConfigUpdateRequestFromPB(x.ConfigUpdate), len(b))
	case *pb.AgentControl_Log:
		s.onLog(pbconv.LogMessageFromPB(x.Log), len(b))
	default:
		s.protocolError("unknown AgentControl message", nil)
	}
}
