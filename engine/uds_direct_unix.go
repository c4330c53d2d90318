//go:build unix

package engine

import "syscall"

const directSupported = true

// rawWrite writes t.tw to fd without waiting: it stops at the first
// EAGAIN (the socket buffer is full) and records other errors in t.twErr.
// It always reports true, so RawConn.Write never waits for the socket.
func (t *udsTransport) rawWrite(fd uintptr) bool {
	for len(t.tw) > 0 {
		n, err := syscall.Write(int(fd), t.tw)
		if n > 0 {
			t.twN += n
			t.tw = t.tw[n:]
		}
		switch err {
		case nil:
			if n == 0 {
				return true
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			return true
		default:
			t.twErr = err
			return true
		}
	}
	return true
}
