package engine

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds what admission waits on: the agent's announced
// limits.max_concurrency (a per-session cap on requests in flight), the
// flow-control in-flight cap (UPDATE_CAPACITY) and the queue of callers
// waiting for a slot or for a flow-control change.

var errSaturated = &Error{Kind: ErrSaturated, Detail: "agent's max_concurrency requests are in flight"}

// Errors of a call whose context ended while admission held it: the kind
// is the context's (so the call counts as a timeout or a cancellation),
// the cause says what held it.
var (
	errFlowWaitDeadline = &Error{Kind: ErrTimeout, Detail: "flow control did not let the call through in time",
		Err: &Error{Kind: ErrFlowPaused, Err: context.DeadlineExceeded}}
	errFlowWaitCanceled = &Error{Kind: ErrCanceled, Detail: "canceled while flow control held the call",
		Err: &Error{Kind: ErrFlowPaused, Err: context.Canceled}}
	errSatWaitDeadline = &Error{Kind: ErrTimeout, Detail: "no slot under the agent's max_concurrency in time",
		Err: &Error{Kind: ErrSaturated, Err: context.DeadlineExceeded}}
	errSatWaitCanceled = &Error{Kind: ErrCanceled, Detail: "canceled while waiting for a slot under the agent's max_concurrency",
		Err: &Error{Kind: ErrSaturated, Err: context.Canceled}}
)

// waitError returns the error of a call whose wait ended with ended (its
// context's error, or context.DeadlineExceeded at the default request
// timeout) while held by held (errSaturated, or a flow-control error).
func waitError(ended, held error) error {
	dl := errors.Is(ended, context.DeadlineExceeded)
	switch {
	case held == errSaturated && dl:
		return errSatWaitDeadline
	case held == errSaturated:
		return errSatWaitCanceled
	case dl:
		return errFlowWaitDeadline
	}
	return errFlowWaitCanceled
}

// maxInFlightOf returns the per-session cap on requests in flight from the
// agent's announced limits.max_concurrency: 0 (not announced) means none.
func maxInFlightOf(maxConcurrency uint32) int64 {
	if maxConcurrency == 0 {
		return math.MaxInt64
	}
	return int64(maxConcurrency)
}

// limit returns the number of requests that may be in flight now: the
// agent's max_concurrency, lowered by an UPDATE_CAPACITY cap.
func (s *session) limit() int64 {
	lim := s.maxInFlight
	if capa := s.capacity.Load(); capa >= 0 && capa < lim {
		lim = capa
	}
	return lim
}

// limitError returns the error of a call that found no slot: the
// flow-control cap when it is the one that binds, else saturation.
func (s *session) limitError() error {
	if capa := s.capacity.Load(); capa >= 0 && capa <= s.maxInFlight {
		return errCapacity
	}
	return errSaturated
}

// ---------------------------------------------------------------------------
// waiters

// waiter is one caller waiting in a session's admission queue.
type waiter struct {
	// ch receives exactly one wake-up per enqueue, sent under the queue's
	// lock when the waiter leaves the queue; granted is set before it.
	ch      chan struct{}
	granted bool // woken with a slot (counted in flight for the caller)
	// deadline is the call's default request timeout as a monoNow
	// instant (0: its context has a deadline); the session's expirer
	// wakes the waiter with expired set once it has passed, so that a
	// wait costs no timer.
	deadline int64
	expired  bool

	list       *waitList // the list it is queued in (nil: not queued)
	prev, next *waiter
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

// waitList is a FIFO of waiters (guarded by admissionQueue.mu).
type waitList struct{ head, tail *waiter }

func (l *waitList) push(w *waiter) {
	w.list, w.prev, w.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
}

func (l *waitList) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.list, w.prev, w.next = nil, nil, nil
}

// admissionQueue holds the callers a session's admission makes wait:
// slots waits for room under the in-flight limit (woken one per freed
// slot, first come first served, with the slot handed over), others for
// any flow-control or health change (a paused connection or correlation
// id; all woken at every change). Both are emptied when the session
// fails.
//
// No wake-up is lost: a caller enqueues, then (under the lock) takes a
// slot for the head of the queue if one is free; a finishing call frees
// its slot first and then looks at nslots. So either the caller sees the
// freed slot or the finishing call sees the caller. A waiter that gives up
// after its wake-up was sent passes its slot on (see await).
type admissionQueue struct {
	mu     sync.Mutex
	slots  waitList
	others waitList
	closed bool // the session failed: nobody may wait any more
	// nslots is the length of slots, read without the lock: a new call
	// only takes the fast path when nobody waits (no overtaking), and a
	// finishing call only takes the lock when somebody does.
	nslots atomic.Int32
	// wakeups counts the waiters woken (for BenchmarkFlowWaiters).
	wakeups atomic.Uint64
}

// wake removes w from its list and sends its one wake-up. Under mu.
func (q *admissionQueue) wake(w *waiter, granted bool) {
	q.take(w, granted)
	w.ch <- struct{}{}
	q.wakeups.Add(1)
}

// take removes w from its list, its wake-up (granted or not) to be sent
// by the caller: under mu, the send may follow after it (unwait waits for
// it once w has left the list).
func (q *admissionQueue) take(w *waiter, granted bool) {
	if w.list == &q.slots {
		q.nslots.Add(-1)
	}
	w.list.remove(w)
	w.granted = granted
}

