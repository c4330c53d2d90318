// Package heapprof sums the heap in use by allocation site, for tests that
// count a package's memory exactly (with runtime.MemProfileRate set to 1
// before the allocations they count, and a collection before the sum).
package heapprof

import (
	"runtime"
	"strings"
)

// InUse returns the bytes in use, as of the last collection, of the
// allocations whose stacks keep accepts.
func InUse(keep func(stk []uintptr) bool) int64 {
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, true)
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	var sum int64
	for i := range recs {
		if inUse := recs[i].InUseBytes(); inUse > 0 && keep(recs[i].Stack()) {
			sum += inUse
		}
	}
	return sum
}

// Passes reports whether a frame of stk is a function whose name starts
// with prefix (a package path and a dot), outside that package's test
// files.
func Passes(stk []uintptr, prefix string) bool {
	frames := runtime.CallersFrames(stk)
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, prefix) && !strings.HasSuffix(f.File, "_test.go") {
			return true
		}
		if !more {
			return false
		}
	}
}

// Has reports whether a frame of stk is the function fn.
func Has(stk []uintptr, fn string) bool {
	frames := runtime.CallersFrames(stk)
	for {
		f, more := frames.Next()
		if f.Function == fn {
			return true
		}
		if !more {
			return false
		}
	}
}
