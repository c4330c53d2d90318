package engine

import (
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/payload"
)

// BenchmarkUDSHandleReply measures the reader's work for one 0x20 reply
// (routing-id lookup, pending claim, decode into the caller's reply,
// completion) without a socket: the reply of the reference echo agent
// (allow + set X-Agent-Processed: true) as agentwire's agent writes it in
// JSON and MessagePack, the same reply in the Rust SDK's positional
// MessagePack form, and the canonical JSON allow.
//
//	go test ./engine -run '^$' -bench UDSHandleReply -count 8
func BenchmarkUDSHandleReply(b *testing.B) {
	const id = "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7"
	echo := &agentwire.AgentResponse{CorrelationID: id,
		RequestHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "X-Agent-Processed", Value: "true"}}}
	mpEcho, err := payload.AppendAgentResponseMsgpack(nil, echo)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		msgpack bool
		p       []byte
	}{
		{"json/echo", false, payload.AppendAgentResponseJSON(nil, echo)},
		{"json/allow", false, payload.AppendAgentResponseJSON(nil, &agentwire.AgentResponse{CorrelationID: id})},
		{"msgpack/echo", true, mpEcho},
		{"msgpack/echo-positional", true, rustEchoMsgpack(id)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o := defaultOptions()
			c := newConnObj(nil, o)
			tr := newUDSTransport(nil, nil, 1<<20, tc.msgpack, false, o.logger)
			s := newSession(c, tr, fullCaps("bench"))
			pd := &pending{id: id, dst: new(agentwire.AgentResponse), done: make(chan error, 1)}
			b.ReportAllocs()
			for range b.N {
				s.pending.store(pd)
				tr.handleReply(s, tc.p)
				if err := <-pd.done; err != nil {
					b.Fatal(err)
				}
			}
			if len(pd.dst.RequestHeaders) != len(echo.RequestHeaders) && tc.name != "json/allow" {
				b.Fatalf("decoded %+v", pd.dst)
			}
		})
	}
}

// rustEchoMsgpack is the echo reply in rmp_serde's positional form.
func rustEchoMsgpack(id string) []byte {
	p := msgp.AppendArrayHeader(nil, 10)
	p = msgp.AppendUint32(p, 2)
	p = msgp.AppendString(p, "allow")
	p = msgp.AppendArrayHeader(p, 1)
	p = msgp.AppendMapHeader(p, 1)
	p = msgp.AppendString(p, "set")
	p = msgp.AppendArrayHeader(p, 2)
	p = msgp.AppendString(p, "X-Agent-Processed")
	p = msgp.AppendString(p, "true")
	p = msgp.AppendArrayHeader(p, 0)
	p = msgp.AppendMapHeader(p, 0)
	p = msgp.AppendArrayHeader(p, 5)
	p = msgp.AppendArrayHeader(p, 0)
	p = msgp.AppendArrayHeader(p, 0)
	p = msgp.AppendNil(p)
	p = msgp.AppendArrayHeader(p, 0)
	p = msgp.AppendMapHeader(p, 1)
	p = msgp.AppendString(p, "correlation_id")
	p = msgp.AppendString(p, id)
	p = msgp.AppendBool(p, false)
	p = msgp.AppendNil(p)
	p = msgp.AppendNil(p)
	return msgp.AppendNil(p)
}
