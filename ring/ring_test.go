package ring

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestNewCapacityRounding(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{-5, 2}, {0, 2}, {1, 2}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {1000, 1024}, {1024, 1024}, {1025, 2048},
	} {
		if got := New[int](tc.in).Cap(); got != tc.want {
			t.Errorf("New(%d).Cap() = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestNewTooLargePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(1<<30+1) did not panic")
		}
	}()
	New[struct{}](maxCapacity + 1)
}

func TestFIFOAndFull(t *testing.T) {
	r := New[int](4)
	for i := range 4 {
		if err := r.TryEnqueue(i); err != nil {
			t.Fatalf("TryEnqueue(%d) = %v", i, err)
		}
	}
	if err := r.TryEnqueue(99); !errors.Is(err, ErrFull) {
		t.Fatalf("TryEnqueue on full ring = %v, want ErrFull", err)
	}
	if got := r.Len(); got != 4 {
		t.Fatalf("Len = %d, want 4", got)
	}
	dst := make([]int, 3)
	if n := r.TryDequeueBatch(dst); n != 3 || dst[0] != 0 || dst[1] != 1 || dst[2] != 2 {
		t.Fatalf("TryDequeueBatch = %d %v", n, dst)
	}
	// Wrap around several laps.
	next, want := 4, 3
	for lap := range 10 {
		for r.TryEnqueue(next) == nil {
			next++
		}
		n, err := r.DequeueBatch(dst)
		if err != nil || n == 0 {
			t.Fatalf("lap %d: DequeueBatch = %d, %v", lap, n, err)
		}
		for _, v := range dst[:n] {
			if v != want {
				t.Fatalf("lap %d: got %d, want %d", lap, v, want)
			}
			want++
		}
	}
	if got := r.TryDequeueBatch(nil); got != 0 {
		t.Fatalf("TryDequeueBatch(nil) = %d", got)
	}
}

func TestDequeuedSlotsAreZeroed(t *testing.T) {
	r := New[*int](2)
	x := new(int)
	if err := r.TryEnqueue(x); err != nil {
		t.Fatal(err)
	}
	dst := make([]*int, 1)
	if n := r.TryDequeueBatch(dst); n != 1 || dst[0] != x {
		t.Fatalf("got %d %v", n, dst[0])
	}
	for i := range r.slots {
		if r.slots[i].val != nil {
			t.Fatalf("slot %d still holds a pointer after dequeue", i)
		}
	}
}

func TestCloseDrainsThenErrClosed(t *testing.T) {
	r := New[int](8)
	for i := range 5 {
		if err := r.TryEnqueue(i); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	r.Close() // idempotent
	if err := r.TryEnqueue(9); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryEnqueue after Close = %v", err)
	}
	if err := r.Enqueue(context.Background(), 9); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close = %v", err)
	}
	dst := make([]int, 2)
	var got []int
	for {
		n, err := r.DequeueBatch(dst)
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil || n == 0 {
			t.Fatalf("DequeueBatch = %d, %v", n, err)
		}
		got = append(got, dst[:n]...)
	}
	if len(got) != 5 {
		t.Fatalf("drained %v, want 0..4", got)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("drained %v, want 0..4", got)
		}
	}
	if n, err := r.DequeueBatch(dst); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("DequeueBatch after drain = %d, %v", n, err)
	}
	if n, err := r.DequeueBatch(nil); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("DequeueBatch(nil) after drain = %d, %v", n, err)
	}
	if r.Len() != 0 {
		t.Fatalf("Len = %d after drain", r.Len())
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEnqueueBlocksUntilSpace(t *testing.T) {
	r := New[int](2)
	_ = r.TryEnqueue(1)
	_ = r.TryEnqueue(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Enqueue(ctx, 3) }()
	waitFor(t, "producer to block", func() bool { return r.waiters.Load() == 1 })
	select {
	case err := <-done:
		t.Fatalf("Enqueue returned %v while the ring was full", err)
	default:
	}
	dst := make([]int, 1)
	if n, err := r.DequeueBatch(dst); n != 1 || err != nil || dst[0] != 1 {
		t.Fatalf("DequeueBatch = %d %v %v", n, err, dst)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Enqueue = %v", err)
		}
	case <-ctx.Done():
		t.Fatal("blocked producer was not woken by the consumer")
	}
	dst = make([]int, 4)
	if n, _ := r.DequeueBatch(dst); n != 2 || dst[0] != 2 || dst[1] != 3 {
		t.Fatalf("got %v", dst[:n])
	}
}

