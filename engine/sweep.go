package engine

import (
	"math"
	"time"
)

// The session's expirer runs on a timer, not on a goroutine of its own.
//
// An idle connection used to hold a goroutine that woke on every tick to
// sweep; its stack (4-8 KiB, grown under load and never shrunk while the
// process is idle, as stacks shrink only during a collection) was a fifth
// of what an idle Unix-socket Conn holds. Now a time.AfterFunc timer runs
// each sweep on a short-lived goroutine of the runtime's, which exits when
// the sweep is done and re-arms the timer: between sweeps the connection
// holds a timer, no goroutine. The sweep does what the expirer goroutine
// did (expire, expireWaiters, checkSends, at the same tick), and gives back
// the write buffer of a connection that stayed idle for a whole tick
// (releaseIdle).
//
// The timer holds one count of the session's WaitGroup from start until it
// stops for good, so that the supervisor and Close still wait for a sweep
// that is running: exactly one of these calls wg.Done, once the session
// has failed:
//   - fail, when its Stop finds the timer armed (the sweep then never runs);
//   - a sweep that starts, or finishes its work, after the failure;
//   - a sweep whose Stop, after re-arming, finds the timer still armed.
// (Timer.Stop reports true to one caller only.)

// startSweeper arms the session's sweep timer. Called by start, before the
// session's goroutines and before the session is published, so that every
// later reader of s.sweepT sees it.
func (s *session) startSweeper() {
	s.wg.Add(1)
	s.tick = s.watchTick()
	s.sweepT = time.AfterFunc(time.Duration(math.MaxInt64), s.sweep)
	s.sweepT.Reset(s.tick)
}

// sweep is one run of the expirer (on the timer's goroutine): it times out
// what is due, watches the sends, gives back idle buffers and re-arms the
// timer, or, once the session has failed, releases its WaitGroup count.
func (s *session) sweep() {
	if !s.failed() {
		now := monoNow()
		s.expire(now)
		s.expireWaiters(now)
		s.checkSends(now)
		s.releaseIdle()
	}
	if s.failed() {
		s.wg.Done()
		return
	}
	s.sweepT.Reset(s.tick)
	if s.failed() && s.sweepT.Stop() {
		s.wg.Done()
	}
}

// stopSweeper is fail's part of the protocol above (after done is closed).
func (s *session) stopSweeper() {
	if s.sweepT != nil && s.sweepT.Stop() {
		s.wg.Done()
	}
}

// idleReleaser is implemented by transports that can give back buffers a
// connection keeps between writes while it is idle (the Unix-socket
// transport's write buffer).
type idleReleaser interface {
	// releaseIdle drops the buffers when nothing is collected for the
	// next write. Write-role holder only.
	releaseIdle()
}

// releaseIdle gives back the transport's write buffer when the connection
// sent nothing since the previous sweep and has nothing in flight: a
// connection that carried load keeps its batch buffer (up to udsEncKeep)
// otherwise, for as long as it lives. The buffer is taken with the
// session's write role, which a busy connection's writer or direct caller
// holds; the sweep does not wait for it. Only with direct writes (s.dw):
// otherwise the writer owns the batch without taking the role. Sweep only.
func (s *session) releaseIdle() {
	r, ok := s.t.(idleReleaser)
	if !ok || s.dw == nil {
		return
	}
	sent := s.c.stats.sent.Load()
	if sent != s.idleSent {
		s.idleSent = sent
		return
	}
	if s.c.stats.inFlight.Load() != 0 || !s.wrole.CompareAndSwap(0, 1) {
		return
	}
	r.releaseIdle()
	s.wrole.Store(0)
}
