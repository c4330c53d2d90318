package headerset

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/agentwire/agentwire"
)

func group(h agentwire.Headers, pairs ...string) agentwire.Headers {
	var g Grouper
	h = h[:0]
	for i := 0; i+1 < len(pairs); i += 2 {
		h = g.Add(h, pairs[i], pairs[i+1])
	}
	return h
}

func TestGrouperOrder(t *testing.T) {
	got := group(nil, "b", "1", "a", "2", "b", "3", "c", "4", "a", "5")
	want := agentwire.Headers{{Name: "b", Values: []string{"1", "3"}}, {Name: "a", Values: []string{"2", "5"}}, {Name: "c", Values: []string{"4"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestGrouperIndex: past indexMin names the map takes over, and the
// grouping is the same as the scan's.
func TestGrouperIndex(t *testing.T) {
	var pairs []string
	var want agentwire.Headers
	for i := range 3 * indexMin {
		want = append(want, agentwire.Header{Name: "h" + strconv.Itoa(i), Values: []string{"x", "y"}})
	}
	for _, v := range []string{"x", "y"} {
		for i := range want {
			pairs = append(pairs, want[i].Name, v)
		}
	}
	if got := group(nil, pairs...); !reflect.DeepEqual(got, want) {
		t.Fatalf("grouping of %d names differs", len(want))
	}
}

// TestGrouperReusesStorage: stale values do not leak into storage that
// held a header list before (TestGrouperReusesStorageAllocs: nor does the
// grouping allocate).
func TestGrouperReusesStorage(t *testing.T) {
	h := group(nil, "a", "1", "b", "2", "a", "3", "c", "4")
	h = group(h, "z", "9", "a", "8")
	want := agentwire.Headers{{Name: "z", Values: []string{"9"}}, {Name: "a", Values: []string{"8"}}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %v", h)
	}
}
