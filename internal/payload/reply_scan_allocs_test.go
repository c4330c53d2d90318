//go:build !race

package payload

import (
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

// TestReplyScanJSONAllocs: scanning the echo agent's reply (and a block
// without a body) and decoding it into a reused destination allocates
// nothing, counted exactly: the header strings equal the destination's
// and are kept, so not even the decoder's arena is touched.
func TestReplyScanJSONAllocs(t *testing.T) {
	for name, r := range map[string]*AgentResponse{
		"echo":  echoReply("req-0123456789abcdef"),
		"block": {CorrelationID: "req-0123456789abcdef", Decision: Decision{Kind: DecisionBlock, Status: 403}},
	} {
		p := AppendAgentResponseJSON(nil, r)
		var dst AgentResponse
		allocs.Zero(t, "JSON "+name, 2000, func() {
			var s ReplyScan
			id, ok := ScanReplyJSON(p, &s)
			if !ok || len(id) == 0 {
				t.Fatal("refused")
			}
			s.DecodeJSON(p, &dst)
		})
	}
}

// TestReplyScanMsgpackAllocs: the same in MessagePack, map and positional
// forms.
func TestReplyScanMsgpackAllocs(t *testing.T) {
	for name, p := range map[string][]byte{
		"echo":            mpReply(t, echoReply("req-0123456789abcdef")),
		"echo positional": mpPositionalEcho("req-0123456789abcdef", 10),
		"block":           mpReply(t, &AgentResponse{CorrelationID: "req-0123456789abcdef", Decision: Decision{Kind: DecisionBlock, Status: 403, Body: Some("no")}}),
	} {
		var dst AgentResponse
		allocs.Zero(t, "MessagePack "+name, 2000, func() {
			var s ReplyScan
			id, ok := ScanReplyMsgpack(p, &s)
			if !ok || len(id) == 0 {
				t.Fatal("refused")
			}
			s.DecodeMsgpack(p, &dst)
		})
	}
}
