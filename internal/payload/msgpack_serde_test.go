package payload

// Test helpers for the MessagePack codec: the serde JSON value a Rust peer
// would re-serialize a decoded message as (to compare with the golden
// *_decoded_value fields), and a generic MessagePack tree reader used to
// check the shapes our encoders emit.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

func mpF32(f float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return v
}

func mpOptS(o Opt[string]) any {
	if !o.Valid {
		return nil
	}
	return o.Value
}

func mpOptU(o Opt[uint64]) any {
	if !o.Valid {
		return nil
	}
	return float64(o.Value)
}

func mpStrList(s []string) []any {
	out := make([]any, 0, len(s))
	for _, v := range s {
		out = append(out, v)
	}
	return out
}

func mpStrMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mpRaw(t testing.TB, raw json.RawMessage) any {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("raw JSON %q: %v", raw, err)
	}
	return v
}

func mpTS(t time.Time) string { return string(mpFormatTimestamp(nil, t)) }

func mpSerdeHeaders(h Headers) map[string]any {
	out := make(map[string]any, len(h))
	for _, e := range h {
		out[e.Name] = mpStrList(e.Values)
	}
	return out
}

func mpSerdeMetadata(m *RequestMetadata) map[string]any {
	out := map[string]any{
		"correlation_id": m.CorrelationID,
		"request_id":     m.RequestID,
		"client_ip":      m.ClientIP,
		"client_port":    float64(m.ClientPort),
		"server_name":    mpOptS(m.ServerName),
		"protocol":       m.Protocol,
		"tls_version":    mpOptS(m.TLSVersion),
		"tls_cipher":     mpOptS(m.TLSCipher),
		"route_id":       mpOptS(m.RouteID),
		"upstream_id":    mpOptS(m.UpstreamID),
		"timestamp":      mpTS(m.Timestamp),
	}
	if m.Traceparent != "" {
		out["traceparent"] = m.Traceparent
	}
	return out
}

func mpSerdeRequestHeaders(e *RequestHeadersEvent) any {
	return map[string]any{
		"metadata": mpSerdeMetadata(&e.Metadata),
		"method":   e.Method,
		"uri":      e.URI,
		"headers":  mpSerdeHeaders(e.Headers),
	}
}

func mpSerdeBodyChunk(c *BodyChunk, counter string) any {
	return map[string]any{
		"correlation_id": c.CorrelationID,
		"data":           base64.StdEncoding.EncodeToString(c.Data),
		"is_last":        c.IsLast,
		"total_size":     mpOptU(c.TotalSize),
		"chunk_index":    float64(c.ChunkIndex),
		counter:          float64(c.BytesTransferred),
	}
}

func mpSerdeResponseHeaders(e *ResponseHeadersEvent) any {
	return map[string]any{
		"correlation_id": e.CorrelationID,
		"status":         float64(e.Status),
		"headers":        mpSerdeHeaders(e.Headers),
	}
}

func mpSerdeRequestComplete(e *RequestCompleteEvent) any {
	return map[string]any{
		"correlation_id":     e.CorrelationID,
		"status":             float64(e.Status),
		"duration_ms":        float64(e.DurationMS),
		"request_body_size":  float64(e.RequestBodySize),
		"response_body_size": float64(e.ResponseBodySize),
		"upstream_attempts":  float64(e.UpstreamAttempts),
		"error":              mpOptS(e.Error),
	}
}

func mpSerdeWebSocketFrame(e *WebSocketFrameEvent) any {
	return map[string]any{
		"correlation_id":   e.CorrelationID,
		"opcode":           e.Opcode,
		"data":             base64.StdEncoding.EncodeToString(e.Data),
		"client_to_server": e.ClientToServer,
		"frame_index":      float64(e.FrameIndex),
		"fin":              e.Fin,
		"route_id":         mpOptS(e.RouteID),
		"client_ip":        e.ClientIP,
	}
}

func mpSerdeGuardrail(e *GuardrailInspectEvent) any {
	out := map[string]any{
		"correlation_id":  e.CorrelationID,
		"inspection_type": e.InspectionType,
		"content":         e.Content,
		"categories":      mpStrList(e.Categories),
		"metadata":        mpStrMap(e.Metadata),
	}
	if e.Model.Valid {
		out["model"] = e.Model.Value
	}
	if e.RouteID.Valid {
		out["route_id"] = e.RouteID.Value
	}
	return out
}

