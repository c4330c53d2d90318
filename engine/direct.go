package engine

import "runtime"

// Direct writes: a caller writes its own request-headers event when the
// session's writer is idle, instead of waking the writer for it.
//
// With one call in flight, the queued path costs a hand-off per request:
// the caller wakes the parked writer (often a thread wake-up on the other
// core), the writer encodes and writes, the caller parks. A caller that
// finds the writer idle, nothing queued and nothing else in flight does
// the writer's work for its one event itself: it takes the session's write
// role, encodes the event into the transport's batch as the writer would,
// and writes it with one non-blocking write. The reply is then the only
// hand-off left (the reader wakes the caller), as in the floor's raw echo.
//
// The write role (session.wrole) owns the transport's batch and its writes:
// the writer goroutine holds it from the moment it takes items off the
// outbound ring until its flush has written them, and waits for the ring
// with ring.Wait, so that it never holds dequeued items without the role.
// A caller takes the role only with a compare-and-swap and goes direct
// only when, holding it, the ring is empty and the batch holds nothing:
// everything queued before (by this caller too: a cancel for an id it
// then reuses) has then been written, so direct writes keep the order of
// a caller's messages. A direct write never blocks: what the socket does
// not take at once stays in the batch, and the caller queues an empty
// outbound that wakes the writer, which writes the rest under the write
// timeout as it writes everything else. A call therefore never waits on
// the socket, whatever its deadline.
//
// Only calls that find at most directMaxInFlight calls in flight (their
// own included) go direct: with more, the writer's batching (one write
// for every event queued while it yields) costs less than a write per
// call.

// directWriter is implemented by transports whose batch a caller holding
// the write role may fill and write itself (the Unix-socket transport on
// a connection with a file descriptor; the gRPC transport, whose send may
// wait for grpc-go's write quota, see grpc_direct.go).
type directWriter interface {
	eventWriter
	// canDirect reports whether direct writes are possible at all.
	canDirect() bool
	// batchEmpty reports whether the batch holds nothing (no rest of an
	// earlier direct write). Write-role holder only.
	batchEmpty() bool
	// tryFlush writes the batch without blocking. done reports that all
	// of it went out; otherwise the rest stays in the batch for flush. An
	// error ends the connection. Write-role holder only.
	tryFlush() (done bool, err error)
}

// directMaxInFlight is the most calls in flight (the caller's own
// included) at which a call writes its event itself.
const directMaxInFlight = 1

// acquireWriteRole takes the write role for the writer goroutine, waiting
// out a caller's direct write (a non-blocking encode and write of one
// event: on gRPC too, grpc_direct.go).
func (s *session) acquireWriteRole() {
	for !s.wrole.CompareAndSwap(0, 1) {
		s.roleWaits.Add(1)
		runtime.Gosched()
	}
}

// tryDirect writes o (a request-headers event with its pending, from a
// call registered in the pending map) on the caller's goroutine when the
// writer is idle and nothing is queued or in flight besides this call (see
// above). It reports whether it took o: the call then waits for its
// outcome on p.done as usual (an event that failed to encode completes it
// with the error, a write error fails the session). Otherwise o is left to
// the caller to queue.
func (s *session) tryDirect(o outbound) bool {
	if s.dw == nil || s.c.stats.inFlight.Load() > directMaxInFlight || !s.wrole.CompareAndSwap(0, 1) {
		return false
	}
	if s.out.Len() != 0 || !s.dw.batchEmpty() {
		s.wrole.Store(0)
		return false
	}
	var ioErr error
	rest := false
	if p := o.p; p.claimEvent() { // false when Cancel dropped it meanwhile
		if encErr := s.dw.appendRequestHeadersEvent(o.rh); encErr != nil {
			s.failEvent(p, encErr)
		} else {
			s.markSent(p)
			p.eventDone(true) // the last touch of p (see pending)
			s.c.stats.sent.Add(1)
			var done bool
			done, ioErr = s.dw.tryFlush()
			rest = !done && ioErr == nil
		}
	}
	s.wrole.Store(0)
	switch {
	case ioErr != nil:
		s.fail(ErrConnectionLost, ioErr)
	case rest:
		// The writer writes the rest. A full ring needs no wake-up: its
		// writer has work and flushes after it; a closed one belongs to
		// a failed session.
		_ = s.out.TryEnqueue(outbound{})
	}
	return true
}
