package pool

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// affinity pins correlation ids to connections: a fixed table of slots
// (twice the configured maximum number of pins, a power of two) searched
// over a window of affinityWindow slots from the id's hash, without locks.
//
// A slot is two words: key (0 empty, affinityBusy while a writer fills
// it, else the id's 64-bit seeded hash with bit 0 set) and val (member id
// << 40 | expiry in ms since the pool's epoch). A writer claims a slot by
// CAS on key (to affinityBusy), stores val, then publishes the key; a
// reader loads key, val and key again and uses val only when the key did
// not change. Lookups always scan the whole window, so a freed slot needs
// no tombstone. Ids are told apart by their hash alone: two ids pinned at
// the same time share a pin only if their 64-bit seeded hashes collide
// (about n²/2⁶⁵ for n pins); the worst case is that an event goes to
// another connection of the same agent.
type affinity struct {
	seed  maphash.Seed
	ttl   int64 // ms
	slots atomic.Pointer[[]affSlot]
	size  int // slots (power of two)

	rejected  atomic.Uint64 // pins refused: window full
	expired   atomic.Uint64 // expired pins found by a lookup or reused by a pin
	fallbacks atomic.Uint64 // pinned events that went elsewhere (pin gone or connection unusable)
}

type affSlot struct {
	key atomic.Uint64
	val atomic.Uint64
}

const (
	affinityWindow = 16
	affinityBusy   = 2 // never a hash: hashes have bit 0 set
	affIDShift     = 40
	affMSMask      = 1<<affIDShift - 1
	// affMaxID bounds member ids (24 bits).
	affMaxID = 1<<24 - 1
)

func newAffinity(seed maphash.Seed, maxPins int, ttlMS int64) *affinity {
	size := 1 << bits.Len(uint(max(2*maxPins, affinityWindow)-1))
	return &affinity{seed: seed, ttl: ttlMS, size: size}
}

// hash returns the key of cid.
func (a *affinity) hash(cid string) uint64 { return maphash.String(a.seed, cid) | 1 }

func (a *affinity) table() []affSlot {
	if t := a.slots.Load(); t != nil {
		return *t
	}
	t := make([]affSlot, a.size)
	if a.slots.CompareAndSwap(nil, &t) {
		return t
	}
	return *a.slots.Load()
}

func affVal(id uint32, expiry int64) uint64 {
	return uint64(id)<<affIDShift | uint64(expiry)&affMSMask
}

// pin maps key h to member id until now+ttl (refreshed by later pins and
// lookups). It reports false when the window is full of live pins.
func (a *affinity) pin(h uint64, id uint32, now int64) bool {
	t := a.table()
	mask := uint64(len(t) - 1)
	v := affVal(id, now+a.ttl)
	// An existing pin of h is updated in place.
	for i := uint64(0); i < affinityWindow; i++ {
		s := &t[(h+i)&mask]
		if s.key.Load() == h && s.key.CompareAndSwap(h, affinityBusy) {
			s.val.Store(v)
			s.key.Store(h)
			return true
		}
	}
	for i := uint64(0); i < affinityWindow; i++ {
		s := &t[(h+i)&mask]
		k := s.key.Load()
		switch {
		case k == 0:
			if s.key.CompareAndSwap(0, affinityBusy) {
				s.val.Store(v)
				s.key.Store(h)
				return true
			}
		case k != affinityBusy && int64(s.val.Load()&affMSMask) < now:
			if s.key.CompareAndSwap(k, affinityBusy) {
				s.val.Store(v)
				s.key.Store(h)
				a.expired.Add(1)
				return true
			}
		}
	}
	a.rejected.Add(1)
	return false
}

// lookup returns the member id pinned for h, refreshing the pin's expiry
// when a quarter of its time to live has passed.
func (a *affinity) lookup(h uint64, now int64) (uint32, bool) {
	tp := a.slots.Load()
	if tp == nil {
		return 0, false
	}
	t := *tp
	mask := uint64(len(t) - 1)
	for i := uint64(0); i < affinityWindow; i++ {
		s := &t[(h+i)&mask]
		if s.key.Load() != h {
			continue
		}
		v := s.val.Load()
		if s.key.Load() != h {
			continue
		}
		exp := int64(v & affMSMask)
		if exp < now {
			a.expired.Add(1)
			return 0, false
		}
		id := uint32(v >> affIDShift)
		if exp-now < a.ttl*3/4 && s.key.CompareAndSwap(h, affinityBusy) {
			s.val.Store(affVal(id, now+a.ttl))
			s.key.Store(h)
		}
		return id, true
	}
	return 0, false
}

// unpin removes every pin of h.
func (a *affinity) unpin(h uint64) {
	tp := a.slots.Load()
	if tp == nil {
		return
	}
	t := *tp
	mask := uint64(len(t) - 1)
	for i := uint64(0); i < affinityWindow; i++ {
		s := &t[(h+i)&mask]
		if s.key.Load() == h && s.key.CompareAndSwap(h, affinityBusy) {
			s.val.Store(0)
			s.key.Store(0)
		}
	}
}

// live counts the unexpired pins (a scan of the table: for statistics,
// not for the calls' path).
func (a *affinity) live(now int64) int64 {
	tp := a.slots.Load()
	if tp == nil {
		return 0
	}
	var n int64
	for i := range *tp {
		s := &(*tp)[i]
		if k := s.key.Load(); k != 0 && k != affinityBusy && int64(s.val.Load()&affMSMask) >= now {
			n++
		}
	}
	return n
}
