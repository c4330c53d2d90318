package pool

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/payload"
)

// The machine's own fan-out ratio: BenchmarkFanOutFloor does what
// BenchmarkFanOutBare does with no protocol at all. A child process (this
// test binary re-executed) echoes length-prefixed frames on three Unix
// sockets, one goroutine per connection with plain blocking reads; the
// proxy side writes the bytes of the JSON request-headers event
// (benchEvent) as one frame and reads back a frame the size of the allow
// reply, on one socket (one call) or on all three (the fan-out: the three
// writes, then the three reads, all on the caller's goroutine). What it
// measures is what the two cores and the kernel give a fan-out when the
// agents do no work: the wake-ups and the serial use of the CPUs.

const echoChildEnv = "POOL_TEST_CHILD_ECHO"

// runEchoChild serves the raw echo on every socket path listed in the
// environment until stdin closes, and reports whether this process is
// such a child. Each frame is answered with a frame of the reply length
// given in the environment (echoReplyEnv).
func runEchoChild() bool {
	paths := os.Getenv(echoChildEnv)
	if paths == "" {
		return false
	}
	var replyLen int
	if _, err := fmt.Sscan(os.Getenv(echoReplyEnv), &replyLen); err != nil || replyLen <= 0 {
		fmt.Fprintln(os.Stderr, "echo child: bad reply length")
		os.Exit(1)
	}
	spin := os.Getenv(echoSpinEnv) != ""
	var lns []net.Listener
	for _, p := range strings.Split(paths, ",") {
		ln, err := net.Listen("unix", p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if spin {
			lns = append(lns, ln)
			continue
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go echoFrames(c, replyLen)
			}
		}()
	}
	if spin {
		go func() {
			// The proxy side dials each socket once, in order.
			conns := make([]net.Conn, len(lns))
			for i, ln := range lns {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns[i] = c
			}
			spinEcho(conns, replyLen)
		}()
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return true
}

const (
	echoReplyEnv = "POOL_TEST_ECHO_REPLY"
	echoSpinEnv  = "POOL_TEST_ECHO_SPIN" // one goroutine busy-polls every connection
)

// pollConn reads length-prefixed frames from a connection without ever
// waiting: poll makes one non-blocking read.
type pollConn struct {
	c    net.Conn
	rc   syscall.RawConn
	buf  []byte
	have int
}

func newPollConn(c net.Conn) *pollConn {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		panic(err)
	}
	return &pollConn{c: c, rc: rc, buf: make([]byte, 1<<16)}
}

// poll reads what is there and reports whether a whole frame has arrived
// (it is then consumed); err is a read failure or end of file.
func (p *pollConn) poll() (frame bool, err error) {
	var n int
	var rerr error
	if err := p.rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), p.buf[p.have:])
		return true // never wait for readiness
	}); err != nil {
		return false, err
	}
	switch {
	case rerr == syscall.EAGAIN:
		n = 0
	case rerr != nil:
		return false, rerr
	case n == 0:
		return false, io.EOF
	}
	p.have += n
	if p.have < 4 {
		return false, nil
	}
	size := 4 + int(binary.BigEndian.Uint32(p.buf))
	if size > len(p.buf) {
		return false, io.ErrShortBuffer
	}
	if p.have < size {
		return false, nil
	}
	// One frame in flight per connection: nothing follows it.
	p.have = 0
	return true, nil
}

// spinEcho answers frames on every connection from one goroutine that
// polls them all in turn and never parks.
func spinEcho(conns []net.Conn, replyLen int) {
	out := make([]byte, 4+replyLen)
	binary.BigEndian.PutUint32(out, uint32(replyLen))
	pcs := make([]*pollConn, len(conns))
	for i, c := range conns {
		pcs[i] = newPollConn(c)
	}
	for {
		for _, p := range pcs {
			frame, err := p.poll()
			if err != nil {
				return
			}
			if frame {
				if _, err := p.c.Write(out); err != nil {
					return
				}
			}
		}
	}
}

// echoFrames answers every frame read from c with a frame of replyLen
// bytes, until c fails.
func echoFrames(c net.Conn, replyLen int) {
	defer c.Close()
	in := make([]byte, 1<<16)
	out := make([]byte, 4+replyLen)
	binary.BigEndian.PutUint32(out, uint32(replyLen))
	for {
		if _, err := io.ReadFull(c, in[:4]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(in))
		if n > len(in) {
			return
		}
		if _, err := io.ReadFull(c, in[:n]); err != nil {
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// startEchoChild starts the echo child on three fresh socket paths and
// dials them.
func startEchoChild(b *testing.B, replyLen int, spin bool) []net.Conn {
	b.Helper()
	env := []string{fmt.Sprintf("%s=%d", echoReplyEnv, replyLen)}
	if spin {
		env = append(env, echoSpinEnv+"=1")
	}
	paths, _ := startChild(b, echoChildEnv, 3, env...)
	conns := make([]net.Conn, len(paths))
	for i, p := range paths {
		c, err := net.Dial("unix", p)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// BenchmarkFanOutFloor: see above. agents=1 is one raw round trip,
// agents=3 the raw fan-out; p50-µs is the number to set beside
// BenchmarkFanOutBare's. With spin=true nothing ever parks: the echo
// child busy-polls its three sockets from one goroutine and the caller
// busy-polls its own after writing (the best case for a fan-out on this
// machine: no wake-up anywhere, each process holding a CPU).
func BenchmarkFanOutFloor(b *testing.B) {
	ev := benchEvent()
	ev.Metadata.CorrelationID = "bench-floor-0000000"
	req := payload.AppendRequestHeadersJSON(nil, &ev)
	reply := payload.AppendAgentResponseJSON(nil, &agentwire.AgentResponse{CorrelationID: ev.Metadata.CorrelationID})
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(req)))
	frame = append(frame, req...)
	for _, spin := range []bool{false, true} {
		conns := startEchoChild(b, len(reply), spin)
		in := make([]byte, 4+len(reply))
		pcs := make([]*pollConn, len(conns))
		for i, c := range conns {
			pcs[i] = newPollConn(c)
		}
		for _, n := range []int{1, 3} {
			b.Run(fmt.Sprintf("spin=%v/agents=%d/inflight=1", spin, n), func(b *testing.B) {
				lat := make([]time.Duration, 0, b.N)
				cpu0 := processCPU()
				b.ResetTimer()
				for range b.N {
					t0 := time.Now()
					for _, c := range conns[:n] {
						if _, err := c.Write(frame); err != nil {
							b.Fatal(err)
						}
					}
					if spin {
						for left := n; left > 0; {
							for _, p := range pcs[:n] {
								frame, err := p.poll()
								if err != nil {
									b.Fatal(err)
								}
								if frame {
									left--
								}
							}
						}
					} else {
						for _, c := range conns[:n] {
							if _, err := io.ReadFull(c, in); err != nil {
								b.Fatal(err)
							}
						}
					}
					lat = append(lat, time.Since(t0))
				}
				b.StopTimer()
				b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
				reportLatency(b, lat)
			})
		}
	}
}
