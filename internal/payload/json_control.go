package payload

import (
	"math"
	"strconv"
)

// JSON forms of the control messages: cancel (0x40), ping (0x41), pong
// (0x42), health (0x30), metrics (0x31), config update (0x32) and flow
// control (0x33).

// ---------------------------------------------------------------------------
// 0x40 Cancel

// AppendCancelJSON appends the 0x40 payload as the Rust client builds it with
// json!: {"correlation_id":…,"reason":<0-based>,"timestamp_ms":…}. The
// reason is written as c.Reason-1 (0 client_disconnect … 5 manual); a zero
// Reason is written as 0.
func AppendCancelJSON(dst []byte, c *Cancel) []byte {
	reason := uint64(c.Reason)
	if reason > 0 {
		reason--
	}
	dst = append(dst, `{"correlation_id":`...)
	dst = jsonAppendString(dst, c.CorrelationID)
	dst = append(dst, `,"reason":`...)
	dst = strconv.AppendUint(dst, reason, 10)
	dst = append(dst, `,"timestamp_ms":`...)
	dst = strconv.AppendUint(dst, c.TimestampMS, 10)
	return append(dst, '}')
}

var jsonCancelFields = jsonFields{
	names:  []string{"correlation_id", "reason", "timestamp_ms"},
	reqMap: jsonAllFields(3),
	reqSeq: jsonAllFields(3),
}

// DecodeCancelJSON decodes a 0x40 payload. The 0-based wire reason r is
// stored as CancelReason(r+1); values up to 254 are accepted (reasons beyond
// 5 are unknown to Rust and should be treated as advisory).
func DecodeCancelJSON(data []byte, c *Cancel) error {
	d := jsonDecoder{data: data}
	d.cancel(c)
	return d.done()
}

func (d *jsonDecoder) cancel(c *Cancel) bool {
	*c = Cancel{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonCancelFields, "struct Cancel") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&c.CorrelationID)
		case 1:
			r, ok := d.readUint(math.MaxUint8-1, "a cancel reason")
			if ok {
				c.Reason = CancelReason(r + 1)
			}
		case 2:
			d.readU64(&c.TimestampMS)
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x41 Ping / 0x42 Pong

// AppendPingJSON appends the 0x41 payload {"sequence":…,"timestamp_ms":…}.
func AppendPingJSON(dst []byte, p *Ping) []byte {
	dst = append(dst, `{"sequence":`...)
	dst = strconv.AppendUint(dst, p.Sequence, 10)
	dst = append(dst, `,"timestamp_ms":`...)
	dst = strconv.AppendUint(dst, p.TimestampMS, 10)
	return append(dst, '}')
}

var jsonPingFields = jsonFields{
	names:  []string{"sequence", "timestamp_ms"},
	reqMap: jsonAllFields(2),
	reqSeq: jsonAllFields(2),
}

// DecodePingJSON decodes a 0x41 payload.
func DecodePingJSON(data []byte, p *Ping) error {
	d := jsonDecoder{data: data}
	d.ping(p)
	return d.done()
}

func (d *jsonDecoder) ping(p *Ping) bool {
	*p = Ping{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonPingFields, "struct Ping") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readU64(&p.Sequence)
		case 1:
			d.readU64(&p.TimestampMS)
		default:
			return d.err == nil
		}
	}
}

// AppendPongJSON appends a Pong-shaped 0x42 payload
// {"ping_timestamp_ms":…,"sequence":…,"timestamp_ms":…}. (An agent may
// instead echo the ping's bytes, which is what Rust SDK agents do.)
func AppendPongJSON(dst []byte, p *Pong) []byte {
	dst = append(dst, `{"ping_timestamp_ms":`...)
	dst = strconv.AppendUint(dst, p.PingTimestampMS, 10)
	dst = append(dst, `,"sequence":`...)
	dst = strconv.AppendUint(dst, p.Sequence, 10)
	dst = append(dst, `,"timestamp_ms":`...)
	dst = strconv.AppendUint(dst, p.TimestampMS, 10)
	return append(dst, '}')
}

var jsonPongFields = jsonFields{
	names:  []string{"sequence", "ping_timestamp_ms", "timestamp_ms"},
	reqMap: jsonMask(0),
	reqSeq: jsonMask(0),
}

