package payload

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestHeaderSortIndex compares the prefix-key insertion sort with a
// reference stable sort on random sets: shared prefixes, names shorter and
// longer than the 8-byte key, NUL bytes (the key's padding value),
// repeated names (stability) and sizes on both sides of 64.
func TestHeaderSortIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	parts := []string{"", "a", "x-", "\x00", "accept", "accept-encoding", "content-", "ab\x00", "\xff", "zz"}
	for iter := range 3000 {
		n := rng.IntN(80)
		if iter%3 == 0 {
			n = rng.IntN(20)
		}
		h := make(Headers, n)
		for i := range h {
			h[i].Name = parts[rng.IntN(len(parts))] + parts[rng.IntN(len(parts))] + parts[rng.IntN(len(parts))]
		}
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortStableFunc(want, func(a, b int32) int { return strings.Compare(h[a].Name, h[b].Name) })
		got := headerSortIndex(h, make([]int32, n))
		if !slices.Equal(got, want) {
			names := make([]string, n)
			for i, k := range got {
				names[i] = h[k].Name
			}
			t.Fatalf("n=%d: got %v (%q), want %v", n, got, names, want)
		}
	}
}

// benchTypicalHeaders is 15 request headers in the order a browser sends
// them (not sorted), as in the load generator's workload.
func benchTypicalHeaders() Headers {
	names := []string{"host", "user-agent", "accept", "accept-language", "accept-encoding", "referer",
		"content-type", "content-length", "origin", "connection", "cookie", "cache-control",
		"authorization", "x-forwarded-for", "x-request-id"}
	h := make(Headers, len(names))
	for i, n := range names {
		h[i] = Header{Name: n, Values: []string{"value-" + n + "-abcdefghijklmnop"}}
	}
	return h
}

// BenchmarkEncodeTypicalHeaders encodes a request-headers event whose 15
// headers arrive unsorted, in both encodings.
func BenchmarkEncodeTypicalHeaders(b *testing.B) {
	e := mpSampleRequestHeaders()
	e.Headers = benchTypicalHeaders()
	buf := make([]byte, 0, 4096)
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendRequestHeadersJSON(buf[:0], e)
		}
	})
	b.Run("msgpack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendRequestHeadersMsgpack(buf[:0], e)
		}
	})
}
