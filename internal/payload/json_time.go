package payload

import "time"

// jsonParseTimestamp interprets RequestMetadata.timestamp text. Rust keeps
// it as an arbitrary string; Go parses:
//
//   - RFC 3339 with any offset ("2026-06-12T09:27:43.123456789+00:00",
//     "...Z", 'T', 't' or ' ' between date and time, any number of fraction
//     digits, beyond nine truncated), including chrono's signed form of
//     years outside 0..9999 ("+10000-01-01T00:00:00+00:00");
//   - decimal epoch milliseconds ("1781256463123"), which the gRPC side uses.
//
// Anything else yields the zero time. The result is always in UTC.
func jsonParseTimestamp(b []byte) time.Time {
	if t, ok := jsonParseRFC3339(b); ok {
		return t
	}
	if ms, ok := jsonParseEpochMillis(b); ok {
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
}

func jsonParseEpochMillis(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 { // 18 digits always fit an int64
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// jsonDigits parses exactly n decimal digits at b[i:].
func jsonDigits(b []byte, i, n int) (int, bool) {
	if i+n > len(b) {
		return 0, false
	}
	v := 0
	for _, c := range b[i : i+n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func jsonParseRFC3339(b []byte) (time.Time, bool) {
	i := 0
	year := 0
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		// Signed year with at least four digits (chrono's extended form).
		j := 1
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j-1 < 4 || j-1 > 9 {
			return time.Time{}, false
		}
		y, _ := jsonDigits(b, 1, j-1)
		if b[0] == '-' {
			y = -y
		}
		year, i = y, j
	} else {
		y, ok := jsonDigits(b, 0, 4)
		if !ok {
			return time.Time{}, false
		}
		year, i = y, 4
	}
	month, ok1 := jsonDigits(b, i+1, 2)
	day, ok2 := jsonDigits(b, i+4, 2)
	if !ok1 || !ok2 || b[i] != '-' || b[i+3] != '-' {
		return time.Time{}, false
	}
	i += 6
	if i >= len(b) || (b[i] != 'T' && b[i] != 't' && b[i] != ' ') {
		return time.Time{}, false
	}
	hour, ok1 := jsonDigits(b, i+1, 2)
	minute, ok2 := jsonDigits(b, i+4, 2)
	sec, ok3 := jsonDigits(b, i+7, 2)
	if !ok1 || !ok2 || !ok3 || b[i+3] != ':' || b[i+6] != ':' {
		return time.Time{}, false
	}
	i += 9
	ns := 0
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		scale := 100_000_000
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			ns += int(b[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return time.Time{}, false
		}
	}
	if i >= len(b) {
		return time.Time{}, false
	}
	offset := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		oh, ok1 := jsonDigits(b, i+1, 2)
		om, ok2 := jsonDigits(b, i+4, 2)
		if !ok1 || !ok2 || b[i+3] != ':' || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, false
	}
	if i != len(b) {
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > jsonDaysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, ns, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func jsonDaysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