// DecodePongJSON decodes a 0x42 payload in either shape: the Pong object, or
// the echo of the ping ({"sequence","timestamp_ms"}), in which case the
// echoed timestamp is the ping's, so it is stored in PingTimestampMS and
// TimestampMS is 0.
func DecodePongJSON(data []byte, p *Pong) error {
	d := jsonDecoder{data: data}
	d.pong(p)
	return d.done()
}

func (d *jsonDecoder) pong(p *Pong) bool {
	*p = Pong{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonPongFields, "struct Pong") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readU64(&p.Sequence)
		case 1:
			d.readU64(&p.PingTimestampMS)
		case 2:
			d.readU64(&p.TimestampMS)
		default:
			if d.err == nil && !s.has(1) {
				p.PingTimestampMS, p.TimestampMS = p.TimestampMS, 0
			}
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x30 HealthStatus

// AppendHealthStatusJSON appends the 0x30 payload: {"state":<int>} — the only
// key the Rust proxy reads — followed by the other fields under their proto
// names, each left out when zero or absent (so a bare state is written
// exactly like the Rust vectors: {"state":1}); a non-finite
// TimeoutMultiplier is left out too.
func AppendHealthStatusJSON(dst []byte, h *HealthStatus) []byte {
	dst = append(dst, `{"state":`...)
	dst = strconv.AppendInt(dst, int64(h.State), 10)
	if h.AgentID != "" {
		dst = append(dst, `,"agent_id":`...)
		dst = jsonAppendString(dst, h.AgentID)
	}
	if h.Message.Valid {
		dst = append(dst, `,"message":`...)
		dst = jsonAppendString(dst, h.Message.Value)
	}
	if h.ValidUntilMS.Valid {
		dst = append(dst, `,"valid_until_ms":`...)
		dst = strconv.AppendUint(dst, h.ValidUntilMS.Value, 10)
	}
	if h.TimestampMS != 0 {
		dst = append(dst, `,"timestamp_ms":`...)
		dst = strconv.AppendUint(dst, h.TimestampMS, 10)
	}
	if len(h.DisabledFeatures) > 0 {
		dst = append(dst, `,"disabled_features":`...)
		dst = jsonAppendStrings(dst, h.DisabledFeatures)
	}
	if h.TimeoutMultiplier != 0 && !math.IsInf(float64(h.TimeoutMultiplier), 0) && !math.IsNaN(float64(h.TimeoutMultiplier)) {
		dst = append(dst, `,"timeout_multiplier":`...)
		dst = jsonAppendFloat(dst, float64(h.TimeoutMultiplier), 32)
	}
	if h.DrainETAMS.Valid {
		dst = append(dst, `,"drain_eta_ms":`...)
		dst = strconv.AppendUint(dst, h.DrainETAMS.Value, 10)
	}
	if h.UnhealthyReason.Valid {
		dst = append(dst, `,"unhealthy_reason":`...)
		dst = jsonAppendString(dst, h.UnhealthyReason.Value)
	}
	if h.Recoverable {
		dst = append(dst, `,"recoverable":true`...)
	}
	return append(dst, '}')
}

var jsonHealthFields = jsonFields{
	names: []string{"state", "agent_id", "message", "valid_until_ms", "timestamp_ms",
		"disabled_features", "timeout_multiplier", "drain_eta_ms", "unhealthy_reason", "recoverable"},
	reqSeq: jsonMask(0),
	maxSeq: 1,
}

// DecodeHealthStatusJSON decodes a 0x30 payload the way the Rust proxy does:
// an object whose optional integer "state" (null or missing = 0) is the
// meaningful part; the crate's serde HealthStatus shape ({"status":…}
// object) is rejected. The other proto-named fields are read when present.
// A state outside the int32 range is rejected.
func DecodeHealthStatusJSON(data []byte, h *HealthStatus) error {
	d := jsonDecoder{data: data}
	d.healthStatus(h)
	return d.done()
}

func (d *jsonDecoder) healthStatus(h *HealthStatus) bool {
	*h = HealthStatus{DisabledFeatures: h.DisabledFeatures[:0]}
	var s jsonStruct
	if !d.structBegin(&s, &jsonHealthFields, "struct HealthStatusMsg") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			if !d.null() {
				v, _ := d.readInt(math.MinInt32, math.MaxInt32, "i64")
				h.State = HealthState(v)
			}
		case 1:
			d.readString(&h.AgentID)
		case 2:
			d.readOptString(&h.Message)
		case 3:
			d.readOptU64(&h.ValidUntilMS)
		case 4:
			d.readU64(&h.TimestampMS)
		case 5:
			h.DisabledFeatures, _ = d.readStringSlice(h.DisabledFeatures, "a sequence")
		case 6:
			d.readF32(&h.TimeoutMultiplier)
		case 7:
			d.readOptU64(&h.DrainETAMS)
		case 8:
			d.readOptString(&h.UnhealthyReason)
		case 9:
			d.readBool(&h.Recoverable)
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x33 FlowControlSignal

// AppendFlowControlSignalJSON appends the 0x33 payload: {"action":<int>} —
// what the Rust proxy reads — plus correlation_id, buffer_available (when
// present) and timestamp_ms (when non-zero).
func AppendFlowControlSignalJSON(dst []byte, f *FlowControlSignal) []byte {
	dst = append(dst, `{"action":`...)
	dst = strconv.AppendInt(dst, int64(f.Action), 10)
	if f.CorrelationID.Valid {
		dst = append(dst, `,"correlation_id":`...)
		dst = jsonAppendString(dst, f.CorrelationID.Value)
	}
	if f.BufferAvailable.Valid {
		dst = append(dst, `,"buffer_available":`...)
		dst = strconv.AppendUint(dst, f.BufferAvailable.Value, 10)
	}
	if f.TimestampMS != 0 {
		dst = append(dst, `,"timestamp_ms":`...)
		dst = strconv.AppendUint(dst, f.TimestampMS, 10)
	}
	return append(dst, '}')
}

var jsonFlowFields = jsonFields{
	names:  []string{"action", "correlation_id", "buffer_available", "timestamp_ms"},
	reqSeq: jsonMask(0),
	maxSeq: 1,
}

// DecodeFlowControlSignalJSON decodes a 0x33 payload like the Rust proxy: an
// object with an optional integer "action" (null or missing = 0); the serde
// FlowControlSignal shape ({"type":…} object) is rejected.
func DecodeFlowControlSignalJSON(data []byte, f *FlowControlSignal) error {
	d := jsonDecoder{data: data}
	d.flowControl(f)
	return d.done()
}

func (d *jsonDecoder) flowControl(f *FlowControlSignal) bool {
	*f = FlowControlSignal{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonFlowFields, "struct FlowControlMsg") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			if !d.null() {
				v, _ := d.readInt(math.MinInt32, math.MaxInt32, "i64")
				f.Action = FlowAction(v)
			}
		case 1:
			d.readOptString(&f.CorrelationID)
		case 2:
			d.readOptU64(&f.BufferAvailable)
		case 3:
			d.readU64(&f.TimestampMS)
		default:
			return d.err == nil
		}
	}
}

