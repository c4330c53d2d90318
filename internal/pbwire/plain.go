package pbwire

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/wiretext"
)

// This file is the request-headers encoder's path for the usual event, one
// whose strings are all ASCII ("plain"): every string is written as is, so
// sizes are plain lengths, and every field number is below 16, so every tag
// is one byte. The length and tag helpers (tagLen, varLen, appendLen,
// plainField, plainOpt) are small enough for the compiler to inline; the
// per-field writers appendPlain and appendPlainOpt are not (go build
// -gcflags=-m: cost 93 and 97 against the budget of 80) but make one call
// per field where the generic path above makes several (protowire's
// AppendVarint is never inlined). The bytes written are the same as the generic path's (tests:
// TestEncodeRequestHeadersMatchesVT, FuzzEncodeRequestHeaders,
// TestPlainEncoderLengthBoundaries).

// tagLen is the one-byte tag of length-delimited field num (num < 16).
func tagLen(num protowire.Number) byte { return byte(num)<<3 | byte(protowire.BytesType) }

// varLen returns the varint size of n ≥ 0.
func varLen(n int) int {
	if n < 1<<7 {
		return 1
	}
	return protowire.SizeVarint(uint64(n))
}

// appendLen appends the varint n ≥ 0.
func appendLen(b []byte, n int) []byte {
	if n < 1<<7 {
		return append(b, byte(n))
	}
	return protowire.AppendVarint(b, uint64(n))
}

// plainField returns the encoded size of string field s written as is,
// 0 when s is empty (proto3: not written).
func plainField(s string) int {
	if s == "" {
		return 0
	}
	return 1 + varLen(len(s)) + len(s)
}

// plainOpt returns the encoded size of optional string field o written as
// is (present even when empty).
func plainOpt(o agentwire.Opt[string]) int {
	if !o.Valid {
		return 0
	}
	return 1 + varLen(len(o.Value)) + len(o.Value)
}

// appendPlain appends string field num (num < 16) written as is; nothing
// when s is empty.
func appendPlain(b []byte, tag byte, s string) []byte {
	if s == "" {
		return b
	}
	if len(s) < 1<<7 {
		b = append(b, tag, byte(len(s)))
	} else {
		b = append(b, tag)
		b = protowire.AppendVarint(b, uint64(len(s)))
	}
	return append(b, s...)
}

// appendPlainOpt appends optional string field num (num < 16), present
// even when empty.
func appendPlainOpt(b []byte, tag byte, o agentwire.Opt[string]) []byte {
	if !o.Valid {
		return b
	}
	if len(o.Value) < 1<<7 {
		b = append(b, tag, byte(len(o.Value)))
	} else {
		b = append(b, tag)
		b = protowire.AppendVarint(b, uint64(len(o.Value)))
	}
	return append(b, o.Value...)
}

// measurePlainHeaders returns the size of the headers as repeated field
// num written as is, and the OR of their bytes (see wiretext.OrBytes), in
// one walk.
func measurePlainHeaders(h agentwire.Headers) (n int, acc uint64) {
	for i := range h {
		name := h[i].Name
		acc |= wiretext.OrBytes(name)
		nf := plainField(name)
		for _, v := range h[i].Values {
			acc |= wiretext.OrBytes(v)
			body := nf + plainField(v)
			n += 1 + varLen(body) + body
		}
	}
	return n, acc
}

// appendPlainHeaders appends the headers as repeated field num (num < 16)
// of Header messages, every string written as is.
func appendPlainHeaders(b []byte, num protowire.Number, h agentwire.Headers) []byte {
	tag := tagLen(num)
	for i := range h {
		name := h[i].Name
		nf := plainField(name)
		for _, v := range h[i].Values {
			body := nf + plainField(v)
			if body < 1<<7 && nf != 0 && v != "" {
				// The usual header: both fields present, all lengths one
				// byte (body < 128 implies both string lengths are too).
				b = append(b, tag, byte(body), tagLen(1), byte(len(name)))
				b = append(b, name...)
				b = append(b, tagLen(2), byte(len(v)))
				b = append(b, v...)
				continue
			}
			b = append(b, tag)
			b = appendLen(b, body)
			b = appendPlain(b, tagLen(1), name)
			b = appendPlain(b, tagLen(2), v)
		}
	}
	return b
}

// plainMetadataLen is metadataBodyLen for plain metadata.
func plainMetadataLen(m *agentwire.RequestMetadata, ts uint64) int {
	return plainField(m.CorrelationID) +
		plainField(m.RequestID) +
		plainField(m.ClientIP) +
		sizeU64(4, uint64(m.ClientPort)) +
		plainOpt(m.ServerName) +
		plainField(m.Protocol) +
		plainOpt(m.TLSVersion) +
		plainOpt(m.RouteID) +
		plainOpt(m.UpstreamID) +
		sizeU64(10, ts) +
		plainField(m.Traceparent)
}

// appendPlainMetadata is appendMetadata for plain metadata.
func appendPlainMetadata(b []byte, m *agentwire.RequestMetadata, ts uint64) []byte {
	b = appendPlain(b, tagLen(1), m.CorrelationID)
	b = appendPlain(b, tagLen(2), m.RequestID)
	b = appendPlain(b, tagLen(3), m.ClientIP)
	if m.ClientPort != 0 {
		b = append(b, byte(4<<3|protowire.VarintType))
		b = protowire.AppendVarint(b, uint64(m.ClientPort))
	}
	b = appendPlainOpt(b, tagLen(5), m.ServerName)
	b = appendPlain(b, tagLen(6), m.Protocol)
	b = appendPlainOpt(b, tagLen(7), m.TLSVersion)
	b = appendPlainOpt(b, tagLen(8), m.RouteID)
	b = appendPlainOpt(b, tagLen(9), m.UpstreamID)
	if ts != 0 {
		b = append(b, byte(10<<3|protowire.VarintType))
		b = protowire.AppendVarint(b, ts)
	}
	return appendPlain(b, tagLen(11), m.Traceparent)
}
