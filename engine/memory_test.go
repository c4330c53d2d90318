//go:build !race

package engine

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// TestMemoryPerPendingRequest measures the heap one request holds while it
// waits for its reply: the pending entry, its completion channel and its
// slot in the session's map (the encoded event is written out and
// recycled before the reply can come). The agent reads every event and
// answers none, so all n requests stay pending while the heap is measured.
//
// Two numbers are reported. total is everything the heap grew by, which
// includes the runtime's records of each caller parked in a select on its
// reply and its context (sudogs, allocated by the runtime for any
// goroutine that waits that way, with or without agentwire). parking is
// that runtime share alone, measured the same way with callers parked in
// an equivalent select of their own; engine = total - parking is what
// agentwire itself holds per pending request, and it must stay within
// 256 bytes (../shared/PERF.md).
func TestMemoryPerPendingRequest(t *testing.T) {
	const (
		n      = 4096
		budget = 256
	)
	parking := measurePerCaller(t, n, nil, nil)
	t.Logf("runtime parking of a caller in a two-way select: %.0f bytes", parking)
	for _, enc := range []string{agentwire.EncodingJSON, agentwire.EncodingMsgpack} {
		t.Run(enc, func(t *testing.T) {
			// Up to three attempts: the heap is the process's, and what
			// another test's leftover goroutines allocate meanwhile counts
			// too; a real regression fails every attempt.
			for attempt := 1; ; attempt++ {
				total := measurePending(t, enc, n)
				engine := total - parking
				t.Logf("%s: %.0f bytes of heap per pending request in total, %.0f of them agentwire's (%d pending)", enc, total, engine, n)
				if engine <= budget {
					return
				}
				if attempt == 3 {
					t.Fatalf("agentwire holds %.0f bytes per pending request, budget %d", engine, budget)
				}
			}
		})
	}
}

// measurePending measures the heap per pending request of n requests
// waiting on a Unix-socket Conn with encoding enc (see
// TestMemoryPerPendingRequest).
func measurePending(t *testing.T, enc string, n int) float64 {
	read := make(chan struct{}, 1)
	// The agent takes all n requests at once (max_concurrency).
	caps := fullCaps("raw")
	caps.Limits.MaxConcurrency = uint32(n)
	a := startRawAgent(t, func(rc *rawConn) {
		if rc.handshakeCaps(enc, caps) != nil {
			return
		}
		events := 0
		for {
			typ, _, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ == frame.TypeRequestHeaders {
				if events++; events == n {
					read <- struct{}{}
				}
			}
		}
	})
	// A ring as large as the burst: every event is queued without
	// waiting for room (a caller that waits for room gets a
	// deadline context of its own, which is not what this
	// measures).
	opts := []Option{WithRequestTimeout(time.Minute), WithRingSize(n)}
	if enc == agentwire.EncodingMsgpack {
		opts = append(opts, WithMsgpack())
	}
	c := dialUDS(t, a.path, opts...)
	total := measurePerCaller(t, n, c, func() {
		select {
		case <-read:
		case <-time.After(20 * time.Second):
			t.Fatal("the agent did not receive every event")
		}
		waitPending(t, c, n)
	})
	if got := pendingCount(c); got != 0 {
		t.Fatalf("%d entries left pending after every caller returned", got)
	}
	c.Close()
	return total
}

// measurePerCaller starts n callers, parks them on a start channel, then
// releases them and returns the heap growth per caller once settled()
// returns. With c nil each caller parks in a select on a channel of its
// own and the context (the baseline); otherwise it sends a request-headers
// event on c, which must never be answered. The callers are cancelled and
// waited for before it returns; a call that succeeded fails the test.
func measurePerCaller(t *testing.T, n int, c *Conn, settled func()) float64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shared := &memCallers{c: c, ctx: ctx, start: make(chan struct{})}
	callers := make([]memCaller, n)
	for i := range callers {
		callers[i] = memCaller{memCallers: shared, ev: *headersEvent("mem-" + strconv.Itoa(i)), own: make(chan error, 1)}
	}
	for i := range callers {
		shared.wg.Add(1)
		shared.ready.Add(1)
		go callers[i].run()
	}
	shared.ready.Wait()
	time.Sleep(20 * time.Millisecond) // every caller is parked on start
	before := heapInUse()
	close(shared.start)
	if settled != nil {
		settled()
	} else {
		time.Sleep(50 * time.Millisecond)
	}
	// What the waiting holds does not change while the callers wait; what
	// the last write still held (the encoded events of its batch, freed
	// once the system call returns) only goes away. So the lowest of a few
	// readings is the one that counts: on a busy machine the writer may
	// not have freed its last batch at the first.
	after := heapInUse()
	for range 3 {
		time.Sleep(20 * time.Millisecond)
		after = min(after, heapInUse())
	}
	cancel()
	shared.wg.Wait()
	for i := range callers {
		if callers[i].err == nil {
			t.Fatal("a call completed although nobody answered")
		}
	}
	return float64(int64(after)-int64(before)) / float64(n)
}

// memCallers is the state the callers of measurePerCaller share; memCaller
// is one caller's. Everything is allocated before the first measurement
// and stays reachable until the end, so only what the waiting itself adds
// shows up in the difference. (Closures would not do: a goroutine's
// closure becomes garbage once its captured variables are loaded, which
// hides a few hundred bytes per caller.)
type memCallers struct {
	c         *Conn
	ctx       context.Context
	start     chan struct{}
	wg, ready sync.WaitGroup
}

type memCaller struct {
	*memCallers
	ev  agentwire.RequestHeadersEvent
	dst agentwire.AgentResponse
	own chan error
	err error
}

func (m *memCaller) run() {
	defer m.wg.Done()
	m.ready.Done()
	<-m.start
	if m.c == nil {
		select {
		case m.err = <-m.own:
		case <-m.ctx.Done():
			m.err = m.ctx.Err()
		}
		return
	}
	m.err = m.c.RequestHeadersInto(m.ctx, &m.ev, &m.dst)
}

// heapInUse returns the live heap after two collections (the second frees
// what sync.Pool victim caches still held).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// pendingCount returns the number of entries in c's current session map.
func pendingCount(c *Conn) int {
	s := c.sess.Load()
	if s == nil {
		return 0
	}
	return s.pending.size()
}

func waitPending(t *testing.T, c *Conn, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pendingCount(c) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d pending, want %d", pendingCount(c), n)
		}
		time.Sleep(time.Millisecond)
	}
}
