package payload

import (
	"bytes"
	"errors"
	"math"
	"strconv"

	"github.com/tinylib/msgp/msgp"
)

// Agent-originated control messages (frame types 0x30–0x33) and the
// proxy's ConfigUpdateResponse.

// ---------------------------------------------------------------------------
// HealthStatus (0x30)

// The Rust proxy decodes 0x30 as struct {state: Option<i64>}: a map whose
// only key it reads is an integer "state", or the array [state]. The other
// keys are agentwire extensions under their proto field names; every one of
// them is optional on decode.
var (
	mpHealthMap = mpNewStruct("health_status", 1, "state", "agent_id", "message",
		"disabled_features", "timeout_multiplier", "drain_eta_ms", "unhealthy_reason",
		"recoverable", "valid_until_ms", "timestamp_ms")
	mpHealthArray = mpNewStruct("health_status", 1, "state")
)

// AppendHealthStatusMsgpack appends h as a map with the integer "state"
// first (the only key the Rust proxy reads), then the other fields under
// their proto names, each left out when zero or absent (a bare state is
// exactly the Rust proxy's {state}).
func AppendHealthStatusMsgpack(b []byte, h *HealthStatus) []byte {
	n := uint32(1)
	for _, ok := range [...]bool{h.AgentID != "", h.Message.Valid, len(h.DisabledFeatures) > 0,
		h.TimeoutMultiplier != 0, h.DrainETAMS.Valid, h.UnhealthyReason.Valid, h.Recoverable,
		h.ValidUntilMS.Valid, h.TimestampMS != 0} {
		if ok {
			n++
		}
	}
	b = msgp.AppendMapHeader(b, n)
	b = mpAppendKey(b, "state")
	b = msgp.AppendInt32(b, int32(h.State))
	if h.AgentID != "" {
		b = mpAppendKey(b, "agent_id")
		b = mpAppendStr(b, h.AgentID)
	}
	if h.Message.Valid {
		b = mpAppendKey(b, "message")
		b = mpAppendStr(b, h.Message.Value)
	}
	if len(h.DisabledFeatures) > 0 {
		b = mpAppendKey(b, "disabled_features")
		b = mpAppendStringList(b, h.DisabledFeatures)
	}
	if h.TimeoutMultiplier != 0 {
		b = mpAppendKey(b, "timeout_multiplier")
		b = msgp.AppendFloat32(b, h.TimeoutMultiplier)
	}
	if h.DrainETAMS.Valid {
		b = mpAppendKey(b, "drain_eta_ms")
		b = msgp.AppendUint64(b, h.DrainETAMS.Value)
	}
	if h.UnhealthyReason.Valid {
		b = mpAppendKey(b, "unhealthy_reason")
		b = mpAppendStr(b, h.UnhealthyReason.Value)
	}
	if h.Recoverable {
		b = mpAppendKey(b, "recoverable")
		b = msgp.AppendBool(b, true)
	}
	if h.ValidUntilMS.Valid {
		b = mpAppendKey(b, "valid_until_ms")
		b = msgp.AppendUint64(b, h.ValidUntilMS.Value)
	}
	if h.TimestampMS != 0 {
		b = mpAppendKey(b, "timestamp_ms")
		b = msgp.AppendUint64(b, h.TimestampMS)
	}
	return b
}

// mpReadState reads an Option<i64> state or action that must fit int32
// (nil = 0, unspecified).
func mpReadState(b []byte, dst *int32) ([]byte, error) {
	if mpIsNil(b) {
		*dst = 0
		return b[1:], nil
	}
	return mpReadI32(b, dst)
}

