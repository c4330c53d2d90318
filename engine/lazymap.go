package engine

import (
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v4"
)

// lazyMap is an xsync.Map created on first use. A session's maps that most
// connections never use (the pings waiting for their pong, the requests
// paused one by one) cost about 2.8 KiB each when made up front, which is
// most of what an idle connection holds besides its queue; made on demand
// they cost nothing until an agent or a Ping needs them. The zero value is
// ready to use and safe for concurrent use.
type lazyMap[K comparable, V any] struct {
	p atomic.Pointer[xsync.Map[K, V]]
}

// get returns the map, creating it if it does not exist yet.
func (l *lazyMap[K, V]) get() *xsync.Map[K, V] {
	if m := l.p.Load(); m != nil {
		return m
	}
	m := xsync.NewMap[K, V]()
	if l.p.CompareAndSwap(nil, m) {
		return m
	}
	return l.p.Load()
}

// peek returns the map, or nil when nothing was ever stored (nothing to
// find in it then).
func (l *lazyMap[K, V]) peek() *xsync.Map[K, V] { return l.p.Load() }

// load looks k up without creating the map.
func (l *lazyMap[K, V]) load(k K) (v V, ok bool) {
	if m := l.p.Load(); m != nil {
		return m.Load(k)
	}
	return v, false
}

// loadAndDelete removes k without creating the map.
func (l *lazyMap[K, V]) loadAndDelete(k K) (v V, ok bool) {
	if m := l.p.Load(); m != nil {
		return m.LoadAndDelete(k)
	}
	return v, false
}

// size returns the number of entries (0 before the map exists).
func (l *lazyMap[K, V]) size() int {
	if m := l.p.Load(); m != nil {
		return m.Size()
	}
	return 0
}