func mpSerdeConfigure(t testing.TB, e *ConfigureEvent) any {
	return map[string]any{
		"correlation_id": e.CorrelationID,
		"config":         mpRaw(t, e.Config),
		"config_version": mpOptS(e.ConfigVersion),
	}
}

func mpSerdeDecision(d *Decision) any {
	switch d.Kind {
	case DecisionBlock:
		var headers any
		if d.BlockHeaders != nil {
			headers = mpStrMap(d.BlockHeaders)
		}
		return map[string]any{"block": map[string]any{
			"status": float64(d.Status), "body": mpOptS(d.Body), "headers": headers}}
	case DecisionRedirect:
		return map[string]any{"redirect": map[string]any{"url": d.URL, "status": float64(d.Status)}}
	case DecisionChallenge:
		return map[string]any{"challenge": map[string]any{
			"challenge_type": d.ChallengeType, "params": mpStrMap(d.Params)}}
	}
	return "allow"
}

func mpSerdeOps(ops []HeaderOp) []any {
	out := make([]any, 0, len(ops))
	for _, op := range ops {
		switch op.Kind {
		case HeaderRemove:
			out = append(out, map[string]any{"remove": map[string]any{"name": op.Name}})
		default:
			out = append(out, map[string]any{op.Kind.String(): map[string]any{"name": op.Name, "value": op.Value}})
		}
	}
	return out
}

func mpSerdeMutation(o Opt[BodyMutation]) any {
	if !o.Valid {
		return nil
	}
	m := o.Value
	var data any
	switch m.Action {
	case MutationDrop:
		data = ""
	case MutationReplace:
		data = base64.StdEncoding.EncodeToString(m.Data)
	}
	return map[string]any{"data": data, "chunk_index": float64(m.ChunkIndex)}
}

func mpSerdeAgentResponse(t testing.TB, r *AgentResponse) any {
	// The model cannot tell an absent routing id from "" (both route
	// nowhere); render both as absent, see mpParseExpected.
	custom := map[string]any{}
	if r.CorrelationID != "" {
		custom["correlation_id"] = r.CorrelationID
	}
	for k, v := range r.Audit.Custom {
		custom[k] = mpRaw(t, v)
	}
	var confidence any
	if r.Audit.Confidence.Valid {
		confidence = mpF32(r.Audit.Confidence.Value)
	}
	var ws any
	if r.WebSocketDecision.Valid {
		switch d := r.WebSocketDecision.Value; d.Kind {
		case WebSocketAllow:
			ws = "allow"
		case WebSocketDrop:
			ws = "drop"
		default:
			ws = map[string]any{"close": map[string]any{"code": float64(d.Code), "reason": d.Reason}}
		}
	}
	version := r.Version
	return map[string]any{
		"version":          float64(version),
		"decision":         mpSerdeDecision(&r.Decision),
		"request_headers":  mpSerdeOps(r.RequestHeaders),
		"response_headers": mpSerdeOps(r.ResponseHeaders),
		"routing_metadata": mpStrMap(r.RoutingMetadata),
		"audit": map[string]any{
			"tags":         mpStrList(r.Audit.Tags),
			"rule_ids":     mpStrList(r.Audit.RuleIDs),
			"confidence":   confidence,
			"reason_codes": mpStrList(r.Audit.ReasonCodes),
			"custom":       custom,
		},
		"needs_more":             r.NeedsMore,
		"request_body_mutation":  mpSerdeMutation(r.RequestBodyMutation),
		"response_body_mutation": mpSerdeMutation(r.ResponseBodyMutation),
		"websocket_decision":     ws,
	}
}

func mpSerdeMetricHead(name, help string, labels map[string]string) map[string]any {
	out := map[string]any{"name": name, "labels": mpStrMap(labels)}
	if help != "" {
		out["help"] = help
	}
	return out
}

