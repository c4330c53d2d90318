package pool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

// fakeClockBreaker returns a breaker with the given config on a clock the
// test advances (ms).
func fakeClockBreaker(cfg BreakerConfig, lease time.Duration) (*breaker, *atomic.Int64) {
	b := newBreaker(cfg, lease)
	clk := new(atomic.Int64)
	b.now = clk.Load
	return b, clk
}

func mustAllow(t *testing.T, b *breaker, want bool) probeToken {
	t.Helper()
	tok, ok := b.allow()
	if ok != want {
		t.Fatalf("allow = %v, want %v (state %v)", ok, want, b.State())
	}
	return tok
}

// The reference defaults: 5 consecutive failures open it, 30 s open, then
// one probe at a time, two successes close it.
func TestBreakerDefaults(t *testing.T) {
	b, clk := fakeClockBreaker(BreakerConfig{}, 31*time.Second)
	for i := range 4 {
		b.report(mustAllow(t, b, true), outcomeFailure)
		if b.State() != BreakerClosed {
			t.Fatalf("open after %d failures", i+1)
		}
	}
	// A success resets the count.
	b.report(mustAllow(t, b, true), outcomeSuccess)
	for range 4 {
		b.report(mustAllow(t, b, true), outcomeFailure)
	}
	if b.State() != BreakerClosed {
		t.Fatal("a success did not reset the failure count")
	}
	b.report(mustAllow(t, b, true), outcomeFailure)
	if b.State() != BreakerOpen {
		t.Fatalf("state %v after 5 consecutive failures", b.State())
	}
	mustAllow(t, b, false)
	clk.Store(29_999)
	mustAllow(t, b, false)
	clk.Store(30_000)
	p1 := mustAllow(t, b, true) // the first probe
	if b.State() != BreakerHalfOpen {
		t.Fatalf("state %v after the open period", b.State())
	}
	mustAllow(t, b, false) // one probe at a time
	b.report(p1, outcomeSuccess)
	if b.State() != BreakerHalfOpen {
		t.Fatal("closed after one success")
	}
	p2 := mustAllow(t, b, true)
	mustAllow(t, b, false)
	b.report(p2, outcomeSuccess)
	if b.State() != BreakerClosed {
		t.Fatalf("state %v after two successful probes", b.State())
	}
	if b.opens.Load() != 1 || b.rejected.Load() != 4 {
		t.Fatalf("opens %d rejected %d, want 1 and 4", b.opens.Load(), b.rejected.Load())
	}
}

func TestBreakerFailedProbeReopens(t *testing.T) {
	b, clk := fakeClockBreaker(BreakerConfig{FailureThreshold: 1, OpenDuration: time.Second}, time.Minute)
	b.report(mustAllow(t, b, true), outcomeFailure)
	clk.Store(1000)
	p := mustAllow(t, b, true)
	b.report(p, outcomeFailure)
	if b.State() != BreakerOpen {
		t.Fatalf("state %v after a failed probe", b.State())
	}
	clk.Store(1999)
	mustAllow(t, b, false) // a full open period again, from the failed probe
	clk.Store(2000)
	mustAllow(t, b, true)
}

// The caller's own cancellation, and calls that never reached the agent,
// never count: not in closed, and in half-open they only give the probe
// slot back.
func TestBreakerIgnoredOutcomes(t *testing.T) {
	b, clk := fakeClockBreaker(BreakerConfig{}, time.Minute)
	for range 100 {
		b.report(mustAllow(t, b, true), outcomeIgnore)
	}
	for range 4 {
		b.report(mustAllow(t, b, true), outcomeFailure)
	}
	b.report(mustAllow(t, b, true), outcomeIgnore) // does not reset the count either
	b.report(mustAllow(t, b, true), outcomeFailure)
	if b.State() != BreakerOpen {
		t.Fatalf("state %v", b.State())
	}
	clk.Store(30_000)
	p := mustAllow(t, b, true)
	mustAllow(t, b, false)
	b.report(p, outcomeIgnore)
	if b.State() != BreakerHalfOpen {
		t.Fatalf("state %v after an ignored probe", b.State())
	}
	mustAllow(t, b, true) // the slot is free again
}

