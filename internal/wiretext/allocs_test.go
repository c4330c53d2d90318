//go:build !race

package wiretext

import "testing"

func TestNoAllocs(t *testing.T) {
	s, bad := "content-type: application/json", "caf\xe9 au lait"
	buf := make([]byte, 0, 64)
	if a := testing.AllocsPerRun(1000, func() {
		_ = Valid(s)
		_ = Len(bad)
		buf = Append(buf[:0], bad)
	}); a != 0 {
		t.Fatalf("%.1f allocs, want 0", a)
	}
}
