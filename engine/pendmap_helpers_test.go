package engine

// Test-only accessors of pendingMap.

// load returns the entry registered under id without removing it (tests
// only; the entry may be completed and recycled at once).
func (m *pendingMap) load(id string) (*pending, bool) {
	h := m.hash(id)
	sh := m.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for p := sh.chains[h&uint64(len(sh.chains)-1)]; p != nil; p = p.next {
		if p.hash == h && p.id == id {
			return p, true
		}
	}
	return nil, false
}

// size returns the number of entries (a snapshot, shard by shard).
func (m *pendingMap) size() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}