// A half-open probe that never reports cannot keep the breaker half-open:
// once its lease has passed, the next call reopens it, and a full cycle
// follows. The lost probe's late report is stale and ignored.
func TestBreakerProbeLease(t *testing.T) {
	b, clk := fakeClockBreaker(BreakerConfig{FailureThreshold: 1, OpenDuration: time.Second}, 5*time.Second)
	b.report(mustAllow(t, b, true), outcomeFailure)
	clk.Store(1000)
	lost := mustAllow(t, b, true) // never reports (until much later)
	clk.Store(5999)
	mustAllow(t, b, false)
	if b.State() != BreakerHalfOpen {
		t.Fatalf("state %v within the lease", b.State())
	}
	clk.Store(6000)
	mustAllow(t, b, false) // the lease passed: reopened
	if b.State() != BreakerOpen || b.leaseLost.Load() != 1 {
		t.Fatalf("state %v, lease expiries %d", b.State(), b.leaseLost.Load())
	}
	clk.Store(7000)
	p1 := mustAllow(t, b, true)
	b.report(lost, outcomeFailure) // stale: ignored
	if b.State() != BreakerHalfOpen {
		t.Fatalf("a stale report changed the state to %v", b.State())
	}
	b.report(p1, outcomeSuccess)
	b.report(mustAllow(t, b, true), outcomeSuccess)
	if b.State() != BreakerClosed {
		t.Fatalf("state %v after two successes", b.State())
	}
}

// Reports of calls admitted before a transition are stale.
func TestBreakerStaleReports(t *testing.T) {
	b, clk := fakeClockBreaker(BreakerConfig{FailureThreshold: 2, OpenDuration: time.Second}, time.Minute)
	old := mustAllow(t, b, true)
	b.report(mustAllow(t, b, true), outcomeFailure)
	b.report(mustAllow(t, b, true), outcomeFailure)
	clk.Store(1000)
	p := mustAllow(t, b, true)
	b.report(old, outcomeSuccess) // admitted while closed: stale
	if b.State() != BreakerHalfOpen {
		t.Fatalf("state %v", b.State())
	}
	b.report(p, outcomeSuccess)
	b.report(mustAllow(t, b, true), outcomeSuccess)
	if b.State() != BreakerClosed {
		t.Fatalf("state %v", b.State())
	}
	b.report(old, outcomeFailure)
	b.report(old, outcomeFailure)
	if b.State() != BreakerClosed {
		t.Fatal("stale failures opened the breaker")
	}
}

func TestBreakerDisabled(t *testing.T) {
	b, _ := fakeClockBreaker(BreakerConfig{Disabled: true}, time.Minute)
	for range 100 {
		b.report(mustAllow(t, b, true), outcomeFailure)
	}
	if b.State() != BreakerClosed {
		t.Fatal("a disabled breaker opened")
	}
}

