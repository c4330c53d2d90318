package payload

import (
	"bytes"
	"strconv"
	"testing"
)

func mpBenchRequestHeaders() *RequestHeadersEvent {
	e := mpSampleRequestHeaders()
	e.Headers = e.Headers[:0]
	names := []string{"accept", "accept-encoding", "accept-language", "authorization", "cache-control",
		"connection", "content-length", "content-type", "cookie", "host", "origin", "referer",
		"user-agent", "x-forwarded-for", "x-request-id"}
	for i, n := range names {
		e.Headers = append(e.Headers, Header{Name: n, Values: []string{"value-" + strconv.Itoa(i) + "-abcdefghijklmnop"}})
	}
	return e
}

func mpBenchResponse() *AgentResponse {
	return &AgentResponse{
		CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
		Decision:      Decision{Kind: DecisionBlock, Status: 403, Body: Some("Forbidden: rule 942100 matched")},
		RequestHeaders: []HeaderOp{{Kind: HeaderSet, Name: "x-waf-score", Value: "87"},
			{Kind: HeaderRemove, Name: "cookie"}},
		Audit: AuditMetadata{Tags: []string{"sqli", "owasp-crs"}, RuleIDs: []string{"942100"},
			Confidence: Some[float32](0.95), ReasonCodes: []string{"SQL_INJECTION"}},
	}
}

// BenchmarkMsgpackRequestHeaders: a request-headers event with 15 headers.
func BenchmarkMsgpackRequestHeaders(b *testing.B) {
	e := mpBenchRequestHeaders()
	data := AppendRequestHeadersMsgpack(nil, e)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf = AppendRequestHeadersMsgpack(buf[:0], e)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		var v RequestHeadersEvent
		for b.Loop() {
			if err := DecodeRequestHeadersMsgpack(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMsgpackAgentResponse: a block reply with header ops and audit
// data; decode also of the Rust SDK's positional form.
func BenchmarkMsgpackAgentResponse(b *testing.B) {
	r := mpBenchResponse()
	data, err := AppendAgentResponseMsgpack(nil, r)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf, _ = AppendAgentResponseMsgpack(buf[:0], r)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		var v AgentResponse
		for b.Loop() {
			if err := DecodeAgentResponseMsgpack(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	var positional []byte
	for _, v := range mpLoadVectors(b, "responses.json") {
		if v.Name == "audit_metadata_full" {
			positional = mpUnhex(b, *v.MsgpackPayloadHex)
		}
	}
	b.Run("decode_rust_positional", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(positional)))
		var v AgentResponse
		for b.Loop() {
			if err := DecodeAgentResponseMsgpack(positional, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMsgpackBodyChunk: request body chunks of 0 B to 64 KiB, data
// as a bin (raw, agentwire peers) and as a base64 str (Rust peers).
func BenchmarkMsgpackBodyChunk(b *testing.B) {
	for _, size := range []int{0, 1 << 10, 16 << 10, 64 << 10} {
		c := &BodyChunk{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
			Data: bytes.Repeat([]byte{0xa5}, size), TotalSize: Some[uint64](1 << 20), ChunkIndex: 3, BytesTransferred: 1 << 19}
		name := strconv.Itoa(size>>10) + "KiB"
		if size < 1024 {
			name = strconv.Itoa(size) + "B"
		}
		for _, variant := range []struct {
			name string
			enc  func([]byte, *BodyChunk) []byte
		}{{"raw", AppendRequestBodyChunkMsgpackRaw}, {"base64", AppendRequestBodyChunkMsgpack}} {
			data := variant.enc(nil, c)
			b.Run(name+"/encode_"+variant.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				buf := make([]byte, 0, len(data))
				for b.Loop() {
					buf = variant.enc(buf[:0], c)
				}
			})
			b.Run(name+"/decode_"+variant.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				v := BodyChunk{Data: make([]byte, 0, size)}
				for b.Loop() {
					if err := DecodeRequestBodyChunkMsgpack(data, &v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMsgpackAllowReply: the plain allow reply (the most common one)
// as the agent writes it and the proxy routes and decodes it.
func BenchmarkMsgpackAllowReply(b *testing.B) {
	r := &AgentResponse{Version: ProtocolVersion, CorrelationID: "0000002a-1f3"}
	data, err := AppendAgentResponseMsgpack(nil, r)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = AppendAgentResponseMsgpack(buf[:0], r)
		}
	})
	b.Run("peek", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ResponseCorrelationIDMsgpack(data)
		}
	})
	b.Run("decode", func(b *testing.B) {
		var v AgentResponse
		b.ReportAllocs()
		for b.Loop() {
			if err := DecodeAgentResponseMsgpack(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
