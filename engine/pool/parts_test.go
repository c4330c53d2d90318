package pool

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// limiter

// 32 goroutines through a limit of 3: never more than 3 hold a slot, and
// nobody sleeps through a free slot (every goroutine finishes without a
// deadline).
func TestLimiterBoundsAndNoLostWakeup(t *testing.T) {
	l := newLimiter(3)
	ctx := testCtx(t) // a lost wake-up fails the test instead of hanging it
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				if err := l.acquire(ctx); err != nil {
					t.Error(err)
					return
				}
				n := held.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				runtime.Gosched() // hold the slot a while
				held.Add(-1)
				l.release()
			}
		}()
	}
	wg.Wait()
	if peak.Load() > 3 || l.inUse() != 0 {
		t.Fatalf("peak %d, in use %d", peak.Load(), l.inUse())
	}
	if l.waits.Load() == 0 {
		t.Fatal("no acquisition waited: the test exercised nothing")
	}
}

func TestLimiterWaitBoundedByContext(t *testing.T) {
	l := newLimiter(1)
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := l.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire on a full limiter: %v", err)
	}
	l.release()
	if err := l.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// affinity

func TestAffinityPinLookupUnpin(t *testing.T) {
	a := newAffinity(maphash.MakeSeed(), 64, 1000)
	h := a.hash("req-1")
	if _, ok := a.lookup(h, 0); ok {
		t.Fatal("lookup before any pin")
	}
	if !a.pin(h, 7, 0) {
		t.Fatal("pin refused")
	}
	if id, ok := a.lookup(h, 10); !ok || id != 7 {
		t.Fatalf("lookup = %d, %v", id, ok)
	}
	a.pin(h, 9, 20) // re-pinned in place
	if id, _ := a.lookup(h, 30); id != 9 || a.live(30) != 1 {
		t.Fatalf("re-pin: id %d, pins %d", id, a.live(30))
	}
	a.unpin(h)
	if _, ok := a.lookup(h, 40); ok || a.live(40) != 0 {
		t.Fatalf("lookup after unpin: %v, pins %d", ok, a.live(40))
	}
}

// A pin expires after its time to live without use; each use refreshes it.
func TestAffinityExpiry(t *testing.T) {
	a := newAffinity(maphash.MakeSeed(), 64, 1000)
	h := a.hash("req-1")
	a.pin(h, 1, 0)
	if _, ok := a.lookup(h, 800); !ok { // refreshes (a quarter of the ttl passed)
		t.Fatal("expired early")
	}
	if _, ok := a.lookup(h, 1700); !ok {
		t.Fatal("a use did not refresh the pin")
	}
	if _, ok := a.lookup(h, 2701); ok {
		t.Fatal("the pin outlived its ttl")
	}
	if a.expired.Load() != 1 {
		t.Fatalf("expired %d", a.expired.Load())
	}
}

// The table is bounded: when every slot of an id's window holds a live
// pin, the pin is refused (counted); an unpinned or expired slot is
// reused.
func TestAffinityBounded(t *testing.T) {
	a := newAffinity(maphash.MakeSeed(), 8, 1000) // 16 slots
	size := uint64(a.size)
	key := func(i int) uint64 { return 1 + uint64(i)*size } // all in one window
	for i := range affinityWindow {
		if !a.pin(key(i), uint32(i+1), 0) {
			t.Fatalf("pin %d refused", i)
		}
	}
	if a.pin(key(affinityWindow), 99, 0) || a.rejected.Load() != 1 {
		t.Fatal("a pin beyond the window was accepted")
	}
	a.unpin(key(3))
	if !a.pin(key(affinityWindow), 99, 0) {
		t.Fatal("a freed slot was not reused")
	}
	if !a.pin(key(affinityWindow+1), 100, 1001) { // every other pin expired
		t.Fatal("an expired slot was not reused")
	}
	for i := range affinityWindow {
		if id, ok := a.lookup(key(i), 0); ok && id != uint32(i+1) {
			t.Fatalf("key %d maps to %d", i, id)
		}
	}
}

// Goroutines pin, look up and unpin their own ids concurrently: a lookup
// never returns another id's member.
func TestAffinityConcurrent(t *testing.T) {
	a := newAffinity(maphash.MakeSeed(), 64, 60_000)
	var wg sync.WaitGroup
	var misses atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				cid := fmt.Sprintf("g%d-%d", g, i)
				h := a.hash(cid)
				id := uint32(g*100000 + i%100000 + 1)
				if !a.pin(h, id, 0) {
					misses.Add(1)
					continue
				}
				for range 3 {
					got, ok := a.lookup(h, 1)
					if !ok {
						t.Errorf("%s: pin lost", cid)
						return
					}
					if got != id {
						t.Errorf("%s: lookup %d, want %d", cid, got, id)
						return
					}
				}
				a.unpin(h)
			}
		}()
	}
	wg.Wait()
	if n := a.live(0); n != 0 {
		t.Fatalf("%d pins left", n)
	}
	t.Logf("refused pins: %d", misses.Load())
}