// ---------------------------------------------------------------------------
// 0x31 MetricsReport

// AppendMetricsReportJSON appends the 0x31 payload in MetricsReport field
// order. help is left out when empty; labels are always written; infinite
// bucket bounds are written as "+Inf" (either sign, as Rust does) and NaN as
// "NaN" (which Rust parses back); other non-finite floats become null, as in
// serde_json.
func AppendMetricsReportJSON(dst []byte, m *MetricsReport) []byte {
	dst = append(dst, `{"agent_id":`...)
	dst = jsonAppendString(dst, m.AgentID)
	dst = append(dst, `,"timestamp_ms":`...)
	dst = strconv.AppendUint(dst, m.TimestampMS, 10)
	dst = append(dst, `,"interval_ms":`...)
	dst = strconv.AppendUint(dst, m.IntervalMS, 10)
	dst = append(dst, `,"counters":[`...)
	for i := range m.Counters {
		c := &m.Counters[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonAppendMetricHead(dst, c.Name, c.Help, c.Labels)
		dst = append(dst, `,"value":`...)
		dst = strconv.AppendUint(dst, c.Value, 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"gauges":[`...)
	for i := range m.Gauges {
		g := &m.Gauges[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonAppendMetricHead(dst, g.Name, g.Help, g.Labels)
		dst = append(dst, `,"value":`...)
		dst = jsonAppendFloat(dst, g.Value, 64)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"histograms":[`...)
	for i := range m.Histograms {
		h := &m.Histograms[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonAppendMetricHead(dst, h.Name, h.Help, h.Labels)
		dst = append(dst, `,"sum":`...)
		dst = jsonAppendFloat(dst, h.Sum, 64)
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendUint(dst, h.Count, 10)
		dst = append(dst, `,"buckets":[`...)
		for j, b := range h.Buckets {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"le":`...)
			switch {
			case math.IsInf(b.Le, 0):
				dst = append(dst, `"+Inf"`...)
			case math.IsNaN(b.Le):
				dst = append(dst, `"NaN"`...)
			default:
				dst = jsonAppendFloat(dst, b.Le, 64)
			}
			dst = append(dst, `,"count":`...)
			dst = strconv.AppendUint(dst, b.Count, 10)
			dst = append(dst, '}')
		}
		dst = append(dst, `]}`...)
	}
	return append(dst, `]}`...)
}

func jsonAppendMetricHead(dst []byte, name, help string, labels map[string]string) []byte {
	dst = append(dst, `{"name":`...)
	dst = jsonAppendString(dst, name)
	if help != "" {
		dst = append(dst, `,"help":`...)
		dst = jsonAppendString(dst, help)
	}
	dst = append(dst, `,"labels":`...)
	return jsonAppendStringMap(dst, labels)
}

var (
	jsonMetricsFields = jsonFields{
		names:  []string{"agent_id", "timestamp_ms", "interval_ms", "counters", "gauges", "histograms"},
		reqMap: jsonAllFields(3),
		reqSeq: jsonAllFields(3),
	}
	jsonCounterFields = jsonFields{
		names:  []string{"name", "help", "labels", "value"},
		reqMap: jsonMask(0, 3),
		reqSeq: jsonMask(0, 1, 3),
	}
	jsonHistogramFields = jsonFields{
		names:  []string{"name", "help", "labels", "sum", "count", "buckets"},
		reqMap: jsonMask(0, 3, 4, 5),
		reqSeq: jsonMask(0, 1, 3, 4, 5),
	}
	jsonBucketFields = jsonFields{
		names:  []string{"le", "count"},
		reqMap: jsonAllFields(2),
		reqSeq: jsonAllFields(2),
	}
)

// DecodeMetricsReportJSON decodes a 0x31 payload with the Rust proxy's rules
// (counters/gauges/histograms default to empty, buckets required, help may
// be missing or null). Bucket bounds accept numbers, "+Inf", "Inf" and any
// string Rust's float parser accepts ("0.25", "inf", "-Infinity", "NaN" …).
func DecodeMetricsReportJSON(data []byte, m *MetricsReport) error {
	d := jsonDecoder{data: data}
	d.metricsReport(m)
	return d.done()
}

func (d *jsonDecoder) metricsReport(m *MetricsReport) bool {
	*m = MetricsReport{Counters: m.Counters[:0], Gauges: m.Gauges[:0], Histograms: m.Histograms[:0]}
	var s jsonStruct
	if !d.structBegin(&s, &jsonMetricsFields, "struct MetricsReport") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&m.AgentID)
		case 1:
			d.readU64(&m.TimestampMS)
		case 2:
			d.readU64(&m.IntervalMS)
		case 3:
			m.Counters = m.Counters[:0]
			if d.arrayBegin("a sequence") {
				var seq jsonSeq
				for d.arrayNext(&seq) {
					var c *CounterMetric
					m.Counters, c = jsonNextElem(m.Counters)
					d.counter(c)
				}
			}
		case 4:
			m.Gauges = m.Gauges[:0]
			if d.arrayBegin("a sequence") {
				var seq jsonSeq
				for d.arrayNext(&seq) {
					var g *GaugeMetric
					m.Gauges, g = jsonNextElem(m.Gauges)
					d.gauge(g)
				}
			}
		case 5:
			m.Histograms = m.Histograms[:0]
			if d.arrayBegin("a sequence") {
				var seq jsonSeq
				for d.arrayNext(&seq) {
					var h *HistogramMetric
					m.Histograms, h = jsonNextElem(m.Histograms)
					d.histogram(h)
				}
			}
		default:
			return d.err == nil
		}
	}
}

// jsonNextElem extends dst by one element, reusing the element already in
// the backing array when there is one (so its inner storage can be reused).
func jsonNextElem[T any](dst []T) ([]T, *T) {
	if len(dst) < cap(dst) {
		dst = dst[:len(dst)+1]
	} else {
		var zero T
		dst = append(dst, zero)
	}
	return dst, &dst[len(dst)-1]
}

func (d *jsonDecoder) counter(c *CounterMetric) bool {
	labels := c.Labels
	clear(labels)
	*c = CounterMetric{Labels: labels}
	var s jsonStruct
	if !d.structBegin(&s, &jsonCounterFields, "struct CounterMetric") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&c.Name)
		case 1:
			if !d.null() {
				d.readString(&c.Help)
			}
		case 2:
			d.readStringMap(&c.Labels, "a map")
		case 3:
			d.readU64(&c.Value)
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) gauge(g *GaugeMetric) bool {
	labels := g.Labels
	clear(labels)
	*g = GaugeMetric{Labels: labels}
	var s jsonStruct
	if !d.structBegin(&s, &jsonCounterFields, "struct GaugeMetric") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&g.Name)
		case 1:
			if !d.null() {
				d.readString(&g.Help)
			}
		case 2:
			d.readStringMap(&g.Labels, "a map")
		case 3:
			d.readF64(&g.Value)
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) histogram(h *HistogramMetric) bool {
	labels := h.Labels
	clear(labels)
	*h = HistogramMetric{Labels: labels, Buckets: h.Buckets[:0]}
	var s jsonStruct
	if !d.structBegin(&s, &jsonHistogramFields, "struct HistogramMetric") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&h.Name)
		case 1:
			if !d.null() {
				d.readString(&h.Help)
			}
		case 2:
			d.readStringMap(&h.Labels, "a map")
		case 3:
			d.readF64(&h.Sum)
		case 4:
			d.readU64(&h.Count)
		case 5:
			h.Buckets = h.Buckets[:0]
			if d.arrayBegin("a sequence") {
				var seq jsonSeq
				for d.arrayNext(&seq) {
					var b *HistogramBucket
					h.Buckets, b = jsonNextElem(h.Buckets)
					d.bucket(b)
				}
			}
		default:
			return d.err == nil
		}
	}
}

func (d *jsonDecoder) bucket(b *HistogramBucket) bool {
	*b = HistogramBucket{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonBucketFields, "struct HistogramBucket") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readLe(&b.Le)
		case 1:
			d.readU64(&b.Count)
		default:
			return d.err == nil
		}
	}
}

// readLe reads a histogram bound: a number, or a string that is "+Inf",
// "Inf" or accepted by Rust's f64 parser.
func (d *jsonDecoder) readLe(v *float64) bool {
	c := d.ws()
	if c != '"' {
		if c == '-' || (c >= '0' && c <= '9') {
			return d.readF64(v)
		}
		return d.typeErr(c, "float or +Inf")
	}
	at := d.pos
	b, ok := d.readStringBytes()
	if !ok {
		return false
	}
	if string(b) == "+Inf" || string(b) == "Inf" {
		*v = math.Inf(1)
		return true
	}
	f, ok := jsonParseRustFloat(b)
	if !ok {
		return d.failAt(at, "invalid float literal")
	}
	*v = f
	return true
}

// jsonParseRustFloat parses b with the grammar of Rust's f64::from_str:
// an optional sign, then "inf", "infinity" or "nan" in any letter case, or
// decimal digits with an optional point ("5.", ".5") and exponent. Values
// too large become infinities (Rust does not fail on overflow).
func jsonParseRustFloat(b []byte) (float64, bool) {
	s := b
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	switch jsonLower(s) {
	case "inf", "infinity":
		if neg {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	case "nan":
		return math.NaN(), true
	}
	i, digits := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(jsonView(b), 64)
	if err != nil && !math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// jsonLower returns an ASCII-lower-cased copy of short inputs (up to 8
// bytes) as a string for keyword matching, or "" for longer ones.
func jsonLower(b []byte) string {
	if len(b) > 8 {
		return ""
	}
	var buf [8]byte
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return string(buf[:len(b)])
}

// ---------------------------------------------------------------------------
// 0x32 ConfigUpdateRequest and its response

var jsonConfigUpdateKinds = [...]string{
	ConfigRequestReload:   "request_reload",
	ConfigRuleUpdate:      "rule_update",
	ConfigListUpdate:      "list_update",
	ConfigRestartRequired: "restart_required",
	ConfigError:           "config_error",
}

// AppendConfigUpdateRequestJSON appends the 0x32 payload:
// {"update_type":{"type":…,<variant fields>},"request_id":…,"timestamp_ms":…}
// with the variant's fields in declaration order. An unknown Kind is written
// as type "unknown", which receivers reject.
func AppendConfigUpdateRequestJSON(dst []byte, c *ConfigUpdateRequest) []byte {
	dst = append(dst, `{"update_type":{"type":`...)
	switch c.Kind {
	case ConfigRequestReload:
		dst = append(dst, `"request_reload"`...)
	case ConfigRuleUpdate:
		dst = append(dst, `"rule_update","rule_set":`...)
		dst = jsonAppendString(dst, c.RuleSet)
		dst = append(dst, `,"rules":[`...)
		for i := range c.Rules {
			r := &c.Rules[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"id":`...)
			dst = jsonAppendString(dst, r.ID)
			dst = append(dst, `,"priority":`...)
			dst = strconv.AppendInt(dst, int64(r.Priority), 10)
			dst = append(dst, `,"definition":`...)
			dst = jsonAppendRaw(dst, r.Definition)
			dst = append(dst, `,"enabled":`...)
			dst = jsonAppendBool(dst, r.Enabled)
			dst = append(dst, `,"description":`...)
			dst = jsonAppendOptString(dst, r.Description)
			dst = append(dst, `,"tags":`...)
			dst = jsonAppendStrings(dst, r.Tags)
			dst = append(dst, '}')
		}
		dst = append(dst, `],"remove_rules":`...)
		dst = jsonAppendStrings(dst, c.RemoveRules)
	case ConfigListUpdate:
		dst = append(dst, `"list_update","list_id":`...)
		dst = jsonAppendString(dst, c.ListID)
		dst = append(dst, `,"add":`...)
		dst = jsonAppendStrings(dst, c.Add)
		dst = append(dst, `,"remove":`...)
		dst = jsonAppendStrings(dst, c.Remove)
	case ConfigRestartRequired:
		dst = append(dst, `"restart_required","reason":`...)
		dst = jsonAppendString(dst, c.Reason)
		dst = append(dst, `,"grace_period_ms":`...)
		dst = strconv.AppendUint(dst, c.GracePeriodMS, 10)
	case ConfigError:
		dst = append(dst, `"config_error","error":`...)
		dst = jsonAppendString(dst, c.Error)
		dst = append(dst, `,"field":`...)
		dst = jsonAppendOptString(dst, c.Field)
	default:
		dst = append(dst, `"unknown"`...)
	}
	dst = append(dst, `},"request_id":`...)
	dst = jsonAppendString(dst, c.RequestID)
	dst = append(dst, `,"timestamp_ms":`...)
	dst = strconv.AppendUint(dst, c.TimestampMS, 10)
	return append(dst, '}')
}

var (
	jsonConfigUpdateFields = jsonFields{
		names:  []string{"update_type", "request_id", "timestamp_ms"},
		reqMap: jsonAllFields(3),
		reqSeq: jsonAllFields(3),
	}
	// Variant field tables: index 0 is the tag, which the array form (tag
	// first, as rmp/serde writes internally tagged enums) also carries.
	jsonConfigVariantFields = [...]jsonFields{
		ConfigRequestReload: {names: []string{"type"}, reqMap: 1, reqSeq: 1, strictSkip: true},
		ConfigRuleUpdate: {names: []string{"type", "rule_set", "rules", "remove_rules"},
			reqMap: jsonAllFields(4), reqSeq: jsonAllFields(4), strictSkip: true},
		ConfigListUpdate: {names: []string{"type", "list_id", "add", "remove"},
			reqMap: jsonAllFields(4), reqSeq: jsonAllFields(4), strictSkip: true},
		ConfigRestartRequired: {names: []string{"type", "reason", "grace_period_ms"},
			reqMap: jsonAllFields(3), reqSeq: jsonAllFields(3), strictSkip: true},
		ConfigError: {names: []string{"type", "error", "field"},
			reqMap: jsonMask(0, 1), reqSeq: jsonAllFields(3), strictSkip: true},
	}
	jsonRuleFields = jsonFields{
		names:  []string{"id", "priority", "definition", "enabled", "description", "tags"},
		reqMap: jsonMask(0, 1, 2, 3),
		reqSeq: jsonAllFields(5),
	}
)

const jsonConfigVariants = "one of `request_reload`, `rule_update`, `list_update`, `restart_required`, `config_error`"

// DecodeConfigUpdateRequestJSON decodes a 0x32 payload. update_type is
// internally tagged by "type" (the tag may appear anywhere in the object;
// the bare-string form is rejected, as in Rust).
func DecodeConfigUpdateRequestJSON(data []byte, c *ConfigUpdateRequest) error {
	d := jsonDecoder{data: data}
	d.configUpdate(c)
	return d.done()
}

func (d *jsonDecoder) configUpdate(c *ConfigUpdateRequest) bool {
	*c = ConfigUpdateRequest{
		Rules:       c.Rules[:0],
		RemoveRules: c.RemoveRules[:0],
		Add:         c.Add[:0],
		Remove:      c.Remove[:0],
	}
	var s jsonStruct
	if !d.structBegin(&s, &jsonConfigUpdateFields, "struct ConfigUpdateRequest") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.updateType(c)
		case 1:
			d.readString(&c.RequestID)
		case 2:
			d.readU64(&c.TimestampMS)
		default:
			return d.err == nil
		}
	}
}

// updateType decodes the internally tagged ConfigUpdateType: it finds the
// tag first, then decodes the same value again with the variant's fields.
func (d *jsonDecoder) updateType(c *ConfigUpdateRequest) bool {
	start := d.pos
	kind, ok := d.findTag()
	if !ok {
		return false
	}
	d.pos = start
	c.Kind = kind
	var s jsonStruct
	if !d.structBegin(&s, &jsonConfigVariantFields[kind], "internally tagged enum ConfigUpdateType") {
		return false
	}
	for {
		idx := d.structNext(&s)
		if idx < 0 {
			return d.err == nil
		}
		if idx == 0 {
			d.skip(true) // the tag, already read
			continue
		}
		switch kind {
		case ConfigRuleUpdate:
			switch idx {
			case 1:
				d.readString(&c.RuleSet)
			case 2:
				c.Rules = c.Rules[:0]
				if d.arrayBegin("a sequence") {
					var seq jsonSeq
					for d.arrayNext(&seq) {
						var r *RuleDefinition
						c.Rules, r = jsonNextElem(c.Rules)
						d.rule(r)
					}
				}
			case 3:
				c.RemoveRules, _ = d.readStringSlice(c.RemoveRules, "a sequence")
			}
		case ConfigListUpdate:
			switch idx {
			case 1:
				d.readString(&c.ListID)
			case 2:
				c.Add, _ = d.readStringSlice(c.Add, "a sequence")
			case 3:
				c.Remove, _ = d.readStringSlice(c.Remove, "a sequence")
			}
		case ConfigRestartRequired:
			switch idx {
			case 1:
				d.readString(&c.Reason)
			case 2:
				d.readU64(&c.GracePeriodMS)
			}
		case ConfigError:
			switch idx {
			case 1:
				d.readString(&c.Error)
			case 2:
				d.readOptString(&c.Field)
			}
		}
	}
}

// findTag scans an internally tagged value for its "type" tag without
// keeping anything (object form: anywhere, exactly once; array form: the
// first element). The caller rewinds d.pos afterwards.
func (d *jsonDecoder) findTag() (ConfigUpdateKind, bool) {
	switch c := d.ws(); c {
	case '[':
		d.pos++
		if d.ws() == ']' {
			return 0, d.fail("invalid length 0, expected tag")
		}
		return d.configKind()
	case '{':
		if d.depth++; d.depth > jsonMaxDepth {
			return 0, d.fail("recursion limit exceeded")
		}
		d.pos++
		var seq jsonSeq
		var kind ConfigUpdateKind
		found := false
		for {
			k, ok := d.mapNext(&seq)
			if !ok {
				break
			}
			if string(k) != "type" {
				d.skip(true)
				continue
			}
			if found {
				return 0, d.fail("duplicate field `type`")
			}
			found = true
			if kind, ok = d.configKind(); !ok {
				return 0, false
			}
		}
		if d.err != nil {
			return 0, false
		}
		if !found {
			return 0, d.fail("missing field `type`")
		}
		return kind, true
	default:
		return 0, d.typeErr(c, "internally tagged enum ConfigUpdateType")
	}
}

// configKind reads a ConfigUpdateType tag string.
func (d *jsonDecoder) configKind() (ConfigUpdateKind, bool) {
	d.ws()
	at := d.pos
	b, ok := d.readStringBytes()
	if !ok {
		return 0, false
	}
	kind, known := jsonConfigKind(b)
	if !known {
		return 0, d.failAt(at, "unknown variant `"+string(b)+"`, expected "+jsonConfigVariants)
	}
	return kind, true
}

func jsonConfigKind(b []byte) (ConfigUpdateKind, bool) {
	for k, n := range jsonConfigUpdateKinds {
		if string(b) == n {
			return ConfigUpdateKind(k), true
		}
	}
	return 0, false
}

func (d *jsonDecoder) rule(r *RuleDefinition) bool {
	*r = RuleDefinition{Tags: r.Tags[:0]}
	var s jsonStruct
	if !d.structBegin(&s, &jsonRuleFields, "struct RuleDefinition") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&r.ID)
		case 1:
			d.readI32(&r.Priority)
		case 2:
			d.readRaw((*[]byte)(&r.Definition))
		case 3:
			d.readBool(&r.Enabled)
		case 4:
			d.readOptString(&r.Description)
		case 5:
			r.Tags, _ = d.readStringSlice(r.Tags, "a sequence")
		default:
			return d.err == nil
		}
	}
}

