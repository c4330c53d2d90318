package payload

import (
	"bytes"
	"math"
	"testing"
	"time"
)

// TestJSONRequestHeadersFastExtremes: the JSON fast path's size bound holds
// for the longest fixed parts (every optional field null, the widest port,
// a one-byte traceparent, no headers) with timestamps at the ends of
// time.Time's range (a 12-digit year, a 9-digit fraction), and writes the
// general encoder's bytes for them, into an empty buffer and after other
// output.
func TestJSONRequestHeadersFastExtremes(t *testing.T) {
	for _, ts := range []time.Time{
		time.Unix(math.MaxInt64, 999999999).UTC(),
		time.Unix(math.MinInt64, 0).UTC(),
		time.Unix(math.MinInt64/2, 1).UTC(),
		time.Date(-9999, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		{},
	} {
		ev := RequestHeadersEvent{Metadata: RequestMetadata{ClientPort: 65535, Traceparent: "x", Timestamp: ts}}
		for _, prefix := range [][]byte{nil, []byte("prefix")} {
			want := jsonAppendRequestHeadersGeneral(bytes.Clone(prefix), &ev)
			got, ok := jsonAppendRequestHeadersFast(bytes.Clone(prefix), &ev)
			if !ok {
				t.Fatalf("%v: fast path refused an event without headers", ts)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%v:\nfast    %s\ngeneral %s", ts, got, want)
			}
		}
	}
}
