package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// TestSaturatedSlowAgentLosesNoCall: an agent that handles one event per
// 50 ms and announces max_concurrency 2 gets 150 concurrent callers whose
// deadlines all leave room for the queue. The Conn keeps at most two
// requests at the agent and the rest wait for a slot, so the agent never
// has to stop reading and the write timeout (short here: 300 ms) never
// takes the busy agent for a stuck one: every call is answered, nothing is
// lost. Before admission honoured max_concurrency, all 150 events (4 KiB
// each) went out at once, filled the socket while the agent worked, and
// the blocked write killed the session (ErrConnectionLost). Over gRPC the
// small HTTP/2 window fills the same way.
func TestSaturatedSlowAgentLosesNoCall(t *testing.T) {
	for _, transport := range []string{"uds", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			const (
				limit   = 2
				callers = 150
				perCall = 50 * time.Millisecond
			)
			var busy, maxBusy atomic.Int32
			a := newTestAgent()
			a.reqHeaders = func(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
				n := busy.Add(1)
				for m := maxBusy.Load(); n > m && !maxBusy.CompareAndSwap(m, n); m = maxBusy.Load() {
				}
				time.Sleep(perCall)
				busy.Add(-1)
				return nil
			}
			opts := []Option{WithWriteTimeout(300 * time.Millisecond), WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond)}
			var c *Conn
			if transport == "uds" {
				srv := startUDSAgent(t, a, agent.WithMaxConcurrency(limit))
				c = dialUDS(t, srv.path, opts...)
			} else {
				srv := startAgent(t, a, agent.WithMaxConcurrency(limit), agent.WithGRPCWindow(64<<10))
				c = dial(t, srv.addr, append(opts, WithGRPCWindow(64<<10))...)
			}
			if got := c.Capabilities().Limits.MaxConcurrency; got != limit {
				t.Fatalf("agent announced max_concurrency %d, want %d", got, limit)
			}
			big := strings.Repeat("x", 4<<10)
			// Every deadline fits the whole queue (75 rounds of 50 ms)
			// with a wide margin for a slow machine.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			var answered, timedOut atomic.Int32
			errs := make(chan error, callers)
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ev := headersEvent(fmt.Sprint("sat-", i))
					ev.Headers = append(ev.Headers, agentwire.Header{Name: "x-big", Values: []string{big}})
					_, err := c.RequestHeaders(ctx, ev)
					switch {
					case err == nil:
						answered.Add(1)
					case errors.Is(err, ErrTimeout):
						timedOut.Add(1) // by its own deadline: allowed
					default:
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			if len(errs) > 0 {
				t.Errorf("%d calls failed, the first with %v", len(errs), <-errs)
			}
			st := c.Stats()
			if st.ConnectionLost != 0 || st.Reconnects != 0 {
				t.Fatalf("busy agent taken for a dead one: %+v", st)
			}
			if answered.Load() != callers {
				t.Fatalf("%d of %d calls answered (%d timed out)", answered.Load(), callers, timedOut.Load())
			}
			if st.SaturationWaits == 0 || st.SaturationRejected != 0 || st.InFlight != 0 {
				t.Fatalf("saturation counters: %+v", st)
			}
			if m := maxBusy.Load(); m > limit {
				t.Fatalf("%d events handled at once, limit %d", m, limit)
			}
		})
	}
}

// TestSaturationLimitsInFlight: with the agent's max_concurrency (2) in
// flight, further callers wait (FlowWait, the default) and are admitted
// one per finished call, in order; with WithSaturation(FlowFailFast) they
// fail at once with ErrSaturated. The writer is held so that admitted
// calls stay in flight.
func TestSaturationLimitsInFlight(t *testing.T) {
	for _, mode := range []FlowMode{FlowWait, FlowFailFast} {
		t.Run(fmt.Sprint("mode", mode), func(t *testing.T) {
			gate := make(chan struct{})
			c := memConnWith(t, memDialer{gate: gate, maxConcurrency: 2}, WithSaturation(mode))
			var opened bool
			defer func() {
				if !opened {
					close(gate)
				}
			}()
			results := make(chan error, 5)
			for i := range 5 {
				go func() {
					_, err := c.RequestHeaders(testCtx(t), headersEvent(fmt.Sprint("lim-", i)))
					results <- err
				}()
			}
			if mode == FlowFailFast {
				for range 3 {
					select {
					case err := <-results:
						mustKind(t, err, ErrSaturated)
					case <-time.After(5 * time.Second):
						t.Fatal("a call beyond the limit did not fail fast")
					}
				}
				if st := c.Stats(); st.InFlight != 2 || st.SaturationRejected != 3 || st.SaturationWaits != 0 || st.Errors != 3 {
					t.Fatalf("stats: %+v", st)
				}
			} else {
				waitUntil(t, "three callers waiting", nil, func() bool { return c.sess.Load().aq.nslots.Load() == 3 })
				if st := c.Stats(); st.InFlight != 2 || st.SaturationWaits != 3 {
					t.Fatalf("stats: %+v", st)
				}
			}
			opened = true
			close(gate)
			n := 2
			if mode == FlowWait {
				n = 5
			}
			for range n {
				mustNoErrWithin(t, results, 5*time.Second, "an admitted call")
			}
			if st := c.Stats(); st.InFlight != 0 || st.Received != uint64(n) {
				t.Fatalf("stats: %+v", st)
			}
		})
	}
}

