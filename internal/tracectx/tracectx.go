// Package tracectx converts between the W3C traceparent text that
// RequestMetadata.traceparent carries (SPEC 2.1) and OpenTelemetry span
// contexts, without allocating. The engine formats the caller's span
// context into the event; the agent parses the event's traceparent into
// the handler's context.
package tracectx

import (
	"go.opentelemetry.io/otel/trace"
)

// Len is the length of a version-00 traceparent:
// "00-" 32 hex "-" 16 hex "-" 2 hex.
const Len = 55

const hexDigits = "0123456789abcdef"

// flagsMask keeps the flags the W3C Trace Context defines (sampled, and the
// level-2 random bit); other bits are not propagated.
const flagsMask = trace.FlagsSampled | trace.FlagsRandom

// Append appends sc as a version-00 traceparent to dst. sc should be valid
// (trace.SpanContext.IsValid); the trace state is not part of a
// traceparent.
func Append(dst []byte, sc trace.SpanContext) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	dst = append(dst, '0', '0', '-')
	for _, b := range tid {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xf])
	}
	dst = append(dst, '-')
	for _, b := range sid {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xf])
	}
	f := byte(sc.TraceFlags() & flagsMask)
	return append(dst, '-', hexDigits[f>>4], hexDigits[f&0xf])
}

// Parse parses a W3C traceparent into a remote span context (IsRemote
// true). It reports false for anything the W3C Trace Context says to
// ignore: a length or separator that does not fit, hex digits that are not
// lower-case, version ff, an all-zero trace or span id, and for version
// 00, anything after the flags. A later version may append fields after a
// '-', which are ignored. Flags other than sampled and random are dropped.
func Parse(s string) (trace.SpanContext, bool) {
	if len(s) < Len || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return trace.SpanContext{}, false
	}
	ver, ok := hexByte(s[0], s[1])
	if !ok || ver == 0xff || (ver == 0 && len(s) != Len) || (len(s) > Len && s[Len] != '-') {
		return trace.SpanContext{}, false
	}
	var cfg trace.SpanContextConfig
	for i := range cfg.TraceID {
		if cfg.TraceID[i], ok = hexByte(s[3+2*i], s[4+2*i]); !ok {
			return trace.SpanContext{}, false
		}
	}
	for i := range cfg.SpanID {
		if cfg.SpanID[i], ok = hexByte(s[36+2*i], s[37+2*i]); !ok {
			return trace.SpanContext{}, false
		}
	}
	f, ok := hexByte(s[53], s[54])
	if !ok {
		return trace.SpanContext{}, false
	}
	cfg.TraceFlags = trace.TraceFlags(f) & flagsMask
	cfg.Remote = true
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}

// hexByte decodes two lower-case hex digits.
func hexByte(hi, lo byte) (byte, bool) {
	h, ok1 := nibble(hi)
	l, ok2 := nibble(lo)
	return h<<4 | l, ok1 && ok2
}

func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
