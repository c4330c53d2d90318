//go:build !race

package bench

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/engine"
)

// TestIdleConnMemory pins the heap that an idle Unix-socket connection
// holds on both sides together (an engine.Conn and the agent.Server's end
// of it, in this one process), after it has carried requests (4 in flight
// on each connection), when nothing is in flight any more: at most 80 KiB
// (measured as the growth from 50 to 150 idle connections, per
// connection). Before the idle work it was about 400 KiB: a 64 KiB frame-reader
// buffer on each side (now given back while the reader waits,
// codec/frame/idle.go), the agent writer's 64 KiB batch buffer (now given
// back while the writer waits; both go to bounded caches, bufcache), the engine's 1024-slot outbound queue and
// pending-map table (now sized from the agent's max_concurrency,
// sessionRingSize) and its 256-slot callback queue of 232-byte values (now
// pointers). Each of these, undone alone, makes the test fail (seen). The
// goroutine stacks (8 goroutines per connection here: 2 engine, 2 agent
// (reader, writer: the agent's watcher is context.AfterFunc hooks now, see
// agent's TestUDSIdleConnAfterLoad), 4 parked agent workers; the
// engine's supervisor, expirer and dispatcher
// no longer hold one each, see engine's TestIdleConnAfterLoad, which pins
// the engine's share alone) are reported, not pinned: their sizes follow
// the scheduler. The engine's changes took the heap here from about 71 to
// about 57 KiB.
func TestIdleConnMemory(t *testing.T) {
	const (
		n1, n2 = 50, 150
		budget = 80 << 10
	)
	path := filepath.Join(t.TempDir(), "a.sock")
	srv := agent.NewServer(refagents.Echo{})
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDS(ln) }()
	defer func() { srv.Close(); <-done }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for attempt := 1; ; attempt++ {
		heap, stack := measureIdleConns(ctx, t, path, n1, n2)
		t.Logf("per idle connection after load, both sides: heap %.1f KiB, goroutine stacks %.1f KiB", heap/1024, stack/1024)
		if heap <= budget {
			return
		}
		// The heap is the process's: another test's leftovers count
		// too. A real regression fails every attempt.
		if attempt == 3 {
			t.Fatalf("an idle connection holds %.1f KiB of heap (both sides), budget %d KiB", heap/1024, budget>>10)
		}
	}
}

// measureIdleConns opens n1 connections to the agent at path, runs 4
// round trips in flight on each for a moment and lets them go idle, then
// does the same with n2 connections in all, and returns the heap and
// stack growth per connection between the two: what is per connection,
// without what the process holds once whatever the number (the buffer
// caches of idle readers and writers, bounded by bufcache.Slots each).
func measureIdleConns(ctx context.Context, t *testing.T, path string, n1, n2 int) (heap, stack float64) {
	conns := make([]*engine.Conn, 0, n2)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	idle := func(n int) (h, s uint64) {
		for len(conns) < n {
			c, err := engine.Dial(ctx, "unix://"+path, engine.WithMsgpack())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		rt, err := EngineLoad{Conns: conns, Concurrency: 4 * n}.RoundTrip()
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, Config{Concurrency: 4 * n, Duration: 300 * time.Millisecond, Warmup: -1}, rt)
		if err != nil || res.Errors != 0 {
			t.Fatalf("load: %v, %d errors", err, res.Errors)
		}
		for _, c := range conns {
			if c.Stats().Received == 0 {
				t.Fatal("a connection carried no request")
			}
		}
		// Run has waited for every caller, and every call had its
		// reply: nothing is in flight. What the writers and readers may
		// still be finishing (a last write, the wait for the next
		// frame) is done within moments; the lowest of a few readings
		// counts.
		h, s = memInUse()
		for range 3 {
			time.Sleep(20 * time.Millisecond)
			hh, ss := memInUse()
			h, s = min(h, hh), min(s, ss)
		}
		return h, s
	}
	h1, s1 := idle(n1)
	h2, s2 := idle(n2)
	n := float64(n2 - n1)
	return float64(int64(h2)-int64(h1)) / n, float64(int64(s2)-int64(s1)) / n
}

// memInUse returns the heap and goroutine stacks in use after two
// collections (which also empty the sync.Pools).
func memInUse() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}
