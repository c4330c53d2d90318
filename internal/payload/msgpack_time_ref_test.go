package payload

import (
	"reflect"
	"strconv"
	"testing"
	"time"
)

// mpParseRFC3339Ref is the time.Date-based parser mpParseRFC3339 replaced,
// kept as the reference it must match.
func mpParseRFC3339Ref(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
		s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(p []byte) (int, bool) {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(s[0:4])
	month, ok2 := num(s[5:7])
	day, ok3 := num(s[8:10])
	hour, ok4 := num(s[11:13])
	minute, ok5 := num(s[14:16])
	sec, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > mpDaysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := s[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			if i <= 9 {
				nsec = nsec*10 + int(rest[i]-'0')
			}
			i++
		}
		if i == 1 {
			return time.Time{}, false
		}
		for d := i - 1; d < 9; d++ {
			nsec *= 10
		}
		rest = rest[i:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(rest[1:3])
		om, ok2 := num(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// TestMpParseRFC3339MatchesTimeDate: the parser gives the same time.Time
// value (reflect.DeepEqual: wall, ext and location) as the time.Date-based
// reference for every day of the years at the edges of the range and of
// centuries and leap rules, with offsets and fractions, and rejects
// what the reference rejects.
func TestMpParseRFC3339MatchesTimeDate(t *testing.T) {
	var years []int
	for _, y := range []int{0, 1, 2, 3, 4, 99, 100, 101, 399, 400, 401, 1582, 1899, 1900, 1901, 1968, 1969,
		1970, 1971, 1999, 2000, 2001, 2024, 2025, 2026, 2099, 2100, 2101, 2399, 2400, 9996, 9999} {
		years = append(years, y)
	}
	suffixes := []string{"Z", "z", "+00:00", "-00:00", "+05:30", "-12:45", "+23:59", "-23:59",
		".5Z", ".123+00:00", ".123456-01:00", ".123456789Z", ".1234567891234+02:00"}
	n := 0
	for _, y := range years {
		for m := 1; m <= 12; m++ {
			for d := 1; d <= 31; d++ {
				date := []byte(mpTSPad4(y) + "-" + mpTSPad2(m) + "-" + mpTSPad2(d) + "T" + mpTSPad2((d*7)%24) + ":" + mpTSPad2((d*13)%60) + ":" + mpTSPad2((m*d)%60))
				for i, suf := range suffixes {
					if i > 2 && d%5 != i%5 {
						continue
					}
					in := append(date[:len(date):len(date)], suf...)
					got, ok := mpParseRFC3339(in)
					want, wantOK := mpParseRFC3339Ref(in)
					if ok != wantOK || !reflect.DeepEqual(got, want) {
						t.Fatalf("%s: got %v %v (%#v), want %v %v (%#v)", in, got, ok, got, want, wantOK, want)
					}
					n++
				}
			}
		}
	}
	for _, in := range []string{"2025-02-29T00:00:00Z", "2024-02-30T00:00:00Z", "2025-13-01T00:00:00Z",
		"2025-01-01T24:00:00Z", "2025-01-01T00:60:00Z", "2025-01-01T00:00:60Z", "2025-01-01T00:00:00+24:00",
		"2025-01-01T00:00:00+00:60", "2025-01-01T00:00:00.Z", "2025-01-01T00:00:00", "2025-01-01 00:00:00Z",
		"2025-01-0aT00:00:00Z", "2025-01-01T00:00:00+0a:00", "/025-01-01T00:00:00Z", "2025-01-01T00:00:00Z "} {
		got, ok := mpParseRFC3339([]byte(in))
		want, wantOK := mpParseRFC3339Ref([]byte(in))
		if ok != wantOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %v %v, want %v %v", in, got, ok, want, wantOK)
		}
	}
	t.Logf("%d dates compared", n)
}

func mpTSPad2(v int) string { return mpTSPad(v, 2) }
func mpTSPad4(v int) string { return mpTSPad(v, 4) }
func mpTSPad(v, w int) string {
	s := strconv.Itoa(v)
	for len(s) < w {
		s = "0" + s
	}
	return s
}

// FuzzMpParseRFC3339 compares the parser with the time.Date-based
// reference on any input.
func FuzzMpParseRFC3339(f *testing.F) {
	for _, s := range []string{"2025-01-01T00:00:00+00:00", "2026-06-12T09:27:43.123456789+00:00",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999-23:59", "2024-02-29T12:00:00.5z"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := mpParseRFC3339(in)
		want, wantOK := mpParseRFC3339Ref(in)
		if ok != wantOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %v %v, want %v %v", in, got, ok, want, wantOK)
		}
	})
}

// BenchmarkMpParseRFC3339 parses the timestamp the benchmark workload
// sends (new: the parser; ref: the time.Date-based one it replaced).
func BenchmarkMpParseRFC3339(b *testing.B) {
	in := []byte("2025-01-01T00:00:00+00:00")
	for _, p := range []struct {
		name  string
		parse func([]byte) (time.Time, bool)
	}{{"new", mpParseRFC3339}, {"ref", mpParseRFC3339Ref}} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				if _, ok := p.parse(in); !ok {
					b.Fatal("not parsed")
				}
			}
		})
	}
}