// TestBreakerOracle runs random sequences of calls (admissions, reports
// in any order, with outcomes success, failure and excluded, and the
// passing of the open period) through the breaker and through
// sony/gobreaker's TwoStepCircuitBreaker configured alike (5 consecutive
// failures trip it, MaxRequests 2 = 2 successes close it, excluded errors
// are not counted), and requires the same admission decisions, states
// and consecutive counts after every step.
//
// gobreaker's MaxRequests is both the half-open admission limit (over the
// whole half-open period) and the success threshold; this breaker bounds
// probes in flight (1) and successes (2) separately. The two agree while
// no second call is asked for with a probe outstanding, which the
// generator avoids. gobreaker reads the real clock: its open period is
// 60 ms, steps other than "the open period passes" run only in the first
// half of it, and a sequence in which the machine stalled past that is
// abandoned (counted; at most a few are allowed).
func TestBreakerOracle(t *testing.T) {
	const (
		sequences = 48
		steps     = 300
		openReal  = 60 * time.Millisecond
	)
	var abandoned, opens, closes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, sequences)
	for seq := range sequences {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(seq), 42))
			res, err := runOracleSequence(r, steps, openReal)
			if err != nil {
				errs <- fmt.Errorf("sequence %d: %w", seq, err)
				return
			}
			if res.abandoned {
				abandoned.Add(1)
			}
			opens.Add(int64(res.opens))
			closes.Add(int64(res.closes))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d sequences of %d steps: %d opens, %d closes from half-open, %d abandoned (clock stall)", sequences, steps, opens.Load(), closes.Load(), abandoned.Load())
	if abandoned.Load() > sequences/4 {
		t.Errorf("%d of %d sequences abandoned", abandoned.Load(), sequences)
	}
	if opens.Load() < sequences || closes.Load() < sequences/2 {
		t.Errorf("the sequences exercised too little: %d opens, %d closes", opens.Load(), closes.Load())
	}
}

var errExcluded = errors.New("excluded")
var errFailed = errors.New("failed")

type oracleResult struct {
	abandoned     bool
	opens, closes int
}

func runOracleSequence(r *rand.Rand, steps int, openReal time.Duration) (oracleResult, error) {
	var res oracleResult
	var mu sync.Mutex
	mirror := gobreaker.StateClosed
	var openedAt time.Time
	oracle := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		MaxRequests: 2,
		Timeout:     openReal,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		IsExcluded:  func(err error) bool { return errors.Is(err, errExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			mu.Lock()
			defer mu.Unlock()
			mirror = to
			if to == gobreaker.StateOpen {
				openedAt = time.Now()
			}
		},
	})
	b, clk := fakeClockBreaker(BreakerConfig{FailureThreshold: 5, OpenDuration: openReal, HalfOpenProbes: 1, SuccessThreshold: 2}, time.Hour)
	var prev BreakerState
	b.onChange = func(from, to BreakerState) {
		if to == BreakerOpen {
			res.opens++
		}
		if from == BreakerHalfOpen && to == BreakerClosed {
			res.closes++
		}
	}
	type pending struct {
		done func(error)
		tok  probeToken
	}
	var out []pending
	// The agent alternates between failing phases and healthy ones, so
	// that sequences both open and close the breaker.
	bad, good := 0.6+0.3*r.Float64(), 0.05+0.2*r.Float64()
	expired := false // the open period passed (Advance) since the last open
	state := func() (gobreaker.State, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return mirror, openedAt
	}
	for step := 0; step < steps; step++ {
		ms, opened := state()
		if ms == gobreaker.StateOpen && !expired && time.Since(opened) > openReal/2 {
			// Too close to gobreaker's own expiry: the next step must be
			// the passing of the open period.
			goto advance
		}
		switch x := r.Float64(); {
		case x < 0.15:
			if ms != gobreaker.StateOpen || expired {
				continue
			}
			goto advance
		case x < 0.6:
			w := b.w.Load()
			if bState(w) == BreakerHalfOpen && bProbes(w) > 0 {
				continue // gobreaker would admit a second probe
			}
			done, oerr := oracle.Allow()
			tok, ok := b.allow()
			if ok != (oerr == nil) {
				return res, fmt.Errorf("step %d: allow: ours %v, gobreaker %v (state %v)", step, ok, oerr, prev)
			}
			if ok {
				out = append(out, pending{done, tok})
			}
		default:
			if len(out) == 0 {
				continue
			}
			i := r.IntN(len(out))
			p := out[i]
			out = append(out[:i], out[i+1:]...)
			var err error
			o := outcomeSuccess
			rate := good
			if step/40%2 == 0 {
				rate = bad
			}
			switch y := r.Float64(); {
			case y < 0.1:
				err, o = errExcluded, outcomeIgnore
			case y < 0.1+0.9*rate:
				err, o = errFailed, outcomeFailure
			}
			p.done(err)
			b.report(p.tok, o)
		}
		goto check
	advance:
		if ms, opened := state(); ms == gobreaker.StateOpen {
			time.Sleep(time.Until(opened.Add(openReal + 15*time.Millisecond)))
		}
		clk.Add(openReal.Milliseconds() + 15)
		expired = true
	check:
		ms, opened = state()
		if ms == gobreaker.StateOpen && !expired && time.Since(opened) >= openReal {
			res.abandoned = true
			return res, nil
		}
		w := b.w.Load()
		ours := bState(w)
		if ours == BreakerOpen && b.passed(w, clk.Load()) {
			ours = BreakerHalfOpen // moves on the next call, as gobreaker's
		}
		want := map[gobreaker.State]BreakerState{gobreaker.StateClosed: BreakerClosed, gobreaker.StateOpen: BreakerOpen, gobreaker.StateHalfOpen: BreakerHalfOpen}[ms]
		if ms == gobreaker.StateOpen && expired {
			want = BreakerHalfOpen
		}
		if ours != want {
			return res, fmt.Errorf("step %d: state ours %v, gobreaker %v (expired %v)", step, ours, want, expired)
		}
		if ms != gobreaker.StateOpen {
			expired = false
		}
		c := oracle.Counts()
		switch bState(w) {
		case BreakerClosed:
			if uint64(c.ConsecutiveFailures) != bCount(w) {
				return res, fmt.Errorf("step %d: consecutive failures ours %d, gobreaker %d", step, bCount(w), c.ConsecutiveFailures)
			}
		case BreakerHalfOpen:
			if uint64(c.ConsecutiveSuccesses) != bCount(w) {
				return res, fmt.Errorf("step %d: consecutive successes ours %d, gobreaker %d", step, bCount(w), c.ConsecutiveSuccesses)
			}
		}
		prev = ours
	}
	return res, nil
}

