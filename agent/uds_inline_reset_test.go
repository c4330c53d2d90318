package agent

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// TestUDSInlineReplyReset: with inline handlers one call's reply storage
// serves event after event; a handler that leaves the reply alone gets a
// fresh allow reply even right after one that set every field the reply
// has (decision, header operations, routing metadata, audit data,
// needs_more, body mutations, WebSocket decision): its reply is the first
// event's with its own correlation id, in MessagePack and JSON.
func TestUDSInlineReplyReset(t *testing.T) {
	h := &funcHandler{reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		if !strings.HasPrefix(ev.Metadata.CorrelationID, "set-") {
			return nil
		}
		r.Decision = agentwire.Block(418)
		r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-a", Value: "1"})
		r.ResponseHeaders = append(r.ResponseHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: "x-b"})
		r.RoutingMetadata = map[string]string{"k": "v"}
		r.Audit = agentwire.AuditMetadata{Tags: []string{"t"}, RuleIDs: []string{"r"}, Confidence: agentwire.Some[float32](0.5),
			ReasonCodes: []string{"c"}, Custom: map[string]json.RawMessage{"x": json.RawMessage(`1`)}}
		r.NeedsMore = true
		r.RequestBodyMutation = agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationReplace, Data: []byte("q")})
		r.ResponseBodyMutation = agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationDrop})
		r.WebSocketDecision = agentwire.Some(agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: 1000})
		return nil
	}}
	for _, enc := range []string{"msgpack", "json"} {
		t.Run(enc, func(t *testing.T) {
			msgpack := enc == "msgpack"
			e := startUDS(t, h, WithInlineHandlers())
			p := dialRaw(t, e.path)
			p.handshake(enc)
			var batch []byte
			ids := []string{"plain-0", "set-1", "plain-2", "set-3", "plain-4"}
			for _, id := range ids {
				ev := reqHeadersJSON(id, "/")
				if msgpack {
					ev = reqHeadersMsgpack(id, "/")
				}
				var err error
				if batch, err = frame.AppendFrame(batch, frame.TypeRequestHeaders, ev); err != nil {
					t.Fatal(err)
				}
			}
			p.writeRaw(batch) // read together: one call serves them all
			var first agentwire.AgentResponse
			for i, id := range ids {
				r := p.recvReply(msgpack)
				if r.CorrelationID != id {
					t.Fatalf("reply %d for %q, want %q", i, r.CorrelationID, id)
				}
				if strings.HasPrefix(id, "set-") {
					if r.Decision.Status != 418 || !r.NeedsMore {
						t.Fatalf("reply %d: %+v, want the handler's", i, r)
					}
					continue
				}
				r.CorrelationID = ""
				delete(r.Audit.Custom, "correlation_id")
				if len(r.Audit.Custom) == 0 {
					r.Audit.Custom = nil
				}
				if i == 0 {
					first = r
					if r.Decision.Kind != agentwire.DecisionAllow {
						t.Fatalf("first reply %+v, want allow", r)
					}
					continue
				}
				if !reflect.DeepEqual(r, first) {
					t.Fatalf("reply %d after a handler that set everything:\n%+v\nwant, as the first:\n%+v", i, r, first)
				}
			}
		})
	}
}