// DecodeHealthStatusMsgpack decodes a 0x30 payload into h: a map (every key
// optional, state an integer or nil) or the positional array [state]. A
// state outside int32 is rejected.
func DecodeHealthStatusMsgpack(data []byte, h *HealthStatus) error {
	*h = HealthStatus{DisabledFeatures: h.DisabledFeatures[:0]}
	s := mpHealthMap
	if len(data) > 0 && mpIsArray(data[0]) {
		s = mpHealthArray
	}
	o, err := s.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadState(b, (*int32)(&h.State))
		case 1:
			return mpReadString(b, &h.AgentID)
		case 2:
			return mpReadOptString(b, &h.Message)
		case 3:
			return mpReadStringList(b, &h.DisabledFeatures)
		case 4:
			f, o, err := mpReadFloat(b)
			h.TimeoutMultiplier = float32(f)
			return o, err
		case 5:
			return mpReadOptU64(b, &h.DrainETAMS)
		case 6:
			return mpReadOptString(b, &h.UnhealthyReason)
		case 7:
			return mpReadBool(b, &h.Recoverable)
		case 8:
			return mpReadOptU64(b, &h.ValidUntilMS)
		default:
			return mpReadU64(b, &h.TimestampMS)
		}
	})
	return mpDone(o, err)
}

// ---------------------------------------------------------------------------
// FlowControlSignal (0x33)

var (
	mpFlowMap = mpNewStruct("flow_control", 1, "action", "correlation_id",
		"buffer_available", "timestamp_ms")
	mpFlowArray = mpNewStruct("flow_control", 1, "action")
)

// AppendFlowControlSignalMsgpack appends s as a map with the integer
// "action" first (the key the Rust proxy reads), then correlation_id and
// buffer_available when present and timestamp_ms when non-zero.
func AppendFlowControlSignalMsgpack(b []byte, s *FlowControlSignal) []byte {
	n := uint32(1)
	for _, ok := range [...]bool{s.CorrelationID.Valid, s.BufferAvailable.Valid, s.TimestampMS != 0} {
		if ok {
			n++
		}
	}
	b = msgp.AppendMapHeader(b, n)
	b = mpAppendKey(b, "action")
	b = msgp.AppendInt32(b, int32(s.Action))
	if s.CorrelationID.Valid {
		b = mpAppendKey(b, "correlation_id")
		b = mpAppendStr(b, s.CorrelationID.Value)
	}
	if s.BufferAvailable.Valid {
		b = mpAppendKey(b, "buffer_available")
		b = msgp.AppendUint64(b, s.BufferAvailable.Value)
	}
	if s.TimestampMS != 0 {
		b = mpAppendKey(b, "timestamp_ms")
		b = msgp.AppendUint64(b, s.TimestampMS)
	}
	return b
}

// DecodeFlowControlSignalMsgpack decodes a 0x33 payload into s: a map
// (every key optional, action an integer or nil) or the array [action].
func DecodeFlowControlSignalMsgpack(data []byte, s *FlowControlSignal) error {
	*s = FlowControlSignal{}
	spec := mpFlowMap
	if len(data) > 0 && mpIsArray(data[0]) {
		spec = mpFlowArray
	}
	o, err := spec.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadState(b, (*int32)(&s.Action))
		case 1:
			return mpReadOptString(b, &s.CorrelationID)
		case 2:
			return mpReadOptU64(b, &s.BufferAvailable)
		default:
			return mpReadU64(b, &s.TimestampMS)
		}
	})
	return mpDone(o, err)
}

// ---------------------------------------------------------------------------
// MetricsReport (0x31)

var (
	mpMetricsReport = mpNewStruct("metrics_report", 3, "agent_id!", "timestamp_ms!",
		"interval_ms!", "counters", "gauges", "histograms")
	mpCounter   = mpNewStruct("counter", 4, "name!", "help", "labels", "value!")
	mpGauge     = mpNewStruct("gauge", 4, "name!", "help", "labels", "value!")
	mpHistogram = mpNewStruct("histogram", 6, "name!", "help", "labels", "sum!", "count!", "buckets!")
	mpBucket    = mpNewStruct("bucket", 2, "le!", "count!")
)

