//go:build !race

package allocs

import (
	"fmt"
	"strings"
	"testing"
)

// fakeTB records the failures reported to it instead of failing the test.
type fakeTB struct {
	testing.TB
	errors []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

var sink []byte

// everyTenth allocates on every tenth call and never otherwise.
func everyTenth() func() {
	i := 0
	return func() {
		i++
		if i%10 == 0 {
			sink = make([]byte, 64)
		}
	}
}

// TestZeroCatchesOneInTen: a function that allocates once every ten calls
// reads as 0 allocations per run to testing.AllocsPerRun (integer
// division), and must fail an exact claim of zero.
func TestZeroCatchesOneInTen(t *testing.T) {
	if a := testing.AllocsPerRun(1000, everyTenth()); a != 0 {
		t.Logf("testing.AllocsPerRun reports %v (expected its rounding to 0)", a)
	}
	// Exactly one allocation per ten calls: Count is exact. The warm-up
	// calls are the first min(n, Warm) of the sequence (a multiple of
	// ten), so the n counted calls hold n/10 multiples of ten.
	if got := Count(1000, everyTenth()); got != 100 {
		t.Fatalf("Count = %d, want exactly 100", got)
	}
	var f fakeTB
	Zero(&f, "one in ten", 100, everyTenth())
	if len(f.errors) != 1 || !strings.Contains(f.errors[0], "one in ten: 10 allocations in 100 runs (0.1000 per run; the lowest of 5 counts)") {
		t.Fatalf("Zero reported %q, want one failure with 10 allocations in 100 runs", f.errors)
	}
	// 0.1 per run is within a claim of 0.1, and not within 0.09.
	f = fakeTB{}
	if got := AtMost(&f, "one in ten", 100, 0.1, everyTenth()); got != 10 || len(f.errors) != 0 {
		t.Fatalf("AtMost(0.1) = %d, errors %q", got, f.errors)
	}
	AtMost(&f, "one in ten", 100, 0.09, everyTenth())
	if len(f.errors) != 1 {
		t.Fatalf("AtMost(0.09) reported %q, want one failure", f.errors)
	}
	// A function that never allocates passes.
	f = fakeTB{}
	Zero(&f, "nothing", 100, func() {})
	if len(f.errors) != 0 {
		t.Fatalf("a non-allocating function failed: %q", f.errors)
	}
}

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want float64
		lim  uint64
	}{
		{100, 0, 0},
		{100, 1, 100},
		{6400, 1 + 1.0/64, 6500},
		{1000, 0.1, 100},
		{1000, 1.0 / 3, 333},
	} {
		if got := Limit(tc.n, tc.want); got != tc.lim {
			t.Errorf("Limit(%d, %v) = %d, want %d", tc.n, tc.want, got, tc.lim)
		}
	}
}
