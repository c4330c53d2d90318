package pool

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// The whole agent killed under concurrent load (both of its connections
// lost): the breaker opens (each call that finds no connection connected
// is a failure), calls get the failure policy without reaching a
// connection; the agent restarted: its connections come back and the
// breaker, whose open period is a minute, half-opens at once and closes
// after two successful probes, so that calls go through again within a
// few health-check intervals.
func TestFaultAgentDownOpensBreakerUntilBack(t *testing.T) {
	h := newGateAgent()
	ua := startUDSAgent(t, h)
	p := newTestPool(t, WithHealthCheckInterval(5*time.Millisecond))
	a, err := p.AddAgent("waf", WithEndpoint(ua.Endpoint(), 2, fastReconnect), WithTimeout(5*time.Second),
		WithBreaker(BreakerConfig{OpenDuration: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := a.WaitReady(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Load: 8 callers until stopped.
	var (
		stop                  = make(chan struct{})
		wg                    sync.WaitGroup
		allowed, synth, other atomic.Int64
		n                     atomic.Int64
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := a.RequestHeaders(ctx, rhEvent(fmt.Sprint("load-", n.Add(1))), new(agentwire.AgentResponse))
				switch {
				case !v.Synthetic && v.Allowed():
					allowed.Add(1)
				case v.Synthetic && v.Decision.Status == 503:
					synth.Add(1)
				default:
					other.Add(1)
					t.Errorf("verdict %+v", v)
				}
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	waitFor(t, "calls to go through", func() bool { return allowed.Load() >= 100 })
	if a.Breaker() != BreakerClosed {
		t.Fatalf("breaker %v under a healthy load", a.Breaker())
	}
	ua.Stop()
	waitFor(t, "the breaker to open with the agent down", func() bool { return a.Breaker() == BreakerOpen })
	calls := h.calls.Load()
	waitFor(t, "calls refused by the open breaker", func() bool { return a.Stats().Errors.BreakerOpen >= 100 })
	if st := a.Stats(); st.Breaker != BreakerOpen || st.BreakerOpens != 1 || st.ConnsUp != 0 || h.calls.Load() != calls {
		t.Fatalf("agent down: breaker %v, %d opens, %d conns up, %d calls reached the agent", st.Breaker, st.BreakerOpens, st.ConnsUp, h.calls.Load()-calls)
	}
	ua.Start()
	restarted := time.Now()
	before := allowed.Load()
	// waitFor gives up after 10 s, well within the minute of open period.
	waitFor(t, "calls to go through after the restart", func() bool { return a.Breaker() == BreakerClosed && allowed.Load() >= before+100 })
	close(stop)
	wg.Wait()
	if err := a.WaitReady(ctx, 2); err != nil { // the second connection may come back later
		t.Fatal(err)
	}
	st := a.Stats()
	if st.BreakerOpens != 1 || st.ConnsUp != 2 || other.Load() != 0 {
		t.Fatalf("after the restart: %d opens, %d conns up, %d unexpected verdicts", st.BreakerOpens, st.ConnsUp, other.Load())
	}
	t.Logf("%d allowed, %d synthetic 503, back %v after the restart; failures %v", allowed.Load(), synth.Load(), time.Since(restarted), st.Failures)
}
