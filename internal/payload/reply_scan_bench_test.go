package payload

import "testing"

// BenchmarkReplyScan: the echo agent's reply read by the one-pass scan
// and decode (scan) against the general decoder (decode), JSON and
// MessagePack (map and positional forms), into a reused destination.
//
//	go test ./internal/payload -run '^$' -bench ReplyScan -count 8
func BenchmarkReplyScan(b *testing.B) {
	const id = "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7"
	js := AppendAgentResponseJSON(nil, echoReply(id))
	mp := mpReply(b, echoReply(id))
	pos := mpPositionalEcho(id, 10)
	var r AgentResponse
	b.Run("json/decode", func(b *testing.B) {
		for range b.N {
			if err := DecodeAgentResponseJSON(js, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json/scan", func(b *testing.B) {
		for range b.N {
			var s ReplyScan
			if _, ok := ScanReplyJSON(js, &s); !ok {
				b.Fatal("refused")
			}
			s.DecodeJSON(js, &r)
		}
	})
	for _, tc := range []struct {
		name string
		p    []byte
	}{{"msgpack", mp}, {"msgpack-positional", pos}} {
		b.Run(tc.name+"/decode", func(b *testing.B) {
			for range b.N {
				if err := DecodeAgentResponseMsgpack(tc.p, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/scan", func(b *testing.B) {
			for range b.N {
				var s ReplyScan
				if _, ok := ScanReplyMsgpack(tc.p, &s); !ok {
					b.Fatal("refused")
				}
				s.DecodeMsgpack(tc.p, &r)
			}
		})
	}
}
