//go:build !race

package payload

import (
	"strconv"
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

// TestMsgpackIDsOneAllocation: decoding the next request-headers event
// with a new correlation id sent as the request id too costs one
// allocation (the id; the request id shares it), counted exactly over
// 1,000 events with every other string unchanged (internal/allocs).
func TestMsgpackIDsOneAllocation(t *testing.T) {
	const n = 1000
	frames := make([][]byte, 2*n)
	for i := range frames {
		ev := mpSampleRequestHeaders()
		id := "5f0c2a9e-" + strconv.Itoa(100000+i)
		ev.Metadata.CorrelationID, ev.Metadata.RequestID = id, id
		frames[i] = AppendRequestHeadersMsgpack(nil, ev)
	}
	var v RequestHeadersEvent
	i := 0
	got := allocs.AtMost(t, "request-headers decode, request id = correlation id", n, 1, func() {
		if err := DecodeRequestHeadersMsgpack(frames[i%len(frames)], &v); err != nil {
			t.Fatal(err)
		}
		i++
	})
	t.Logf("%d allocations in %d decodes", got, n)
}
