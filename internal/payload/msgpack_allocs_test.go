//go:build !race

package payload

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strconv"
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

// TestMsgpackZeroAllocs proves the hot paths allocate nothing once the
// destination buffer or struct has capacity.
func TestMsgpackZeroAllocs(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	chunk := &BodyChunk{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7", Data: body, IsLast: true,
		TotalSize: Some[uint64](1 << 20), ChunkIndex: 3, BytesTransferred: 65536}
	raw := AppendRequestBodyChunkMsgpackRaw(nil, chunk)
	b64 := AppendRequestBodyChunkMsgpack(nil, chunk)
	buf := make([]byte, 0, 64<<10)
	var dst BodyChunk
	dst.Data = make([]byte, 0, len(body))
	if err := DecodeRequestBodyChunkMsgpack(raw, &dst); err != nil {
		t.Fatal(err)
	}

	rh := mpSampleRequestHeaders()
	for i := len(rh.Headers); i < 15; i++ {
		rh.Headers = append(rh.Headers, Header{Name: "x-extra-" + string(rune('a'+i)), Values: []string{"value"}})
	}
	resp := mpSampleResponse()
	resp.Audit.Custom = map[string]json.RawMessage{"score": json.RawMessage(`87`),
		"matched": json.RawMessage(`{"path":"/etc/passwd","rules":[1,2],"ratio":0.25}`)}
	plain := &AgentResponse{CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7", Decision: Block(403)}
	rhData := AppendRequestHeadersMsgpack(nil, rh)
	var rhDst RequestHeadersEvent
	respData, _ := AppendAgentResponseMsgpack(nil, mpBenchResponse())
	var respDst AgentResponse
	for _, d := range [][]byte{rhData, respData} { // warm the destinations
		_ = DecodeRequestHeadersMsgpack(d, &rhDst)
		_ = DecodeAgentResponseMsgpack(d, &respDst)
	}

	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"encode body chunk raw", func() { buf = AppendRequestBodyChunkMsgpackRaw(buf[:0], chunk) }},
		{"encode body chunk base64", func() { buf = AppendRequestBodyChunkMsgpack(buf[:0], chunk) }},
		{"decode body chunk raw", func() {
			if err := DecodeRequestBodyChunkMsgpack(raw, &dst); err != nil {
				t.Fatal(err)
			}
		}},
		{"decode body chunk base64", func() {
			if err := DecodeRequestBodyChunkMsgpack(b64, &dst); err != nil {
				t.Fatal(err)
			}
		}},
		{"encode request headers (15 headers, unsorted)", func() { buf = AppendRequestHeadersMsgpack(buf[:0], rh) }},
		{"encode agent response (full, custom values)", func() {
			var err error
			if buf, err = AppendAgentResponseMsgpack(buf[:0], resp); err != nil {
				t.Fatal(err)
			}
		}},
		{"encode agent response (block)", func() {
			var err error
			if buf, err = AppendAgentResponseMsgpack(buf[:0], plain); err != nil {
				t.Fatal(err)
			}
		}},
		// Decoding the same message again into a used destination reuses
		// every slice and every unchanged string.
		{"decode request headers (reused)", func() {
			if err := DecodeRequestHeadersMsgpack(rhData, &rhDst); err != nil {
				t.Fatal(err)
			}
		}},
		{"decode agent response (reused)", func() {
			if err := DecodeAgentResponseMsgpack(respData, &respDst); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		allocs.Zero(t, tc.name, 1000, tc.fn)
	}
	if !bytes.Equal(dst.Data, body) || dst.CorrelationID != chunk.CorrelationID {
		t.Fatal("decoded chunk differs")
	}
}

// TestMsgpackAllocationBoundedByInput feeds inputs whose headers claim huge
// counts and lengths; the decoders must fail (or succeed) without
// allocating more than a small multiple of the input size.
func TestMsgpackAllocationBoundedByInput(t *testing.T) {
	filler := bytes.Repeat([]byte{0xc0}, 4096)
	huge := [][]byte{
		{0xdf, 0xff, 0xff, 0xff, 0xff}, // map32
		{0xdd, 0xff, 0xff, 0xff, 0xff}, // array32
		{0xdb, 0xff, 0xff, 0xff, 0xff}, // str32
		{0xc6, 0xff, 0xff, 0xff, 0xff}, // bin32
		{0xde, 0xff, 0xff},             // map16
		{0x81, 0xa7, 'h', 'e', 'a', 'd', 'e', 'r', 's', 0xdf, 0x7f, 0xff, 0xff, 0xff}, // headers map32
	}
	var inputs [][]byte
	for _, h := range huge {
		inputs = append(inputs, append(append([]byte(nil), h...), filler...))
	}
	// Many small valid entries: allocation grows with the input, no more.
	many := mpBuild(mpMap(3), "correlation_id", "c", "status", 200, "headers", mpMap(2000))
	for i := 0; i < 2000; i++ {
		many = append(many, mpBuild("h"+strconv.Itoa(i), mpArr(1), "v")...)
	}
	inputs = append(inputs, many)
	for _, typ := range []string{"0x10", "0x11", "0x12", "0x17", "0x20", "0x31", "0x32"} {
		for i, in := range inputs {
			d := mpNewDecoder(typ)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_ = d.decode(in)
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(64*len(in)+8192) {
				t.Errorf("type %s input %d (%d bytes): allocated %d bytes", typ, i, len(in), alloc)
			}
		}
	}
}

// TestMsgpackLongListsAllocation decodes arrays of many minimal elements
// (one-byte strings, metrics and rules of a few bytes each). The decoders
// used to grow the destination slice element by element, which allocates
// about five times its final size in total: 70 to 90 bytes per input byte
// for these inputs. The count in the array or map header now reserves the
// room once, capped by the input left, so that a count the input cannot
// hold (the last case) allocates no more than the input size allows.
func TestMsgpackLongListsAllocation(t *testing.T) {
	const n = 100000
	rep := func(elem ...byte) []byte { return bytes.Repeat(elem, n) }
	metrics := func(field string, elem ...byte) []byte {
		return mpBuild(mpMap(4), "agent_id", "a", "timestamp_ms", 1, "interval_ms", 1, field, mpArr(n), rep(elem...))
	}
	md := mpBuild(mpArr(11), "c", "r", "ip", 1, nil, "HTTP/1.1", nil, nil, nil, nil, "t")
	for _, tc := range []struct {
		name, typ string
		in        []byte
		wantErr   bool
	}{
		{"audit tags", "0x20", mpBuild(mpMap(3), "version", 2, "decision", "allow", "audit", mpMap(1), "tags", mpArr(n), rep(0xa0)), false},
		{"header ops", "0x20", mpBuild(mpMap(3), "version", 2, "decision", "allow", "request_headers", mpArr(n), rep(0x81, 0x02, 0x91, 0xa0)), false},
		{"header values", "0x10", mpBuild(mpMap(5), "correlation_id", "c", "metadata", md, "method", "GET", "uri", "/",
			"headers", mpMap(1), "h", mpArr(n), rep(0xa0)), false},
		{"disabled features", "0x30", mpBuild(mpMap(2), "state", 1, "disabled_features", mpArr(n), rep(0xa0)), false},
		{"categories", "0x16", mpBuild(mpMap(4), "correlation_id", "c", "inspection_type", "pii_detection", "content", "",
			"categories", mpArr(n), rep(0xa0)), false},
		{"counters", "0x31", metrics("counters", 0x93, 0xa0, 0x80, 0x00), false},
		{"histograms", "0x31", metrics("histograms", 0x95, 0xa0, 0x80, 0x00, 0x00, 0x90), false},
		{"buckets", "0x31", mpBuild(mpMap(4), "agent_id", "a", "timestamp_ms", 1, "interval_ms", 1, "histograms", mpArr(1),
			mpArr(5), "h", mpMap(0), 0, 0, mpArr(n), rep(0x92, 0x00, 0x00)), false},
		{"rules", "0x32", mpBuild(mpMap(3), "update_type", mpMap(4), "type", "rule_update", "rule_set", "s", "remove_rules", mpArr(0),
			"rules", mpArr(n), rep(0x95, 0xa0, 0x00, 0xc0, 0xc2, 0xc0), "request_id", "r", "timestamp_ms", 1), false},
		{"list add", "0x32", mpBuild(mpMap(3), "update_type", mpMap(4), "type", "list_update", "list_id", "l", "remove", mpArr(0),
			"add", mpArr(n), rep(0xa0), "request_id", "r", "timestamp_ms", 1), false},
		// As many rules claimed as there are bytes left, none valid.
		{"rules count beyond input", "0x32", mpBuild(mpMap(3), "update_type", mpMap(4), "type", "rule_update", "rule_set", "s",
			"remove_rules", mpArr(0), "rules", mpArr(n), rep(0xc0)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mpNewDecoder(tc.typ)
			var err error
			checkDecodeAllocs(t, tc.name, len(tc.in), func() { err = d.decode(tc.in) })
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