func mpSerdeMetrics(m *MetricsReport) any {
	counters := []any{}
	for _, c := range m.Counters {
		o := mpSerdeMetricHead(c.Name, c.Help, c.Labels)
		o["value"] = float64(c.Value)
		counters = append(counters, o)
	}
	gauges := []any{}
	for _, g := range m.Gauges {
		o := mpSerdeMetricHead(g.Name, g.Help, g.Labels)
		o["value"] = g.Value
		gauges = append(gauges, o)
	}
	hists := []any{}
	for _, h := range m.Histograms {
		o := mpSerdeMetricHead(h.Name, h.Help, h.Labels)
		o["sum"] = h.Sum
		o["count"] = float64(h.Count)
		buckets := []any{}
		for _, b := range h.Buckets {
			var le any = b.Le
			if math.IsInf(b.Le, 0) {
				le = "+Inf"
			}
			buckets = append(buckets, map[string]any{"le": le, "count": float64(b.Count)})
		}
		o["buckets"] = buckets
		hists = append(hists, o)
	}
	return map[string]any{
		"agent_id":     m.AgentID,
		"timestamp_ms": float64(m.TimestampMS),
		"interval_ms":  float64(m.IntervalMS),
		"counters":     counters,
		"gauges":       gauges,
		"histograms":   hists,
	}
}

func mpSerdeConfigUpdate(t testing.TB, r *ConfigUpdateRequest) any {
	ut := map[string]any{"type": mpUpdateKinds[r.Kind]}
	switch r.Kind {
	case ConfigRuleUpdate:
		rules := []any{}
		for i := range r.Rules {
			rd := &r.Rules[i]
			rules = append(rules, map[string]any{
				"id": rd.ID, "priority": float64(rd.Priority), "definition": mpRaw(t, rd.Definition),
				"enabled": rd.Enabled, "description": mpOptS(rd.Description), "tags": mpStrList(rd.Tags),
			})
		}
		ut["rule_set"], ut["rules"], ut["remove_rules"] = r.RuleSet, rules, mpStrList(r.RemoveRules)
	case ConfigListUpdate:
		ut["list_id"], ut["add"], ut["remove"] = r.ListID, mpStrList(r.Add), mpStrList(r.Remove)
	case ConfigRestartRequired:
		ut["reason"], ut["grace_period_ms"] = r.Reason, float64(r.GracePeriodMS)
	case ConfigError:
		ut["error"], ut["field"] = r.Error, mpOptS(r.Field)
	}
	return map[string]any{"update_type": ut, "request_id": r.RequestID, "timestamp_ms": float64(r.TimestampMS)}
}

// mpSerdeHealthFull and mpSerdeFlowFull render every field (round trips).
func mpSerdeHealthFull(h *HealthStatus) any {
	return map[string]any{
		"agent_id": h.AgentID, "state": float64(h.State), "message": mpOptS(h.Message),
		"disabled_features": mpStrList(h.DisabledFeatures), "timeout_multiplier": mpF32(h.TimeoutMultiplier),
		"drain_eta_ms": mpOptU(h.DrainETAMS), "unhealthy_reason": mpOptS(h.UnhealthyReason),
		"recoverable": h.Recoverable, "valid_until_ms": mpOptU(h.ValidUntilMS), "timestamp_ms": float64(h.TimestampMS),
	}
}

func mpSerdeFlowFull(s *FlowControlSignal) any {
	return map[string]any{
		"correlation_id": mpOptS(s.CorrelationID), "action": float64(s.Action),
		"buffer_available": mpOptU(s.BufferAvailable), "timestamp_ms": float64(s.TimestampMS),
	}
}

func mpSerdeConfigUpdateResponse(r *ConfigUpdateResponse) any {
	return map[string]any{
		"request_id": r.RequestID, "accepted": r.Accepted, "error": mpOptS(r.Error),
		"timestamp_ms": float64(r.TimestampMS),
	}
}

// mpParseExpected parses a golden *_decoded_value (JSON text) and
// normalizes RFC 3339 timestamps the way our model stores them.
func mpParseExpected(t testing.TB, text string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("golden value: %v", err)
	}
	if m, ok := v.(map[string]any); ok {
		if audit, ok := m["audit"].(map[string]any); ok {
			if custom, ok := audit["custom"].(map[string]any); ok && custom["correlation_id"] == "" {
				delete(custom, "correlation_id")
			}
		}
		if md, ok := m["metadata"].(map[string]any); ok {
			if ts, ok := md["timestamp"].(string); ok {
				md["timestamp"] = mpTS(mpParseTimestamp([]byte(ts)))
			}
		}
	}
	return v
}

