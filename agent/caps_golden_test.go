package agent

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// goldenCaps is the capabilities object of a golden UdsHandshakeResponse.
type goldenCaps struct {
	AgentID         string           `json:"agent_id"`
	Name            string           `json:"name"`
	Version         string           `json:"version"`
	SupportedEvents []int32          `json:"supported_events"`
	Features        map[string]any   `json:"features"`
	Limits          map[string]int64 `json:"limits"`
}

func goldenCapsOf(t *testing.T, name string) goldenCaps {
	t.Helper()
	g := goldenByName(t, "handshake.json", name)
	var hs struct {
		Capabilities goldenCaps `json:"capabilities"`
	}
	if err := json.Unmarshal([]byte(g.JSONPayload), &hs); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return hs.Capabilities
}

// TestDefaultCapabilitiesMatchRustSDK pins the capabilities a server
// announces without WithCapabilities to the Rust SDK's defaults, as the
// golden vectors record them, on the wire of the Unix-socket handshake:
//
//   - limits: exactly the SDK's AgentLimits::default()
//     (handshake_response_sdk_default_caps: max_body_size 10 MiB,
//     max_concurrency 100, preferred_chunk_size 64 KiB);
//   - features: exactly AgentFeatures::full()
//     (handshake_response_full_features_msgpack). The SDK's default is all
//     off (the sdk_default vector); agentwire implements every feature, so
//     it announces full() on purpose, and this pins that choice to the
//     SDK's definition of full;
//   - supported_events: every event the SDK agent of the sdk_default vector
//     lists (there with Configure as 8, which the proxy's UDS decoder
//     drops) plus all the others, in the Unix-socket numbering (Configure
//     0), since a Handler handles every event kind.
//
// The health configuration and the gRPC-only limits are not on this wire
// (the proxy fills in defaults); TestDefaultCapabilitiesGRPCOnly pins them.
func TestDefaultCapabilitiesMatchRustSDK(t *testing.T) {
	sdkDefault := goldenCapsOf(t, "handshake_response_sdk_default_caps")
	full := goldenCapsOf(t, "handshake_response_full_features_msgpack")

	e := startUDS(t, BaseHandler{}, WithAgentID(sdkDefault.AgentID), WithName(sdkDefault.Name), WithVersion(sdkDefault.Version))
	p := dialRaw(t, e.path)
	stock := goldenByName(t, "handshake.json", "handshake_request_stock_proxy")
	p.send(frame.TypeHandshakeRequest, []byte(stock.JSONPayload))
	typ, raw := p.recv()
	if typ != frame.TypeHandshakeResponse {
		t.Fatalf("type %v", typ)
	}
	var got struct {
		Capabilities goldenCaps `json:"capabilities"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	c := got.Capabilities
	if c.AgentID != sdkDefault.AgentID || c.Name != sdkDefault.Name || c.Version != sdkDefault.Version {
		t.Errorf("identity %q %q %q, want the golden %q %q %q", c.AgentID, c.Name, c.Version, sdkDefault.AgentID, sdkDefault.Name, sdkDefault.Version)
	}
	if len(sdkDefault.Limits) != 3 || !mapsEqual(c.Limits, sdkDefault.Limits) {
		t.Errorf("limits %v, want the Rust SDK's default %v", c.Limits, sdkDefault.Limits)
	}
	if len(full.Features) != 9 || !mapsEqual(c.Features, full.Features) {
		t.Errorf("features %v, want the Rust SDK's AgentFeatures::full() %v", c.Features, full.Features)
	}
	for _, ev := range sdkDefault.SupportedEvents {
		if ev == agentwire.EventConfigureGRPC {
			ev = agentwire.EventConfigureUDS
		}
		if !slices.Contains(c.SupportedEvents, ev) {
			t.Errorf("supported_events %v lack %d, which the SDK agent lists", c.SupportedEvents, ev)
		}
	}
	if want := []int32{1, 2, 3, 4, 5, 6, 7, 0}; !slices.Equal(c.SupportedEvents, want) {
		t.Errorf("supported_events %v, want %v", c.SupportedEvents, want)
	}
}

// TestDefaultCapabilitiesGRPCOnly pins what the golden Unix-socket vectors
// cannot carry against the Rust SDK's defaults as SPEC section 1 lists
// them: HealthConfig::default() (report_interval_ms 10000,
// include_load_metrics true, include_resource_metrics false) and the
// gRPC-only AgentLimits fields (max_memory none, max_processing_time_ms
// 5000), and checks that the three UDS limits agree with the golden
// default in the server's own capabilities too.
func TestDefaultCapabilitiesGRPCOnly(t *testing.T) {
	sdkDefault := goldenCapsOf(t, "handshake_response_sdk_default_caps")
	s := NewServer(BaseHandler{})
	defer s.Close()
	c := s.Capabilities()
	if want := (agentwire.HealthConfig{ReportIntervalMS: 10000, IncludeLoadMetrics: true}); c.Health != want {
		t.Errorf("health %+v, want the Rust SDK's default %+v", c.Health, want)
	}
	if c.Limits.MaxMemory.Valid || c.Limits.MaxProcessingTimeMS != agentwire.Some[uint64](5000) {
		t.Errorf("gRPC-only limits %+v / %+v, want none / 5000", c.Limits.MaxMemory, c.Limits.MaxProcessingTimeMS)
	}
	l := map[string]int64{
		"max_body_size":        int64(c.Limits.MaxBodySize),
		"max_concurrency":      int64(c.Limits.MaxConcurrency),
		"preferred_chunk_size": int64(c.Limits.PreferredChunkSize),
	}
	if !mapsEqual(l, sdkDefault.Limits) {
		t.Errorf("limits %v, want the Rust SDK's default %v", l, sdkDefault.Limits)
	}
	// The capsPB the gRPC handshake sends is built from the same values.
	if pbl := s.capsPB.GetLimits(); pbl.GetMaxBodySize() != c.Limits.MaxBodySize || pbl.GetMaxProcessingTimeMs() != 5000 || pbl.MaxMemory != nil ||
		s.capsPB.GetHealthConfig().GetReportIntervalMs() != 10000 || !s.capsPB.GetHealthConfig().GetIncludeLoadMetrics() ||
		s.capsPB.GetHealthConfig().GetIncludeResourceMetrics() {
		t.Errorf("gRPC capabilities %v", s.capsPB)
	}
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
