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

// TestMsgpackRefusedFastPathAllocs: an event whose names are out of order
// where their first bytes are not (so the fast path has reserved room
// before it refuses it), appended again and again into the buffer the
// previous call returned, starting from one just large enough for the
// encoding: the general encoder writes into the room the fast path
// reserved, which the caller keeps, so only the first call allocates
// (writing into the caller's too-small buffer instead allocated on every
// call, the fast path's reservation being larger than the encoding).
func TestMsgpackRefusedFastPathAllocs(t *testing.T) {
	e := mpBenchRequestHeaders()
	e.Headers[1], e.Headers[2] = e.Headers[2], e.Headers[1] // accept-language before accept-encoding
	want := mpAppendRequestHeadersGeneral(nil, e)
	buf := make([]byte, 0, len(want))
	buf = AppendRequestHeadersMsgpack(buf[:0], e)
	allocs.Zero(t, "AppendRequestHeadersMsgpack, names out of order", 1000, func() {
		buf = AppendRequestHeadersMsgpack(buf[:0], e)
	})
	if string(buf) != string(want) {
		t.Fatal("output differs from the general encoder")
	}
}
