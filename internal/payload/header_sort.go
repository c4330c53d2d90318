package payload

import (
	"slices"
	"strings"
)

// headerSortIndex fills idx (len(h) long) with the positions of h in
// stable byte-wise name order (the order both encoders write header maps
// in). Sets of up to 64 entries are sorted by insertion on an 8-byte
// big-endian prefix key of each name, so most comparisons are one integer
// comparison; equal keys fall back to comparing the names. The caller's
// idx is returned (no allocation).
func headerSortIndex(h Headers, idx []int32) []int32 {
	sorted := true
	for i := range idx {
		idx[i] = int32(i)
		if i > 0 && h[i].Name < h[i-1].Name {
			sorted = false
		}
	}
	if sorted {
		return idx
	}
	if len(idx) > 64 {
		slices.SortStableFunc(idx, func(a, b int32) int { return strings.Compare(h[a].Name, h[b].Name) })
		return idx
	}
	var keys [64]uint64
	for i := range idx {
		keys[i] = namePrefixKey(h[i].Name)
	}
	for i := 1; i < len(idx); i++ {
		x := idx[i]
		kx := keys[x]
		j := i
		for ; j > 0; j-- {
			y := idx[j-1]
			if ky := keys[y]; ky < kx || (ky == kx && h[y].Name <= h[x].Name) {
				break
			}
			idx[j] = y
		}
		idx[j] = x
	}
	return idx
}

// namePrefixKey returns the first 8 bytes of s as a big-endian integer,
// zero-padded. key(a) < key(b) implies a < b byte-wise (a zero pad sorts
// like the end of a shorter string), so only equal keys need a full
// comparison.
func namePrefixKey(s string) uint64 {
	if len(s) >= 8 {
		return uint64(s[0])<<56 | uint64(s[1])<<48 | uint64(s[2])<<40 | uint64(s[3])<<32 |
			uint64(s[4])<<24 | uint64(s[5])<<16 | uint64(s[6])<<8 | uint64(s[7])
	}
	var k uint64
	for i := 0; i < len(s); i++ {
		k |= uint64(s[i]) << (56 - 8*uint(i))
	}
	return k
}
