//go:build !race

package engine

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/heapprof"
)

// TestIdleConnAfterLoad pins what an idle Unix-socket Conn holds once it
// has carried load (4 requests in flight, as in bench/manyconns.sh) and
// gone idle: the goroutines the engine started for it, and the heap the
// engine allocated for it, counted exactly (a memory profile of every
// allocation, MemProfileRate 1, summed over the allocations whose stack
// passes through the engine's own code, after two collections).
//
//   - Goroutines: at most 2 per Conn (reader, writer). The supervisor
//     (a context.AfterFunc while a session runs now, conn.go), the
//     expirer (a timer now, sweep.go) and the dispatcher (started on
//     demand, dispatch.go) used to make 5, each with a stack grown under
//     load and never shrunk while the process idles.
//   - Heap: at most 24 KiB per Conn (about 18-20 now), measured as the
//     growth from n1 to n2 idle Conns (what the process holds whatever
//     their number, like the bounded cache of idle read buffers, cancels
//     out). It was about 34 KiB: the write buffer a loaded connection kept
//     (the sweep of an idle connection gives it back now: the test waits
//     for that), the pings and per-request pause maps, the callback queue
//     and the writev iovec (made on first use now: checked one by one, as
//     each alone is within the budget's margin).
//
// Undoing the supervisor, expirer or dispatcher change fails the goroutine
// count, undoing the buffer release the wait, each lazy allocation its
// check, and the base commit fails the heap budget too (34.4 KiB; seen).
//
// The goroutine stacks themselves are reported, not pinned: their sizes
// follow the scheduler and the collector (the writer parks without its
// 3 KiB batch on the stack now, so that a collection can shrink it:
// both sides' stacks per Conn here went from about 30 to about 13 KiB).
func TestIdleConnAfterLoad(t *testing.T) {
	const (
		n1, n2 = 16, 64
		budget = 24 << 10
	)
	oldRate := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = oldRate }()

	path := startLoopAgent(t, agentwire.EncodingMsgpack)
	var conns []*Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// idle opens conns up to n, loads all of them (4 in flight on each),
	// waits until every one is idle (its sweep gave back the write
	// buffer) and returns the engine's heap, the goroutines the engine
	// started, and the goroutine stacks in use.
	idle := func(n int) (heap int64, goroutines int, stacks uint64) {
		for len(conns) < n {
			// A short request timeout: the sweep runs every
			// millisecond (the load's calls have a context deadline
			// of their own, which this timeout does not shorten).
			c, err := Dial(testCtx(t), "unix://"+path, WithMsgpack(), WithRequestTimeout(32*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		loadConns(t, conns, 4, 50)
		waitUntil(t, "every loaded connection to give back its write buffer", nil, func() bool {
			for _, c := range conns {
				if !writeBufferReleased(c) {
					return false
				}
			}
			return true
		})
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return engineHeapInUse(), engineGoroutines(), ms.StackInuse
	}
	h1, g1, s1 := idle(n1)
	h2, g2, s2 := idle(n2)
	d := float64(n2 - n1)
	heap, gs, stack := float64(h2-h1)/d, float64(g2-g1)/d, (float64(s2)-float64(s1))/d
	t.Logf("per idle connection after load: %.2f goroutines started by the engine (%d for %d Conns), %.1f KiB of the engine's heap, %.1f KiB of goroutine stacks (both sides, reported only)",
		gs, g2, n2, heap/1024, stack/1024)
	if g2 > 2*n2 {
		t.Errorf("%d goroutines started by the engine for %d idle Conns, want at most 2 each", g2, n2)
	}
	if heap > budget {
		t.Errorf("an idle Conn holds %.1f KiB of the engine's heap after load, budget %d KiB", heap/1024, budget>>10)
	}
	for i, c := range conns {
		s := c.sess.Load()
		failed := true
		switch {
		case s.pings.peek() != nil:
			t.Errorf("Conn %d made its pings map without a Ping", i)
		case s.pausedIDs.peek() != nil:
			t.Errorf("Conn %d made its paused-requests map without a pause", i)
		case c.cbq.Load() != nil:
			t.Errorf("Conn %d made its callback queue without a report", i)
		case !withWriteRole(c, func(t *udsTransport) bool { return t.iov == nil }):
			t.Errorf("Conn %d made its writev iovec without a writev", i)
		default:
			failed = false
		}
		if failed {
			break // one Conn says it
		}
	}
}

// loadConns runs per round trips in flight on each of conns, rounds times
// each, and fails the test on any error.
func loadConns(t *testing.T, conns []*Conn, per, rounds int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), testTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns)*per)
	for i, c := range conns {
		for w := range per {
			wg.Go(func() {
				ev := benchEvent("")
				var resp agentwire.AgentResponse
				for r := range rounds {
					id := fmt.Sprintf("idle-%d-%d-%d", i, w, r)
					ev.Metadata.CorrelationID, ev.Metadata.RequestID = id, id
					if err := c.RequestHeadersInto(ctx, &ev, &resp); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// writeBufferReleased reports whether c's Unix-socket transport holds no
// write buffer (read with the session's write role, which its owner
// holds while it writes).
func writeBufferReleased(c *Conn) bool {
	return withWriteRole(c, func(t *udsTransport) bool { return t.enc == nil })
}

// withWriteRole returns f's answer on c's transport, read with the write
// role (false when the role is taken or there is no session).
func withWriteRole(c *Conn, f func(*udsTransport) bool) bool {
	s := c.sess.Load()
	if s == nil || !s.wrole.CompareAndSwap(0, 1) {
		return false
	}
	defer s.wrole.Store(0)
	return f(s.t.(*udsTransport))
}

// enginePkg prefixes the functions of this package.
const enginePkg = "github.com/agentwire/agentwire/engine."

// engineHeapInUse sums the heap in use (as of the last collection) that
// was allocated on a stack passing through the engine's own code (not
// its tests).
func engineHeapInUse() int64 {
	return heapprof.InUse(func(stk []uintptr) bool { return heapprof.Passes(stk, enginePkg) })
}

// engineGoroutines counts the goroutines started by the engine's own code
// (their "created by" function is the engine's, outside its tests). The
// short-lived goroutines of timers (time.AfterFunc: the sweeps) are not
// counted: the runtime starts those.
func engineGoroutines() int {
	count := 0
	for _, st := range goroutineStacks() {
		lines := strings.Split(st, "\n")
		for i, l := range lines {
			fn, ok := strings.CutPrefix(l, "created by ")
			if !ok || !strings.HasPrefix(fn, enginePkg) || i+1 >= len(lines) {
				continue
			}
			file, _, _ := strings.Cut(strings.TrimSpace(lines[i+1]), ":")
			if !strings.HasSuffix(file, "_test.go") {
				count++
			}
		}
	}
	return count
}
