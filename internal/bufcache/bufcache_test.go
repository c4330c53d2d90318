package bufcache

import (
	"sync"
	"testing"
)

func TestCacheOwnSlotFirst(t *testing.T) {
	var c Cache[[8]byte]
	if c.Get(3) != nil {
		t.Fatal("an empty cache returned a buffer")
	}
	a, b := new([8]byte), new([8]byte)
	if !c.Put(3, a) || !c.Put(5, b) {
		t.Fatal("Put into an empty cache failed")
	}
	if c.Get(5) != b || c.Get(5) != a || c.Get(5) != nil {
		t.Fatal("Get does not start at its own slot, or returned a buffer twice")
	}
}

func TestCacheBounded(t *testing.T) {
	var c Cache[[8]byte]
	for i := range Slots {
		if !c.Put(uint32(i), new([8]byte)) {
			t.Fatalf("Put %d failed with room left", i)
		}
	}
	if c.Put(0, new([8]byte)) {
		t.Fatal("Put succeeded into a full cache")
	}
}

// TestCacheConcurrent: under concurrent Get/Put no buffer is handed to two
// users at once (run with -race).
func TestCacheConcurrent(t *testing.T) {
	var c Cache[[8]byte]
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := c.Hint()
			for range 2000 {
				p := c.Get(h)
				if p == nil {
					p = new([8]byte)
				}
				p[0] = byte(g) // a shared buffer would race here
				if p[0] != byte(g) {
					t.Error("buffer shared")
				}
				c.Put(h, p)
			}
		}()
	}
	wg.Wait()
}
