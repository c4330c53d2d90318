package agent

import (
	"context"
	"sync"
	"sync/atomic"
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
// It is 56 bytes, 73 of which fill a slab of 4 KiB (a size class of its
// own: no rounding up), so that the bytes the agent allocates per event,
// which set how often its garbage collector runs, stay low: what only Done
// and AfterFunc need lives in a ctxWait made on their first use, whose
// pointer is also the marker that makes remote a trace.Span (see
// remoteSpan), and the error is two bits of state (context.Canceled, or
// the parent's error). TestReqCtxSize holds the size. The price is one
// allocation more (the ctxWait, 48 bytes) for a handler that does call
// Done or AfterFunc (one that passes ctx to net/http, a gRPC client or
// database/sql): with the 40 bytes saved per event it comes out about
// even for those, and ahead for the handlers that never look at Done;
// TestReqCtxDoneAllocs counts it.
//
// Cancelling a context nobody waits on (no Done, no AfterFunc: the common
// case, cancelled as its handler returns) is one compare-and-swap of
// state, without the mutex; the mutex guards the ctxWait, and whoever
// finds the context cancelled with waiters (the canceller, or Done or
// AfterFunc arriving at the same time) fires them, once (ctxWait.fired).
type reqCtx struct {
	parent context.Context

	mu    sync.Mutex    // guards remote.ctxWait
	state atomic.Uint32 // rc* bits

	// remote is the remote span context of the request's traceparent,
	// answered to trace.SpanFromContext when remote.raw is a valid one
	// (trace.go). raw is set before the handler runs, never changed
	// afterwards. remote.ctxWait is the lazily made part of the context
	// (guarded by mu).
	remote remoteSpan
}

// The bits of reqCtx.state.
const (
	rcCanceled uint32 = 1 << iota // cancelled with context.Canceled
	rcParent                      // cancelled as its parent ended: Err is the parent's
	rcWait                        // a ctxWait exists (set under mu)
	rcDone     = rcCanceled | rcParent
)

// ctxWait is the part of a reqCtx that only waiting on it needs: made by
// the first Done or AfterFunc, under the reqCtx's mutex.
type ctxWait struct {
	// embedded.Span is never set: it only gives remoteSpan, which embeds a
	// *ctxWait, the unexported method of trace.Span.
	embedded.Span

	done       chan struct{} // created on demand
	stopParent func() bool   // parent hook, once Done or AfterFunc was used
	afters     *reqAfter     // AfterFunc's functions, a list (8 bytes, not a slice's 24)
	fired      bool          // the cancellation reached done, stopParent and afters
}

// waitLocked returns c's ctxWait, making it on first use. c.mu is held.
func (c *reqCtx) waitLocked() *ctxWait {
	if c.remote.ctxWait == nil {
		c.remote.ctxWait = new(ctxWait)
		c.state.Or(rcWait)
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
	st := c.state.Load()
	if st&rcDone == 0 {
		err := c.parent.Err()
		if err == nil {
			return nil
		}
		c.cancel(err)
		st = c.state.Load()
	}
	if st&rcCanceled != 0 {
		return context.Canceled
	}
	return c.parent.Err()
}

// Done returns a channel closed when the context is cancelled.
func (c *reqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waitLocked()
	if w.done == nil {
		w.done = make(chan struct{})
		if w.fired {
			close(w.done)
			return w.done
		}
		// A cancel that came before rcWait was set left the firing to
		// whoever sets it: here.
		c.checkParentLocked()
		if c.state.Load()&rcDone != 0 {
			c.fireLocked()
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
	w := c.waitLocked()
	c.checkParentLocked()
	if c.state.Load()&rcDone != 0 {
		c.fireLocked()
		go f()
		return func() bool { return false }
	}
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

// cancel cancels c with err (if it is not cancelled yet): err is
// context.Canceled or the parent's error, which Err then returns. Without
// waiters it takes no lock.
func (c *reqCtx) cancel(err error) {
	if was, ok := c.mark(err); ok && was&rcWait != 0 {
		c.mu.Lock()
		c.fireLocked()
		c.mu.Unlock()
	}
}

// mark records c's cancellation with err unless c is cancelled already;
// it returns the state it found and whether it changed it.
func (c *reqCtx) mark(err error) (uint32, bool) {
	kind := rcParent
	if err == context.Canceled {
		kind = rcCanceled
	}
	for {
		st := c.state.Load()
		if st&rcDone != 0 {
			return st, false
		}
		if c.state.CompareAndSwap(st, st|kind) {
			return st, true
		}
	}
}

// fireLocked passes c's cancellation on to what waits on it (c.mu held,
// the ctxWait exists, c cancelled), once: the Done channel, the parent
// hook, AfterFunc's functions.
func (c *reqCtx) fireLocked() {
	w := c.remote.ctxWait
	if w.fired {
		return
	}
	w.fired = true
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

// checkParentLocked marks c cancelled if its parent ended (the caller,
// holding c.mu, fires).
func (c *reqCtx) checkParentLocked() {
	if c.state.Load()&rcDone == 0 {
		if err := c.parent.Err(); err != nil {
			c.mark(err)
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

// slabSize is the number of request contexts allocated at once: as many
// as fit in 4 KiB.
const slabSize = 73

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
