//go:build !race

package payload

import (
	"testing"
	"time"

	"github.com/agentwire/agentwire/internal/allocs"
)

func TestAppendDateTimeAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	tm := time.Unix(1700000000, 5)
	allocs.Zero(t, "appendDateTime", 1000, func() {
		tm = tm.Add(time.Second) // a new second every run: the store path
		buf, _ = appendDateTime(buf[:0], tm)
		buf, _ = appendDateTime(buf[:0], tm) // and the hit path
	})
}

func TestHeaderSortIndexAllocs(t *testing.T) {
	h := benchTypicalHeaders()
	idx := make([]int32, len(h))
	allocs.Zero(t, "headerSortIndex", 1000, func() { headerSortIndex(h, idx) })
}
