// Package bufcache is a small lock-free cache of large buffers handed
// between goroutines: the frame readers' and the agent writers' buffers
// while their connections wait.
//
// Why not sync.Pool: a Put lands in the current P's private slot, which
// other Ps cannot take from; a goroutine that parks on one P and wakes on
// another (the common case on 2 cores) then misses, and a miss allocates
// and clears a fresh 64 KiB buffer. Measured with sync.Pool through
// bench/ab.sh at 16 in flight, the agentwire round trip lost up to a
// quarter of its throughput. Here every slot is visible to every
// goroutine, and a user starts at a slot of its own (its hint), so one
// connection that parks and wakes finds the buffer it left.
package bufcache

import "sync/atomic"

// Slots is the number of buffers a Cache keeps: at most Slots buffers stay
// allocated while nobody uses them (the rest go to the garbage collector).
const Slots = 16

// Cache keeps up to Slots buffers of type *T. It is safe for concurrent
// use; the zero value is an empty cache.
type Cache[T any] struct {
	slots [Slots]atomic.Pointer[T]
	hints atomic.Uint32
}

// Hint returns a starting slot for a new user (round robin).
func (c *Cache[T]) Hint() uint32 { return c.hints.Add(1) }

// Get returns a cached buffer, looking first at the user's own slot, or
// nil when the cache is empty.
func (c *Cache[T]) Get(hint uint32) *T {
	for i := range uint32(Slots) {
		s := &c.slots[(hint+i)%Slots]
		if p := s.Load(); p != nil && s.CompareAndSwap(p, nil) {
			return p
		}
	}
	return nil
}

// Put caches p, in the user's own slot if it is free; it reports false
// when every slot is taken (p is then left to the garbage collector).
func (c *Cache[T]) Put(hint uint32, p *T) bool {
	for i := range uint32(Slots) {
		s := &c.slots[(hint+i)%Slots]
		if s.Load() == nil && s.CompareAndSwap(nil, p) {
			return true
		}
	}
	return false
}