// AppendMetricsReportMsgpack appends m as maps with field names; empty
// metric lists, empty help and empty labels are left out (all have
// defaults). Infinite and NaN bucket bounds are written as the strings
// "+Inf", "-Inf" and "NaN".
func AppendMetricsReportMsgpack(b []byte, m *MetricsReport) []byte {
	n := uint32(3)
	for _, l := range [...]int{len(m.Counters), len(m.Gauges), len(m.Histograms)} {
		if l > 0 {
			n++
		}
	}
	b = msgp.AppendMapHeader(b, n)
	b = mpAppendKey(b, "agent_id")
	b = mpAppendStr(b, m.AgentID)
	b = mpAppendKey(b, "timestamp_ms")
	b = msgp.AppendUint64(b, m.TimestampMS)
	b = mpAppendKey(b, "interval_ms")
	b = msgp.AppendUint64(b, m.IntervalMS)
	if len(m.Counters) > 0 {
		b = mpAppendKey(b, "counters")
		b = msgp.AppendArrayHeader(b, uint32(len(m.Counters)))
		for i := range m.Counters {
			c := &m.Counters[i]
			b = mpAppendMetricHead(b, 1, c.Name, c.Help, c.Labels)
			b = mpAppendKey(b, "value")
			b = msgp.AppendUint64(b, c.Value)
		}
	}
	if len(m.Gauges) > 0 {
		b = mpAppendKey(b, "gauges")
		b = msgp.AppendArrayHeader(b, uint32(len(m.Gauges)))
		for i := range m.Gauges {
			g := &m.Gauges[i]
			b = mpAppendMetricHead(b, 1, g.Name, g.Help, g.Labels)
			b = mpAppendKey(b, "value")
			b = msgp.AppendFloat64(b, g.Value)
		}
	}
	if len(m.Histograms) > 0 {
		b = mpAppendKey(b, "histograms")
		b = msgp.AppendArrayHeader(b, uint32(len(m.Histograms)))
		for i := range m.Histograms {
			h := &m.Histograms[i]
			b = mpAppendMetricHead(b, 3, h.Name, h.Help, h.Labels)
			b = mpAppendKey(b, "sum")
			b = msgp.AppendFloat64(b, h.Sum)
			b = mpAppendKey(b, "count")
			b = msgp.AppendUint64(b, h.Count)
			b = mpAppendKey(b, "buckets")
			b = msgp.AppendArrayHeader(b, uint32(len(h.Buckets)))
			for _, bk := range h.Buckets {
				b = msgp.AppendMapHeader(b, 2)
				b = mpAppendKey(b, "le")
				switch {
				case math.IsInf(bk.Le, 1):
					b = mpAppendKey(b, "+Inf")
				case math.IsInf(bk.Le, -1):
					b = mpAppendKey(b, "-Inf")
				case math.IsNaN(bk.Le):
					b = mpAppendKey(b, "NaN")
				default:
					b = msgp.AppendFloat64(b, bk.Le)
				}
				b = mpAppendKey(b, "count")
				b = msgp.AppendUint64(b, bk.Count)
			}
		}
	}
	return b
}

// mpAppendMetricHead opens a metric map with name, help and labels plus
// rest more entries.
func mpAppendMetricHead(b []byte, rest uint32, name, help string, labels map[string]string) []byte {
	n := 1 + rest
	if help != "" {
		n++
	}
	if len(labels) > 0 {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	b = mpAppendKey(b, "name")
	b = mpAppendStr(b, name)
	if help != "" {
		b = mpAppendKey(b, "help")
		b = mpAppendStr(b, help)
	}
	if len(labels) > 0 {
		b = mpAppendKey(b, "labels")
		b = mpAppendStringMap(b, labels)
	}
	return b
}

// DecodeMetricsReportMsgpack decodes a 0x31 payload into m, reusing its
// metric slices. Besides maps and full positional arrays it accepts a
// positional counter, gauge or histogram whose help element was left out
// (what a Rust agent writes for help None; a Rust proxy rejects it).
func DecodeMetricsReportMsgpack(data []byte, m *MetricsReport) error {
	m.Counters = m.Counters[:0]
	m.Gauges = m.Gauges[:0]
	m.Histograms = m.Histograms[:0]
	o, err := mpMetricsReport.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &m.AgentID)
		case 1:
			return mpReadU64(b, &m.TimestampMS)
		case 2:
			return mpReadU64(b, &m.IntervalMS)
		case 3:
			return mpReadList(b, &m.Counters, mpReadCounter)
		case 4:
			return mpReadList(b, &m.Gauges, mpReadGauge)
		default:
			return mpReadList(b, &m.Histograms, mpReadHistogram)
		}
	})
	return mpDone(o, err)
}

