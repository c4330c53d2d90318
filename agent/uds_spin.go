package agent

import (
	"fmt"
	"net"
	"time"

	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/spinread"
)

// Read spinning (internal/spinread): the reader of a Unix-socket or reverse
// connection retries its non-blocking read for a few tens of microseconds
// before it parks in the network poller.
//
// At one request in flight the reader otherwise parks after every reply,
// the thread sleeps in epoll_wait and its CPU goes idle, and the proxy's
// next event must wake it; on a virtual machine with idle CPUs that
// wake-up costs more than handling the event. The spin yields the
// processor between attempts (workers and the writer made runnable
// meanwhile run first) and stops when the budget runs out; a spin that did
// not pay (no event within the budget, or the thread lost its CPU
// meanwhile, as on an oversubscribed machine) makes the next reads park at
// once, a number that doubles with each failed spin up to 64. A connection
// that stays idle therefore costs no CPU: at most one spin of the budget
// after its last event, then fewer and fewer. The reader spins only when
// its last read of the socket brought at most one frame (one event at a
// time, see gateSpin).

// DefaultReadSpin is the spin budget of WithReadSpin.
const DefaultReadSpin = 50 * time.Microsecond

// MaxReadSpin is the largest budget WithReadSpin accepts.
const MaxReadSpin = time.Millisecond

// WithReadSpin sets how long the reader of a Unix-socket or reverse
// connection polls the socket for the next frame before it parks (see
// above): up to MaxReadSpin, 0 disables spinning. Default
// DefaultReadSpin. Spinning needs GOMAXPROCS of 2 or more and a connection
// with a file descriptor; otherwise the reader parks at once. gRPC streams
// are read by grpc-go and do not spin.
func WithReadSpin(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 || d > MaxReadSpin {
			return fmt.Errorf("agentwire: read spin %v out of range 0..%v", d, MaxReadSpin)
		}
		c.uds.readSpin, c.uds.readSpinSet = d, true
		return nil
	})
}

// spinBudget returns the read spin budget in force.
func (u *udsConfig) spinBudget() time.Duration {
	if !u.readSpinSet {
		return DefaultReadSpin
	}
	return u.readSpin
}

// newFrameReader returns the frame reader of connection nc, reading
// through a spinning reader (also returned).
func (s *Server) newFrameReader(nc net.Conn) (*frame.Reader, *spinread.Reader) {
	sr := spinread.New(nc, s.cfg.uds.spinBudget())
	return frame.NewReader(sr, s.cfg.uds.frameLimit()), sr
}

// gateSpin lets sr (nil: none) spin only when the connection looks like
// it carries one event at a time: the reader's last read of the socket
// brought at most one frame. With more in flight the proxy sends events
// in batches, the reader finds the next ones buffered, and a spin would
// only take CPU from the proxy (on two cores, measured behind agentwire
// gateway at 64 connections). Before the reader starts.
func (uc *udsConn) gateSpin(sr *spinread.Reader) {
	uc.spinOK = true
	if sr != nil && sr.Spinning() {
		sr.Want = func() bool { return uc.spinOK }
	}
}

// noteRead records that the reader is about to read the socket. Reader
// only.
func (uc *udsConn) noteRead() {
	uc.spinOK = uc.framesRead <= 1
	uc.framesRead = 0
}
