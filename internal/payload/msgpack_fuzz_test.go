package payload

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

// mpSeeds returns the golden, acceptance and sample MessagePack inputs for
// one message kind, plus a few truncations.
func mpSeeds(t testing.TB, typ string) [][]byte {
	var seeds [][]byte
	for _, v := range mpAllVectors(t) {
		if *v.TypeByte == typ {
			seeds = append(seeds, mpUnhex(t, *v.MsgpackPayloadHex))
		}
	}
	for _, c := range mpLoadAcceptance(t) {
		if mpAcceptanceTypes[c.TargetType] == typ {
			seeds = append(seeds, mpUnhex(t, c.InputHex))
		}
	}
	for _, s := range mpSamples() {
		if s.typ == typ {
			b, err := s.encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, b)
		}
	}
	n := len(seeds)
	for i := 0; i < n; i++ {
		if l := len(seeds[i]); l > 2 {
			seeds = append(seeds, seeds[i][:l/2], seeds[i][:l-1])
		}
	}
	return seeds
}

// mpEqualNaN is reflect.DeepEqual with NaN equal to NaN.
func mpEqualNaN(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || (math.IsNaN(x) && math.IsNaN(y)))
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !mpEqualNaN(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !mpEqualNaN(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// mpFuzz checks for one decoder: no panic; allocation bounded by the input
// size (checkDecodeAllocs) into a fresh and into a used destination; an
// accepted input re-encodes (every encoder variant) to a Rust-accepted
// shape that decodes to the same value; decoding into a used destination
// gives the same value as into a fresh one.
func mpFuzz(f *testing.F, typ string) {
	for _, s := range mpSeeds(f, typ) {
		f.Add(s)
	}
	used := mpNewDecoder(typ)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		d := mpNewDecoder(typ)
		var err, errUsed error
		checkDecodeAllocs(t, "fresh destination", len(data), func() { err = d.decode(data) })
		if !bytes.Equal(in, data) {
			t.Fatal("decoder modified its input")
		}
		checkDecodeAllocs(t, "used destination", len(data), func() { errUsed = used.decode(data) })
		if (err == nil) != (errUsed == nil) {
			t.Fatalf("fresh err %v, used destination err %v", err, errUsed)
		}
		if err != nil {
			return
		}
		want := mpFuzzNormalize(typ, d.serde(t))
		if got := mpFuzzNormalize(typ, used.serde(t)); !mpEqualNaN(got, want) {
			t.Fatalf("used destination: %v, fresh: %v", got, want)
		}
		for i, enc := range d.encode {
			b, err := enc(nil)
			if err != nil {
				t.Fatalf("encoder %d: %v", i, err)
			}
			tree, rest, err := mpTree(b)
			if err != nil || len(rest) != 0 {
				t.Fatalf("encoder %d wrote invalid msgpack: %v", i, err)
			}
			mpCheckShape(t, tree, "", false)
			d2 := mpNewDecoder(typ)
			if err := d2.decode(b); err != nil {
				t.Fatalf("encoder %d output does not decode: %v", i, err)
			}
			if got := mpFuzzNormalize(typ, d2.serde(t)); !mpEqualNaN(got, want) {
				t.Fatalf("encoder %d round trip:\n got  %v\n want %v", i, got, want)
			}
		}
	})
}

// mpFuzzNormalize accounts for the one documented lossy rule: version 0 is
// written as ProtocolVersion.
func mpFuzzNormalize(typ string, v any) any {
	if m, ok := v.(map[string]any); ok && typ == "0x20" && m["version"] == 0.0 {
		m["version"] = float64(ProtocolVersion)
	}
	return v
}

func FuzzMsgpackRequestHeaders(f *testing.F)       { mpFuzz(f, "0x10") }
func FuzzMsgpackRequestBodyChunk(f *testing.F)     { mpFuzz(f, "0x11") }
func FuzzMsgpackResponseHeaders(f *testing.F)      { mpFuzz(f, "0x12") }
func FuzzMsgpackResponseBodyChunk(f *testing.F)    { mpFuzz(f, "0x13") }
func FuzzMsgpackRequestComplete(f *testing.F)      { mpFuzz(f, "0x14") }
func FuzzMsgpackWebSocketFrame(f *testing.F)       { mpFuzz(f, "0x15") }
func FuzzMsgpackGuardrailInspect(f *testing.F)     { mpFuzz(f, "0x16") }
func FuzzMsgpackConfigure(f *testing.F)            { mpFuzz(f, "0x17") }
func FuzzMsgpackAgentResponse(f *testing.F)        { mpFuzz(f, "0x20") }
func FuzzMsgpackHealthStatus(f *testing.F)         { mpFuzz(f, "0x30") }
func FuzzMsgpackMetricsReport(f *testing.F)        { mpFuzz(f, "0x31") }
func FuzzMsgpackConfigUpdateRequest(f *testing.F)  { mpFuzz(f, "0x32") }
func FuzzMsgpackFlowControlSignal(f *testing.F)    { mpFuzz(f, "0x33") }
func FuzzMsgpackConfigUpdateResponse(f *testing.F) { mpFuzz(f, "cur") }

// FuzzMsgpackPeekCorrelationID: the routing-id helpers never panic, stay
// within the allocation bound, and agree with the full decoders whenever
// those accept the input.
func FuzzMsgpackPeekCorrelationID(f *testing.F) {
	for _, typ := range []string{"0x10", "0x11", "0x12", "0x13", "0x14", "0x15", "0x16", "0x17", "0x20"} {
		for _, s := range mpSeeds(f, typ) {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var evID, respID []byte
		var evOK, respOK bool
		checkDecodeAllocs(t, "peek", len(data), func() {
			evID, evOK = EventCorrelationIDMsgpack(data)
			respID, respOK = ResponseCorrelationIDMsgpack(data)
		})
		var r AgentResponse
		if DecodeAgentResponseMsgpack(data, &r) == nil && respOK && string(respID) != r.CorrelationID {
			t.Fatalf("reply id %q, decoder %q", respID, r.CorrelationID)
		}
		var c BodyChunk
		if DecodeRequestBodyChunkMsgpack(data, &c) == nil && (!evOK || string(evID) != c.CorrelationID) {
			t.Fatalf("event id %q %v, decoder %q", evID, evOK, c.CorrelationID)
		}
		var h RequestHeadersEvent
		if DecodeRequestHeadersMsgpack(data, &h) == nil && !evOK {
			t.Fatalf("no event id, decoder %q", h.Metadata.CorrelationID)
		}
	})
}