// ---------------------------------------------------------------------------
// balancing

// members returns an agent with n fake members, all up, for pick tests.
func pickAgent(t *testing.T, b Balance, weights ...int) (*Agent, *memberSet) {
	t.Helper()
	p := newTestPool(t)
	a, err := p.AddAgent("lb", WithBalance(b))
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range weights {
		if _, err := a.addMember(newFake(fmt.Sprint(i)), SourceAdded, fmt.Sprint(i), w, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	return a, a.set.Load()
}

func counts(a *Agent, s *memberSet, n int) map[*member]int {
	c := map[*member]int{}
	for range n {
		var tr tried
		c[a.pick(s, &tr)]++
	}
	return c
}

// Every strategy spreads calls evenly over equal connections (ties are
// broken at random, not by position).
func TestBalanceFair(t *testing.T) {
	for _, b := range []Balance{BalanceP2C, BalanceRoundRobin, BalanceLeastInFlight, BalanceRandom, BalanceWeighted} {
		t.Run(b.String(), func(t *testing.T) {
			a, s := pickAgent(t, b, 1, 1, 1, 1)
			const n = 40000
			c := counts(a, s, n)
			for _, m := range s.list {
				if got := float64(c[m]); math.Abs(got-n/4) > 0.06*n/4 {
					t.Errorf("member %d picked %v times of %d, want about %d", m.id, got, n, n/4)
				}
			}
		})
	}
}

// Unusable connections are never picked, and their share goes evenly to
// the others (not all to the next in line).
func TestBalanceSkipsUnusable(t *testing.T) {
	for _, b := range []Balance{BalanceP2C, BalanceRoundRobin, BalanceLeastInFlight, BalanceRandom, BalanceWeighted} {
		t.Run(b.String(), func(t *testing.T) {
			a, s := pickAgent(t, b, 1, 1, 1, 1)
			s.list[1].setState(ConnDown)
			s.list[2].setState(ConnPaused)
			const n = 20000
			c := counts(a, s, n)
			if c[s.list[1]] != 0 || c[s.list[2]] != 0 || c[nil] != 0 {
				t.Fatalf("picked an unusable member: %v", c)
			}
			if d := c[s.list[0]] - c[s.list[3]]; math.Abs(float64(d)) > 0.06*n/2 {
				t.Errorf("uneven: %d vs %d", c[s.list[0]], c[s.list[3]])
			}
			for _, m := range s.list {
				m.setState(ConnUnhealthy)
			}
			var tr tried
			if m := a.pick(s, &tr); m != nil {
				t.Fatal("picked a member when none is usable")
			}
		})
	}
}

// Weighted: calls in proportion to the weights, interleaved.
func TestBalanceWeighted(t *testing.T) {
	a, s := pickAgent(t, BalanceWeighted, 5, 1, 1)
	if got := fmt.Sprint(s.wrr); got != "[0 0 1 0 2 0 0]" {
		t.Fatalf("schedule %s, want the smooth interleaving [0 0 1 0 2 0 0]", got)
	}
	c := counts(a, s, 7000)
	if c[s.list[0]] != 5000 || c[s.list[1]] != 1000 || c[s.list[2]] != 1000 {
		t.Fatalf("weighted counts %d %d %d", c[s.list[0]], c[s.list[1]], c[s.list[2]])
	}
}

// Least in flight and power of two choices prefer the less loaded
// connection; p2c also weighs latency.
func TestBalanceLoadAware(t *testing.T) {
	for _, b := range []Balance{BalanceP2C, BalanceLeastInFlight} {
		a, s := pickAgent(t, b, 1, 1)
		s.list[0].ctr.inFlight.Store(10)
		c := counts(a, s, 1000)
		if c[s.list[1]] != 1000 {
			t.Fatalf("%v: busy member picked %d times", b, c[s.list[0]])
		}
	}
	a, s := pickAgent(t, BalanceP2C, 1, 1)
	s.list[0].ewma.Store(int64(time.Millisecond))
	s.list[1].ewma.Store(int64(20 * time.Millisecond))
	s.list[0].ctr.inFlight.Store(3) // 4 x 1 ms < 1 x 20 ms
	if c := counts(a, s, 1000); c[s.list[0]] != 1000 {
		t.Fatalf("p2c ignored latency: %v", c)
	}
}
