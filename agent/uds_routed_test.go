package agent

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/agentwire/agentwire/codec/frame"
)

// msgpackWithTop returns reqHeadersMsgpack(meta, "/") with the envelope's
// correlation_id (its first key) set to top.
func msgpackWithTop(t testing.TB, meta, top string) []byte {
	t.Helper()
	p := reqHeadersMsgpack(meta, "/")
	head := append([]byte("\x85\xaecorrelation_id"), byte(0xa0|len(meta)))
	head = append(head, meta...)
	if !bytes.HasPrefix(p, head) || len(top) > 31 {
		t.Fatalf("unexpected encoding % x", p[:min(len(p), 24)])
	}
	out := append([]byte("\x85\xaecorrelation_id"), byte(0xa0|len(top)))
	out = append(out, top...)
	return append(out, p[len(head):]...)
}

// TestUDSMsgpackRoutingID: a MessagePack request-headers event is routed
// by the envelope's correlation_id, whether the decoder's fast path found
// it (first key) or the connection scanned for it (any other shape); an
// envelope id equal to metadata's is metadata's string itself.
func TestUDSMsgpackRoutingID(t *testing.T) {
	differs := msgpackWithTop(t, "meta-id", "route-A")
	same := msgpackWithTop(t, "meta-id", "meta-id")
	// Envelope key last instead of first: not the fast path's shape.
	moved := append([]byte{0x85}, differs[1+15+8:]...)
	moved = append(moved, "\xaecorrelation_id\xa7route-B"...)
	for _, tc := range []struct {
		name string
		p    []byte
		want string
	}{
		{"first key, differs", differs, "route-A"},
		{"first key, same", same, "meta-id"},
		{"last key", moved, "route-B"},
	} {
		c := new(udsCall)
		if err := c.decodeEvent(frame.TypeRequestHeaders, tc.p, true); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.cid != tc.want || c.reqHeaders.Metadata.CorrelationID != "meta-id" {
			t.Fatalf("%s: cid %q (metadata %q), want %q", tc.name, c.cid, c.reqHeaders.Metadata.CorrelationID, tc.want)
		}
		if want := routingIDMsgpack(tc.p, c.reqHeaders.Metadata.CorrelationID); c.cid != want {
			t.Fatalf("%s: cid %q, routingIDMsgpack %q", tc.name, c.cid, want)
		}
		if tc.want == "meta-id" && unsafe.StringData(c.cid) != unsafe.StringData(c.reqHeaders.Metadata.CorrelationID) {
			t.Fatalf("%s: equal ids are two strings", tc.name)
		}
	}
}
