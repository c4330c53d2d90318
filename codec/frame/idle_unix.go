//go:build unix

package frame

import "syscall"

const idleSupported = true

// rawRead is the RawConn.Read callback of readIdle: one non-blocking read
// into the buffer (taken from the pool if the Reader has none). When no
// data is there it gives the buffer back and reports false, so that the
// goroutine waits for the socket to become readable without it.
func (r *Reader) rawRead(fd uintptr) bool {
	if r.bufp == nil {
		r.bufp = getIdleBuf(r.hint)
	}
	for {
		n, err := syscall.Read(int(fd), r.bufp[:])
		switch err {
		case nil:
			r.rawN = n
			if r.spin != nil {
				r.spin.SpinGot()
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if r.spin != nil && r.spin.SpinAgain() {
				continue // spinning: the buffer stays
			}
			putIdleBuf(r.hint, r.bufp)
			r.bufp = nil
			return false
		default:
			r.rawErr = err
			if r.spin != nil {
				r.spin.SpinGot()
			}
			return true
		}
	}
}