// mpReadList reads an array of T into *dst, reusing its elements.
func mpReadList[T any](b []byte, dst *[]T, read func([]byte, *T) ([]byte, error)) ([]byte, error) {
	n, o, err := mpReadArrayHeader(b)
	if err != nil {
		return b, err
	}
	s := mpPrealloc(*dst, n, len(o))
	for k := 0; k < n; k++ {
		if len(s) < cap(s) {
			s = s[:len(s)+1]
		} else {
			var zero T
			s = append(s, zero)
		}
		if o, err = read(o, &s[len(s)-1]); err != nil {
			*dst = s[:0]
			return b, err
		}
	}
	*dst = s
	return o, nil
}

// mpDecodeMetric decodes a metric struct; a positional form one element
// short whose second element is a map is read as having no help.
func mpDecodeMetric(b []byte, s *mpStruct, field func(i int, b []byte) ([]byte, error)) ([]byte, error) {
	if len(b) > 0 && mpIsArray(b[0]) {
		n, o, err := mpReadArrayHeader(b)
		if err != nil {
			return b, err
		}
		if n == len(s.fields)-1 {
			if after, err := mpSkip(o); err == nil && len(after) > 0 && mpIsMap(after[0]) {
				for i := 0; i < len(s.fields); i++ {
					if i == 1 { // help left out
						continue
					}
					if o, err = field(i, o); err != nil {
						return b, mpWrap(s.name+"."+s.fields[i], err)
					}
				}
				return o, nil
			}
		}
	}
	return s.decode(b, field)
}

func mpReadCounter(b []byte, c *CounterMetric) ([]byte, error) {
	c.Help = ""
	clear(c.Labels)
	return mpDecodeMetric(b, mpCounter, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &c.Name)
		case 1:
			return mpReadOptStringAsEmpty(b, &c.Help)
		case 2:
			return mpReadStringMap(b, &c.Labels)
		default:
			return mpReadU64(b, &c.Value)
		}
	})
}

func mpReadGauge(b []byte, g *GaugeMetric) ([]byte, error) {
	g.Help = ""
	clear(g.Labels)
	return mpDecodeMetric(b, mpGauge, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &g.Name)
		case 1:
			return mpReadOptStringAsEmpty(b, &g.Help)
		case 2:
			return mpReadStringMap(b, &g.Labels)
		default:
			return mpReadF64(b, &g.Value)
		}
	})
}

func mpReadHistogram(b []byte, h *HistogramMetric) ([]byte, error) {
	h.Help = ""
	clear(h.Labels)
	h.Buckets = h.Buckets[:0]
	return mpDecodeMetric(b, mpHistogram, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &h.Name)
		case 1:
			return mpReadOptStringAsEmpty(b, &h.Help)
		case 2:
			return mpReadStringMap(b, &h.Labels)
		case 3:
			return mpReadF64(b, &h.Sum)
		case 4:
			return mpReadU64(b, &h.Count)
		default:
			return mpReadList(b, &h.Buckets, mpReadBucket)
		}
	})
}

