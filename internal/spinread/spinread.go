// Package spinread reads a socket with a short, bounded busy poll before
// the goroutine parks in the runtime's network poller.
//
// At one request in flight the two ends of a connection take turns: each
// reads, works for a few microseconds and writes, then reads again and
// finds nothing. A read that finds nothing parks the goroutine; when no
// other goroutine is runnable the thread sleeps in epoll_wait and its CPU
// goes idle, and the peer's next write has to wake it again. On a virtual
// machine whose other CPUs are idle that wake-up (an idle virtual CPU
// brought back by the host) costs more than the work itself. A Reader
// instead retries the non-blocking read for up to a budget of time,
// yielding the processor between attempts (so that goroutines made
// runnable meanwhile still run, and run first), and parks only when the
// budget runs out.
//
// The spin pays only while the peer answers within the budget and this
// thread keeps its CPU. A spin that finds no data within the budget (also
// one that finds data only after the budget, which means the thread was
// descheduled: on an oversubscribed machine spinning only burns the CPU
// time the peer needs) backs off: the next reads park at once, for a
// number of reads that doubles with each failed spin (up to MaxSkip) and
// is reset by a successful one. An idle connection therefore parks at
// once and costs no CPU, and a connection whose peer is slow spins on at
// most one read in MaxSkip. Want, when set, gates spinning further (the
// proxy side spins only while a reply is due).
package spinread

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxSkip bounds the reads that park at once after failed spins.
const MaxSkip = 64

// Reader reads a connection with a bounded spin before parking (see the
// package documentation). It is not safe for concurrent use: it belongs to
// the connection's one reading goroutine.
type Reader struct {
	nc     net.Conn
	rc     syscall.RawConn // nil: plain reads of nc
	budget int64           // ns
	limit  int32           // spinners that may spin at once (see spinners)

	// Want, when not nil, is asked before a spin starts; false parks at
	// once (not counted as a failed spin). Set it before the first Read.
	Want func() bool

	fn func(fd uintptr) bool // r.read, bound once
	// parking, when not nil (tests), is called each time a read is about
	// to park.
	parking func()

	// The current Read's buffer and results, and its spin state.
	b        []byte
	n        int
	err      error
	start    int64 // when the current spin began (0: not spinning)
	skip     int   // reads left that park at once
	nextSkip int   // skip after the next failed spin

	// Spins counts the reads that found data by spinning, Failed the
	// spins that did not pay, Parks the reads that parked (for tests and
	// profiles; read them on the reading goroutine).
	Spins, Failed, Parks uint64
}

// New returns a Reader of nc that spins for up to budget before parking.
// Without a file descriptor (a pipe, a TLS connection), or when budget is
// not positive, or where spinning cannot pay (GOMAXPROCS 1, systems
// without non-blocking descriptor reads), it reads nc as it is.
func New(nc net.Conn, budget time.Duration) *Reader {
	r := &Reader{nc: nc, budget: int64(budget), nextSkip: 1, limit: max(1, int32(runtime.GOMAXPROCS(0))-1)}
	if budget <= 0 || !supported || runtime.GOMAXPROCS(0) < 2 {
		return r
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return r
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return r
	}
	r.rc = rc
	r.fn = r.read
	return r
}

// SyscallConn returns the connection's raw connection, so that a reader
// reading the descriptor itself (codec/frame's buffer-less wait) can ask
// SpinAgain and SpinGot around its own reads and keep the spin.
func (r *Reader) SyscallConn() (syscall.RawConn, error) {
	if r.rc != nil {
		return r.rc, nil
	}
	if sc, ok := r.nc.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoRaw
}

var errNoRaw = errors.New("agentwire: connection has no file descriptor")

// Spinning reports whether reads may spin (false: plain reads of the
// connection).
func (r *Reader) Spinning() bool { return r.rc != nil }

// Read reads into b like the connection's Read, spinning first (see
// Reader). Errors other than io.EOF are *net.OpError values, as the
// connection's own.
func (r *Reader) Read(b []byte) (int, error) {
	if r.rc == nil || len(b) == 0 {
		return r.nc.Read(b)
	}
	r.b, r.n, r.err, r.start = b, 0, nil, 0
	err := r.rc.Read(r.fn)
	n := r.n
	r.b = nil
	if err == nil {
		err = r.err
	}
	switch err {
	case nil, io.EOF:
		return n, err
	}
	oe := &net.OpError{Op: "read", Source: r.nc.LocalAddr(), Addr: r.nc.RemoteAddr(), Err: err}
	if oe.Source != nil {
		oe.Net = oe.Source.Network()
	}
	return n, oe
}

// park books a read that parks and reports false (RawConn.Read then
// waits until the descriptor is readable).
func (r *Reader) park() bool {
	r.Parks++
	if r.parking != nil {
		r.parking()
	}
	return false
}

// spinners counts the Readers of this process that are spinning now. At
// most limit of them (GOMAXPROCS-1, at least 1) spin at once: a reader
// that would spin beyond that parks at once (not a failed spin). With
// one request in flight on each of several connections (a parallel
// fan-out to several agents), every connection's reader would otherwise
// spin, and on 2 cores the spinners took the CPU the peers needed to
// answer (engine/pool BenchmarkFanOut: agents=3 p50 about 92 µs with
// every reader spinning).
var spinners atomic.Int32

// acquire takes a spinning slot, or reports false when limit readers spin.
func (r *Reader) acquire() bool {
	for {
		n := spinners.Load()
		if n >= r.limit {
			return false
		}
		if spinners.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// spun books the end of a spin that began at r.start: it paid when data
// came within the budget. It gives the spinning slot back.
func (r *Reader) spun(now int64, data bool) {
	spinners.Add(-1)
	if data && now-r.start <= r.budget {
		r.Spins++
		r.nextSkip = 1
	} else {
		r.Failed++
		r.skip = r.nextSkip
		r.nextSkip = min(2*r.nextSkip, MaxSkip)
	}
	r.start = 0
}
