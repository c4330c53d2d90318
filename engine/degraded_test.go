package engine

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// TestDegradedStretchIsClamped: whatever multiplier a DEGRADED agent
// reports (+Inf, the float32 maximum, 1e12), the stretched request
// timeout stops at the ceiling: WithMaxStretchedTimeout, by default
// MaxStretchFactor times the request timeout. It used to reach some 146
// years, so a call without a context deadline to a stuck agent outlived
// any report. A modest multiplier below the ceiling applies as is.
func TestDegradedStretchIsClamped(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
		want time.Duration
	}{
		{"default", nil, MaxStretchFactor * DefaultRequestTimeout},
		{"option", []Option{WithMaxStretchedTimeout(45 * time.Second)}, 45 * time.Second},
		{"option below the request timeout's use", []Option{WithRequestTimeout(time.Second), WithMaxStretchedTimeout(time.Second)}, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := memConn(t, tc.opts...)
			s := c.sess.Load()
			rt := c.opts.requestTimeout
			for _, m := range []float32{float32(math.Inf(1)), math.MaxFloat32, 1e12} {
				s.onHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: m})
				if d := s.stretch(rt); d != tc.want {
					t.Errorf("multiplier %v: stretched to %v, want the ceiling %v", m, d, tc.want)
				}
				ctx, cancel := c.ensureDeadline(context.Background(), s)
				dl, _ := ctx.Deadline()
				cancel()
				if left := time.Until(dl); left > tc.want || left < tc.want-time.Second {
					t.Errorf("multiplier %v: context deadline %v away, want %v", m, left, tc.want)
				}
			}
			s.onHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: 1.5})
			if d, want := s.stretch(rt), min(tc.want, rt*3/2); d != want {
				t.Errorf("multiplier 1.5: stretched to %v, want %v", d, want)
			}
		})
	}
}

// TestDegradedStretchedCallEndsAtTheCeiling: a call without a context
// deadline to an agent that never answers (the writer is held), made
// while the agent reports DEGRADED with an infinite multiplier, times out
// at the ceiling (200 ms here), not in 146 years.
func TestDegradedStretchedCallEndsAtTheCeiling(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	c := memConnWith(t, memDialer{gate: gate}, WithRequestTimeout(50*time.Millisecond), WithMaxStretchedTimeout(200*time.Millisecond))
	c.sess.Load().onHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: float32(math.Inf(1))})
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(context.Background(), headersEvent("stretched"))
		done <- err
	}()
	select {
	case err := <-done:
		mustKind(t, err, ErrTimeout)
	case <-time.After(5 * time.Second):
		t.Fatal("the stretched call outlived its ceiling")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("the stretched call ended after %v, before its ceiling", d)
	}
}

// TestDegradedReportExpiry: a call made while a DEGRADED report is in
// force keeps its stretched deadline after the report's valid_until has
// passed; a call made after it gets the plain request timeout.
func TestDegradedReportExpiry(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	const rt = 60 * time.Millisecond
	c := memConnWith(t, memDialer{gate: gate}, WithRequestTimeout(rt))
	s := c.sess.Load()
	validFor := 120 * time.Millisecond
	s.onHealth(agentwire.HealthStatus{State: agentwire.HealthDegraded, TimeoutMultiplier: 3,
		ValidUntilMS: agentwire.Some(uint64(time.Now().Add(validFor).UnixMilli()))})
	if d := s.stretch(rt); d != 3*rt {
		t.Fatalf("stretch while in force: %v, want %v", d, 3*rt)
	}
	call := func(cid string) (time.Duration, error) {
		start := time.Now()
		_, err := c.RequestHeaders(context.Background(), headersEvent(cid))
		return time.Since(start), err
	}
	type result struct {
		d   time.Duration
		err error
	}
	early := make(chan result, 1)
	go func() {
		d, err := call("during")
		early <- result{d, err}
	}()
	waitUntil(t, "the report to expire", nil, func() bool { return c.Health().Expired })
	if d := s.stretch(rt); d != rt {
		t.Fatalf("stretch after expiry: %v, want the plain %v", d, rt)
	}
	late, err := call("after")
	mustKind(t, err, ErrTimeout)
	if late >= 3*rt {
		t.Fatalf("a call after expiry took %v: still stretched", late)
	}
	r := <-early
	mustKind(t, r.err, ErrTimeout)
	if r.d < 3*rt {
		t.Fatalf("the call made while degraded timed out after %v, before its stretched %v", r.d, 3*rt)
	}
}

// TestMaxStretchedTimeoutValidation: the ceiling may not be shorter than
// the request timeout (it would shorten it) nor longer than a deadline
// can be; 0 selects the default.
func TestMaxStretchedTimeoutValidation(t *testing.T) {
	for _, tc := range []struct {
		rt, max time.Duration
		ok      bool
	}{
		{time.Second, 0, true}, {time.Second, time.Second, true}, {time.Second, time.Hour, true},
		{time.Second, time.Second - 1, false}, {time.Second, -time.Second, false},
		{time.Second, maxStretchedTimeout, true}, {time.Second, maxStretchedTimeout + 1, false},
	} {
		o := defaultOptions()
		WithRequestTimeout(tc.rt).apply(&o)
		WithMaxStretchedTimeout(tc.max).apply(&o)
		if err := o.validate(); (err == nil) != tc.ok {
			t.Errorf("request timeout %v, ceiling %v: validate() = %v", tc.rt, tc.max, err)
		}
	}
}
