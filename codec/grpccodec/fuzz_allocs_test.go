package grpccodec

import (
	"runtime"
	"testing"

	"github.com/agentwire/agentwire/internal/fuzzcheck"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// protobufPerByte is the allocation allowed per input byte of one
// Unmarshal (plus fuzzcheck.Slack).
//
// It is larger than the 64 the hand-written decoders get, because
// protobuf decoding (vtproto's generated UnmarshalVT) legitimately needs
// it: every element of a repeated message field becomes its own struct,
// and an empty element costs only two input bytes (tag, zero length). The
// largest such struct here is RuleDefinition (128-byte size class); with
// the growth of the pointer slice that holds the elements that is about 85
// bytes per input byte. An input split over several buffers is first
// copied into one buffer from grpc's default pool, whose size tiers make
// that up to 32 times the input (32 KiB + 1 bytes take a 1 MiB buffer)
// when the pool is empty. TestUnmarshalAllocWorstCase measures these cases.
const protobufPerByte = 128

// checkDecodeAllocs runs decode once and fails t when it allocated more
// than protobufPerByte bytes per byte of the n-byte input.
func checkDecodeAllocs(t testing.TB, what string, n int, decode func()) {
	t.Helper()
	fuzzcheck.Allocs(t, what, n, protobufPerByte, decode)
}

// TestUnmarshalAllocWorstCase decodes the inputs that make protobuf
// decoding allocate the most per input byte (long runs of empty repeated
// sub-messages, just over 32 KiB so that a split input takes the largest
// pooled-buffer tier) and checks them against the bound of checkDecodeAllocs, whole and
// split, with grpc's buffer pool emptied first.
func TestUnmarshalAllocWorstCase(t *testing.T) {
	lenPrefixed := func(tag byte, body []byte) []byte {
		out := []byte{tag}
		out = protowire.AppendVarint(out, uint64(len(body)))
		return append(out, body...)
	}
	empties := func(tag byte, n int) []byte {
		var b []byte
		for range n {
			b = append(b, tag, 0)
		}
		return b
	}
	const n = 16384 // 32 KiB of empty elements
	for _, tc := range []struct {
		name string
		msg  func() proto.Message
		in   []byte
	}{
		// AgentToProxy.config_update.rule_update.rules
		{"rules", func() proto.Message { return &pb.AgentToProxy{} }, lenPrefixed(0x2a, lenPrefixed(0x5a, empties(0x12, n)))},
		// AgentToProxy.metrics.histograms and .counters
		{"histograms", func() proto.Message { return &pb.AgentToProxy{} }, lenPrefixed(0x22, empties(0x32, n))},
		{"counters", func() proto.Message { return &pb.AgentToProxy{} }, lenPrefixed(0x22, empties(0x22, n))},
		// AgentToProxy.response.request_headers
		{"header ops", func() proto.Message { return &pb.AgentToProxy{} }, lenPrefixed(0x12, empties(0x52, n))},
		// ProxyToAgent.request_headers.headers
		{"headers", func() proto.Message { return &pb.ProxyToAgent{} }, lenPrefixed(0x12, empties(0x2a, n))},
	} {
		var worst uint64
		for _, data := range []mem.BufferSlice{{mem.SliceBuffer(tc.in)}, split(tc.in, 3)} {
			m := tc.msg()
			runtime.GC() // twice: empties the sync.Pools behind grpc's buffer pool
			runtime.GC()
			var err error
			worst = max(worst, fuzzcheck.Allocated(func() { err = Codec().Unmarshal(data, m) }))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		t.Logf("%s: %d bytes, %d allocated (%.1f per byte)", tc.name, len(tc.in), worst, float64(worst)/float64(len(tc.in)))
		if bound := fuzzcheck.Bound(len(tc.in), protobufPerByte); worst > bound {
			t.Errorf("%s: %d bytes allocated %d, bound %d", tc.name, len(tc.in), worst, bound)
		}
	}
}
