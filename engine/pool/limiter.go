package pool

import (
	"context"
	"sync/atomic"
)

// limiter bounds the calls in flight to one agent. Acquiring a free slot
// is one CAS; a caller that finds none waits for a release within its
// context. Releases wake one waiter each: a release that sees waiters puts
// one token into wake (a buffered channel as large as the limit, so a send
// is dropped only when tokens are already waiting to be taken, and nobody
// can sleep through a free slot). A woken waiter retries the CAS; a token
// left over by a waiter that got a slot without it costs a later waiter one
// extra retry.
type limiter struct {
	limit   int64
	n       atomic.Int64 // slots taken
	waiters atomic.Int64
	wake    chan struct{}

	waits atomic.Uint64 // acquisitions that had to wait
}

func newLimiter(limit int) *limiter {
	return &limiter{limit: int64(limit), wake: make(chan struct{}, limit)}
}

// tryAcquire takes a slot if one is free.
func (l *limiter) tryAcquire() bool {
	for {
		n := l.n.Load()
		if n >= l.limit {
			return false
		}
		if l.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// acquire takes a slot, waiting for one until ctx ends (then it returns
// ctx's error).
func (l *limiter) acquire(ctx context.Context) error {
	if l.tryAcquire() {
		return nil
	}
	return l.acquireSlow(ctx)
}

func (l *limiter) acquireSlow(ctx context.Context) error {
	l.waits.Add(1)
	l.waiters.Add(1)
	defer l.waiters.Add(-1)
	for {
		// Announced as a waiter before this check: a release after it
		// leaves a token.
		if l.tryAcquire() {
			return nil
		}
		select {
		case <-l.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release frees a slot taken by acquire.
func (l *limiter) release() {
	l.n.Add(-1)
	if l.waiters.Load() > 0 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// inUse returns the slots taken.
func (l *limiter) inUse() int64 { return l.n.Load() }
