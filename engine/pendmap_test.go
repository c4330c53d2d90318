package engine

import (
	"fmt"
	"sync"
	"testing"
)

func newTestPending(id string) *pending {
	return &pending{id: id, done: make(chan error, 1)}
}

// TestPendingMapOps: store refuses a second entry under an id; the entry
// is found by id (also through a different string of equal bytes, as the
// reader's view of a receive buffer is), removed exactly once whichever way
// (loadAndDelete, remove), and remove goes by identity: an entry that
// replaced a removed one under the same id is not removed for it.
func TestPendingMapOps(t *testing.T) {
	m := newPendingMap(8)
	a := newTestPending("req-1")
	if !m.store(a) {
		t.Fatal("first store refused")
	}
	if m.store(newTestPending("req-1")) {
		t.Fatal("duplicate id stored")
	}
	if got, ok := m.load(string([]byte("req-1"))); !ok || got != a {
		t.Fatalf("load: %p %v, want %p", got, ok, a)
	}
	if m.size() != 1 {
		t.Fatalf("size %d, want 1", m.size())
	}
	if got := m.loadAndDelete(string([]byte("req-1"))); got != a {
		t.Fatalf("loadAndDelete: %p, want %p", got, a)
	}
	if m.loadAndDelete("req-1") != nil || m.remove(a) {
		t.Fatal("removed twice")
	}
	b := newTestPending("req-1")
	if !m.store(b) {
		t.Fatal("store after removal refused")
	}
	if m.remove(a) {
		t.Fatal("remove of a stale entry removed its successor")
	}
	if !m.remove(b) || m.size() != 0 {
		t.Fatal("remove by identity failed")
	}
}

// TestPendingMapGrowAndSweep: a map sized for 8 entries takes 5000 (its
// shards' chains grow), finds each, and removeIf takes exactly the entries
// it selects, as a list of them all, leaving the rest findable.
func TestPendingMapGrowAndSweep(t *testing.T) {
	m := newPendingMap(8)
	const n = 5000
	ps := make([]*pending, n)
	for i := range ps {
		ps[i] = newTestPending(fmt.Sprintf("id-%d", i))
		ps[i].deadline.Store(int64(i % 2)) // odd ones "expired"
		if !m.store(ps[i]) {
			t.Fatalf("store %d refused", i)
		}
	}
	if m.size() != n {
		t.Fatalf("size %d, want %d", m.size(), n)
	}
	for i, p := range ps {
		if got, ok := m.load(p.id); !ok || got != p {
			t.Fatalf("entry %d not found after growth", i)
		}
	}
	seen := make(map[*pending]bool)
	for p := m.removeIf(func(p *pending) bool { return p.deadline.Load() == 1 }); p != nil; p = p.next {
		if seen[p] || p.deadline.Load() != 1 {
			t.Fatalf("sweep returned %s wrongly", p.id)
		}
		seen[p] = true
	}
	if len(seen) != n/2 || m.size() != n/2 {
		t.Fatalf("sweep took %d, left %d; want %d each", len(seen), m.size(), n/2)
	}
	for i, p := range ps {
		_, ok := m.load(p.id)
		if ok == (i%2 == 1) {
			t.Fatalf("entry %d: present %v after the sweep", i, ok)
		}
	}
	all := 0
	for p := m.removeIf(func(*pending) bool { return true }); p != nil; p = p.next {
		all++
	}
	if all != n/2 || m.size() != 0 {
		t.Fatalf("removing all took %d, left %d", all, m.size())
	}
}

// TestPendingMapConcurrent: callers storing and removing their own entries,
// a reader claiming them by id and a sweeper removing some, all at once:
// every entry is removed exactly once (run under -race).
func TestPendingMapConcurrent(t *testing.T) {
	m := newPendingMap(16)
	const workers, per = 8, 2000
	var removed [workers][per]int32
	var mu sync.Mutex
	count := func(p *pending) {
		var w, i int
		fmt.Sscanf(p.id, "%d-%d", &w, &i)
		mu.Lock()
		removed[w][i]++
		mu.Unlock()
	}
	ids := make(chan string, 64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				p := newTestPending(fmt.Sprintf("%d-%d", w, i))
				if !m.store(p) {
					t.Errorf("store %s refused", p.id)
					return
				}
				if i%3 == 0 {
					if m.remove(p) {
						count(p)
					}
					continue
				}
				ids <- p.id
			}
		})
	}
	var rwg sync.WaitGroup
	rwg.Go(func() {
		for id := range ids {
			if p := m.loadAndDelete(id); p != nil {
				count(p)
			}
		}
	})
	rwg.Go(func() {
		for range 200 {
			for p := m.removeIf(func(p *pending) bool { return len(p.id)%2 == 0 }); p != nil; p = p.next {
				count(p)
			}
		}
	})
	wg.Wait()
	close(ids)
	rwg.Wait()
	for p := m.removeIf(func(*pending) bool { return true }); p != nil; p = p.next {
		count(p)
	}
	for w := range workers {
		for i := range per {
			if removed[w][i] != 1 {
				t.Fatalf("entry %d-%d removed %d times", w, i, removed[w][i])
			}
		}
	}
}
