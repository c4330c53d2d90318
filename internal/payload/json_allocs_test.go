//go:build !race

package payload

import (
	"testing"
)

// Allocation guarantees of the JSON codec. (Excluded under -race, where
// sync.Pool drops items at random and instrumentation allocates.)

func TestJSONEncodersDoNotAllocate(t *testing.T) {
	ev := jsonFixtureRequestHeaders()
	chunk := &BodyChunk{CorrelationID: "c", Data: make([]byte, 4096), TotalSize: Some[uint64](8192), BytesTransferred: 4096}
	reply := jsonFixtureBlockReply()
	hs := &HandshakeResponse{ProtocolVersion: 2, Capabilities: Capabilities{AgentID: "a", SupportedEvents: []int32{1, 2}}, Success: true, Encoding: "json"}
	buf := make([]byte, 0, 16<<10)
	cases := map[string]func(){
		"RequestHeaders (15 headers)": func() { buf = AppendRequestHeadersJSON(buf[:0], ev) },
		"RequestBodyChunk 4 KiB":      func() { buf = AppendRequestBodyChunkJSON(buf[:0], chunk) },
		"AgentResponse block":         func() { buf = AppendAgentResponseJSON(buf[:0], reply) },
		"HandshakeResponse":           func() { buf = AppendHandshakeResponseJSON(buf[:0], hs) },
		"Cancel":                      func() { buf = AppendCancelJSON(buf[:0], &Cancel{CorrelationID: "c", Reason: CancelTimeout}) },
	}
	for name, fn := range cases {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", name, n)
		}
	}
	// Header sets beyond the stack scratch (64 names) borrow pooled space.
	big := &RequestHeadersEvent{}
	for i := 0; i < 100; i++ {
		big.Headers = append(big.Headers, Header{Name: string(rune('z'-i%26)) + string(rune('a'+i)), Values: []string{"v"}})
	}
	if n := testing.AllocsPerRun(1000, func() { buf = AppendRequestHeadersJSON(buf[:0], big) }); n != 0 {
		t.Errorf("100 unsorted headers: %v allocs per call, want 0", n)
	}
}

func TestJSONAllowReplyDecodeAllocs(t *testing.T) {
	data := []byte(jsonFixtureAllowReply)
	var r AgentResponse
	decode := func() {
		if err := DecodeAgentResponseJSON(data, &r); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(1000, decode); n != 0 {
		t.Errorf("DecodeAgentResponseJSON allow reply: %v allocs per call, want 0", n)
	}
	// AllocsPerRun rounds down; the precise figure is the arena refill
	// rate: one 4 KiB chunk per ~128 correlation ids.
	per := jsonMallocsPerOp(20000, decode)
	t.Logf("DecodeAgentResponseJSON allow reply: %.4f allocs/op amortized", per)
	if per > 0.02 {
		t.Errorf("amortized %.4f allocs/op, want <= 0.02", per)
	}
	if r.CorrelationID != "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7" {
		t.Fatalf("correlation id %q", r.CorrelationID)
	}
	// The NoCopy variant allocates nothing at all.
	nc := func() {
		if err := DecodeAgentResponseJSONNoCopy(data, &r); err != nil {
			t.Fatal(err)
		}
	}
	if per := jsonMallocsPerOp(20000, nc); per != 0 {
		t.Errorf("DecodeAgentResponseJSONNoCopy: %.4f allocs/op, want 0", per)
	}
}

func TestJSONEventDecodeAllocs(t *testing.T) {
	headers := AppendRequestHeadersJSON(nil, jsonFixtureRequestHeaders())
	var ev RequestHeadersEvent
	per := jsonMallocsPerOp(5000, func() {
		if err := DecodeRequestHeadersJSON(headers, &ev); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("DecodeRequestHeadersJSON (15 headers, reused event): %.3f allocs/op", per)
	if per > 1 {
		t.Errorf("%.3f allocs/op, want at most one arena refill per event", per)
	}
	// NoCopy still copies strings that need unescaping (the fixture's
	// cookie holds escaped quotes) into the shared arena; an event without
	// escapes decodes with no allocation at all.
	per = jsonMallocsPerOp(5000, func() {
		if err := DecodeRequestHeadersJSONNoCopy(headers, &ev); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("DecodeRequestHeadersJSONNoCopy (15 headers, one escaped value): %.3f allocs/op", per)
	if per > 0.1 {
		t.Errorf("DecodeRequestHeadersJSONNoCopy: %.3f allocs/op, want ~0", per)
	}
	plain := []byte(jsonLoadVectorPayload(t, "events.json", "request_headers_no_traceparent"))
	if per := jsonMallocsPerOp(5000, func() {
		if err := DecodeRequestHeadersJSONNoCopy(plain, &ev); err != nil {
			t.Fatal(err)
		}
	}); per != 0 {
		t.Errorf("DecodeRequestHeadersJSONNoCopy without escapes: %.3f allocs/op, want 0", per)
	}
	chunk := AppendRequestBodyChunkJSON(nil, &BodyChunk{CorrelationID: "c-1", Data: make([]byte, 16<<10)})
	var c BodyChunk
	per = jsonMallocsPerOp(5000, func() {
		if err := DecodeRequestBodyChunkJSON(chunk, &c); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("DecodeRequestBodyChunkJSON (16 KiB, reused chunk): %.4f allocs/op", per)
	if per > 0.02 {
		t.Errorf("%.4f allocs/op, want ~0 with a reused Data buffer", per)
	}
}
