package engine

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/puzpuzpuz/xsync/v4"
)

// BenchmarkPendingMap compares the session's pendingMap with the
// xsync.Map it replaced, in the pattern of a round trip: a caller
// registers its pending under a fresh 36-byte correlation id and the
// reader removes it by id when the reply arrives, with 64 other requests
// waiting in the map. RunParallel spreads the pairs over GOMAXPROCS
// goroutines, as callers and the reader spread over the cores.
//
//	go test -run '^$' -bench '^BenchmarkPendingMap$' -count 8 ./engine | benchstat -col /map -
func BenchmarkPendingMap(b *testing.B) {
	const ids = 4096
	// entries gives each parallel goroutine its own ids (ids are unique
	// among the requests a map holds at once).
	var worker atomic.Int64
	entries := func() []pending {
		w := worker.Add(1)
		ps := make([]pending, ids)
		for i := range ps {
			ps[i].id = "0b9f2c6e-5d1a-4c3b-" + strconv.FormatInt(1000+w, 10) + "-" + strconv.FormatInt(int64(100000000000+i), 10)
		}
		return ps
	}
	waiting := make([]*pending, 64)
	for i := range waiting {
		waiting[i] = &pending{id: "waiting-" + strconv.Itoa(i)}
	}
	b.Run("map=xsync", func(b *testing.B) {
		m := xsync.NewMap[string, *pending](xsync.WithPresize(64))
		for _, p := range waiting {
			m.Store(p.id, p)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ps := entries()
			i := 0
			for pb.Next() {
				p := &ps[i%ids]
				if _, loaded := m.LoadOrStore(p.id, p); loaded {
					b.Fatal("duplicate id")
				}
				if q, ok := m.LoadAndDelete(p.id); !ok || q != p {
					b.Fatal("lost entry")
				}
				i++
			}
		})
	})
	b.Run("map=sharded", func(b *testing.B) {
		m := newPendingMap(64)
		for _, p := range waiting {
			m.store(p)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ps := entries()
			i := 0
			for pb.Next() {
				p := &ps[i%ids]
				if !m.store(p) {
					b.Fatal("duplicate id")
				}
				if q := m.loadAndDelete(p.id); q != p {
					b.Fatal("lost entry")
				}
				i++
			}
		})
	})
}