// TestSaturationWaitTimesOut: a call whose deadline passes while it waits
// for a slot fails with ErrTimeout (also context.DeadlineExceeded, and
// ErrSaturated says why) and counts as a timeout, not an error; without a
// context deadline the request timeout bounds the wait the same way.
func TestSaturationWaitTimesOut(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	c := memConnWith(t, memDialer{gate: gate, maxConcurrency: 1}, WithRequestTimeout(80*time.Millisecond))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.RequestHeaders(ctx, headersEvent("holder"))
	}()
	waitUntil(t, "the slot taken", nil, func() bool { return c.Stats().InFlight == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.RequestHeaders(ctx, headersEvent("ctx-deadline"))
	mustKind(t, err, ErrTimeout)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrSaturated) {
		t.Fatalf("error %v: want DeadlineExceeded and ErrSaturated in the chain", err)
	}
	start := time.Now()
	_, err = c.RequestHeaders(context.Background(), headersEvent("request-timeout"))
	mustKind(t, err, ErrTimeout)
	if d := time.Since(start); d < 80*time.Millisecond || d > 3*time.Second {
		t.Fatalf("request-timeout wait ended after %v", d)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel2)
	_, err = c.RequestHeaders(ctx2, headersEvent("canceled"))
	mustKind(t, err, ErrCanceled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v: want context.Canceled in the chain", err)
	}
	st := c.Stats()
	if st.Timeouts != 2 || st.Canceled != 1 || st.Errors != 0 || st.SaturationWaits != 3 || st.SaturationRejected != 3 || st.InFlight != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if n := c.sess.Load().aq.nslots.Load(); n != 0 {
		t.Fatalf("%d waiters left queued", n)
	}
}

// TestAdmissionWaitTimeoutsCountAsTimeouts: whatever held a call back
// before it was admitted — a paused connection (FlowWait) or a Conn
// reconnecting (fail-fast off) — a call whose deadline passes meanwhile
// is a timeout in Stats, not an error.
func TestAdmissionWaitTimeoutsCountAsTimeouts(t *testing.T) {
	t.Run("paused", func(t *testing.T) {
		c := memConn(t, WithFlowControl(FlowWait))
		c.sess.Load().onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowPause})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err := c.RequestHeaders(ctx, headersEvent("paused"))
		mustKind(t, err, ErrTimeout)
		mustKind(t, err, ErrFlowPaused)
		if st := c.Stats(); st.Timeouts != 1 || st.Errors != 0 || st.FlowRejected != 1 {
			t.Fatalf("stats: %+v", st)
		}
	})
	t.Run("capacity", func(t *testing.T) {
		c := memConn(t, WithFlowControl(FlowWait))
		c.sess.Load().onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](0)})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err := c.RequestHeaders(ctx, headersEvent("capped"))
		mustKind(t, err, ErrTimeout)
		mustKind(t, err, ErrFlowPaused)
		if st := c.Stats(); st.Timeouts != 1 || st.Errors != 0 || st.FlowRejected != 1 || st.SaturationWaits != 0 {
			t.Fatalf("stats: %+v", st)
		}
	})
	t.Run("reconnecting", func(t *testing.T) {
		c := memConnWith(t, memDialer{}, WithFailFastWhileReconnecting(false), WithReconnectBackoff(time.Hour, time.Hour))
		c.sess.Load().t.close()
		waitUntil(t, "the session lost", nil, func() bool { return !c.Health().Connected })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err := c.RequestHeaders(ctx, headersEvent("no-session"))
		mustKind(t, err, ErrTimeout)
		if st := c.Stats(); st.Timeouts != 1 || st.Errors != 0 {
			t.Fatalf("stats: %+v", st)
		}
	})
}

// TestSaturationNoLostWakeups: many callers with random deadlines contend
// for two slots; some give up while waiting, some just as their slot is
// handed over (that slot must go on to the next waiter). Callers with a
// long deadline must all be answered quickly: a lost wake-up would leave
// one waiting for its deadline while slots are free.
func TestSaturationNoLostWakeups(t *testing.T) {
	c := memConnWith(t, memDialer{maxConcurrency: 2})
	const workers, rounds = 24, 150
	var wg sync.WaitGroup
	var unexpected atomic.Value
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := headersEvent(fmt.Sprint("nl-", g))
			var dst agentwire.AgentResponse
			for i := range rounds {
				d := 10 * time.Second
				if (g+i)%3 == 0 {
					d = time.Duration(rand.IntN(200)) * time.Microsecond
				}
				ctx, cancel := context.WithTimeout(context.Background(), d)
				err := c.RequestHeadersInto(ctx, ev, &dst)
				cancel()
				if err != nil && (d == 10*time.Second || !errors.Is(err, ErrTimeout)) {
					unexpected.Store(err)
				}
			}
		}()
	}
	within(t, 20*time.Second, "every caller", wg.Wait)
	if err, _ := unexpected.Load().(error); err != nil {
		t.Fatal(err)
	}
	s := c.sess.Load()
	if st := c.Stats(); st.InFlight != 0 || s.aq.nslots.Load() != 0 || st.Errors != 0 {
		t.Fatalf("after the run: %+v, %d queued", st, s.aq.nslots.Load())
	}
}
