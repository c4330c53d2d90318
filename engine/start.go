package engine

import (
	"context"
	"errors"

	"github.com/agentwire/agentwire"
)

// Split calls: RequestHeadersInto in two halves, so that one goroutine can
// have several calls (to several agents) in flight at once without a
// goroutine per call. StartRequestHeaders does everything up to the event
// being written (admission, registration, the direct write of an idle
// connection's caller or the queueing for the writer) and returns; Call.Wait
// waits for the reply. A parallel fan-out starts every call first and then
// waits for each: the agents work at the same time while the caller pays
// neither a goroutine start nor the hand-off to it.

// errWouldBlock is admit's answer, with nowait, where it would wait. It
// never leaves the package.
var errWouldBlock = errors.New("agentwire: admission would wait")

// Call is a request-headers call started with Conn.StartRequestHeaders and
// not yet waited for. The zero Call is ready for use; it may be reused
// once Wait returned. A Call belongs to one goroutine at a time (it is not
// safe for concurrent use).
type Call struct {
	c       *Conn
	s       *session
	p       *pending
	ctx     context.Context
	cancel  context.CancelFunc // admission's deadline context, if any
	qcancel context.CancelFunc // the full-queue wait's context, if any
	te      *tracedEvent
	cid     string
}

// StartRequestHeaders starts RequestHeadersInto(ctx, ev, dst): it admits
// the call, registers it, and writes the event (itself, when the
// connection's writer is idle and nothing else is in flight) or queues it
// for the writer, and returns without waiting for the reply.
//
// It returns started=true when the call is under way: call then holds it,
// and call.Wait must be called exactly once, on this goroutine or another,
// before call is reused; ev and dst must not be touched until Wait
// returned. With started=false and a nil error nothing was done, because
// the call would have to wait before its event could go out (for a
// connection, for a slot under WithSaturation, for a resume under
// WithFlowControl) or because the Conn traces its calls
// (WithTracerProvider): make it with RequestHeadersInto instead. With
// started=false and an error the call is over, with the error
// RequestHeadersInto would have returned (the call is counted as such).
//
// The call's outcome, its statistics and its errors are exactly those of
// RequestHeadersInto. ctx bounds the whole call, up to Wait's return. A
// full outbound queue is waited for here. Safe for concurrent use (on
// distinct Calls); with a reused dst and Call the round trip allocates
// what RequestHeadersInto allocates (nothing, for a plain reply, in
// memory or over a Unix socket; grpc-go adds its own per-message
// allocations).
func (c *Conn) StartRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, dst *agentwire.AgentResponse, call *Call) (started bool, err error) {
	if ev == nil || dst == nil || call == nil {
		var cid string
		if ev != nil {
			cid = ev.Metadata.CorrelationID
		}
		return false, withCID(c.invalid(errNilEvent), cid)
	}
	if c.opts.tracing.tracer != nil {
		return false, nil // the span covers the whole call: not split
	}
	if ev.Metadata.CorrelationID == "" {
		ev.Metadata.CorrelationID = c.newCID()
	}
	cid := ev.Metadata.CorrelationID
	ctx, cancel, s, dl, err := c.admit(ctx, cid, agentwire.EventRequestHeaders, true)
	if err == errWouldBlock {
		return false, nil
	}
	if err != nil {
		return false, withCID(err, cid)
	}
	rh := ev
	var te *tracedEvent
	if ev.Metadata.Traceparent == "" {
		if te = withTraceparent(ctx, ev); te != nil {
			rh = &te.ev
		}
	}
	var p *pending
	var o outbound
	if s.ew != nil {
		// Encoded by the writer or by this caller's direct write, as in
		// roundTrip.
		p = getPending(cid, dst, wQueued)
		o = outbound{p: p, rh: rh}
	} else {
		e := event{kind: agentwire.EventRequestHeaders, rh: rh}
		buf, err := e.encode(s.t)
		if err != nil {
			c.stats.errors.Add(1)
			call.c, call.s, call.cancel, call.te = c, s, cancel, te
			call.end()
			return false, withCID(err, cid)
		}
		p = getPending(cid, dst, wNone)
		o = outbound{buf: buf}
	}
	ctx, qcancel, err := c.send(ctx, s, cid, p, o, dl)
	*call = Call{c: c, s: s, ctx: ctx, cancel: cancel, qcancel: qcancel, te: te, cid: cid}
	if err != nil {
		call.end()
		return false, withCID(err, cid)
	}
	call.p = p
	return true, nil
}

// Wait waits for the outcome of the call started on call and returns what
// RequestHeadersInto would have returned: nil when the reply was decoded
// into the call's dst, else an error of the caller's own carrying the
// correlation id. call is then free for another call. Wait on a Call that
// holds no started call returns an ErrInvalidEvent error.
func (call *Call) Wait() error {
	if call.p == nil {
		return withCID(errNilEvent, call.cid)
	}
	err := call.c.await(call.ctx, call.s, call.cid, call.p)
	cid := call.cid
	call.end()
	if err != nil {
		return withCID(err, cid)
	}
	return nil
}

// end releases what the call held (as roundTrip's deferred calls do) and
// clears call.
func (call *Call) end() {
	if call.qcancel != nil {
		call.qcancel()
	}
	if call.te != nil {
		call.te.release()
	}
	call.c.leave(call.s)
	if call.cancel != nil {
		call.cancel()
	}
	*call = Call{}
}
