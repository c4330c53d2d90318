package payload

import (
	"encoding/json"
	"testing"
)

// Benchmarks of the hand-written JSON codec against encoding/json on
// structs with json tags mirroring the Rust shapes (json_std_test.go).
//
//	go test -run '^$' -bench BenchmarkJSON -benchtime 200ms -count 3 ./codec/payload/

var jsonBenchSink []byte

func BenchmarkJSONRequestHeaders(b *testing.B) {
	ev := jsonFixtureRequestHeaders()
	std := jsonFixtureStdRequestHeaders()
	data := AppendRequestHeadersJSON(nil, ev)
	b.Run("encode/agentwire", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf = AppendRequestHeadersJSON(buf[:0], ev)
		}
		jsonBenchSink = buf
	})
	b.Run("encode/encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			out, err := json.Marshal(std)
			if err != nil {
				b.Fatal(err)
			}
			jsonBenchSink = out
		}
	})
	b.Run("decode/agentwire", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		var v RequestHeadersEvent
		for b.Loop() {
			if err := DecodeRequestHeadersJSON(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/agentwire_nocopy", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		var v RequestHeadersEvent
		for b.Loop() {
			if err := DecodeRequestHeadersJSONNoCopy(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var v jsonStdRequestHeaders
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkJSONAgentResponse(b *testing.B) {
	allow := &AgentResponse{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7"}
	block := jsonFixtureBlockReply()
	for _, tc := range []struct {
		name string
		r    *AgentResponse
	}{{"allow", allow}, {"block", block}} {
		data := AppendAgentResponseJSON(nil, tc.r)
		var std jsonStdAgentResponse
		if err := json.Unmarshal(data, &std); err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/encode/agentwire", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 0, 1024)
			for b.Loop() {
				buf = AppendAgentResponseJSON(buf[:0], tc.r)
			}
			jsonBenchSink = buf
		})
		b.Run(tc.name+"/encode/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				out, err := json.Marshal(&std)
				if err != nil {
					b.Fatal(err)
				}
				jsonBenchSink = out
			}
		})
		b.Run(tc.name+"/decode/agentwire", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var r AgentResponse
			for b.Loop() {
				if err := DecodeAgentResponseJSON(data, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/decode/agentwire_nocopy", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var r AgentResponse
			for b.Loop() {
				if err := DecodeAgentResponseJSONNoCopy(data, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/decode/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var v jsonStdAgentResponse
				if err := json.Unmarshal(data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// jsonStdBenchChunk mirrors a request body chunk with encoding/json's own
// base64 handling of []byte.
type jsonStdBenchChunk struct {
	BytesReceived uint64  `json:"bytes_received"`
	ChunkIndex    uint32  `json:"chunk_index"`
	CorrelationID string  `json:"correlation_id"`
	Data          []byte  `json:"data"`
	IsLast        bool    `json:"is_last"`
	TotalSize     *uint64 `json:"total_size"`
}

func BenchmarkJSONBodyChunk(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"0B", 0}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"64KiB", 64 << 10}} {
		body := make([]byte, size.n)
		for i := range body {
			body[i] = byte(i * 7)
		}
		total := uint64(size.n)
		chunk := &BodyChunk{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7", Data: body, IsLast: true,
			TotalSize: Some(total), BytesTransferred: total}
		std := &jsonStdBenchChunk{BytesReceived: total, CorrelationID: chunk.CorrelationID, Data: body,
			IsLast: true, TotalSize: &total}
		data := AppendRequestBodyChunkJSON(nil, chunk)
		b.Run(size.name+"/encode/agentwire", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			buf := make([]byte, 0, len(data)+64)
			for b.Loop() {
				buf = AppendRequestBodyChunkJSON(buf[:0], chunk)
			}
			jsonBenchSink = buf
		})
		b.Run(size.name+"/encode/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			for b.Loop() {
				out, err := json.Marshal(std)
				if err != nil {
					b.Fatal(err)
				}
				jsonBenchSink = out
			}
		})
		b.Run(size.name+"/decode/agentwire", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			var c BodyChunk
			for b.Loop() {
				if err := DecodeRequestBodyChunkJSON(data, &c); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(size.name+"/decode/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size.n))
			for b.Loop() {
				var v jsonStdBenchChunk
				if err := json.Unmarshal(data, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
