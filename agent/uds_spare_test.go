package agent

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// TestUDSInlineSpareCall: the inline reader handles the frames it has
// buffered with one call, kept from event to event (uc.spare), and gives
// it back before reading the socket. A kept call that held a view of a
// raw body chunk decodes the next, base64, chunk into its own storage:
// the reader's buffer is never written and every handler sees its data;
// a decode failure in between is answered and the next event handled.
func TestUDSInlineSpareCall(t *testing.T) {
	h := &bodyProbe{}
	s := NewServer(h)
	defer s.Close()
	uc := &udsConn{srv: s, msgpack: true, inline: true}
	uc.ctx, uc.cancel = context.WithCancel(s.baseCtx)
	defer uc.cancel()
	uc.wbuf = make([]byte, 0, writeBufSize)

	// Every payload in one buffer, as the frame reader holds them.
	var buf []byte
	type ev struct {
		typ        frame.Type
		start, end int
		cid        string
	}
	var evs []ev
	var want [][]byte
	add := func(typ frame.Type, cid string, p []byte) {
		evs = append(evs, ev{typ, len(buf), len(buf) + len(p), cid})
		buf = append(buf, p...)
	}
	for i := range 8 {
		cid := "c" + strconv.Itoa(i)
		// A base64 chunk decodes into room the raw chunk before it would
		// have (were the view still in place).
		data := bytes.Repeat([]byte{byte('a' + i)}, 64+i-32*(i%2))
		ch := &agentwire.BodyChunk{CorrelationID: cid, Data: data, ChunkIndex: uint32(i)}
		if i%2 == 0 {
			add(frame.TypeRequestBodyChunk, cid, payload.AppendRequestBodyChunkMsgpackRaw(nil, ch))
		} else {
			add(frame.TypeRequestBodyChunk, cid, payload.AppendRequestBodyChunkMsgpack(nil, ch))
		}
		want = append(want, data)
		switch i {
		case 2:
			add(frame.TypeRequestHeaders, "h"+cid, reqHeadersMsgpack("h"+cid, "/x"))
		case 5:
			add(frame.TypeRequestHeaders, "", []byte{0x85, 0xc1}) // undecodable
		}
	}
	input := bytes.Clone(buf)

	for i, e := range evs {
		kept := uc.spare
		if !uc.dispatchInline(e.typ, buf[e.start:e.end]) {
			t.Fatalf("event %d: connection over", i)
		}
		switch {
		case e.cid == "":
			// A decode failure is answered through the general path,
			// which gives the call back to the pool.
		case uc.spare == nil:
			t.Fatalf("event %d: no spare call kept", i)
		case kept != nil && uc.spare != kept:
			t.Fatalf("event %d: handled by another call than the spare", i)
		}
	}
	if !bytes.Equal(buf, input) {
		t.Fatal("the reader's buffer was written")
	}
	uc.dropSpare()
	if uc.spare != nil {
		t.Fatal("dropSpare kept the call")
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.data) != len(want) {
		t.Fatalf("handler saw %d chunks, want %d", len(h.data), len(want))
	}
	for i := range want {
		if !bytes.Equal(h.data[i], want[i]) {
			t.Fatalf("chunk %d: handler saw %q, want %q", i, h.data[i], want[i])
		}
		if raw := i%2 == 0; raw != h.capped[i] {
			t.Fatalf("chunk %d: view %v, want %v", i, h.capped[i], raw)
		}
	}
	// The replies, in order, carry the events' ids (the undecodable
	// one: the best-effort id, empty here, with the error decision).
	r := frame.NewReader(bytes.NewReader(uc.wbuf), 0)
	for i, e := range evs {
		typ, p, err := r.ReadFrame()
		if err != nil || typ != frame.TypeAgentResponse {
			t.Fatalf("reply %d: %v %v", i, typ, err)
		}
		got := decodeReply(t, p, true)
		if got.CorrelationID != e.cid {
			t.Fatalf("reply %d: cid %q, want %q", i, got.CorrelationID, e.cid)
		}
		if wantKind := agentwire.DecisionAllow; e.cid == "" && got.Decision.Kind == wantKind {
			t.Fatalf("reply %d: undecodable event allowed", i)
		}
	}
}