func mpReadBucket(b []byte, bk *HistogramBucket) ([]byte, error) {
	return mpBucket.decode(b, func(i int, b []byte) ([]byte, error) {
		if i == 1 {
			return mpReadU64(b, &bk.Count)
		}
		if len(b) > 0 && (mpIsStr(b[0]) || mpIsBin(b[0])) {
			v, o, err := mpReadStrBytes(b)
			if err != nil {
				return b, err
			}
			f, ok := mpParseLe(v)
			if !ok {
				return b, errors.New("agentwire: msgpack: invalid histogram bound")
			}
			bk.Le = f
			return o, nil
		}
		return mpReadF64(b, &bk.Le)
	})
}

// mpParseLe parses a bucket bound given as text the way the Rust decoder
// does: "+Inf" and "Inf", or anything Rust's f64 parser accepts (decimal
// and exponent forms, inf / infinity / nan in any case with an optional
// sign; no hex floats, underscores or spaces). Out-of-range values become
// ±Inf or 0 as in Rust.
func mpParseLe(s []byte) (float64, bool) {
	if string(s) == "+Inf" || string(s) == "Inf" {
		return math.Inf(1), true
	}
	if len(s) == 0 || bytes.ContainsAny(s, "xX_ \t\n\r") {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

// ---------------------------------------------------------------------------
// ConfigUpdateRequest (0x32) and ConfigUpdateResponse

var (
	mpConfigUpdate = mpNewStruct("config_update", 3, "update_type!", "request_id!", "timestamp_ms!")
	// The internally tagged update_type: field 0 is the "type" tag, the rest
	// the variant's fields (none has a serde default).
	mpUpdateKinds    = []string{"request_reload", "rule_update", "list_update", "restart_required", "config_error"}
	mpUpdateVariants = []*mpStruct{
		mpTagged(mpNewStruct("request_reload", 1, "type!")),
		mpTagged(mpNewStruct("rule_update", 4, "type!", "rule_set!", "rules!", "remove_rules!")),
		mpTagged(mpNewStruct("list_update", 4, "type!", "list_id!", "add!", "remove!")),
		mpTagged(mpNewStruct("restart_required", 3, "type!", "reason!", "grace_period_ms!")),
		mpTagged(mpNewStruct("config_error", 3, "type!", "error!", "field")),
	}
	mpRule = mpNewStruct("rule", 5, "id!", "priority!", "definition!", "enabled!", "description", "tags")

	mpConfigUpdateResponse = mpNewStruct("config_update_response", 4, "request_id!", "accepted!",
		"error", "timestamp_ms!")
)

func mpTagged(s *mpStruct) *mpStruct {
	s.keyBase = 1
	return s
}

// AppendConfigUpdateRequestMsgpack appends r as {update_type: {type, ...},
// request_id, timestamp_ms}, update_type being the internally tagged map.
// It fails if r.Kind is unknown or a rule definition is not valid JSON; b
// is then returned unchanged.
func AppendConfigUpdateRequestMsgpack(b []byte, r *ConfigUpdateRequest) ([]byte, error) {
	if int(r.Kind) >= len(mpUpdateKinds) {
		return b, mpWrap("config_update.update_type", errMpKind)
	}
	start := len(b)
	b = msgp.AppendMapHeader(b, 3)
	b = mpAppendKey(b, "update_type")
	switch r.Kind {
	case ConfigRequestReload:
		b = msgp.AppendMapHeader(b, 1)
	case ConfigRuleUpdate, ConfigListUpdate:
		b = msgp.AppendMapHeader(b, 4)
	case ConfigRestartRequired:
		b = msgp.AppendMapHeader(b, 3)
	case ConfigError:
		if r.Field.Valid {
			b = msgp.AppendMapHeader(b, 3)
		} else {
			b = msgp.AppendMapHeader(b, 2)
		}
	}
	b = mpAppendKey(b, "type")
	b = msgp.AppendString(b, mpUpdateKinds[r.Kind])
	switch r.Kind {
	case ConfigRuleUpdate:
		b = mpAppendKey(b, "rule_set")
		b = mpAppendStr(b, r.RuleSet)
		b = mpAppendKey(b, "rules")
		b = msgp.AppendArrayHeader(b, uint32(len(r.Rules)))
		for i := range r.Rules {
			var err error
			if b, err = mpAppendRule(b, &r.Rules[i]); err != nil {
				return b[:start], mpWrap("config_update.update_type.rules", err)
			}
		}
		b = mpAppendKey(b, "remove_rules")
		b = mpAppendStringList(b, r.RemoveRules)
	case ConfigListUpdate:
		b = mpAppendKey(b, "list_id")
		b = mpAppendStr(b, r.ListID)
		b = mpAppendKey(b, "add")
		b = mpAppendStringList(b, r.Add)
		b = mpAppendKey(b, "remove")
		b = mpAppendStringList(b, r.Remove)
	case ConfigRestartRequired:
		b = mpAppendKey(b, "reason")
		b = mpAppendStr(b, r.Reason)
		b = mpAppendKey(b, "grace_period_ms")
		b = msgp.AppendUint64(b, r.GracePeriodMS)
	case ConfigError:
		b = mpAppendKey(b, "error")
		b = mpAppendStr(b, r.Error)
		if r.Field.Valid {
			b = mpAppendKey(b, "field")
			b = mpAppendStr(b, r.Field.Value)
		}
	}
	b = mpAppendKey(b, "request_id")
	b = mpAppendStr(b, r.RequestID)
	b = mpAppendKey(b, "timestamp_ms")
	return msgp.AppendUint64(b, r.TimestampMS), nil
}

func mpAppendRule(b []byte, r *RuleDefinition) ([]byte, error) {
	n := uint32(4)
	if r.Description.Valid {
		n++
	}
	if len(r.Tags) > 0 {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	b = mpAppendKey(b, "id")
	b = mpAppendStr(b, r.ID)
	b = mpAppendKey(b, "priority")
	b = msgp.AppendInt32(b, r.Priority)
	b = mpAppendKey(b, "definition")
	b, err := mpAppendJSON(b, r.Definition)
	if err != nil {
		return b, mpWrap("definition", err)
	}
	b = mpAppendKey(b, "enabled")
	b = msgp.AppendBool(b, r.Enabled)
	if r.Description.Valid {
		b = mpAppendKey(b, "description")
		b = mpAppendStr(b, r.Description.Value)
	}
	if len(r.Tags) > 0 {
		b = mpAppendKey(b, "tags")
		b = mpAppendStringList(b, r.Tags)
	}
	return b, nil
}

// DecodeConfigUpdateRequestMsgpack decodes a 0x32 payload into r.
// update_type is internally tagged: a map holding a "type" key (anywhere)
// with the variant's fields, or an array [type, fields...].
func DecodeConfigUpdateRequestMsgpack(data []byte, r *ConfigUpdateRequest) error {
	*r = ConfigUpdateRequest{
		Rules:       r.Rules[:0],
		RemoveRules: r.RemoveRules[:0],
		Add:         r.Add[:0],
		Remove:      r.Remove[:0],
	}
	o, err := mpConfigUpdate.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadUpdateType(b, r)
		case 1:
			return mpReadString(b, &r.RequestID)
		default:
			return mpReadU64(b, &r.TimestampMS)
		}
	})
	return mpDone(o, err)
}

