package engine

import (
	"testing"

	"github.com/agentwire/agentwire"
)

// TestPendingRecycling holds the ownership rule that replaced the
// pending's reference count: a pending goes back to the pool (its id and
// destination cleared) only once the writer is done with it — its event
// sent or failed, or its outbound freed unsent — and one dropped while
// its outbound may still sit in the queue is never recycled, since the
// writer will still look at it (claimEvent must then fail, not claim the
// event of a new call using the same pending).
func TestPendingRecycling(t *testing.T) {
	dst := new(agentwire.AgentResponse)
	recycled := func(p *pending) bool { return p.id == "" && p.dst == nil }

	// Dropped while queued (the call ended before the writer reached it).
	p := getPending("dropped", dst, wQueued)
	putPending(p)
	if recycled(p) || p.wstate.Load() != wDropped {
		t.Fatalf("a dropped pending whose outbound is still queued was recycled (state %d)", p.wstate.Load())
	}
	if p.claimEvent() {
		t.Fatal("the writer claimed a dropped event")
	}

	// Sent by the writer.
	p = getPending("sent", dst, wQueued)
	if !p.claimEvent() {
		t.Fatal("claimEvent failed on a queued event")
	}
	p.eventDone(true)
	putPending(p)
	if !recycled(p) {
		t.Fatal("a pending whose event the writer sent was not recycled")
	}

	// Failed to encode.
	p = getPending("failed", dst, wQueued)
	p.claimEvent()
	p.eventDone(false)
	if p.settle() {
		t.Fatal("settle reported an event that failed to encode as sent")
	}
	putPending(p)
	if !recycled(p) {
		t.Fatal("a pending whose event failed to encode was not recycled")
	}

	// Its outbound freed unsent (a failed session's writer, a queue
	// that refused it).
	p = getPending("freed", dst, wQueued)
	o := outbound{p: p, rh: headersEvent("freed")}
	o.free()
	putPending(p)
	if !recycled(p) {
		t.Fatal("a pending whose outbound was freed unsent was not recycled")
	}

	// Dropped first, then its outbound freed: still the writer's to
	// look at until then, and nobody's to recycle.
	p = getPending("dropped-freed", dst, wQueued)
	if !p.drop() {
		t.Fatal("drop failed on a queued event")
	}
	o = outbound{p: p, rh: headersEvent("dropped-freed")}
	o.free()
	putPending(p)
	if recycled(p) {
		t.Fatal("a dropped pending was recycled")
	}

	// No event for the writer at all.
	p = getPending("none", dst, wNone)
	putPending(p)
	if !recycled(p) {
		t.Fatal("a pending without a queued event was not recycled")
	}
}

// TestPendingDropLaterEvent: an event queued for a request the agent
// already knows (wQueuedLater: gRPC body chunks, response headers...) is
// dropped unsent like a request-headers event, but its cancel must still
// go out (drop reports false, settle true), and the writer may no longer
// claim it; a request-headers event dropped unsent gets no cancel.
func TestPendingDropLaterEvent(t *testing.T) {
	for _, tc := range []struct {
		ws           int32
		silent, sent bool
		dropped      int32
	}{
		{wQueued, true, false, wDropped},
		{wQueuedLater, false, true, wDroppedLater},
	} {
		p := getPending("id", nil, tc.ws)
		if got := p.drop(); got != tc.silent {
			t.Errorf("state %d: drop = %v, want %v", tc.ws, got, tc.silent)
		}
		if got := p.wstate.Load(); got != tc.dropped {
			t.Errorf("state %d: dropped into %d, want %d", tc.ws, got, tc.dropped)
		}
		if p.claimEvent() {
			t.Errorf("state %d: the writer claimed a dropped event", tc.ws)
		}
		if got := p.settle(); got != tc.sent {
			t.Errorf("state %d: settle = %v, want %v (a cancel follows)", tc.ws, got, tc.sent)
		}

		q := getPending("id", nil, tc.ws) // settle drops it itself
		if got := q.settle(); got != tc.sent {
			t.Errorf("state %d: settle of a queued event = %v, want %v", tc.ws, got, tc.sent)
		}
		if q.claimEvent() {
			t.Errorf("state %d: the writer claimed an event settle dropped", tc.ws)
		}

		r := getPending("id", nil, tc.ws) // the writer gets there first
		if !r.claimEvent() {
			t.Fatalf("state %d: the writer could not claim a queued event", tc.ws)
		}
		r.eventDone(true)
		if !r.settle() || r.drop() {
			t.Errorf("state %d: a sent event is not settled as sent", tc.ws)
		}
		putPending(r)
	}
}
