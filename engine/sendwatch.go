package engine

import (
	"fmt"
	"sync/atomic"
	"time"
)

// sendWatch lets the session's expirer see a send that does not complete:
// gRPC's SendMsg blocks without bound while the agent's HTTP/2 window is
// full (an agent that stopped reading), and has no deadline of its own.
// The writer counts every send in and out (gen is odd while one is in
// progress: two uncontended atomic adds per message); the watcher, on its
// ticks, fails the session when the same send has been in progress for
// WithWriteTimeout.
type sendWatch struct {
	gen atomic.Uint64
	// Watcher's own: the odd gen it saw first and when (monoNow).
	seen  uint64
	since int64
}

func (w *sendWatch) begin() { w.gen.Add(1) }
func (w *sendWatch) end()   { w.gen.Add(1) }

// stalled reports whether one send has been in progress for at least d at
// now (a monoNow instant), as seen on this and earlier calls. Called by
// one goroutine at a time; a send is noticed on the first call after it
// began, so with calls every tick it is reported between d and d+2·tick
// after it began.
func (w *sendWatch) stalled(now int64, d time.Duration) bool {
	g := w.gen.Load()
	if g&1 == 0 {
		return false
	}
	if g != w.seen {
		w.seen, w.since = g, now
		return false
	}
	return now-w.since >= int64(d)
}

// writeWatched is implemented by transports whose sends the expirer
// watches (gRPC).
type writeWatched interface {
	sendWatch() *sendWatch
}

// errSendStalled is the cause of a session failed by the send watch.
func errSendStalled(d time.Duration) error {
	return fmt.Errorf("agentwire: agent not reading: a message was not accepted within the write timeout %v (HTTP/2 flow-control window full)", d)
}

// watchTick returns how often the expirer runs: its sweep interval for the
// request timeout, and at least 8 times per write timeout when the
// transport's sends are watched (so a stuck send is reported within a
// quarter of the write timeout past it).
func (s *session) watchTick() time.Duration {
	tick := expiryTick(s.c.opts.requestTimeout)
	if _, ok := s.t.(writeWatched); ok && s.c.opts.uds.writeTimeout > 0 {
		tick = min(tick, max(s.c.opts.uds.writeTimeout/8, time.Millisecond))
	}
	return tick
}

// checkSends fails the session when its writer has been stuck in one send
// for the write timeout (expirer goroutine).
func (s *session) checkSends(now int64) {
	d := s.c.opts.uds.writeTimeout
	if d <= 0 {
		return
	}
	if w, ok := s.t.(writeWatched); ok && w.sendWatch().stalled(now, d) {
		s.c.log.Warn("agentwire: agent stopped reading: a send did not complete within the write timeout", "timeout", d)
		s.fail(ErrConnectionLost, errSendStalled(d))
	}
}
