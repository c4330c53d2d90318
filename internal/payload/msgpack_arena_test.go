package payload

import (
	"strconv"
	"strings"
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

// TestMsgpackArenaStringsStay: the strings the request-headers decoder
// makes in an arena stay what they were through later decodes into the
// same destination and arena (bytes handed out are never written again),
// over enough distinct events to fill several chunks, with a changing
// URI too and a string too long to share a chunk, and through Releases
// that pass a chunk on to a second arena (decoding into a destination of
// its own) which appends to it; and with the arena the fast path
// allocates only its chunks.
func TestMsgpackArenaStringsStay(t *testing.T) {
	var v, v2 RequestHeadersEvent
	var ar, ar2 MsgpackArena
	type kept struct{ cid, uri, want, wantURI string }
	var all []kept
	long := strings.Repeat("u", msgpackArenaMaxShared+1)
	for i := range 1000 {
		e := mpBenchRequestHeaders()
		e.Metadata.CorrelationID = "cid-" + strconv.Itoa(i)
		e.Metadata.RequestID = e.Metadata.CorrelationID
		e.URI = "/orders/" + strconv.Itoa(i*7)
		if i%100 == 0 {
			e.URI = "/" + long
		}
		in := AppendRequestHeadersMsgpack(nil, e)
		dst, a := &v, &ar
		if i%3 == 2 {
			dst, a = &v2, &ar2
		}
		top, topOK, err := DecodeRequestHeadersMsgpackRoutedIn(in, dst, a)
		if err != nil || !topOK || string(top) != e.Metadata.CorrelationID {
			t.Fatalf("event %d: %v, top %q %v", i, err, top, topOK)
		}
		if dst.Metadata.CorrelationID != e.Metadata.CorrelationID || dst.URI != e.URI || dst.Metadata.RequestID != dst.Metadata.CorrelationID {
			t.Fatalf("event %d decoded as %q %q", i, dst.Metadata.CorrelationID, dst.URI)
		}
		all = append(all, kept{dst.Metadata.CorrelationID, dst.URI, e.Metadata.CorrelationID, e.URI})
		if i%5 == 4 {
			a.Release()
		}
	}
	for i, k := range all {
		if k.cid != k.want || k.uri != k.wantURI {
			t.Fatalf("event %d: kept strings now %q %q, want %q %q", i, k.cid, k.uri, k.want, k.wantURI)
		}
	}

	// Allocations, counted exactly: events alternating between two ids
	// (and two URIs) store two strings each, all in chunks.
	var ins [2][]byte
	for i := range ins {
		e := mpBenchRequestHeaders()
		e.Metadata.CorrelationID = "alternating-id-" + strconv.Itoa(i)
		e.Metadata.RequestID = e.Metadata.CorrelationID
		e.URI = "/alternating/" + strconv.Itoa(i)
		ins[i] = AppendRequestHeadersMsgpack(nil, e)
	}
	i := 0
	run := func() {
		if _, _, err := DecodeRequestHeadersMsgpackRoutedIn(ins[i%2], &v, &ar); err != nil {
			t.Fatal(err)
		}
		i++
	}
	// About 30 bytes an event (the id and the URI, 15 and 13 bytes): a
	// chunk of 4 KiB every 136 events; without the arena, 2 per event.
	const n = 4096
	got := allocs.AtMost(t, "allocations per decode", n, 1.0/128, run)
	t.Logf("%d allocations in %d decodes", got, n)
}
