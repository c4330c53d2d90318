package payload

import (
	"bytes"
	"math"
	"sync"
	"testing"
)

// Fuzz targets for every JSON decoder. Each is seeded with the golden
// payloads and acceptance inputs of its type (the seed corpus runs as a
// normal test). Properties: no panic; allocation bounded by the input size
// (checkDecodeAllocs); an accepted input re-encodes to bytes
// that decode again to the same value (after the documented lossy
// normalizations) and re-encode to the same bytes; decoding into a reused,
// dirty destination gives the same value as decoding into a fresh one.

var (
	jsonSeedsOnce sync.Once
	jsonSeeds     map[string][]string
)

// jsonSeedsFor returns the golden payloads, flatten fallbacks and acceptance
// inputs that belong to the codec with the given name.
func jsonSeedsFor(tb testing.TB, name string) []string {
	jsonSeedsOnce.Do(func() {
		jsonSeeds = map[string][]string{}
		for _, file := range []string{"handshake.json", "events.json", "responses.json", "control.json", "reverse.json"} {
			for _, v := range jsonLoadVectors(tb, file) {
				c, _, _, ok := jsonVectorCodec(file, v)
				if !ok {
					continue
				}
				jsonSeeds[c.name] = append(jsonSeeds[c.name], v.JSONPayload)
				if v.Flatten != nil {
					jsonSeeds[c.name] = append(jsonSeeds[c.name], *v.Flatten)
				}
			}
		}
		for _, c := range jsonLoadAcceptance(tb) {
			codec, ok := jsonAcceptanceCodec(c.TargetType)
			if !ok {
				continue
			}
			in := c.InputJSON
			if c.TargetType == "HistogramBucket" {
				in = jsonHistogramWrap(in)
			}
			jsonSeeds[codec.name] = append(jsonSeeds[codec.name], in)
		}
	})
	return jsonSeeds[name]
}

func jsonFuzz[T any](f *testing.F, c jsonCodec, dec func([]byte, *T) error, enc func([]byte, *T) []byte,
	norm func(*T)) {
	jsonFuzzNoCopy(f, c, dec, nil, enc, norm)
}

// jsonFuzzNoCopy is jsonFuzz for a codec that also has a NoCopy decoder:
// it must accept exactly what dec accepts and give the same value.
func jsonFuzzNoCopy[T any](f *testing.F, c jsonCodec, dec, noCopy func([]byte, *T) error,
	enc func([]byte, *T) []byte, norm func(*T)) {
	seeds := jsonSeedsFor(f, c.name)
	if len(seeds) == 0 {
		seeds = []string{`{}`}
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v1 T
		var err error
		checkDecodeAllocs(t, "decode", len(data), func() { err = dec(data, &v1) })
		if noCopy != nil {
			var nc T
			var errNC error
			checkDecodeAllocs(t, "NoCopy decode", len(data), func() { errNC = noCopy(data, &nc) })
			if (errNC == nil) != (err == nil) || (err == nil && !jsonEqual(nc, v1)) {
				t.Fatalf("NoCopy decode differs from the copying decode: err %v, NoCopy err %v", err, errNC)
			}
		}
		if err != nil {
			return
		}
		out := enc(nil, &v1)
		var v2 T
		if err := dec(out, &v2); err != nil {
			t.Fatalf("re-encoded value does not decode: %v\ninput: %q\noutput: %s", err, data, out)
		}
		// Reuse v2 (dirty) as the destination for the original input.
		var again T = v2
		checkDecodeAllocs(t, "used destination", len(data), func() { err = dec(data, &again) })
		if err != nil {
			t.Fatalf("second decode failed: %v", err)
		}
		if !jsonEqual(again, v1) {
			t.Fatalf("decode into a reused value differs\n got: %+v\nwant: %+v", again, v1)
		}
		if err := dec(out, &v2); err != nil {
			t.Fatal(err)
		}
		if norm != nil {
			norm(&v1)
			norm(&v2)
		}
		if !jsonEqual(v1, v2) {
			t.Fatalf("round trip changed the value\ninput: %q\noutput: %s\n got: %+v\nwant: %+v", data, out, v2, v1)
		}
		if out2 := enc(nil, &v2); !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable\n%s\n%s", out, out2)
		}
	})
}

func jsonNormHeaders(h *Headers) { *h = jsonSortHeaders(*h) }

func FuzzDecodeRequestHeadersJSON(f *testing.F) {
	jsonFuzzNoCopy(f, jsonCodecRequestHeaders, DecodeRequestHeadersJSON, DecodeRequestHeadersJSONNoCopy,
		AppendRequestHeadersJSON, func(ev *RequestHeadersEvent) { jsonNormHeaders(&ev.Headers) })
}

func FuzzDecodeRequestBodyChunkJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecRequestChunk, DecodeRequestBodyChunkJSON, AppendRequestBodyChunkJSON, nil)
}

func FuzzDecodeResponseBodyChunkJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecResponseChunk, DecodeResponseBodyChunkJSON, AppendResponseBodyChunkJSON, nil)
}

func FuzzDecodeResponseHeadersJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecResponseHeaders, DecodeResponseHeadersJSON, AppendResponseHeadersJSON,
		func(ev *ResponseHeadersEvent) { jsonNormHeaders(&ev.Headers) })
}

func FuzzDecodeRequestCompleteJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecRequestComplete, DecodeRequestCompleteJSON, AppendRequestCompleteJSON, nil)
}

func FuzzDecodeWebSocketFrameJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecWebSocketFrame, DecodeWebSocketFrameJSON, AppendWebSocketFrameJSON, nil)
}

func FuzzDecodeGuardrailInspectJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecGuardrailInspect, DecodeGuardrailInspectJSON, AppendGuardrailInspectJSON, nil)
}

func FuzzDecodeConfigureJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecConfigure, DecodeConfigureJSON, AppendConfigureJSON, nil)
}

func FuzzDecodeAgentResponseJSON(f *testing.F) {
	jsonFuzzNoCopy(f, jsonCodecAgentResponse, DecodeAgentResponseJSON, DecodeAgentResponseJSONNoCopy,
		AppendAgentResponseJSON, func(r *AgentResponse) {
			// Lossy by design: version 0 is written as 2; an f32 confidence
			// beyond the f32 range is infinite and written as null (serde too).
			if r.Version == 0 {
				r.Version = ProtocolVersion
			}
			if c := float64(r.Audit.Confidence.Value); math.IsInf(c, 0) || math.IsNaN(c) {
				r.Audit.Confidence = Opt[float32]{}
			}
		})
}

func FuzzDecodeHandshakeRequestJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecHandshakeRequest, DecodeHandshakeRequestJSON, AppendHandshakeRequestJSON, nil)
}

func FuzzDecodeHandshakeResponseJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecHandshakeResponse, DecodeHandshakeResponseJSON, AppendHandshakeResponseJSON, nil)
}

func FuzzDecodeRegistrationRequestJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecRegistrationRequest, DecodeRegistrationRequestJSON, AppendRegistrationRequestJSON, nil)
}

func FuzzDecodeRegistrationResponseJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecRegistrationResponse, DecodeRegistrationResponseJSON, AppendRegistrationResponseJSON, nil)
}

func FuzzDecodeHealthStatusJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecHealth, DecodeHealthStatusJSON, AppendHealthStatusJSON, func(h *HealthStatus) {
		if m := float64(h.TimeoutMultiplier); math.IsInf(m, 0) || math.IsNaN(m) {
			h.TimeoutMultiplier = 0 // left out by the encoder
		}
	})
}

func FuzzDecodeFlowControlSignalJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecFlow, DecodeFlowControlSignalJSON, AppendFlowControlSignalJSON, nil)
}

func FuzzDecodeMetricsReportJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecMetrics, DecodeMetricsReportJSON, AppendMetricsReportJSON, func(m *MetricsReport) {
		for i := range m.Histograms {
			for j := range m.Histograms[i].Buckets {
				if b := &m.Histograms[i].Buckets[j]; math.IsInf(b.Le, -1) {
					b.Le = math.Inf(1) // written as "+Inf", as Rust does
				}
			}
		}
	})
}

func FuzzDecodeConfigUpdateRequestJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecConfigUpdate, DecodeConfigUpdateRequestJSON, AppendConfigUpdateRequestJSON, nil)
}

func FuzzDecodeConfigUpdateResponseJSON(f *testing.F) {
	f.Add([]byte(`{"request_id":"r","accepted":false,"error":"bad","timestamp_ms":1}`))
	f.Add([]byte(`["r",true,null,2]`))
	jsonFuzz(f, jsonCodecConfigUpdateResponse, DecodeConfigUpdateResponseJSON, AppendConfigUpdateResponseJSON, nil)
}

func FuzzDecodeCancelJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecCancel, DecodeCancelJSON, AppendCancelJSON, nil)
}

func FuzzDecodePingJSON(f *testing.F) {
	jsonFuzz(f, jsonCodecPing, DecodePingJSON, AppendPingJSON, nil)
}

func FuzzDecodePongJSON(f *testing.F) {
	f.Add([]byte(`{"ping_timestamp_ms":1,"sequence":2,"timestamp_ms":3}`))
	jsonFuzz(f, jsonCodecPong, DecodePongJSON, AppendPongJSON, nil)
}
