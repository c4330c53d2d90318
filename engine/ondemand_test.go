package engine

import (
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/loopagent"
)

// TestDispatcherOnDemandDeliversAll: reports queued while the dispatcher
// keeps starting and exiting are all delivered: none is left queued by a
// dispatcher that exits just as it arrives (dispatcher re-checks after it
// cleared dispRunning), and no dispatcher is left running afterwards.
// Each round queues two reports from two goroutines at once, so that the
// second often lands as the dispatcher started by the first runs out of
// work; a lost one fails the round's wait.
func TestDispatcherOnDemandDeliversAll(t *testing.T) {
	const rounds = 20000
	delivered := make(chan struct{}, 2)
	o := defaultOptions()
	WithOnLog(func(*agentwire.LogMessage) { delivered <- struct{}{} }).apply(&o)
	c := newConnObj(memDialer{}, o)
	defer c.Close()
	msg := &agentwire.LogMessage{Message: "x"}
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for r := range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				<-start
				c.dispatch(callback{kind: cbLog, log: msg})
			})
		}
		close(start)
		wg.Wait()
		for range 2 {
			select {
			case <-delivered:
			case <-timeout.C:
				t.Fatalf("round %d: a report was never delivered", r)
			}
		}
	}
	within(t, testTimeout, "the dispatcher to exit", c.dispWG.Wait)
	if c.dispRunning.Load() {
		t.Fatal("a dispatcher is marked running after it exited")
	}
	if st := c.Stats(); st.CallbacksDropped != 0 {
		t.Fatalf("%d reports dropped", st.CallbacksDropped)
	}
}

// TestDispatcherExitsWhenIdle: a Conn with a state callback runs a
// dispatcher only while transitions are waiting: it delivers
// StateConnected and exits, and Close starts one again for StateClosed.
func TestDispatcherExitsWhenIdle(t *testing.T) {
	var mu sync.Mutex
	var got []ConnState
	path := loopagent.Start(t, loopagent.Config{})
	c, err := Dial(testCtx(t), "unix://"+path, WithOnStateChange(func(_, to ConnState) {
		mu.Lock()
		got = append(got, to)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	within(t, testTimeout, "the dispatcher to exit after StateConnected", c.dispWG.Wait)
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != StateConnected || got[1] != StateClosed {
		t.Fatalf("transitions delivered: %v, want [connected closed]", got)
	}
}

// TestSweepStopsWithSession: the sweep timer's WaitGroup count is
// released exactly once however the session's failure falls against a
// running sweep (sweep.go): with a sweep every millisecond, Close must
// return (a count never released hangs it) and must not panic (one
// released twice makes the counter negative).
func TestSweepStopsWithSession(t *testing.T) {
	path := loopagent.Start(t, loopagent.Config{})
	for i := range 100 {
		c, err := Dial(testCtx(t), "unix://"+path, WithRequestTimeout(32*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		s := c.sess.Load()
		// Not a synchronization: Close falls at varying points of
		// the sweeps (none, or a few of them already run).
		time.Sleep(time.Duration(i%4) * time.Millisecond)
		within(t, testTimeout, "Close", func() { c.Close() })
		within(t, testTimeout, "the session's goroutines and sweep", s.wg.Wait)
	}
}
