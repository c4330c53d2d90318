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
// itself) before it gives the pending up (putPending).
//
// On transports that encode events on the writer goroutine (eventWriter),
// the queued outbound carries the pending and the caller's event, which
// the writer reads. wstate arbitrates that read against the caller leaving
// early: the writer may only encode after moving it from wQueued to
// wEncoding, and the caller, before it gives the pending up (and so before
// the call returns and the event may change), either moves it from
// wQueued to wDropped or waits for the writer to finish (settle). The
// writer's last touch of a pending is the store that ends its part
// (wSent or wFailed: eventDone, or finish for an outbound it frees
// unsent); a pending in either state, or in wNone, goes back to the pool.
// One that was dropped (wDropped) while its outbound may still sit in the
// queue is left to the garbage collector instead, since the writer will
// still look at it: that happens only to a call that ended before the
// writer reached its event (a deadline, a cancel, a lost session). So no
// reference count is needed, and a call costs no atomic add for one.
// (The event pointer lives in the queue's slot, not here: every byte of a
// pending counts while thousands of requests wait.)
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
	// wstate is the writer's progress with the caller's event.
	wstate atomic.Int32
	// sentEnd is, on a gRPC session, where the caller's event ends in the
	// stream, in units of 2^grpcMarkShift bytes modulo
	// 2^32 (0: not recorded): stored atomically by whoever collects the
	// event (before it is sent), loaded atomically by the reader that
	// claims the reply, which so learns how far the agent has read the
	// stream (grpc_direct.go). Reset by putPending. It fills the padding
	// after wstate (TestPendingSize).
	sentEnd uint32
	// next links the entries of one chain of the session's pendingMap
	// (under its shard's lock), and then the list a sweep removed; hash
	// is the map's hash of id, set when the entry is stored.
	next *pending
	hash uint64
}

// pending.wstate values.
const (
	wNone     = iota // no event for the writer to encode (encoded by the caller)
	wQueued          // queued; the writer has not started on it
	wEncoding        // the writer is reading the caller's event
	wSent            // encoded into the writer's batch; the writer is done with the pending
	wFailed          // not sent (it failed to encode, or its outbound was freed); the writer is done with the pending
	wDropped         // never to be sent: abandoned before the writer reached it, which may still look at it
	// wQueuedLater and wDroppedLater are wQueued and wDropped for an
	// event the caller encoded for a request the agent already knows (a
	// body chunk, the response's headers...: gRPC queues those with their
	// pending, grpc_direct.go): dropped unsent, it still gets its cancel,
	// which the agent needs to end the request it holds open.
	wQueuedLater
	wDroppedLater
)

var pendingPool = sync.Pool{New: func() any {
	return &pending{done: make(chan error, 1)}
}}

// getPending returns an idle pending for id and dst, with no deadline
// (exchange sets it), in write state ws: wNone for an event the caller
// encodes, wQueued for one that goes to the writer in an outbound carrying
// the pending.
func getPending(id string, dst *agentwire.AgentResponse, ws int32) *pending {
	p := pendingPool.Get().(*pending)
	p.id, p.dst = id, dst
	p.wstate.Store(ws)
	return p
}

// putPending gives the caller's pending up once the writer is done with
// the caller's event: back to the pool, unless it was dropped while its
// outbound may still be queued (see pending).
func putPending(p *pending) {
	p.settle()
	if st := p.wstate.Load(); st == wDropped || st == wDroppedLater {
		return // the writer may still look at it: the collector frees it
	}
	p.id, p.dst = "", nil
	p.deadline.Store(0)
	// Plain store: the collector's store happened before eventDone, which
	// settle has seen, and the reader's load before it completed p.
	p.sentEnd = 0
	pendingPool.Put(p)
}

// settle returns once the writer no longer reads the caller's event, and
// reports whether a cancel should follow it: the event was (or, in the
// writer's batch, is about to be) sent, or it belongs to a request the
// agent already knows (wQueuedLater); false when it never will be sent
// and would have opened the request.
func (p *pending) settle() bool {
	for {
		switch p.wstate.Load() {
		case wQueued:
			if p.drop() {
				return false
			}
		case wQueuedLater:
			if p.wstate.CompareAndSwap(wQueuedLater, wDroppedLater) {
				return true // dropped, but the agent knows the request
			}
		case wEncoding:
			runtime.Gosched() // the writer is copying it: a few hundred ns
		case wDropped, wFailed:
			return false
		default: // wSent, wNone, wDroppedLater
			return true
		}
	}
}

// drop stops the writer from ever sending p's event if it has not started
// on it yet, and reports whether it did so for an event that would have
// opened its request (wQueued): the agent then never hears of the
// request, and no cancel follows. An event of a request the agent knows
// (wQueuedLater) is dropped too, but drop reports false: its cancel must
// go out. The caller must not have given p up yet (the expirer calls it
// between removing p and completing it).
func (p *pending) drop() bool {
	if p.wstate.CompareAndSwap(wQueued, wDropped) {
		return true
	}
	p.wstate.CompareAndSwap(wQueuedLater, wDroppedLater)
	return false
}

// claimEvent is the writer's side of settle: it reports whether the
// writer may read the caller's event (and must then call eventDone).
// When it reports false the pending was dropped: the writer must not
// touch it again.
func (p *pending) claimEvent() bool {
	return p.wstate.CompareAndSwap(wQueued, wEncoding) || p.wstate.CompareAndSwap(wQueuedLater, wEncoding)
}

// eventDone ends the writer's read of the caller's event; sent is false
// when it could not be encoded. It is the writer's last touch of p: the
// caller may recycle p as soon as it is stored.
func (p *pending) eventDone(sent bool) {
	if sent {
		p.wstate.Store(wSent)
	} else {
		p.wstate.Store(wFailed)
	}
}

// finish ends the part of an outbound carrying p that will not be sent
// (freed by the writer of a failed session, or by a caller whose queueing
// failed): the caller may recycle p, unless it was dropped meanwhile. It
// is the last touch of p by whoever frees the outbound.
func (p *pending) finish() {
	if !p.wstate.CompareAndSwap(wQueued, wFailed) {
		p.wstate.CompareAndSwap(wQueuedLater, wFailed)
	}
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow reads the monotonic clock, in nanoseconds since monoEpoch.
func monoNow() int64 { return int64(time.Since(monoEpoch)) }