// mpFindTag returns the input positioned at the tag value of an internally
// tagged enum: the first array element or the value of the map key "type".
func mpFindTag(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return b, errMpShort
	}
	if mpIsArray(b[0]) {
		n, o, err := mpReadArrayHeader(b)
		if err != nil {
			return b, err
		}
		if n == 0 {
			return b, errors.New("agentwire: msgpack: missing field type")
		}
		return o, nil
	}
	n, o, err := mpReadMapHeader(b)
	if err != nil {
		return b, err
	}
	var tag []byte
	for k := 0; k < n; k++ {
		var key []byte
		if len(o) > 0 && (mpIsStr(o[0]) || mpIsBin(o[0])) {
			if key, o, err = mpReadKeyBytes(o); err != nil {
				return b, err
			}
		} else if o, err = mpSkip(o); err != nil {
			return b, err
		}
		if string(key) == "type" {
			if tag != nil {
				return b, errors.New("agentwire: msgpack: duplicate field type")
			}
			tag = o
		}
		if o, err = mpSkip(o); err != nil {
			return b, err
		}
	}
	if tag == nil {
		return b, errors.New("agentwire: msgpack: missing field type")
	}
	return tag, nil
}

func mpReadUpdateType(b []byte, r *ConfigUpdateRequest) ([]byte, error) {
	tag, err := mpFindTag(b)
	if err != nil {
		return b, err
	}
	idx, _, err := mpReadVariantName(tag, mpUpdateKinds)
	if err != nil {
		return b, err
	}
	r.Kind = ConfigUpdateKind(idx)
	return mpUpdateVariants[idx].decode(b, func(i int, b []byte) ([]byte, error) {
		if i == 0 {
			return mpSkip(b) // the tag, already read
		}
		switch r.Kind {
		case ConfigRuleUpdate:
			switch i {
			case 1:
				return mpReadString(b, &r.RuleSet)
			case 2:
				return mpReadList(b, &r.Rules, mpReadRule)
			default:
				return mpReadStringList(b, &r.RemoveRules)
			}
		case ConfigListUpdate:
			switch i {
			case 1:
				return mpReadString(b, &r.ListID)
			case 2:
				return mpReadStringList(b, &r.Add)
			default:
				return mpReadStringList(b, &r.Remove)
			}
		case ConfigRestartRequired:
			if i == 1 {
				return mpReadString(b, &r.Reason)
			}
			return mpReadU64(b, &r.GracePeriodMS)
		default: // ConfigError
			if i == 1 {
				return mpReadString(b, &r.Error)
			}
			return mpReadOptString(b, &r.Field)
		}
	})
}

