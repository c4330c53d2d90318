package payload

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// mpReply encodes r in agentwire's map form.
func mpReply(tb testing.TB, r *AgentResponse) []byte {
	tb.Helper()
	p, err := AppendAgentResponseMsgpack(nil, r)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// mpPositionalEcho is the echo reply in rmp_serde's positional form, with
// n top-level fields.
func mpPositionalEcho(id string, n uint32) []byte {
	p := msgp.AppendArrayHeader(nil, n)
	p = msgp.AppendUint32(p, 2)
	p = msgp.AppendString(p, "allow")
	p = msgp.AppendArrayHeader(p, 1)
	p = msgp.AppendMapHeader(p, 1)
	p = msgp.AppendString(p, "set")
	p = msgp.AppendArrayHeader(p, 2)
	p = msgp.AppendString(p, "X-Agent-Processed")
	p = msgp.AppendString(p, "true")
	p = msgp.AppendArrayHeader(p, 0)
	p = msgp.AppendMapHeader(p, 0)
	p = msgp.AppendArrayHeader(p, 5)
	p = msgp.AppendArrayHeader(p, 0)
	p = msgp.AppendArrayHeader(p, 0)
	p = msgp.AppendNil(p)
	p = msgp.AppendArrayHeader(p, 0)
	p = msgp.AppendMapHeader(p, 1)
	p = msgp.AppendString(p, "correlation_id")
	p = msgp.AppendString(p, id)
	for i := uint32(6); i < n; i++ {
		if i == 6 {
			p = msgp.AppendBool(p, false)
		} else {
			p = msgp.AppendNil(p)
		}
	}
	return p
}

// replyScanRefusedMsgpack are replies the MessagePack scan leaves to the
// decoder.
func replyScanRefusedMsgpack(tb testing.TB) map[string][]byte {
	echo := mpReply(tb, echoReply("e"))
	rep := func(old, new string) []byte {
		if !bytes.Contains(echo, []byte(old)) {
			tb.Fatalf("%q not in the echo reply", old)
		}
		return bytes.Replace(echo, []byte(old), []byte(new), 1)
	}
	out := map[string][]byte{
		"empty":           nil,
		"JSON":            AppendAgentResponseJSON(nil, echoReply("e")),
		"short array":     mpPositionalEcho("e", 5),
		"empty id":        mpReply(tb, &AgentResponse{}),
		"trailing":        append(bytes.Clone(echo), 0xc0),
		"version int key": rep("\xa7version", "\x00"),
		"unknown key":     rep("\xa7version", "\xa7versioN"),
		"str8 key":        rep("\xa7version", "\xd9\x07version"),
		"version signed":  rep("\xa7version\x02", "\xa7version\xd0\x02"),
		"variant index":   rep("\xa3set", "\x00"),
		"op name bin":     rep("\xb1X-Agent-Processed", "\xc4\x11X-Agent-Processed"),
		"op str16":        rep("\xb1X-Agent-Processed", "\xda\x00\x11X-Agent-Processed"),
		"bad UTF-8":       rep("true", "tr\xffe"),
		"value first":     rep("\xa4name\xb1X-Agent-Processed\xa5value\xa4true", "\xa5value\xa4true\xa4name\xb1X-Agent-Processed"),
		"tags":            mpReply(tb, &AgentResponse{CorrelationID: "x", Audit: AuditMetadata{Tags: []string{"t"}}}),
		"custom extra":    mpReply(tb, &AgentResponse{CorrelationID: "x", Audit: AuditMetadata{Custom: map[string]json.RawMessage{"k": json.RawMessage("1")}}}),
		"routing":         mpReply(tb, &AgentResponse{CorrelationID: "x", RoutingMetadata: map[string]string{"a": "b"}}),
		"block headers":   mpReply(tb, &AgentResponse{CorrelationID: "x", Decision: Decision{Kind: DecisionBlock, Status: 403, BlockHeaders: map[string]string{}}}),
		"redirect":        mpReply(tb, &AgentResponse{CorrelationID: "x", Decision: Decision{Kind: DecisionRedirect, URL: "u", Status: 302}}),
		"mutation":        mpReply(tb, &AgentResponse{CorrelationID: "x", RequestBodyMutation: Some(BodyMutation{Action: MutationDrop})}),
		"websocket":       mpReply(tb, &AgentResponse{CorrelationID: "x", WebSocketDecision: Some(WebSocketDecision{Kind: WebSocketDrop})}),
		"confidence":      mpReply(tb, &AgentResponse{CorrelationID: "x", Audit: AuditMetadata{Confidence: Some[float32](0.5)}}),
	}
	many := &AgentResponse{CorrelationID: "x"}
	for range ReplyScanOps + 1 {
		many.ResponseHeaders = append(many.ResponseHeaders, HeaderOp{Kind: HeaderRemove, Name: "n"})
	}
	out["too many ops"] = mpReply(tb, many)
	for _, n := range []int{1, len(echo) / 2, len(echo) - 1} {
		out["truncated "+string(rune('0'+n%10))] = echo[:n]
	}
	return out
}

// checkReplyScanMsgpack checks that when ScanReplyMsgpack takes p, the
// decoder agrees: it decodes p without error into exactly what
// DecodeMsgpack and the id give, from a fresh and from dirty destinations.
func checkReplyScanMsgpack(t *testing.T, p []byte) bool {
	t.Helper()
	var s ReplyScan
	id, ok := ScanReplyMsgpack(p, &s)
	if !ok {
		return false
	}
	if len(id) == 0 {
		t.Fatalf("%x: empty id", p)
	}
	for _, mk := range []func() *AgentResponse{func() *AgentResponse { return new(AgentResponse) }, dirtyReply, dirtyReplyOps} {
		want, got := mk(), mk()
		if err := DecodeAgentResponseMsgpack(p, want); err != nil {
			t.Fatalf("%x: scanned, but the decoder fails: %v", p, err)
		}
		s.DecodeMsgpack(p, got)
		got.CorrelationID = string(id)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%x: scan\n%#v\ndecoder\n%#v", p, got, want)
		}
	}
	return true
}

