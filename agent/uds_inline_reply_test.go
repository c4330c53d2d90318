package agent

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// TestUDSInlineUnencodableReplyInBatch: with inline handlers the replies
// of events read together are encoded one after another into the reader's
// batch; a reply that cannot be encoded (audit.custom not JSON, in
// MessagePack) is cut off where it began and the error decision takes its
// place, leaving the replies before and after it whole and in order.
func TestUDSInlineUnencodableReplyInBatch(t *testing.T) {
	h := &funcHandler{reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		r.Decision = agentwire.Block(401)
		if strings.HasPrefix(ev.Metadata.CorrelationID, "bad") {
			r.Audit.Custom = map[string]json.RawMessage{"bad": json.RawMessage("{nope")}
		}
		return nil
	}}
	e := startUDS(t, h, WithInlineHandlers())
	p := dialRaw(t, e.path)
	p.handshake("msgpack")
	var batch []byte
	ids := []string{"ok-1", "bad-2", "ok-3", "bad-4"}
	for _, id := range ids {
		var err error
		batch, err = frame.AppendFrame(batch, frame.TypeRequestHeaders, reqHeadersMsgpack(id, "/"))
		if err != nil {
			t.Fatal(err)
		}
	}
	p.writeRaw(batch) // one write: the reader finds the four frames buffered together
	for _, id := range ids {
		r := p.recvReply(true)
		if r.CorrelationID != id {
			t.Fatalf("reply for %q, want %q", r.CorrelationID, id)
		}
		if strings.HasPrefix(id, "bad") {
			if r.Decision.Kind != agentwire.DecisionAllow || !slices.Equal(r.Audit.Tags, []string{TagHandlerError}) || len(r.Audit.Custom) != 0 {
				t.Fatalf("reply %+v, want the error decision", r)
			}
		} else if r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 401 {
			t.Fatalf("reply %+v, want block 401", r)
		}
	}
	if st := e.srv.Stats(); st.HandlerErrors != 2 {
		t.Fatalf("HandlerErrors = %d, want 2", st.HandlerErrors)
	}
}

// TestUDSCancelTable: an event handled by a worker is in the connection's
// in-flight table while it runs (a cancel reaches its context); one handled
// inline is not registered at all (the reader cannot read a cancel while
// its handler runs).
func TestUDSCancelTable(t *testing.T) {
	for _, inline := range []bool{false, true} {
		s := NewServer(echoHandler{})
		uc := &udsConn{srv: s, inline: inline}
		uc.ctx, uc.cancel = context.WithCancel(s.baseCtx)
		c := getUDSCall(uc)
		if err := c.decodeEvent(frame.TypeRequestHeaders, reqHeadersJSON("t-1", "/"), false); err != nil {
			t.Fatal(err)
		}
		uc.begin(c)
		uc.inflight.mu.Lock()
		n := len(uc.inflight.m)
		uc.inflight.mu.Unlock()
		if inline && n != 0 {
			t.Errorf("inline: %d ids in the in-flight table, want none", n)
		}
		if !inline {
			if n != 1 {
				t.Errorf("workers: %d ids in the in-flight table, want 1", n)
			}
			if uc.inflight.cancel("t-1") != 1 || c.ctx.Err() == nil {
				t.Error("workers: cancel did not reach the request context")
			}
		}
		ctx := c.ctx
		uc.end(c)
		if ctx.Err() == nil {
			t.Errorf("inline %v: request context not cancelled at the end", inline)
		}
		uc.inflight.mu.Lock()
		n = len(uc.inflight.m)
		uc.inflight.mu.Unlock()
		if n != 0 {
			t.Errorf("inline %v: %d ids left in the in-flight table", inline, n)
		}
		c.release()
		uc.cancel()
		s.Close()
	}
}