func mpReadRule(b []byte, r *RuleDefinition) ([]byte, error) {
	r.Description = Opt[string]{}
	r.Tags = r.Tags[:0]
	r.Definition = nil
	return mpRule.decode(b, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &r.ID)
		case 1:
			return mpReadI32(b, &r.Priority)
		case 2:
			js, o, err := mpReadJSON(nil, b, 0)
			if err == nil {
				r.Definition = js
			}
			return o, err
		case 3:
			return mpReadBool(b, &r.Enabled)
		case 4:
			return mpReadOptString(b, &r.Description)
		default:
			return mpReadStringList(b, &r.Tags)
		}
	})
}

// AppendConfigUpdateResponseMsgpack appends r as {request_id, accepted,
// error, timestamp_ms} (error nil when absent).
func AppendConfigUpdateResponseMsgpack(b []byte, r *ConfigUpdateResponse) []byte {
	b = msgp.AppendMapHeader(b, 4)
	b = mpAppendKey(b, "request_id")
	b = mpAppendStr(b, r.RequestID)
	b = mpAppendKey(b, "accepted")
	b = msgp.AppendBool(b, r.Accepted)
	b = mpAppendKey(b, "error")
	b = mpAppendOptStr(b, r.Error)
	b = mpAppendKey(b, "timestamp_ms")
	return msgp.AppendUint64(b, r.TimestampMS)
}

// DecodeConfigUpdateResponseMsgpack decodes a ConfigUpdateResponse into r.
func DecodeConfigUpdateResponseMsgpack(data []byte, r *ConfigUpdateResponse) error {
	r.Error = Opt[string]{}
	o, err := mpConfigUpdateResponse.decode(data, func(i int, b []byte) ([]byte, error) {
		switch i {
		case 0:
			return mpReadString(b, &r.RequestID)
		case 1:
			return mpReadBool(b, &r.Accepted)
		case 2:
			return mpReadOptString(b, &r.Error)
		default:
			return mpReadU64(b, &r.TimestampMS)
		}
	})
	return mpDone(o, err)
}
