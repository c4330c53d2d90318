package ring

import (
	"context"
	"errors"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrClosed is returned by enqueue operations after Close, and by
// DequeueBatch once a closed ring has been drained.
var ErrClosed = errors.New("agentwire: ring closed")

// ErrFull is returned by TryEnqueue when every slot is occupied.
var ErrFull = errors.New("agentwire: ring full")

// cacheLineSize is the padding unit between fields written by different
// sides. 128 bytes covers amd64's adjacent-line prefetcher and arm64's
// 128-byte lines; a Ring is per connection, so the few hundred bytes are
// cheap.
const cacheLineSize = 128

// closedBit is set in tail by Close. Positions are 63-bit counters; at
// one enqueue per nanosecond they wrap after ~290 years.
const closedBit = uint64(1) << 63

// maxCapacity bounds New so that the rounded capacity fits an int on every
// platform and the slot array stays addressable.
const maxCapacity = 1 << 30

// noCopy makes go vet's copylocks check report copies of a Ring.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// slot holds one item and its sequence number.
//
// For the slot at index i (position p ≡ i mod cap) the sequence moves
// through three states per lap:
//
//	seq == p        free: a producer whose claimed position is p may write it
//	seq == p+1      full: published by the producer of p, readable by the consumer
//	seq == p+cap    free again for position p+cap (set by the consumer after reading)
//
// Slots are deliberately not padded to a cache line each: the consumer reads
// them in batches and a per-connection ring of 1024 slots would otherwise cost
// 128 KiB.
type slot[T any] struct {
	seq atomic.Uint64
	val T
}

// Ring is a bounded lock-free multi-producer single-consumer queue.
//
// Any number of goroutines may call TryEnqueue, Enqueue, Close, Len and Cap
// concurrently. DequeueBatch, TryDequeueBatch and Wait belong to a single
// consumer and must never run concurrently with each other. The zero value
// is not usable: create rings with New. A Ring must not be copied.
//
// # Protocol
//
// Producers (TryEnqueue):
//
//  1. t := tail. If t has closedBit, fail with ErrClosed.
//  2. Look at slot[t&mask].seq: equal to t means free; below t means the
//     consumer has not yet read the previous lap's item there, so the ring
//     is full (ErrFull); above t means another producer already claimed t,
//     so reload tail and retry.
//  3. CAS tail from t to t+1 (the CAS fails if Close set closedBit in the
//     meantime, which sends the producer back to step 1), write the value,
//     then store seq = t+1 to publish it.
//  4. Load consumerSleeping; only if it is set, clear it with a CAS and put a
//     token in the 1-buffered consumer doorbell (non-blocking send). A busy
//     consumer therefore costs a producer one uncontended atomic load and no
//     channel operation or syscall.
//
// Consumer (DequeueBatch, TryDequeueBatch), with head private to it:
//
//  1. While slot[head&mask].seq == head+1 and dst has room: copy the value,
//     zero the slot (so the ring retains no pointers), store
//     seq = head+cap, head++. Publish head once per batch (for Len).
//  2. If a batch freed slots and waiters > 0, broadcast "space" to blocked
//     producers (close the current space channel and install a fresh one).
//  3. On an empty batch: if tail has closedBit and head has reached the
//     final tail, return ErrClosed. If closed but head is short of it, a
//     producer won its CAS before Close and is between CAS and publish (a
//     few instructions): yield and retry. Otherwise store
//     consumerSleeping = true, re-check the head slot and closedBit (Dekker:
//     the producer stores seq then loads the flag, the consumer stores the
//     flag then loads seq; with sequentially consistent atomics at least one
//     of them sees the other), and park on the doorbell or the done channel.
//     A stale doorbell token only causes one spurious loop.
//
// Producers waiting for space (Enqueue):
//
//  1. waiters++, then take the current space channel under mu, then retry
//     TryEnqueue. The consumer frees slots (seq stores) before it loads
//     waiters, so either it sees waiters > 0 and broadcasts, or the retry
//     sees the freed slot.
//  2. Park on the space channel, done or ctx.Done(); waiters--; loop.
//
// Close sets closedBit in tail with one atomic OR, which freezes the set of
// positions that will ever be published: every producer whose CAS succeeded
// earlier will publish its item and has returned or will return nil, every
// later attempt fails with ErrClosed. Close then closes done, waking the
// consumer and all blocked producers. The consumer drains exactly the frozen
// positions, so nothing accepted is lost.
type Ring[T any] struct {
	_ noCopy

	// Read-only after New.
	slots []slot[T]
	mask  uint64
	// done is closed by Close.
	done chan struct{}
	// doorbell wakes a parked consumer; capacity 1.
	doorbell chan struct{}

	_ [cacheLineSize]byte
	// tail is the next position to claim, plus closedBit once closed.
	// Written by producers (CAS) and Close (OR).
	tail atomic.Uint64

	_ [cacheLineSize - unsafe.Sizeof(atomic.Uint64{})]byte
	// head is the next position the consumer will read. Written only by
	// the consumer, once per batch; read by Len.
	head atomic.Uint64

	_ [cacheLineSize - unsafe.Sizeof(atomic.Uint64{})]byte
	// consumerSleeping is set by the consumer just before it parks and
	// cleared by the first producer that wakes it. Producers load it on
	// every publish, so it lives alone on its line.
	consumerSleeping atomic.Bool

	_ [cacheLineSize - unsafe.Sizeof(atomic.Bool{})]byte
	// waiters counts producers blocked in Enqueue; the consumer loads it
	// after every non-empty batch.
	waiters atomic.Int32

	// mu guards space.
	mu sync.Mutex
	// space is closed (and replaced) by the consumer to wake producers
	// blocked on a full ring.
	space chan struct{}

	closeOnce sync.Once
}

// New returns an empty ring holding capacity items, rounded up to a power of
// two; capacities below 2 become 2. New panics if capacity exceeds 1<<30.
func New[T any](capacity int) *Ring[T] {
	if capacity > maxCapacity {
		panic("agentwire: ring capacity too large")
	}
	n := 2
	if capacity > 2 {
		n = 1 << bits.Len(uint(capacity-1))
	}
	r := &Ring[T]{
		slots:    make([]slot[T], n),
		mask:     uint64(n - 1),
		done:     make(chan struct{}),
		doorbell: make(chan struct{}, 1),
		space:    make(chan struct{}),
	}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// Cap returns the number of slots. It is safe for concurrent use.
func (r *Ring[T]) Cap() int { return len(r.slots) }

// Len returns the number of items claimed by producers and not yet taken by
// the consumer. Under concurrency it is a snapshot that may already be stale.
// It is safe for concurrent use.
func (r *Ring[T]) Len() int {
	h := r.head.Load()
	t := r.tail.Load() &^ closedBit
	if t <= h {
		return 0
	}
	n := t - h
	if n > uint64(len(r.slots)) {
		// head is published once per batch, so it may lag the slots
		// already freed.
		n = uint64(len(r.slots))
	}
	return int(n)
}

// TryEnqueue adds v without blocking. It returns nil on success, ErrFull when
// the ring is full and ErrClosed after Close. It is safe for concurrent use
// and does not allocate.
func (r *Ring[T]) TryEnqueue(v T) error {
	for {
		t := r.tail.Load()
		if t&closedBit != 0 {
			return ErrClosed
		}
		s := &r.slots[t&r.mask]
		seq := s.seq.Load()
		switch {
		case seq == t:
			if !r.tail.CompareAndSwap(t, t+1) {
				continue
			}
			s.val = v
			s.seq.Store(t + 1)
			r.wakeConsumer()
			return nil
		case seq < t:
			return ErrFull
		}
		// seq > t: another producer claimed t; tail has moved on.
	}
}

// wakeConsumer rings the doorbell only if the consumer is parked (or about
// to park) and no other producer has rung it yet.
func (r *Ring[T]) wakeConsumer() {
	if r.consumerSleeping.Load() && r.consumerSleeping.CompareAndSwap(true, false) {
		select {
		case r.doorbell <- struct{}{}:
		default:
		}
	}
}

// Enqueue adds v, blocking while the ring is full. It returns nil on success,
// ErrClosed if the ring is or becomes closed before v is accepted, and
// ctx.Err() if ctx ends while it waits. ctx is only consulted while waiting:
// when a slot is free, v is enqueued even if ctx is already done. It is safe
// for concurrent use; the fast path does not allocate.
func (r *Ring[T]) Enqueue(ctx context.Context, v T) error {
	err := r.TryEnqueue(v)
	if err != ErrFull {
		return err
	}
	return r.enqueueSlow(ctx, v)
}

func (r *Ring[T]) enqueueSlow(ctx context.Context, v T) error {
	for {
		r.waiters.Add(1)
		r.mu.Lock()
		space := r.space
		r.mu.Unlock()
		err := r.TryEnqueue(v)
		if err != ErrFull {
			r.waiters.Add(-1)
			return err
		}
		select {
		case <-space:
		case <-r.done:
		case <-ctx.Done():
			r.waiters.Add(-1)
			// A slot may have been freed concurrently; ctx wins, which
			// is what the caller asked for.
			return ctx.Err()
		}
		r.waiters.Add(-1)
		if err := r.TryEnqueue(v); err != ErrFull {
			return err
		}
	}
}

// TryDequeueBatch moves up to len(dst) items into dst without blocking and
// returns how many it moved (0 when nothing is ready or the ring is closed
// and drained). Only the single consumer goroutine may call it.
func (r *Ring[T]) TryDequeueBatch(dst []T) int {
	if len(dst) == 0 {
		return 0
	}
	var zero T
	h := r.head.Load() // only the consumer writes head
	n := 0
	for n < len(dst) {
		s := &r.slots[h&r.mask]
		if s.seq.Load() != h+1 {
			break
		}
		dst[n] = s.val
		s.val = zero
		s.seq.Store(h + uint64(len(r.slots)))
		h++
		n++
	}
	if n > 0 {
		r.head.Store(h)
		if r.waiters.Load() > 0 {
			r.wakeProducers()
		}
	}
	return n
}

// wakeProducers wakes every producer blocked in Enqueue. Only the consumer
// calls it, and only when waiters > 0, so the channel allocation is paid on
// the slow path alone.
func (r *Ring[T]) wakeProducers() {
	r.mu.Lock()
	close(r.space)
	r.space = make(chan struct{})
	r.mu.Unlock()
}

// DequeueBatch moves up to len(dst) items into dst, blocking until at least
// one is available. After Close it keeps returning the items enqueued before
// Close and then returns 0, ErrClosed. With len(dst) == 0 it returns 0 and
// nil at once (or ErrClosed if the ring is closed and drained). Only the
// single consumer goroutine may call it.
func (r *Ring[T]) DequeueBatch(dst []T) (int, error) {
	for {
		if n := r.TryDequeueBatch(dst); n > 0 {
			return n, nil
		}
		if len(dst) == 0 {
			if r.tail.Load() == closedBit|r.head.Load() {
				return 0, ErrClosed
			}
			return 0, nil
		}
		if err := r.Wait(); err != nil {
			return 0, err
		}
	}
}

// Wait blocks until the next item is ready to be dequeued (it returns nil)
// or the ring is closed and drained (it returns ErrClosed), and dequeues
// nothing: TryDequeueBatch then takes at least one item. It lets a
// consumer that has to do something first (take a lock, say) wait
// without taking items. Only the single consumer goroutine may call it,
// like DequeueBatch.
func (r *Ring[T]) Wait() error {
	for {
		if r.headReady() {
			return nil
		}
		t := r.tail.Load()
		if t&closedBit != 0 {
			if r.head.Load() == t&^closedBit {
				return ErrClosed
			}
			// A producer won its CAS before Close and is about to
			// publish; it does not block in between.
			runtime.Gosched()
			continue
		}
		r.consumerSleeping.Store(true)
		if r.headReady() || r.tail.Load()&closedBit != 0 {
			r.consumerSleeping.Store(false)
			continue
		}
		select {
		case <-r.doorbell:
		case <-r.done:
		}
		r.consumerSleeping.Store(false)
	}
}

// headReady reports whether the slot at head holds a published item.
// Consumer only.
func (r *Ring[T]) headReady() bool {
	h := r.head.Load()
	return r.slots[h&r.mask].seq.Load() == h+1
}

// Close closes the ring: later enqueues fail with ErrClosed, blocked
// producers return ErrClosed, and the consumer drains what was accepted
// before Close and then gets ErrClosed. Close is idempotent and safe for
// concurrent use; it does not wait for the consumer.
func (r *Ring[T]) Close() {
	r.closeOnce.Do(func() {
		r.tail.Or(closedBit)
		close(r.done)
	})
}
