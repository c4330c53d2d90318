package payload

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestMsgpackFormatTimestamp compares the direct formatter with
// time.AppendFormat (the rendering it replaces) over random instants,
// including years outside 0..9999 and every fraction width.
func TestMsgpackFormatTimestamp(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ref := func(tm time.Time) string {
		tm = tm.UTC()
		out := tm.AppendFormat(nil, "2006-01-02T15:04:05")
		ns := tm.Nanosecond()
		switch {
		case ns == 0:
		case ns%1_000_000 == 0:
			out = append(out, tm.Format(".000")...)
		case ns%1_000 == 0:
			out = append(out, tm.Format(".000000")...)
		default:
			out = append(out, tm.Format(".000000000")...)
		}
		return string(out) + "+00:00"
	}
	for i := range 20000 {
		sec := rng.Int64N(400_000_000_000) - 100_000_000_000 // about year -1200 .. 14600
		ns := rng.Int64N(1_000_000_000)
		switch i % 4 {
		case 0:
			ns = 0
		case 1:
			ns -= ns % 1_000_000
		case 2:
			ns -= ns % 1_000
		}
		tm := time.Unix(sec, ns).In(time.FixedZone("x", 3600))
		if got, want := string(mpFormatTimestamp(nil, tm)), ref(tm); got != want {
			t.Fatalf("%v: got %q, want %q", tm, got, want)
		}
	}
}
