//go:build !race

package agent

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/heapprof"
)

// TestUDSIdleConnAfterLoad pins what an idle Unix-socket connection holds
// in the agent once it has carried load (4 events in flight, as in
// bench/manyconns.sh, whose agent is `agentwire serve --agent echo`:
// inline handlers, MessagePack) and gone idle: the goroutines the agent
// started for it, and the heap the agent allocated for it, counted
// exactly (a memory profile of every allocation, MemProfileRate 1, summed
// over the allocations whose stack passes through the agent's own code,
// after two collections), as the growth from n1 to n2 idle connections
// (what the process holds whatever their number, like the bounded cache
// of idle read buffers, cancels out).
//
//   - Goroutines: exactly 1 per connection (the reader). The watcher
//     goroutine that waited for Shutdown, Close and the end of the
//     connection is context.AfterFunc hooks now (watch, uds.go), and the
//     writer goroutine, which with inline handlers wrote nothing but
//     pushes, is started by a push and exits when it is written
//     (uds_push.go). Each of those goroutines kept its stack, grown to
//     the runtime's starting estimate or under load, while the process
//     idled. 3 at the base commit and 2 with the watcher change alone
//     (both seen failing).
//   - Heap: at most 12 KiB per connection (about 6.7 now, 4 of them
//     the request-context slab in use; 9 with a 6 KiB slab and 11.4
//     when the MessagePack string arena kept its chunk while idle;
//     22.1 at the base commit, seen
//     failing): an inline connection has no outbound ring (10 KiB at
//     the base: 256 slots of 40 bytes) and no work queue (1.7 KiB). The
//     frame readers' 64 KiB buffers are not counted (see readBuffer).
//
// The readers are waited for until every one is parked in the network
// poller, where it holds no read buffer (codec/frame, idle.go). The
// goroutine stacks are reported, not pinned (their sizes follow the
// scheduler and the collector).
func TestUDSIdleConnAfterLoad(t *testing.T) {
	const (
		n1, n2 = 16, 64
		per    = 4
		rounds = 50
		budget = 12 << 10
	)
	oldRate := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = oldRate }()

	e := startUDS(t, Funcs{}, WithInlineHandlers())
	var proxies []*rawProxy
	idle := func(n int) (heap int64, goroutines int, stacks uint64) {
		for len(proxies) < n {
			p := dialRaw(t, e.path)
			p.handshake("msgpack")
			proxies = append(proxies, p)
		}
		loadRaw(t, proxies, per, rounds)
		waitFor(t, "every reader to park without its buffer", func() bool {
			return parkedReaders() == n
		})
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return agentHeapInUse(), agentGoroutines(), ms.StackInuse
	}
	h1, g1, s1 := idle(n1)
	h2, g2, s2 := idle(n2)
	d := float64(n2 - n1)
	heap, stack := float64(h2-h1)/d, (float64(s2)-float64(s1))/d
	t.Logf("per idle connection after load: %.2f goroutines started by the agent (%d for %d connections), %.1f KiB of the agent's heap, %.1f KiB of goroutine stacks (both sides, reported only)",
		float64(g2-g1)/d, g2, n2, heap/1024, stack/1024)
	if g2-g1 != n2-n1 {
		t.Errorf("%d more goroutines started by the agent for %d more idle connections, want 1 each", g2-g1, n2-n1)
	}
	if heap > budget {
		t.Errorf("an idle connection holds %.1f KiB of the agent's heap after load, budget %d KiB", heap/1024, budget>>10)
	}
}

// loadRaw sends per request-headers events at a time on each proxy and
// reads their replies, rounds times, all proxies at once.
func loadRaw(t *testing.T, proxies []*rawProxy, per, rounds int) {
	t.Helper()
	var wg sync.WaitGroup
	for i, p := range proxies {
		events := make([][]byte, per)
		for j := range events {
			events[j] = reqHeadersMsgpack("idle-"+strconv.Itoa(i)+"-"+strconv.Itoa(j), "/x")
		}
		wg.Go(func() {
			for range rounds {
				for _, ev := range events {
					p.send(frame.TypeRequestHeaders, ev)
				}
				for range per {
					if typ, _ := p.recv(); typ != frame.TypeAgentResponse {
						t.Errorf("got a %v frame, want an agent response", typ)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// parkedReaders counts the connection readers parked in the network
// poller by the frame reader's buffer-less wait.
func parkedReaders() int {
	n := 0
	for _, g := range allStacks() {
		if strings.Contains(g, "runtime_pollWait") && strings.Contains(g, "frame.(*Reader).readIdle") &&
			strings.Contains(g, agentPkg+"(*udsConn).readFrames") {
			n++
		}
	}
	return n
}

// agentHeapInUse sums the heap in use (as of the last collection) that
// was allocated on a stack passing through the agent's own code (not its
// tests).
func agentHeapInUse() int64 {
	return heapprof.InUse(func(stk []uintptr) bool {
		return heapprof.Passes(stk, agentPkg) && !heapprof.Has(stk, readBufferAlloc)
	})
}

// readBufferAlloc allocates a frame reader's 64 KiB read buffer. Those
// are left out of the sum: a parked reader holds none (the test waits for
// that), and where the ones made under load end up (the process-wide
// cache of at most bufcache.Slots idle buffers, or the pool behind it)
// does not depend on the number of connections, but on which side's
// reader, the test's or the agent's, made each of them.
const readBufferAlloc = "github.com/agentwire/agentwire/codec/frame.init.func1"