// TestReplyScanMsgpackShapes: the common replies in agentwire's map form
// (its encoder; internal/loopagent writes the same), the Rust SDK's
// positional form (golden vectors, and with trailing fields left out) are
// taken, each decoded as the decoder does.
func TestReplyScanMsgpackShapes(t *testing.T) {
	for name, r := range replyScanShapes() {
		// Strings of 256 bytes or more (str16) are for the decoder.
		want := name != "long id and ops"
		if got := checkReplyScanMsgpack(t, mpReply(t, r)); got != want {
			t.Errorf("%s: taken %v, want %v", name, got, want)
		}
	}
	for n := uint32(6); n <= 10; n++ {
		if !checkReplyScanMsgpack(t, mpPositionalEcho("pos", n)) {
			t.Errorf("positional echo, %d fields: refused", n)
		}
	}
	taken := map[string]bool{"allow_default": true, "block_no_body": true, "header_ops_set_add_remove": true, "needs_more": true,
		"guardrail_block_without_metadata": true, "configure_rejected": true}
	for _, v := range mpLoadVectors(t, "responses.json") {
		if v.TypeByte == nil || *v.TypeByte != "0x20" || v.MsgpackPayloadHex == nil {
			continue
		}
		if got := checkReplyScanMsgpack(t, mpUnhex(t, *v.MsgpackPayloadHex)); got != taken[v.Name] {
			t.Errorf("golden %s: taken %v, want %v", v.Name, got, taken[v.Name])
		}
	}
	// A block in map form with its body, and with status only.
	for _, p := range [][]byte{
		mpReply(t, &AgentResponse{CorrelationID: "b", Decision: Decision{Kind: DecisionBlock, Status: 403, Body: Some("no")}}),
		mpReply(t, &AgentResponse{CorrelationID: "b", Decision: Decision{Kind: DecisionBlock, Status: 403}}),
	} {
		if !checkReplyScanMsgpack(t, p) {
			t.Errorf("%x: refused", p)
		}
	}
}

// TestReplyScanMsgpackRefuses: other shapes go to the decoder.
func TestReplyScanMsgpackRefuses(t *testing.T) {
	for name, p := range replyScanRefusedMsgpack(t) {
		if checkReplyScanMsgpack(t, p) {
			t.Errorf("%s: taken", name)
		}
	}
}

// TestReplyScanMsgpackReusesStrings: equal header strings in the
// destination (spare capacity included) are kept; others are copies.
func TestReplyScanMsgpackReusesStrings(t *testing.T) {
	p := mpReply(t, echoReply("r"))
	var s ReplyScan
	if _, ok := ScanReplyMsgpack(p, &s); !ok {
		t.Fatal("refused")
	}
	r := dirtyReplyOps()
	old := r.RequestHeaders[:1][0]
	s.DecodeMsgpack(p, r)
	if len(r.RequestHeaders) != 1 || unsafe.StringData(r.RequestHeaders[0].Name) != unsafe.StringData(old.Name) ||
		unsafe.StringData(r.RequestHeaders[0].Value) != unsafe.StringData(old.Value) {
		t.Fatalf("strings not reused: %+v", r.RequestHeaders)
	}
	p2 := bytes.Replace(p, []byte("\xa4true"), []byte("\xa4more"), 1)
	if _, ok := ScanReplyMsgpack(p2, &s); !ok {
		t.Fatal("refused")
	}
	s.DecodeMsgpack(p2, r)
	v := r.RequestHeaders[0].Value
	copy(p2, bytes.Repeat([]byte{'z'}, len(p2)))
	if v != "more" {
		t.Fatalf("value aliases the payload: %q", v)
	}
}

// FuzzReplyScanMsgpack: on any input the scan does not panic, and whatever
// it takes the decoder decodes to the same reply from fresh and dirty
// destinations.
func FuzzReplyScanMsgpack(f *testing.F) {
	for _, r := range replyScanShapes() {
		f.Add(mpReply(f, r))
	}
	for _, p := range replyScanRefusedMsgpack(f) {
		f.Add(p)
	}
	f.Add(mpPositionalEcho("pos", 10))
	for _, v := range mpLoadVectors(f, "responses.json") {
		if v.MsgpackPayloadHex != nil {
			f.Add(mpUnhex(f, *v.MsgpackPayloadHex))
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		checkReplyScanMsgpack(t, p)
	})
}