func TestEnqueueContextCancel(t *testing.T) {
	r := New[int](2)
	_ = r.TryEnqueue(1)
	_ = r.TryEnqueue(2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Enqueue(ctx, 3) }()
	waitFor(t, "producer to block", func() bool { return r.waiters.Load() == 1 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Enqueue = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ctx cancel did not unblock Enqueue")
	}
	if r.waiters.Load() != 0 {
		t.Fatalf("waiters = %d after cancel", r.waiters.Load())
	}
	// Deadline variant.
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if err := r.Enqueue(dctx, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enqueue = %v, want DeadlineExceeded", err)
	}
	if r.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (cancelled items must not be enqueued)", r.Len())
	}
}

func TestCloseWakesBlockedProducersAndConsumer(t *testing.T) {
	r := New[int](2)
	_ = r.TryEnqueue(1)
	_ = r.TryEnqueue(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const producers = 5
	errs := make(chan error, producers)
	for i := range producers {
		go func() { errs <- r.Enqueue(ctx, 10+i) }()
	}
	waitFor(t, "producers to block", func() bool { return r.waiters.Load() == producers })
	r.Close()
	for range producers {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("blocked Enqueue = %v, want ErrClosed", err)
			}
		case <-ctx.Done():
			t.Fatal("Close did not wake a blocked producer")
		}
	}

	// Consumer parked on an empty ring.
	r2 := New[int](4)
	cerr := make(chan error, 1)
	go func() {
		_, err := r2.DequeueBatch(make([]int, 4))
		cerr <- err
	}()
	waitFor(t, "consumer to park", r2.consumerSleeping.Load)
	r2.Close()
	select {
	case err := <-cerr:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("parked DequeueBatch = %v, want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not wake the parked consumer")
	}
}

func TestConsumerWokenByProducer(t *testing.T) {
	r := New[int](4)
	got := make(chan int, 1)
	go func() {
		dst := make([]int, 4)
		n, err := r.DequeueBatch(dst)
		if err != nil || n != 1 {
			got <- -1
			return
		}
		got <- dst[0]
	}()
	waitFor(t, "consumer to park", r.consumerSleeping.Load)
	if err := r.TryEnqueue(42); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != 42 {
			t.Fatalf("consumer got %d", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked consumer was not woken")
	}
}

// TestStress runs many tagged producers against one batching consumer and
// checks that every accepted item arrives exactly once and in per-producer
// order, with Close landing in the middle of the run.
func TestStress(t *testing.T) {
	for _, tc := range []struct {
		name      string
		capacity  int
		producers int
		perProd   int
		closeAt   int // close after the consumer has seen this many items; 0 = never
	}{
		{"cap2_p8", 2, 8, 2000, 0},
		{"cap64_p16", 64, 16, 3000, 0},
		{"cap16_p32_close", 16, 32, 5000, 20000},
		{"cap1024_p4_close", 1024, 4, 20000, 30000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stress(t, tc.capacity, tc.producers, tc.perProd, tc.closeAt)
		})
	}
}

