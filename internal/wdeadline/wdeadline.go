// Package wdeadline bounds how long a write to a connection may block,
// cheaply enough to be armed before every batched write: the connection's
// write deadline is moved only when less than half the timeout is left, so
// the common case costs one monotonic clock read and no timer update.
package wdeadline

import (
	"net"
	"sync/atomic"
	"time"
)

// epoch anchors the monotonic instants kept by Deadline.
var epoch = time.Now()

// Deadline keeps a connection's write deadline between Timeout/2 and
// Timeout ahead of every Arm. The zero value, or a Timeout of 0, does
// nothing. Arm is safe for concurrent use (two writers may share a
// connection); Timeout must be set before the first Arm.
type Deadline struct {
	Timeout time.Duration
	at      atomic.Int64 // monotonic ns since epoch the deadline is set to
}

// Arm makes sure nc's write deadline is at least Timeout/2 away, moving it
// a full Timeout from now when it is not. A write that then does not
// complete in time fails with an error satisfying
// errors.Is(err, os.ErrDeadlineExceeded).
func (d *Deadline) Arm(nc net.Conn) {
	if d.Timeout <= 0 {
		return
	}
	now := int64(time.Since(epoch))
	if d.at.Load()-now > int64(d.Timeout/2) {
		return
	}
	d.at.Store(now + int64(d.Timeout))
	_ = nc.SetWriteDeadline(time.Now().Add(d.Timeout))
}
