package pbwire

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/wiretext"
)

// This file is the agent side's encoder of the usual reply: an
// AgentToProxy{response} whose decision is allow (block, redirect and
// challenge replies, and replies with audit.custom entries, are left to
// internal/pbconv's ResponseEncoder and vtprotobuf, see
// MeasureAgentResponse). It writes the bytes vtprotobuf writes for the
// message ResponseEncoder.Encode builds from the same value (field order
// 1, 10, 11, 12, 13, 14, then the decision; the audit message is always
// present), without building it: TestAgentResponseMatchesVT and
// FuzzAgentResponse hold the two together.

// AgentResponseSize is the measured layout of one reply. It is only valid
// for the response it was measured for, unchanged.
type AgentResponseSize struct {
	// Len is the encoded length of the whole AgentToProxy message.
	Len         int
	body, audit int
	plain       bool // the correlation id and header operations are ASCII
}

// headerOpLen returns the body length of the HeaderOp message for op
// (ResponseEncoder: HeaderAdd is add, HeaderRemove is remove, any other
// kind is set).
func headerOpLen(op *agentwire.HeaderOp) int {
	if op.Kind == agentwire.HeaderRemove {
		// A oneof string member is written even when empty.
		return sizeTag(3) + protowire.SizeBytes(wiretext.Len(op.Name))
	}
	h := sizeStr(1, op.Name) + sizeStr(2, op.Value)
	return 1 + varLen(h) + h
}

// plainOpsSize is headerOpsSize for ops whose strings are all ASCII, with
// the OR of their bytes (see wiretext.OrBytes) to check that.
func plainOpsSize(ops []agentwire.HeaderOp) (n int, acc uint64) {
	for i := range ops {
		op := &ops[i]
		acc |= wiretext.OrBytes(op.Name) | wiretext.OrBytes(op.Value)
		var b int
		if op.Kind == agentwire.HeaderRemove {
			b = 1 + varLen(len(op.Name)) + len(op.Name)
		} else {
			h := plainField(op.Name) + plainField(op.Value)
			b = 1 + varLen(h) + h
		}
		n += 1 + varLen(b) + b
	}
	return n, acc
}

// appendPlainOps is appendHeaderOps for ops whose strings are all ASCII.
func appendPlainOps(b []byte, tag byte, ops []agentwire.HeaderOp) []byte {
	for i := range ops {
		op := &ops[i]
		if op.Kind == agentwire.HeaderRemove {
			b = append(b, tag)
			b = appendLen(b, 1+varLen(len(op.Name))+len(op.Name))
			b = append(b, tagLen(3))
			b = appendLen(b, len(op.Name))
			b = append(b, op.Name...)
			continue
		}
		t := tagLen(1)
		if op.Kind == agentwire.HeaderAdd {
			t = tagLen(2)
		}
		h := plainField(op.Name) + plainField(op.Value)
		b = append(b, tag)
		b = appendLen(b, 1+varLen(h)+h)
		b = append(b, t)
		b = appendLen(b, h)
		b = appendPlain(b, tagLen(1), op.Name)
		b = appendPlain(b, tagLen(2), op.Value)
	}
	return b
}

func headerOpsSize(ops []agentwire.HeaderOp) int {
	n := 0
	for i := range ops {
		b := headerOpLen(&ops[i])
		n += 1 + varLen(b) + b
	}
	return n
}

func appendHeaderOps(b []byte, tag byte, ops []agentwire.HeaderOp) []byte {
	for i := range ops {
		op := &ops[i]
		b = append(b, tag)
		b = appendLen(b, headerOpLen(op))
		switch op.Kind {
		case agentwire.HeaderRemove:
			b = append(b, tagLen(3))
			b = appendText(b, op.Name)
		default:
			t := tagLen(1)
			if op.Kind == agentwire.HeaderAdd {
				t = tagLen(2)
			}
			b = append(b, t)
			b = appendLen(b, sizeStr(1, op.Name)+sizeStr(2, op.Value))
			b = appendStr(b, 1, op.Name)
			b = appendStr(b, 2, op.Value)
		}
	}
	return b
}