func stress(t *testing.T, capacity, producers, perProd, closeAt int) {
	r := New[uint64](capacity)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	accepted := make([]int, producers)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProd {
				v := uint64(p)<<32 | uint64(i)
				var err error
				if i%3 == 0 {
					// Mix in non-blocking enqueues that retry on full.
					for {
						if err = r.TryEnqueue(v); err != ErrFull {
							break
						}
						if ctx.Err() != nil {
							return
						}
						runtimeGosched()
					}
				} else {
					err = r.Enqueue(ctx, v)
				}
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("producer %d: %v", p, err)
					}
					return
				}
				accepted[p] = i + 1
			}
		}()
	}

	next := make([]int, producers)
	total := 0
	dst := make([]uint64, 37)
	for {
		n, err := r.DequeueBatch(dst)
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil || n == 0 {
			t.Fatalf("DequeueBatch = %d, %v", n, err)
		}
		for _, v := range dst[:n] {
			p, i := int(v>>32), int(uint32(v))
			if p >= producers || i != next[p] {
				t.Fatalf("producer %d: got item %d, want %d (lost, duplicated or reordered)", p, i, next[p])
			}
			next[p]++
		}
		total += n
		if closeAt > 0 && total >= closeAt {
			r.Close()
			closeAt = 0
		}
		if total == producers*perProd {
			r.Close()
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("stress test timed out")
	}
	for p := range producers {
		if next[p] != accepted[p] {
			t.Errorf("producer %d: %d items accepted, %d delivered", p, accepted[p], next[p])
		}
	}
	if r.Len() != 0 {
		t.Errorf("Len = %d after drain", r.Len())
	}
}

// TestCloseWaitsForClaimedSlot freezes a producer between its CAS on tail and
// its publish (done by hand here), closes the ring, and checks that the
// consumer still delivers that item before reporting ErrClosed.
func TestCloseWaitsForClaimedSlot(t *testing.T) {
	r := New[int](4)
	if err := r.TryEnqueue(1); err != nil {
		t.Fatal(err)
	}
	// Claim position 1 like a producer would, without publishing yet.
	if !r.tail.CompareAndSwap(1, 2) {
		t.Fatal("could not claim position 1")
	}
	r.Close()
	type result struct {
		items []int
		err   error
	}
	res := make(chan result, 1)
	go func() {
		var items []int
		dst := make([]int, 4)
		for {
			n, err := r.DequeueBatch(dst)
			if err != nil {
				res <- result{items, err}
				return
			}
			items = append(items, dst[:n]...)
		}
	}()
	waitFor(t, "consumer to take the published item", func() bool { return r.head.Load() == 1 })
	time.Sleep(20 * time.Millisecond) // give a wrong implementation time to give up
	select {
	case got := <-res:
		t.Fatalf("consumer returned %v, %v before the claimed slot was published", got.items, got.err)
	default:
	}
	s := &r.slots[1]
	s.val = 2
	s.seq.Store(2)
	select {
	case got := <-res:
		if !errors.Is(got.err, ErrClosed) || len(got.items) != 2 || got.items[0] != 1 || got.items[1] != 2 {
			t.Fatalf("consumer returned %v, %v; want [1 2], ErrClosed", got.items, got.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("consumer did not finish after the claimed slot was published")
	}
}

// TestWaitTakesNothing: Wait parks until an item is published, returns
// without dequeuing it, and after Close returns nil until the accepted
// items are drained, then ErrClosed; a parked Wait wakes on Close.
func TestWaitTakesNothing(t *testing.T) {
	r := New[int](4)
	woke := make(chan error, 1)
	go func() { woke <- r.Wait() }()
	waitFor(t, "Wait to park", r.consumerSleeping.Load)
	if err := r.TryEnqueue(7); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("Wait = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("parked Wait was not woken")
	}
	if n := r.Len(); n != 1 {
		t.Fatalf("Len after Wait = %d, want 1 (Wait must not dequeue)", n)
	}
	if err := r.Wait(); err != nil { // ready: returns at once
		t.Fatal(err)
	}
	r.Close()
	if err := r.Wait(); err != nil {
		t.Fatalf("Wait on a closed ring with an item = %v, want nil", err)
	}
	dst := make([]int, 4)
	if n := r.TryDequeueBatch(dst); n != 1 || dst[0] != 7 {
		t.Fatalf("TryDequeueBatch = %d %v", n, dst)
	}
	if err := r.Wait(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait on a closed, drained ring = %v, want ErrClosed", err)
	}

	r2 := New[int](4)
	go func() { woke <- r2.Wait() }()
	waitFor(t, "Wait to park", r2.consumerSleeping.Load)
	r2.Close()
	if err := <-woke; !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait woken by Close = %v, want ErrClosed", err)
	}
}
