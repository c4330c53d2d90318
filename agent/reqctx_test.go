package agent

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type ctxKey struct{}

func newTestReqCtx(t *testing.T) (*reqCtx, context.CancelFunc) {
	t.Helper()
	parent, cancel := context.WithTimeout(context.WithValue(context.Background(), ctxKey{}, "v"), time.Hour)
	t.Cleanup(cancel)
	var slab reqCtxSlab
	return slab.get(parent), cancel
}

func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestReqCtxCancel(t *testing.T) {
	c, _ := newTestReqCtx(t)
	if c.Err() != nil {
		t.Fatal("fresh context cancelled")
	}
	if c.Value(ctxKey{}) != "v" {
		t.Fatal("parent value not visible")
	}
	if _, ok := c.Deadline(); !ok {
		t.Fatal("parent deadline not visible")
	}
	done := c.Done()
	select {
	case <-done:
		t.Fatal("done before cancel")
	default:
	}
	c.cancel(context.Canceled)
	c.cancel(errors.New("second cancel ignored"))
	if !closedWithin(done, time.Second) || !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
		t.Fatalf("after cancel: err %v", c.Err())
	}
	if c.Done() != done {
		t.Fatal("Done changed")
	}
	// Done asked for the first time after cancel is closed at once.
	c2, _ := newTestReqCtx(t)
	c2.cancel(context.Canceled)
	if !closedWithin(c2.Done(), 0) {
		t.Fatal("late Done not closed")
	}
}

func TestReqCtxParent(t *testing.T) {
	c, cancelParent := newTestReqCtx(t)
	done := c.Done()
	cancelParent()
	if !closedWithin(done, testTimeout) || !errors.Is(c.Err(), context.Canceled) {
		t.Fatalf("parent cancel not propagated: %v", c.Err())
	}
	// Done asked for the first time after the parent ended (a handler that
	// starts waiting after the connection closed): closed, no panic. This
	// closed the channel twice once.
	c3, cancel3 := newTestReqCtx(t)
	cancel3()
	if !closedWithin(c3.Done(), 0) || !errors.Is(c3.Err(), context.Canceled) {
		t.Fatalf("late Done after parent end: err %v", c3.Err())
	}
	// Without Done, Err still reports the parent's end.
	c2, cancel2 := newTestReqCtx(t)
	cancel2()
	if !errors.Is(c2.Err(), context.Canceled) {
		t.Fatalf("err %v", c2.Err())
	}
}

func TestReqCtxDerived(t *testing.T) {
	c, _ := newTestReqCtx(t)
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	timed, cancelTimed := context.WithTimeout(c, time.Hour)
	defer cancelTimed()
	ran := make(chan struct{})
	context.AfterFunc(c, func() { close(ran) })
	stopped := context.AfterFunc(c, func() { t.Error("stopped AfterFunc ran") })
	if !stopped() {
		t.Fatal("stop reported false before cancel")
	}
	c.cancel(context.Canceled)
	if !closedWithin(child.Done(), testTimeout) || !closedWithin(timed.Done(), testTimeout) || !closedWithin(ran, testTimeout) {
		t.Fatal("cancel not propagated to derived contexts")
	}
	if !errors.Is(context.Cause(child), context.Canceled) {
		t.Fatalf("cause %v", context.Cause(child))
	}
	// AfterFunc on a cancelled context runs at once.
	again := make(chan struct{})
	if stop := c.AfterFunc(func() { close(again) }); stop() {
		t.Fatal("stop after cancel reported true")
	}
	if !closedWithin(again, testTimeout) {
		t.Fatal("AfterFunc after cancel did not run")
	}
	// A derived context cancelled on its own does not touch c.
	c3, _ := newTestReqCtx(t)
	d, cancelD := context.WithCancel(c3)
	cancelD()
	<-d.Done()
	if c3.Err() != nil {
		t.Fatal("child cancel reached the parent")
	}
	c3.cancel(context.Canceled)
}

func TestReqCtxConcurrent(t *testing.T) {
	for range 50 {
		c, cancelParent := newTestReqCtx(t)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch i {
				case 0:
					<-c.Done()
				case 1:
					for c.Err() == nil {
						time.Sleep(time.Microsecond)
					}
				case 2:
					ch, cancel := context.WithCancel(c)
					<-ch.Done()
					cancel()
				case 3:
					c.cancel(context.Canceled)
				}
			}()
		}
		wg.Wait()
		cancelParent()
	}
}

// TestReqCtxCancelRacesWaiters: a cancel (lock-free while nobody waits)
// racing with the first Done or AfterFunc on another goroutine, both
// released at once from a spin, is never lost, nor delivered twice: the
// channel closes, the function runs (a second run would panic), and the
// waiting part ends emptied and marked fired, over 1000 races each with
// the parent never ending (no parent hook to rescue a lost wake-up) and
// with the parent ending instead of a cancel.
func TestReqCtxCancelRacesWaiters(t *testing.T) {
	for _, byParent := range []bool{false, true} {
		for i := range 1000 {
			parent, cancelParent := context.WithCancel(context.Background())
			var slab reqCtxSlab
			c := slab.get(context.Background())
			if byParent {
				c = slab.get(parent)
			}
			var ready, gate atomic.Int32
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready.Add(1)
				for gate.Load() == 0 {
					runtime.Gosched() // with one P the other side must run
				}
				spin(i % 64)
				if byParent {
					cancelParent()
				} else {
					c.cancel(context.Canceled)
				}
			}()
			for ready.Load() == 0 {
				runtime.Gosched()
			}
			gate.Store(1)
			spin(i / 64 % 16 * 4)
			if i%2 == 0 {
				if !closedWithin(c.Done(), testTimeout) {
					t.Fatalf("race %d (parent %v): Done never closed", i, byParent)
				}
			} else {
				ran := make(chan struct{})
				c.AfterFunc(func() { close(ran) }) // a second run panics
				if !closedWithin(ran, testTimeout) {
					t.Fatalf("race %d (parent %v): AfterFunc's function never ran", i, byParent)
				}
			}
			wg.Wait()
			c.mu.Lock()
			w := c.remote.ctxWait
			fired, left := w != nil && w.fired, w != nil && w.afters != nil
			c.mu.Unlock()
			if !fired || left {
				t.Fatalf("race %d (parent %v): waiting part fired %v, functions left %v", i, byParent, fired, left)
			}
			if err := c.Err(); !errors.Is(err, context.Canceled) {
				t.Fatalf("race %d: Err %v", i, err)
			}
			cancelParent()
		}
	}
}

// spinSink keeps spin's loop from being optimised away.
var spinSink atomic.Int32

// spin busy-waits for n iterations.
func spin(n int) {
	for range n {
		spinSink.Add(1)
	}
}
