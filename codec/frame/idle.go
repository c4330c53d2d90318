package frame

import (
	"io"
	"net"
	"os"
	"syscall"

	"github.com/agentwire/agentwire/internal/bufcache"
)

// Idle connections hold no read buffer.
//
// A Reader on a Unix or TCP socket (*net.UnixConn, *net.TCPConn, or a
// spinning reader of one, internal/spinread) waits for
// the next frame without its 64 KiB buffer: when everything read has been
// returned as frames, ReadFrame reads through the socket's syscall.RawConn,
// and a read that finds no data (EAGAIN) puts the buffer into idleBufs
// before the goroutine parks in the network poller; a buffer is taken
// from there again when data arrives. This is the same non-blocking read
// and poller wait that net.Conn.Read does, with the cache round trip (two
// atomic operations, no allocation while the cache has buffers) added
// only when the read would wait. A proxy with thousands of mostly
// idle agent connections (or an agent with thousands of proxy
// connections) then holds buffers only for the connections data is
// arriving on. Other readers (TLS, pipes, wrappers) keep their buffer, as
// before.

// initIdle sets up buffer-less waiting when rd is a Unix or TCP socket.
func (r *Reader) initIdle(rd io.Reader) {
	if !idleSupported {
		return
	}
	var sc syscall.Conn
	switch c := rd.(type) {
	case spinner:
		// A socket read with a bounded spin (internal/spinread): the
		// Reader reads the descriptor itself and asks the spinner
		// whether a read that found nothing goes again or waits.
		sc, r.spin = c, c
	case *net.UnixConn:
		sc = c
	case *net.TCPConn:
		sc = c
	default:
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	r.raw = rc
	r.rawFn = r.rawRead // one method value per Reader, not one per read
	r.hint = idleBufs.Hint()
}

// spinner is a reader of a socket that spins before it parks
// (internal/spinread.Reader): SpinAgain is asked after a read that found
// no data (true: read again at once, false: wait for the socket), SpinGot
// told after one that brought data.
type spinner interface {
	syscall.Conn
	SpinAgain() bool
	SpinGot()
}

// idleBufs holds the buffers of waiting Readers (bufcache explains why not
// sync.Pool); what does not fit goes to readBufPool.
var idleBufs bufcache.Cache[[readBufSize]byte]

func getIdleBuf(hint uint32) *[readBufSize]byte {
	if b := idleBufs.Get(hint); b != nil {
		return b
	}
	return readBufPool.Get().(*[readBufSize]byte)
}

func putIdleBuf(hint uint32, b *[readBufSize]byte) {
	if !idleBufs.Put(hint, b) {
		readBufPool.Put(b)
	}
}

// readIdle reads into an empty buffer through the raw connection, holding
// no buffer while it waits (see above). On return buf[0:w] holds what was
// read, or r.rerr the error (io.EOF at the end of the stream); r.bufp is
// nil only when the wait itself failed (closed, deadline).
func (r *Reader) readIdle() {
	r.r, r.w = 0, 0
	r.rawN, r.rawErr = 0, nil
	err := r.raw.Read(r.rawFn)
	switch {
	case err != nil:
		r.rerr = err // closed, or a read deadline (net.Error with Timeout)
	case r.rawErr != nil:
		r.rerr = os.NewSyscallError("read", r.rawErr)
	case r.rawN == 0:
		r.rerr = io.EOF
	default:
		r.w = r.rawN
	}
}
