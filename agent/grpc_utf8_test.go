package agent

// The handshake answer must carry valid UTF-8 strings.
//
// The Rust proxy decodes AgentToProxy with prost (tonic-prost 0.14,
// crates/agent-protocol/Cargo.toml); prost rejects a string field that is
// not valid UTF-8 (prost/src/encoding.rs, string::merge), and the Rust
// client's connect() then fails with "Stream error" instead of reporting
// the agent's refusal text (crates/agent-protocol/src/v2/client.rs,
// connect). protobuf-go's proto.Unmarshal applies the same rule.

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

func TestHandshakeAnswerValidUTF8(t *testing.T) {
	s := NewServer(BaseHandler{}, WithAgentID("a\xff"))
	defer s.Close()
	resp := agentwire.HandshakeResponse{ProtocolVersion: 2, Capabilities: s.caps,
		Error: agentwire.Some("refused: caf\xe9")}
	m := &pb.AgentToProxy{Message: &pb.AgentToProxy_Handshake{Handshake: s.handshakeToPB(&resp)}}
	b, err := m.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	var got pb.AgentToProxy
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatalf("a prost-like strict decoder rejects the handshake answer: %v", err)
	}
	if e := got.GetHandshake().GetError(); e != "refused: caf\uFFFD" {
		t.Fatalf("error = %q", e)
	}
}
