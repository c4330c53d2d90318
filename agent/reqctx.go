package agent

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// reqCtx is the context of one request on a Unix-socket or reverse
// connection. It behaves like context.WithCancel(parent) but costs no
// allocation of its own in the common case:
//
//   - reqCtxs are carved out of per-connection slabs (reqCtxSlab), one
//     allocation per slabSize requests, and never reused: a handler that
//     keeps its context after returning still holds a valid, cancelled
//     context, exactly as with context.WithCancel;
//   - the Done channel is created only when somebody asks for it, and only
//     then is the context hooked to its parent (context.AfterFunc), so a
//     handler that never looks at ctx.Done costs nothing;
//   - cancel is a method, not a closure.
//
// It implements the afterFuncer interface of package context, so contexts
// derived from it (context.WithCancel, WithTimeout, AfterFunc) are
// propagated without a goroutine each. Safe for concurrent use.
//
// It is 64 bytes, so that a slab is exactly 4 KiB (a size class of its
// own: no rounding up) and the bytes the agent allocates per event, which
// set how often its garbage collector runs, stay low: what only Done and
// AfterFunc need lives in a ctxWait made on their first use, and the
// pointer to it is also the marker that makes remote a trace.Span (see
// remoteSpan), so it costs no field of its own. TestReqCtxSize holds the
// size.
type reqCtx struct {
	parent context.Context

	mu  sync.Mutex
	err error

	// remote is the remote span context of the request's traceparent,
	// answered to trace.SpanFromContext when remote.raw is a valid one
	// (trace.go). raw is set before the handler runs, never changed
	// afterwards. remote.ctxWait is the lazily made part of the context
	// (guarded by mu).
	remote remoteSpan
}

// ctxWait is the part of a reqCtx that only waiting on it needs: made by
// the first Done or AfterFunc, under the reqCtx's mutex.
type ctxWait struct {
	// embedded.Span is never set: it only gives remoteSpan, which embeds a
	// *ctxWait, the unexported method of trace.Span.
	embedded.Span

	done       chan struct{} // created on demand
	stopParent func() bool   // parent hook, once Done or AfterFunc was used
	afters     *reqAfter     // AfterFunc's functions, a list (8 bytes, not a slice's 24)
}

// waitLocked returns c's ctxWait, making it on first use. c.mu is held.
func (c *reqCtx) waitLocked() *ctxWait {
	if c.remote.ctxWait == nil {
		c.remote.ctxWait = new(ctxWait)
	}
	return c.remote.ctxWait
}

type reqAfter struct {
	f    func()
	next *reqAfter
}

var _ context.Context = (*reqCtx)(nil)

// Deadline returns the parent's deadline.
func (c *reqCtx) Deadline() (time.Time, bool) { return c.parent.Deadline() }

// Value returns the parent's value for key, or the request's remote span
// for package trace's span key.
func (c *reqCtx) Value(key any) any {
	if c.remote.raw != "" && key == spanKey && c.remote.valid() {
		return trace.Span(&c.remote)
	}
	return c.parent.Value(key)
}

// Err returns nil while the request runs, context.Canceled after it was
// cancelled (by the proxy or because the handler returned), or the
// parent's error once the connection or server ended.
func (c *reqCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkParentLocked()
	return c.err
}

// Done returns a channel closed when the context is cancelled.
func (c *reqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waitLocked()
	if w.done == nil {
		// Check the parent before the channel exists: cancelLocked closes
		// w.done when it is set, and it is closed just below.
		c.checkParentLocked()
		w.done = make(chan struct{})
		if c.err != nil {
			close(w.done)
		} else {
			c.watchParentLocked()
		}
	}
	return w.done
}

// AfterFunc arranges to call f in its own goroutine once c is cancelled
// (immediately if it already is). The returned stop function reports
// whether it prevented f from being started. It is what package context
// uses to propagate cancellation to derived contexts.
func (c *reqCtx) AfterFunc(f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkParentLocked()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	w := c.waitLocked()
	a := &reqAfter{f: f, next: w.afters}
	w.afters = a
	c.watchParentLocked()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for p := &w.afters; *p != nil; p = &(*p).next {
			if *p == a {
				*p = a.next
				return true
			}
		}
		return false
	}
}

// String describes the context (for %v).
func (c *reqCtx) String() string { return "agentwire.requestContext" }

// cancel cancels c with err (if it is not cancelled yet).
func (c *reqCtx) cancel(err error) {
	c.mu.Lock()
	c.cancelLocked(err)
	c.mu.Unlock()
}

func (c *reqCtx) cancelLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	w := c.remote.ctxWait
	if w == nil {
		return // nobody waits: no channel, no hook, no functions
	}
	if w.done != nil {
		close(w.done)
	}
	if w.stopParent != nil {
		w.stopParent()
		w.stopParent = nil
	}
	for a := w.afters; a != nil; a = a.next {
		go a.f()
	}
	w.afters = nil
}

// checkParentLocked cancels c if its parent ended.
func (c *reqCtx) checkParentLocked() {
	if c.err == nil {
		if err := c.parent.Err(); err != nil {
			c.cancelLocked(err)
		}
	}
}

// watchParentLocked makes the parent's cancellation reach c (whose
// ctxWait exists).
func (c *reqCtx) watchParentLocked() {
	if w := c.remote.ctxWait; w.stopParent == nil && c.parent.Done() != nil {
		w.stopParent = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	}
}

// slabSize is the number of request contexts allocated at once.
const slabSize = 64

// reqCtxSlab hands out fresh reqCtxs, allocating them slabSize at a time.
// Not safe for concurrent use (it belongs to a connection's reader).
type reqCtxSlab struct {
	free []reqCtx
}

func (s *reqCtxSlab) get(parent context.Context) *reqCtx {
	if len(s.free) == 0 {
		s.free = make([]reqCtx, slabSize)
	}
	c := &s.free[0]
	s.free = s.free[1:]
	c.parent = parent
	return c
}
