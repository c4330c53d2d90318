package engine

import (
	"sync"
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
	// timer implements the default request timeout when the caller's
	// context has no deadline. Stopped whenever the pending is idle.
	timer *time.Timer
}

var pendingPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pending{done: make(chan error, 1), timer: t}
}}

func getPending(id string, dst *payload.AgentResponse) *pending {
	p := pendingPool.Get().(*pending)
	p.id, p.dst = id, dst
	return p
}

func putPending(p *pending) {
	p.id, p.dst = "", nil
	pendingPool.Put(p)
}
