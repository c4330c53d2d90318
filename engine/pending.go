package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire/codec/payload"
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
// itself) before it returns the pending to the pool, so no reference
// survives recycling.
type pending struct {
	id  string
	dst *payload.AgentResponse
	// done carries the outcome: nil = reply decoded into dst.
	done chan error
	// deadline is the default request timeout, as a monoNow instant, when
	// the caller's context has no deadline (0: none). It is set before the
	// pending is registered and read by the session's expirer, which
	// removes and times out the entry once it has passed (one sweep per
	// session instead of a timer per request).
	deadline atomic.Int64
}

var pendingPool = sync.Pool{New: func() any {
	return &pending{done: make(chan error, 1)}
}}

// getPending returns an idle pending for id and dst; deadline is its
// monoNow expiry instant, 0 for none.
func getPending(id string, dst *payload.AgentResponse, deadline int64) *pending {
	p := pendingPool.Get().(*pending)
	p.id, p.dst = id, dst
	p.deadline.Store(deadline)
	return p
}

func putPending(p *pending) {
	p.id, p.dst = "", nil
	p.deadline.Store(0)
	pendingPool.Put(p)
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow reads the monotonic clock, in nanoseconds since monoEpoch.
func monoNow() int64 { return int64(time.Since(monoEpoch)) }