func stringsSize(ss []string) int {
	n := 0
	for _, s := range ss {
		l := wiretext.Len(s)
		n += 1 + varLen(l) + l
	}
	return n
}

func appendStrings(b []byte, tag byte, ss []string) []byte {
	for _, s := range ss {
		b = append(b, tag) // repeated: every element, even an empty one
		b = appendText(b, s)
	}
	return b
}

func auditLen(a *agentwire.AuditMetadata) int {
	n := stringsSize(a.Tags) + stringsSize(a.RuleIDs) + stringsSize(a.ReasonCodes)
	if a.Confidence.Valid {
		n += 1 + 4
	}
	return n
}

// MeasureAgentResponse measures the AgentToProxy{response} message for r
// and reports whether this encoder writes it: false for a decision other
// than allow or audit.custom entries (use the generic encoder).
func MeasureAgentResponse(r *agentwire.AgentResponse) (AgentResponseSize, bool) {
	switch r.Decision.Kind {
	case agentwire.DecisionBlock, agentwire.DecisionRedirect, agentwire.DecisionChallenge:
		return AgentResponseSize{}, false
	}
	if len(r.Audit.Custom) > 0 {
		return AgentResponseSize{}, false
	}
	audit := auditLen(&r.Audit)
	reqOps, acc := plainOpsSize(r.RequestHeaders)
	respOps, acc2 := plainOpsSize(r.ResponseHeaders)
	plain := (acc|acc2|wiretext.OrBytes(r.CorrelationID))&wiretext.HighBits == 0
	var body int
	if plain {
		body = plainField(r.CorrelationID) + reqOps + respOps
	} else {
		body = sizeStr(1, r.CorrelationID) + headerOpsSize(r.RequestHeaders) + headerOpsSize(r.ResponseHeaders)
	}
	body += 1 + varLen(audit) + audit +
		2 // allow: tag and an empty message
	if r.ProcessingTimeMS.Valid {
		body += 1 + protowire.SizeVarint(r.ProcessingTimeMS.Value)
	}
	if r.NeedsMore {
		body += 2
	}
	return AgentResponseSize{Len: 1 + varLen(body) + body, body: body, audit: audit, plain: plain}, true
}

// AppendMeasuredAgentResponse appends the AgentToProxy{response} message
// for r measured by MeasureAgentResponse (which returned true); it appends
// exactly sz.Len bytes.
func AppendMeasuredAgentResponse(b []byte, r *agentwire.AgentResponse, sz AgentResponseSize) []byte {
	b = append(b, tagLen(A2PResponse))
	b = appendLen(b, sz.body)
	if sz.plain {
		b = appendPlain(b, tagLen(1), r.CorrelationID)
		b = appendPlainOps(b, tagLen(10), r.RequestHeaders)
		b = appendPlainOps(b, tagLen(11), r.ResponseHeaders)
	} else {
		b = appendStr(b, 1, r.CorrelationID)
		b = appendHeaderOps(b, tagLen(10), r.RequestHeaders)
		b = appendHeaderOps(b, tagLen(11), r.ResponseHeaders)
	}
	b = append(b, tagLen(12))
	b = appendLen(b, sz.audit)
	a := &r.Audit
	b = appendStrings(b, tagLen(1), a.Tags)
	b = appendStrings(b, tagLen(2), a.RuleIDs)
	if a.Confidence.Valid {
		b = append(b, byte(3<<3|protowire.Fixed32Type))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(a.Confidence.Value))
	}
	b = appendStrings(b, tagLen(4), a.ReasonCodes)
	if r.ProcessingTimeMS.Valid {
		b = append(b, byte(13<<3|protowire.VarintType))
		b = protowire.AppendVarint(b, r.ProcessingTimeMS.Value)
	}
	if r.NeedsMore {
		b = append(b, byte(14<<3|protowire.VarintType), 1)
	}
	return append(b, tagLen(2), 0) // allow
}