// AppendConfigUpdateResponseJSON appends a ConfigUpdateResponse (request_id,
// accepted, error, timestamp_ms).
func AppendConfigUpdateResponseJSON(dst []byte, c *ConfigUpdateResponse) []byte {
	dst = append(dst, `{"request_id":`...)
	dst = jsonAppendString(dst, c.RequestID)
	dst = append(dst, `,"accepted":`...)
	dst = jsonAppendBool(dst, c.Accepted)
	dst = append(dst, `,"error":`...)
	dst = jsonAppendOptString(dst, c.Error)
	dst = append(dst, `,"timestamp_ms":`...)
	dst = strconv.AppendUint(dst, c.TimestampMS, 10)
	return append(dst, '}')
}

var jsonConfigUpdateResponseFields = jsonFields{
	names:  []string{"request_id", "accepted", "error", "timestamp_ms"},
	reqMap: jsonMask(0, 1, 3),
	reqSeq: jsonAllFields(4),
}

// DecodeConfigUpdateResponseJSON decodes a ConfigUpdateResponse.
func DecodeConfigUpdateResponseJSON(data []byte, c *ConfigUpdateResponse) error {
	d := jsonDecoder{data: data}
	d.configUpdateResponse(c)
	return d.done()
}

func (d *jsonDecoder) configUpdateResponse(c *ConfigUpdateResponse) bool {
	*c = ConfigUpdateResponse{}
	var s jsonStruct
	if !d.structBegin(&s, &jsonConfigUpdateResponseFields, "struct ConfigUpdateResponse") {
		return false
	}
	for {
		switch d.structNext(&s) {
		case 0:
			d.readString(&c.RequestID)
		case 1:
			d.readBool(&c.Accepted)
		case 2:
			d.readOptString(&c.Error)
		case 3:
			d.readU64(&c.TimestampMS)
		default:
			return d.err == nil
		}
	}
}
