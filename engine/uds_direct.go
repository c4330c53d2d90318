package engine

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// Direct writes of the Unix-socket transport (see direct.go): a caller
// holding the session's write role writes the batch with one non-blocking
// write system call on the connection's descriptor.

// initDirect enables direct writes when nc has a file descriptor (Unix
// and TCP sockets; not a TLS connection or an in-memory pipe).
func (t *udsTransport) initDirect(nc net.Conn) {
	if !directSupported {
		return
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	t.rc = rc
	t.rawWriteFn = t.rawWrite // one method value, not one per write
}

// canDirect reports whether the connection has a descriptor to write to.
func (t *udsTransport) canDirect() bool { return t.rc != nil }

// batchEmpty reports whether nothing is collected for the next write.
func (t *udsTransport) batchEmpty() bool { return len(t.segs) == 0 }

// tryFlush writes the batch (one frame in enc, appended by the direct
// caller) with one non-blocking write; see directWriter.
func (t *udsTransport) tryFlush() (bool, error) {
	if t.rc == nil || len(t.segs) != 1 || t.segs[0].buf != nil {
		return false, nil // the writer's flush handles it
	}
	g := &t.segs[0]
	// A write deadline left in the past by an idle spell would fail the
	// write before it starts: keep it ahead, as flush does.
	t.wd.Arm(t.nc)
	t.tw, t.twN, t.twErr = t.enc[g.off:g.end], 0, nil
	err := t.rc.Write(t.rawWriteFn)
	w := t.twN
	if err == nil {
		err = t.twErr
	}
	t.tw, t.twErr = nil, nil
	if w == g.end-g.off {
		t.resetBatch()
		t.directWrites++
		return true, nil
	}
	g.off += w
	t.bytes -= w
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return false, err
	}
	return false, nil
}
