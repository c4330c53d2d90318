package payload

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/agentwire/agentwire/internal/allocs"
)

// headerNamesDistinct reports whether no name of h occurs twice.
func headerNamesDistinct(h Headers) bool {
	seen := map[string]bool{}
	for _, x := range h {
		if seen[x.Name] {
			return false
		}
		seen[x.Name] = true
	}
	return true
}

// fuzzRequestHeadersEvent builds the request-headers event of the
// encoders' differential fuzz targets from data: its strings cut at
// byte 1 (URI, method, request id, traceparent, an optional field, then
// header names and values, in any order, repeats included).
func fuzzRequestHeadersEvent(data []byte) *RequestHeadersEvent {
	parts := bytes.Split(data, []byte{1})
	get := func(i int) string {
		if i < len(parts) {
			return string(parts[i])
		}
		return ""
	}
	e := mpBenchRequestHeaders()
	e.URI, e.Method, e.Metadata.RequestID, e.Metadata.Traceparent = get(0), get(1), get(2), get(3)
	if len(parts) > 4 && len(parts[4])%2 == 1 {
		e.Metadata.RouteID = Opt[string]{}
		e.Metadata.TLSCipher = Some(get(4))
	} else {
		e.Metadata.ServerName = Some(get(4))
	}
	e.Headers = e.Headers[:0]
	for i := 5; i < len(parts); i += 2 {
		e.Headers = append(e.Headers, Header{Name: get(i), Values: fuzzValues(get(i + 1))})
	}
	return e
}

// fuzzValues makes a header's values from one field of a fuzz input:
// "\x02" alone is no value at all, otherwise the field split at 0x02
// bytes; a value "\x03" N REST is REST (or "r") repeated to N*300 bytes,
// so that inputs reach str16 and str32 strings (up to 76,500 bytes).
func fuzzValues(field string) []string {
	if field == "\x02" {
		return []string{}
	}
	vs := strings.Split(field, "\x02")
	for i, v := range vs {
		if len(v) >= 2 && v[0] == 3 {
			n, rest := int(v[1])*300, v[2:]
			if rest == "" {
				rest = "r"
			}
			vs[i] = strings.Repeat(rest, n/len(rest)+1)[:n]
		}
	}
	return vs
}

// FuzzMsgpackRequestHeadersEncode is the differential test of the
// MessagePack request-headers fast writers: an event built from the
// input (fuzzRequestHeadersEvent: names in any order, repeated or not,
// any bytes) is encoded by AppendRequestHeadersMsgpack exactly as by the
// general encoder, and the fast entry takes every event whose names are
// distinct (up to headerSortSmallMax headers). testdata holds a found
// input: two empty names (repeated, found late, ok with the general
// encoder's bytes).
func FuzzMsgpackRequestHeadersEncode(f *testing.F) {
	f.Add([]byte("/a\x01GET\x01id\x01tp\x01opt\x01host\x01x\x01accept\x01*/*"))
	f.Add([]byte("/\x01G\xffT\x01\x01\x01\x01b\x01\x1f\x01a\x01\xc3\xa9\x01b\x01z"))
	f.Add([]byte("/\x01GET\x01\x01\x01\x01content-type\x01a\x01content-length\x011\x01\x01e"))
	// Several values, no value, a str16 and a str32 value, unsorted.
	f.Add([]byte("/\x01GET\x01\x01\x01\x01x-b\x01one\x02two\x02\x01a\x01\x02\x01c\x01\x03\x01ab\x01b\x01\x03\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := fuzzRequestHeadersEvent(data)
		want := mpAppendRequestHeadersGeneral([]byte("p"), e)
		if got := AppendRequestHeadersMsgpack([]byte("p"), e); !bytes.Equal(got, want) {
			t.Fatalf("fast path differs:\n got %q\nwant %q", got, want)
		}
		out, ok := mpAppendRequestHeadersFast([]byte("p"), e)
		// (A repeated name found late is written by the general
		// encoder with ok true; distinct names are never refused.)
		if !ok && headerNamesDistinct(e.Headers) && len(e.Headers) <= headerSortSmallMax {
			t.Fatalf("names %q: distinct, fast path refused them", e.Headers)
		}
		if ok && !bytes.Equal(out, want) || !ok && string(out) != "p" {
			t.Fatalf("fast entry ok=%v:\n got %q\nwant %q", ok, out, want)
		}
	})
}

// TestHeaderSortSmall compares headerSortSmall with a reference stable
// sort on random sets of up to headerSortSmallMax names (shared 8-byte
// prefixes, names shorter than the key, NUL and high bytes where the
// key's padding would be, repeats) and its dup with a count of the
// names.
func TestHeaderSortSmall(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	parts := []string{"", "a", "x-", "\x00", "accept", "accept-encoding", "content-", "ab\x00", "\xff", "zz", "abcdefgh"}
	var dups int
	for range 5000 {
		n := rng.IntN(headerSortSmallMax + 1)
		h := make(Headers, n)
		for i := range h {
			h[i].Name = parts[rng.IntN(len(parts))] + parts[rng.IntN(len(parts))]
		}
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortStableFunc(want, func(a, b int32) int { return strings.Compare(h[a].Name, h[b].Name) })
		var stack [headerSortSmallMax]int32
		got, ok := headerSortSmall(h, &stack)
		dup := !ok
		if !slices.Equal(got, want) {
			t.Fatalf("n=%d: got %v, want %v", n, got, want)
		}
		if dup != !headerNamesDistinct(h) {
			t.Fatalf("names %q: dup %v", h, dup)
		}
		if dup {
			dups++
		}
	}
	if dups < 500 || dups > 4500 {
		t.Fatalf("%d of 5000 sets with a repeated name: both sides not covered", dups)
	}
	many := make(Headers, headerSortSmallMax+1) // distinct names
	for i := range many {
		many[i].Name = string(rune('A' + i))
	}
	var stack [headerSortSmallMax]int32
	if _, ok := headerSortSmall(many, &stack); ok {
		t.Fatal("more than headerSortSmallMax headers accepted")
	}
}

