package engine

import "time"

// Read spinning (internal/spinread): the reader of a Unix-socket or reverse
// connection retries its non-blocking read for a few tens of microseconds
// before it parks in the network poller, while a reply is due.
//
// At one request in flight the reader otherwise parks after every reply,
// the thread sleeps in epoll_wait and its CPU goes idle; the agent's reply
// must then wake it, and on a virtual machine with idle CPUs that wake-up
// costs more than the round trip's work (measured with agentwire bench at
// one in flight beside the floor: on a quiet machine both ends spinning
// took the p50 from about twice the floor's to about a third of it). The
// spin yields the processor between attempts, so the caller that the
// reader completed runs first, and stops when the budget runs out; one
// that did not pay (no reply within the budget, or the thread lost its CPU
// meanwhile, as on an oversubscribed machine) makes the next reads park at
// once, a number that doubles with each failed spin up to 64. The reader
// spins only while exactly one call is in flight: an idle connection parks
// at once and costs no CPU, and under load the writer's and reader's
// batching do the work. At most GOMAXPROCS-1 readers of a process spin at
// once (internal/spinread): with one call in flight on each of several
// connections, as in a parallel fan-out to several agents, one reader
// spins and the others park, so such a fan-out gains little from the
// spin (engine/pool BenchmarkFanOut on an idle 2-core machine: one call
// about 10 µs with the spin, 50 without; three agents in parallel about
// 78 µs with it, 72 without).

// DefaultReadSpin is the spin budget of WithReadSpin.
const DefaultReadSpin = 50 * time.Microsecond

// MaxReadSpin is the largest budget WithReadSpin accepts.
const MaxReadSpin = time.Millisecond

// WithReadSpin sets how long the reader of a Unix-socket or reverse
// connection polls the socket for a due reply before it parks (see the
// package documentation, "The binary Unix-socket transport"): up to
// MaxReadSpin, 0 disables spinning. Default DefaultReadSpin. Spinning
// needs GOMAXPROCS of 2 or more and a connection with a file descriptor;
// otherwise the reader parks at once. On gRPC endpoints it is an
// ErrInvalidConfig error (grpc-go reads those).
func WithReadSpin(d time.Duration) Option {
	return optionFunc(func(o *options) {
		o.uds.readSpin, o.uds.readSpinSet = d, true
		o.set |= setReadSpin
	})
}

// spinBudget returns the read spin budget in force.
func (u *udsOptions) spinBudget() time.Duration {
	if !u.readSpinSet {
		return DefaultReadSpin
	}
	return u.readSpin
}

// spinWhileDue makes the transport's reader spin only while calls are in
// flight on s's Conn (a reply is due), and only one: with more, replies
// come in batches and a spin would take CPU from the rest of the process
// and the machine (measured behind agentwire gateway at 64 connections
// on two cores). Reader goroutine, before reading.
func (t *udsTransport) spinWhileDue(s *session) {
	if t.sr != nil && t.sr.Spinning() {
		c := s.c
		t.sr.Want = func() bool { return c.stats.inFlight.Load() == 1 }
	}
}
