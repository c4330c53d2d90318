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
