package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
)

// pending is one request waiting for its reply.
//
// Life cycle: a caller takes one from pendingPool, fills id and dst, and
// registers it in the session's map under id (before the event is sent).
// Exactly one party then removes it from the map: the reader (reply
// arrived), the caller itself (context ended, deadline, session lost) or
// Conn.Cancel. Only the remover may complete it, by sending once on done;
// the reader decodes into dst before that send and touches nothing after
// it. The caller always ends up receiving from done (or removing the entry
// itself) before it drops its reference.
//
// On transports that encode events on the writer goroutine (eventWriter),
// the queued outbound carries the pending, with a reference of its own
// (refs), and the caller's event, which the writer reads. wstate
// arbitrates that read against the caller leaving early: the writer may
// only encode after moving it from wQueued to wEncoding, and the caller,
// before it drops its reference (and so before the call returns and the
// event may change), either moves it from wQueued to wDropped or waits
// for the writer to finish (settle). The last reference recycles the
// pending. (The event pointer lives in the queue's slot, not here: every
// byte of a pending counts while thousands of requests wait.)
type pending struct {
	id  string
	dst *agentwire.AgentResponse
	// done carries the outcome: nil = reply decoded into dst.
	done chan error
	// deadline is the default request timeout, as a monoNow instant, when
	// the caller's context has no deadline (0: none). It is set before the
	// pending is registered and read by the session's expirer, which
	// removes and times out the entry once it has passed (one sweep per
	// session instead of a timer per request).
	deadline atomic.Int64
	// refs counts the owners: the caller, plus a queued outbound.
	refs atomic.Int32
	// wstate is the writer's progress with the caller's event.
	wstate atomic.Int32
}

// pending.wstate values.
const (
	wNone     = iota // no event for the writer to encode (encoded by the caller)
	wQueued          // queued; the writer has not started on it
	wEncoding        // the writer is reading the caller's event
	wSent            // encoded into the writer's batch
	wDropped         // never to be sent (abandoned, or it failed to encode)
)

var pendingPool = sync.Pool{New: func() any {
	return &pending{done: make(chan error, 1)}
}}

// getPending returns an idle pending for id and dst, with no deadline
// (exchange sets it) and the caller's reference.
func getPending(id string, dst *agentwire.AgentResponse) *pending {
	p := pendingPool.Get().(*pending)
	p.id, p.dst = id, dst
	p.refs.Store(1)
	p.wstate.Store(wNone)
	return p
}

// putPending drops the caller's reference to p, once the writer is done
// with the caller's event.
func putPending(p *pending) {
	p.settle()
	p.release()
}

// settle returns once the writer no longer reads the caller's event, and
// reports whether the event was (or, in the writer's batch, is about to
// be) sent: false when it never will be.
func (p *pending) settle() bool {
	for {
		switch p.wstate.Load() {
		case wQueued:
			if p.drop() {
				return false
			}
		case wEncoding:
			runtime.Gosched() // the writer is copying it: a few hundred ns
		case wDropped:
			return false
		default:
			return true
		}
	}
}

// drop stops the writer from ever sending p's event if it has not started
// on it yet, and reports whether it did. The caller's reference must still
// be held (the expirer calls it between removing p and completing it).
func (p *pending) drop() bool { return p.wstate.CompareAndSwap(wQueued, wDropped) }

// claimEvent is the writer's side of settle: it reports whether the
// writer may read the caller's event (and must then call eventDone).
func (p *pending) claimEvent() bool { return p.wstate.CompareAndSwap(wQueued, wEncoding) }

// eventDone ends the writer's read of the caller's event; sent is false
// when it could not be encoded.
func (p *pending) eventDone(sent bool) {
	if sent {
		p.wstate.Store(wSent)
	} else {
		p.wstate.Store(wDropped)
	}
}

// hold adds a reference for an outbound carrying p.
func (p *pending) hold() { p.refs.Add(1) }

// release drops one reference; the last one recycles p.
func (p *pending) release() {
	if p.refs.Add(-1) != 0 {
		return
	}
	p.id, p.dst = "", nil
	p.deadline.Store(0)
	pendingPool.Put(p)
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow reads the monotonic clock, in nanoseconds since monoEpoch.
func monoNow() int64 { return int64(time.Since(monoEpoch)) }