// TestRequestHeadersUnsortedMatchesGeneral: events whose headers come in
// random order (names with shared 8-byte prefixes, NUL and high bytes,
// repeats, strings that need escaping or are not valid UTF-8, 0 to 3
// values, 0 to 40 headers: both sides of headerSortSmallMax) are written
// by both encoders exactly as by their general encoders, and the fast
// entries take (ok) every one whose names are distinct and few enough,
// so the sorted-index writers are what is compared.
func TestRequestHeadersUnsortedMatchesGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	names := []string{"host", "user-agent", "accept", "accept-encoding", "accept-language", "a", "\x00", "a\x00",
		"abcdefgh", "abcdefgh\x00", "abcdefghi", "\xff", "caf\u00e9", "bad\xff", "q\"uote", "x-forwarded-for", ""}
	values := []string{"v", "", "\u00e9t\u00e9", "\xff", "a\"b\\c", strings.Repeat("long-value-", 12), "\x01"}
	var fastMP, fastJS, unsorted int
	for it := range 20000 {
		e := mpBenchRequestHeaders()
		n := r.IntN(8)
		if it%10 == 0 {
			n = r.IntN(41)
		}
		e.Headers = nil
		for i := 0; i < n; i++ {
			name := names[r.IntN(len(names))]
			if r.IntN(3) > 0 {
				name += string(rune('a'+i%26)) + string(rune('a'+i/26)) // mostly distinct
			}
			var vs []string
			for range r.IntN(4) {
				vs = append(vs, values[r.IntN(len(values))])
			}
			e.Headers = append(e.Headers, Header{Name: name, Values: vs})
		}
		distinct := headerNamesDistinct(e.Headers)
		if !headerNamesAscending(e.Headers) && distinct {
			unsorted++
		}
		want := mpAppendRequestHeadersGeneral([]byte("p"), e)
		if got := AppendRequestHeadersMsgpack([]byte("p"), e); !bytes.Equal(got, want) {
			t.Fatalf("msgpack, names %q:\n got %q\nwant %q", e.Headers, got, want)
		}
		out, ok := mpAppendRequestHeadersFast([]byte("p"), e)
		if ok && !bytes.Equal(out, want) || !ok && string(out) != "p" {
			t.Fatalf("msgpack fast entry ok=%v, names %q:\n got %q\nwant %q", ok, e.Headers, out, want)
		}
		if distinct && n <= headerSortSmallMax && !ok {
			t.Fatalf("msgpack fast entry refused distinct names %q", e.Headers)
		}
		if ok {
			fastMP++
		}
		want = jsonAppendRequestHeadersGeneral([]byte("p"), e)
		if got := AppendRequestHeadersJSON([]byte("p"), e); !bytes.Equal(got, want) {
			t.Fatalf("JSON, names %q:\n got %q\nwant %q", e.Headers, got, want)
		}
		out, ok = jsonAppendRequestHeadersFast([]byte("p"), e)
		if ok && !bytes.Equal(out, want) || !ok && string(out) != "p" {
			t.Fatalf("JSON fast entry ok=%v, names %q:\n got %q\nwant %q", ok, e.Headers, out, want)
		}
		if ok != (distinct && n <= headerSortSmallMax || headerNamesAscending(e.Headers)) {
			t.Fatalf("JSON fast entry ok=%v for names %q", ok, e.Headers)
		}
		if ok {
			fastJS++
		}
	}
	if unsorted < 5000 || fastMP < 5000 || fastJS < 5000 {
		t.Fatalf("unsorted %d, msgpack fast %d, JSON fast %d: inputs do not cover the sorted-index writers", unsorted, fastMP, fastJS)
	}
}

// TestUnsortedRequestHeadersAllocs: the typical unsorted event (headers
// in a browser's order) costs no allocation in either encoder once the
// buffer has room: the sort index and its keys are on the stack.
func TestUnsortedRequestHeadersAllocs(t *testing.T) {
	e := mpSampleRequestHeaders()
	e.Headers = benchTypicalHeaders()
	buf := make([]byte, 0, 4096)
	allocs.Zero(t, "AppendRequestHeadersMsgpack, unsorted", 1000, func() {
		buf = AppendRequestHeadersMsgpack(buf[:0], e)
	})
	allocs.Zero(t, "AppendRequestHeadersJSON, unsorted", 1000, func() {
		buf = AppendRequestHeadersJSON(buf[:0], e)
	})
}
