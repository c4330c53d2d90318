package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// Many calls without a context deadline, all past the default request
// timeout at once: the session's expirer times out every one (never
// early), sends each its timeout cancel and books them as timeouts.
func TestExpirerTimesOutEveryCall(t *testing.T) {
	const n = 50
	const timeout = 60 * time.Millisecond
	a := blockingAgent()
	srv := startAgent(t, a)
	c := dial(t, srv.addr, WithRequestTimeout(timeout))
	var wg sync.WaitGroup
	errs := make([]error, n)
	took := make([]time.Duration, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, errs[i] = c.RequestHeaders(context.Background(), headersEvent(fmt.Sprintf("exp-%d", i)))
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: error %v", i, err)
		}
		if took[i] < timeout || took[i] > 2*time.Second {
			t.Fatalf("call %d timed out after %v (timeout %v)", i, took[i], timeout)
		}
	}
	a.waitFor(t, "every timeout cancel", func() bool {
		for i := range n {
			if cn, ok := a.cancelFor(fmt.Sprintf("exp-%d", i)); !ok || cn.Reason != agentwire.CancelTimeout {
				return false
			}
		}
		return true
	})
	if st := c.Stats(); st.Timeouts != n || st.InFlight != 0 || st.CancelsSent != n {
		t.Fatalf("stats: %+v", st)
	}
}

// A call answered in time is untouched by the expirer, and its pending
// entry (recycled for the next call under the same id) is not timed out
// by a sweep that saw the old one.
func TestExpirerLeavesAnsweredCalls(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	c := dial(t, srv.addr, WithRequestTimeout(250*time.Millisecond))
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		if _, err := c.RequestHeaders(context.Background(), headersEvent("same-id")); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if st := c.Stats(); st.Timeouts != 0 || st.CancelsSent != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestExpiryTick(t *testing.T) {
	for _, c := range []struct{ d, want time.Duration }{
		{30 * time.Second, 30 * time.Second / 32},
		{64 * time.Millisecond, 2 * time.Millisecond},
		{10 * time.Millisecond, time.Millisecond},
	} {
		if got := expiryTick(c.d); got != c.want {
			t.Errorf("expiryTick(%v) = %v, want %v", c.d, got, c.want)
		}
	}
}
