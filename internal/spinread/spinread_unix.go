//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package spinread

import (
	"io"
	"os"
	"runtime"
	"syscall"
	"time"
)

const supported = true

var monoEpoch = time.Now()

func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// read is the RawConn.Read callback: it reports true once the read is
// done (data, end of stream or an error), false to park until the
// descriptor is readable (it is then called again).
func (r *Reader) read(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), r.b)
		switch {
		case err == nil && n > 0:
			r.n = n
			r.SpinGot()
			return true
		case err == nil:
			r.err = io.EOF
			r.SpinGot()
			return true
		case err == syscall.EINTR:
			continue
		case err != syscall.EAGAIN:
			r.err = os.NewSyscallError("read", err)
			r.SpinGot()
			return true
		}
		// Nothing to read yet.
		if !r.SpinAgain() {
			return false
		}
	}
}

// SpinAgain is asked when a non-blocking read of the connection found no
// data: true (after yielding the processor) to read again at once, false
// to park until the connection is readable (a spin that ran out of budget,
// a read in a back-off, or Want said no). Read uses it, and so does a
// reader that reads the descriptor itself (codec/frame, through
// SyscallConn: it then holds no buffer while parked).
func (r *Reader) SpinAgain() bool {
	if r.rc == nil {
		return false
	}
	if r.start == 0 {
		if r.skip > 0 {
			r.skip--
			return r.park()
		}
		if r.Want != nil && !r.Want() {
			return r.park()
		}
		if !r.acquire() {
			return r.park() // enough readers spin already
		}
		r.start = monoNow()
	} else if now := monoNow(); now-r.start >= r.budget {
		r.spun(now, false)
		return r.park()
	}
	runtime.Gosched()
	return true
}

// SpinGot is told that a read of the connection ended (data, the end of
// the stream or an error): a spin in progress ends, paid unless it ran past
// its budget, and gives its slot back.
func (r *Reader) SpinGot() {
	if r.start != 0 {
		r.spun(monoNow(), true)
	}
}
