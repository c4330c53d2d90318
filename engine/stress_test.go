package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// TestPendingRemovedExactlyOnce races replies against deadlines, context
// cancellation and Conn.Cancel on the in-memory transport, where replies
// come back within microseconds. Every call must end exactly once with
// either its own reply or one of the expected errors, and the pooled
// pending entries must come out of it uncorrupted (checked by a clean
// second phase).
func TestPendingRemovedExactlyOnce(t *testing.T) {
	c := memConn(t)
	const workers, perWorker = 16, 400
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(s string) {
		mu.Lock()
		failures = append(failures, s)
		mu.Unlock()
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWorker {
				cid := fmt.Sprintf("w%d-%d", w, i)
				ev := headersEvent(cid)
				var ctx context.Context
				var cancel context.CancelFunc
				switch r.IntN(4) {
				case 0:
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(r.IntN(30))*time.Microsecond)
				case 1:
					ctx, cancel = context.WithCancel(context.Background())
					d := time.Duration(r.IntN(20)) * time.Microsecond
					go func() {
						time.Sleep(d)
						cancel()
					}()
				case 2:
					ctx, cancel = context.WithCancel(context.Background())
					d := time.Duration(r.IntN(20)) * time.Microsecond
					go func() {
						time.Sleep(d)
						_ = c.Cancel(cid, agentwire.CancelManual)
					}()
				default:
					ctx, cancel = context.WithCancel(context.Background())
				}
				resp, err := c.RequestHeaders(ctx, ev)
				cancel()
				switch {
				case err == nil:
					if resp.CorrelationID != cid {
						fail("reply for " + resp.CorrelationID + " delivered to " + cid)
					}
				case errors.Is(err, ErrTimeout), errors.Is(err, ErrCanceled):
				default:
					fail(cid + ": unexpected error " + err.Error())
				}
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
	st := c.Stats()
	if st.InFlight != 0 {
		t.Fatalf("in flight after the storm: %+v", st)
	}
	if st.Received+st.Timeouts+st.Canceled < workers*perWorker {
		t.Fatalf("calls unaccounted for: %+v", st)
	}
	// Phase two: the pools are healthy, every reply reaches its caller.
	var wg2 sync.WaitGroup
	for w := range workers {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := range 200 {
				cid := fmt.Sprintf("clean-%d-%d", w, i)
				r, err := c.RequestHeaders(context.Background(), headersEvent(cid))
				if err != nil || r.CorrelationID != cid {
					fail(fmt.Sprintf("clean phase %s: %v %v", cid, err, r))
					return
				}
			}
		}()
	}
	wg2.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first: %s", len(failures), failures[0])
	}
}

// TestCapacityWaitNoLostWakeup runs many FlowWait callers against an
// in-flight cap of 2: every call must get through (a lost wake-up would
// leave callers waiting until their deadline).
func TestCapacityWaitNoLostWakeup(t *testing.T) {
	c := memConn(t, WithFlowControl(FlowWait))
	s := c.sess.Load()
	s.onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](2)})
	const workers, perWorker = 16, 300
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				if _, err := c.RequestHeaders(ctx, headersEvent(fmt.Sprintf("cap-%d-%d", w, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Received != workers*perWorker || st.FlowRejected != 0 {
		t.Fatalf("stats: %+v", st)
	}
}