// Many goroutines through one breaker: probes in flight never exceed the
// limit, reports of any age never corrupt the word, and once the agent
// only succeeds the breaker closes.
func TestBreakerConcurrent(t *testing.T) {
	b, clk := fakeClockBreaker(BreakerConfig{FailureThreshold: 3, OpenDuration: 10 * time.Millisecond, HalfOpenProbes: 2, SuccessThreshold: 3}, 50*time.Millisecond)
	var healthy atomic.Bool
	var maxProbes atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, ok := b.allow()
				if w := b.w.Load(); bState(w) == BreakerHalfOpen {
					p := bProbes(w)
					for {
						cur := maxProbes.Load()
						if p <= cur || maxProbes.CompareAndSwap(cur, p) {
							break
						}
					}
				}
				if !ok {
					clk.Add(1)
					continue
				}
				o := outcomeSuccess
				if !healthy.Load() {
					o = outcome(r.IntN(3))
				}
				if r.IntN(50) == 0 && !healthy.Load() {
					continue // a lost call: its probe slot waits for the lease
				}
				b.report(tok, o)
			}
		}()
	}
	waitFor(t, "the breaker to open under failures", func() bool { return b.opens.Load() >= 5 })
	healthy.Store(true)
	waitFor(t, "the breaker to close once calls succeed", func() bool { return b.State() == BreakerClosed && b.opens.Load() >= 5 })
	close(stop)
	wg.Wait()
	if maxProbes.Load() > 2 {
		t.Fatalf("%d probes in flight, limit 2", maxProbes.Load())
	}
	w := b.w.Load()
	if bState(w) > BreakerHalfOpen || bProbes(w) > 2 || bCount(w) > 3 {
		t.Fatalf("corrupt breaker word %#x", w)
	}
}