// mpSameValue compares two serde JSON trees.
func mpSameValue(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

// ---------------------------------------------------------------------------
// Generic MessagePack tree

type (
	mpTInt string  // any integer, decimal
	mpTF32 float32 // f32
	mpTF64 float64 // f64
	mpTBin string  // bin
)

// mpTree reads one MessagePack value into a comparable tree: maps become
// map[string]any (a non-string key is an error, and so is a repeated key
// except inside JSON values, where serde_json keeps the last), integers of
// every width the same mpTInt.
func mpTree(b []byte) (any, []byte, error) { return mpTreeIn(b, false) }

func mpTreeIn(b []byte, inJSON bool) (any, []byte, error) {
	if len(b) == 0 {
		return nil, b, errMpShort
	}
	c := b[0]
	switch {
	case c == 0xc0:
		return nil, b[1:], nil
	case c == 0xc2 || c == 0xc3:
		return c == 0xc3, b[1:], nil
	case c == 0xcf:
		u, o, err := msgp.ReadUint64Bytes(b)
		return mpTInt(strconv.FormatUint(u, 10)), o, err
	case mpIsInt(c):
		i, o, err := msgp.ReadInt64Bytes(b)
		return mpTInt(strconv.FormatInt(i, 10)), o, err
	case c == 0xca:
		f, o, err := msgp.ReadFloat32Bytes(b)
		return mpTF32(f), o, err
	case c == 0xcb:
		f, o, err := msgp.ReadFloat64Bytes(b)
		return mpTF64(f), o, err
	case mpIsStr(c):
		s, o, err := msgp.ReadStringBytes(b)
		return s, o, err
	case mpIsBin(c):
		v, o, err := msgp.ReadBytesZC(b)
		return mpTBin(v), o, err
	case mpIsArray(c):
		n, o, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil {
			return nil, b, err
		}
		out := make([]any, 0, n)
		for i := uint32(0); i < n; i++ {
			var v any
			if v, o, err = mpTreeIn(o, inJSON); err != nil {
				return nil, b, err
			}
			out = append(out, v)
		}
		return out, o, nil
	case mpIsMap(c):
		n, o, err := msgp.ReadMapHeaderBytes(b)
		if err != nil {
			return nil, b, err
		}
		out := make(map[string]any, n)
		for i := uint32(0); i < n; i++ {
			var k string
			if k, o, err = msgp.ReadStringBytes(o); err != nil {
				return nil, b, fmt.Errorf("map key: %w", err)
			}
			if _, dup := out[k]; dup && !inJSON {
				return nil, b, fmt.Errorf("repeated key %q", k)
			}
			var v any
			if v, o, err = mpTreeIn(o, inJSON || mpJSONKeys[k]); err != nil {
				return nil, b, err
			}
			out[k] = v
		}
		return out, o, nil
	}
	return nil, b, fmt.Errorf("unsupported type byte %#x", c)
}

func mpMustTree(t testing.TB, b []byte) any {
	t.Helper()
	v, rest, err := mpTree(b)
	if err != nil || len(rest) != 0 {
		t.Fatalf("msgpack tree: err=%v rest=%d", err, len(rest))
	}
	return v
}

// Keys whose values are lists in the Rust types; nowhere else may our
// encoders write an array (structs are always maps).
var mpListKeys = map[string]bool{
	"request_headers": true, "response_headers": true, "tags": true, "rule_ids": true,
	"reason_codes": true, "categories": true, "counters": true, "gauges": true,
	"histograms": true, "buckets": true, "rules": true, "remove_rules": true, "add": true,
	"remove": true, "disabled_features": true,
}

// Keys that hold arbitrary JSON values.
var mpJSONKeys = map[string]bool{"config": true, "definition": true, "custom": true}

// mpCheckShape fails if the tree holds an array outside a list-valued
// field, i.e. a struct written positionally.
func mpCheckShape(t testing.TB, v any, key string, inHeaders bool) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if mpJSONKeys[k] {
				continue
			}
			if inHeaders { // event headers name → [values]; block headers name → value
				switch e.(type) {
				case []any, string:
				default:
					t.Errorf("header %q: unexpected value %T", k, e)
				}
				continue
			}
			mpCheckShape(t, e, k, k == "headers")
		}
	case []any:
		if !mpListKeys[key] && !inHeaders {
			t.Errorf("array under key %q: structs must be maps", key)
		}
		for _, e := range x {
			mpCheckShape(t, e, "", false)
		}
	}
}
