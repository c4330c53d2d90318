package pbwire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// vtReply is the reference encoding of r: internal/pbconv's conversion
// marshalled by vtprotobuf.
func vtReply(t testing.TB, r *agentwire.AgentResponse) []byte {
	t.Helper()
	var e pbconv.ResponseEncoder
	b, err := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: e.Encode(r)}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAgentResponseMatchesVT(t *testing.T) {
	long := strings.Repeat("x", 200)
	cases := map[string]*agentwire.AgentResponse{
		"empty":      {},
		"echo":       {CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7", RequestHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"}}},
		"unknown":    {CorrelationID: "c", Decision: agentwire.Decision{Kind: agentwire.DecisionKind(99)}},
		"all-ops":    {CorrelationID: "c", RequestHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderAdd, Name: "a", Value: "1"}, {Kind: agentwire.HeaderRemove, Name: "r"}, {Kind: agentwire.HeaderRemove}, {Kind: agentwire.HeaderSet}, {Kind: agentwire.HeaderOpKind(7), Name: "s", Value: ""}, {Kind: agentwire.HeaderAdd, Value: "v"}}, ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: long, Value: long}, {Kind: agentwire.HeaderRemove, Name: long}}},
		"audit":      {CorrelationID: long, Audit: agentwire.AuditMetadata{Tags: []string{"a", "", long}, RuleIDs: []string{"942100"}, Confidence: agentwire.Some[float32](0.75), ReasonCodes: []string{"SQLI"}}},
		"zero-conf":  {Audit: agentwire.AuditMetadata{Confidence: agentwire.Some[float32](0)}},
		"timing":     {CorrelationID: "c", ProcessingTimeMS: agentwire.Some[uint64](0), NeedsMore: true},
		"timing-big": {ProcessingTimeMS: agentwire.Some[uint64](1 << 40)},
		"non-utf8":   {CorrelationID: "c\xff", RequestHeaders: []agentwire.HeaderOp{{Name: "n\xff", Value: "\xfe"}, {Kind: agentwire.HeaderRemove, Name: "\xc3"}}, Audit: agentwire.AuditMetadata{Tags: []string{"\xff"}, RuleIDs: []string{"é"}}},
		"big":        {CorrelationID: "c", RequestHeaders: []agentwire.HeaderOp{{Name: "n", Value: strings.Repeat("v", 20000)}}},
	}
	for name, r := range cases {
		want := vtReply(t, r)
		sz, ok := MeasureAgentResponse(r)
		if !ok {
			t.Fatalf("%s: not taken by the fast encoder", name)
		}
		got := AppendMeasuredAgentResponse(make([]byte, 0, sz.Len), r, sz)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding differs\n got %x\nwant %x", name, got, want)
		}
		if sz.Len != len(got) {
			t.Errorf("%s: size %d, encoded %d bytes", name, sz.Len, len(got))
		}
	}
	for name, r := range map[string]*agentwire.AgentResponse{
		"block":     {Decision: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 403}},
		"redirect":  {Decision: agentwire.Decision{Kind: agentwire.DecisionRedirect, URL: "/x"}},
		"challenge": {Decision: agentwire.Decision{Kind: agentwire.DecisionChallenge}},
		"custom":    {Audit: agentwire.AuditMetadata{Custom: map[string]json.RawMessage{"k": json.RawMessage(`1`)}}},
	} {
		if _, ok := MeasureAgentResponse(r); ok {
			t.Errorf("%s: taken by the fast encoder", name)
		}
	}
}

// FuzzAgentResponse builds replies from fuzz input and checks the fast
// encoder against vtprotobuf wherever it accepts.
func FuzzAgentResponse(f *testing.F) {
	f.Add("cid", "x-agent-processed", "true", "tag", uint8(0), uint8(0), uint64(0), false, float32(0))
	f.Add("", "", "", "", uint8(2), uint8(1), uint64(1<<63), true, float32(-1.5))
	f.Add("\xff", "é", "\xc3", "\x00", uint8(1), uint8(4), uint64(300), false, float32(1))
	f.Fuzz(func(t *testing.T, cid, name, value, tag string, kind, decision uint8, ms uint64, more bool, conf float32) {
		r := &agentwire.AgentResponse{
			CorrelationID:   cid,
			Decision:        agentwire.Decision{Kind: agentwire.DecisionKind(decision % 5)},
			RequestHeaders:  []agentwire.HeaderOp{{Kind: agentwire.HeaderOpKind(kind % 4), Name: name, Value: value}},
			ResponseHeaders: []agentwire.HeaderOp{{Kind: agentwire.HeaderOpKind((kind / 4) % 4), Name: value, Value: tag}},
			Audit:           agentwire.AuditMetadata{Tags: []string{tag, name}, RuleIDs: []string{value}, ReasonCodes: []string{cid}},
			NeedsMore:       more,
		}
		if kind&16 != 0 {
			r.ProcessingTimeMS = agentwire.Some(ms)
		}
		if kind&32 != 0 {
			r.Audit.Confidence = agentwire.Some(conf)
		}
		sz, ok := MeasureAgentResponse(r)
		if !ok {
			return
		}
		want := vtReply(t, r)
		got := AppendMeasuredAgentResponse(nil, r, sz)
		if !bytes.Equal(got, want) || sz.Len != len(got) {
			t.Fatalf("mismatch (size %d)\n got %x\nwant %x", sz.Len, got, want)
		}
	})
}