// expireWaiters wakes the waiters whose default request timeout is at or
// before now (a monoNow instant); run by the session's expirer.
func (s *session) expireWaiters(now int64) {
	q := &s.aq
	q.mu.Lock()
	for _, l := range [2]*waitList{&q.slots, &q.others} {
		for w := l.head; w != nil; {
			next := w.next
			if w.deadline != 0 && w.deadline <= now {
				w.expired = true
				q.wake(w, false)
			}
			w = next
		}
	}
	q.mu.Unlock()
}

// takeSlot counts one more request in flight if the session's limit allows
// it, and reports whether it did.
func (s *session) takeSlot() bool {
	if s.c.stats.inFlight.Load() >= s.limit() {
		return false // no slot: spare the shared count two writes
	}
	n := s.c.stats.inFlight.Add(1)
	if n <= s.limit() {
		return true
	}
	s.c.drained(s.c.stats.inFlight.Add(-1))
	return false
}

// grantLocked hands free slots to the waiters at the head of the slot
// queue, one slot each. Under mu.
func (s *session) grantLocked() {
	q := &s.aq
	for w := q.slots.head; w != nil && !s.paused.Load(); w = q.slots.head {
		if !s.takeSlot() {
			return
		}
		q.wake(w, true)
	}
}

// grant hands free slots to waiting callers (called when a slot was
// freed and nslots > 0), one at a time, each wake-up sent after the lock
// is released (it readies the waiter's goroutine).
func (s *session) grant() {
	q := &s.aq
	for {
		q.mu.Lock()
		w := q.slots.head
		if w == nil || s.paused.Load() || !s.takeSlot() {
			q.mu.Unlock()
			return
		}
		q.take(w, true)
		q.mu.Unlock()
		w.ch <- struct{}{}
		q.wakeups.Add(1)
	}
}

// flowChanged wakes every waiting caller after a flow-control or health
// change (they re-check and wait again if they must), handing out the
// slots that are free first.
func (s *session) flowChanged() {
	q := &s.aq
	q.mu.Lock()
	s.grantLocked()
	for q.slots.head != nil {
		q.wake(q.slots.head, false)
	}
	for q.others.head != nil {
		q.wake(q.others.head, false)
	}
	q.mu.Unlock()
}

// closeWaiters wakes every waiting caller and refuses new waits: the
// session failed.
func (s *session) closeWaiters() {
	s.aq.mu.Lock()
	s.aq.closed = true
	s.aq.mu.Unlock()
	s.flowChanged()
}

// await makes the caller (of correlation id cid) wait on s: for a slot
// (slot true; it is then handed over: granted) or for the next
// flow-control or health change, until its deadline (ctx's, or deadline,
// a monoNow instant, when not 0) or the session ends. It returns granted
// true when the caller now holds a slot (counted in flight; it must be
// used or given back with leave), and the reason when the call's time
// ran out (ctx.Err(), or context.DeadlineExceeded at deadline). With
// neither, the caller re-checks its admission (something changed, or the
// Conn or the session ended).
func (s *session) await(ctx context.Context, slot bool, cid string, deadline int64) (granted bool, ended error) {
	q := &s.aq
	w := waiterPool.Get().(*waiter)
	w.deadline, w.expired = deadline, false
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		waiterPool.Put(w)
		return false, nil
	}
	if slot {
		q.slots.push(w)
		q.nslots.Add(1)
		s.grantLocked()
	} else {
		q.others.push(w)
	}
	q.mu.Unlock()
	// A change before w was queued woke nobody: re-check (a slot wait
	// did, under the lock).
	if !slot && s.flowBlocked(cid) == nil {
		return s.unwait(w, nil)
	}
	// Close needs no case here: the supervisor then fails the session,
	// which wakes every waiter (closeWaiters), and Close waits for that.
	select {
	case <-w.ch:
		return w.done()
	case <-ctx.Done():
		return s.unwait(w, ctx.Err())
	}
}

// done reads the outcome of w's wake-up and recycles w.
func (w *waiter) done() (granted bool, ended error) {
	granted = w.granted
	if w.expired {
		ended = context.DeadlineExceeded
	}
	waiterPool.Put(w)
	return granted, ended
}

// unwait takes w out of the queue before its wake-up; if the wake-up was
// already sent, it takes it (and with it any slot granted, which the
// caller then holds and must give back with leave).
func (s *session) unwait(w *waiter, ended error) (granted bool, _ error) {
	q := &s.aq
	q.mu.Lock()
	if w.list != nil {
		if w.list == &q.slots {
			q.nslots.Add(-1)
		}
		w.list.remove(w)
		q.mu.Unlock()
		waiterPool.Put(w)
		return false, ended
	}
	q.mu.Unlock()
	<-w.ch // sent before w left the list
	granted, expired := w.done()
	if ended == nil {
		ended = expired
	}
	return granted, ended
}

// deadlineFrom gives ctx the deadline dl (a monoNow instant) when not 0,
// else the request timeout when ctx has no deadline (cold path: allocates).
func (c *Conn) deadlineFrom(ctx context.Context, dl int64) (context.Context, context.CancelFunc) {
	if dl != 0 {
		return context.WithTimeout(ctx, time.Duration(dl-monoNow()))
	}
	return c.ensureDeadline(ctx, nil)
}

// drained signals Drain when the in-flight count n reached zero.
func (c *Conn) drained(n int64) {
	if n == 0 && c.state.Load() == stateDraining {
		select {
		case c.drainSig <- struct{}{}:
		default:
		}
	}
}
