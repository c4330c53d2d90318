package payload

import (
	"sync/atomic"
	"time"
)

// A one-entry cache of the "YYYY-MM-DDTHH:MM:SS" text of the last whole
// UTC second formatted (a proxy stamps requests with the current time, so
// consecutive events share the second). It is a sequence lock over atomic
// words, safe for concurrent use: a reader takes the text only when the
// sequence number is even and unchanged around its reads, and a writer
// that loses the race to take the lock simply does not store.
var dateTimeCache struct {
	seq atomic.Uint64
	key atomic.Int64     // unix second
	txt [3]atomic.Uint64 // 19 bytes of text, little-endian
}

// Unix seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the
// range with a 4-digit year.
const (
	minDateTimeSec = -62167219200
	maxDateTimeSec = 253402300799
)

// appendDateTime appends t's UTC "YYYY-MM-DDTHH:MM:SS" (19 bytes) when t's
// year is in 0..9999 and returns ok; otherwise it appends nothing.
func appendDateTime(dst []byte, t time.Time) ([]byte, bool) {
	sec := t.Unix()
	if sec < minDateTimeSec || sec > maxDateTimeSec {
		return dst, false
	}
	c := &dateTimeCache
	if s1 := c.seq.Load(); s1&1 == 0 && c.key.Load() == sec {
		w0, w1, w2 := c.txt[0].Load(), c.txt[1].Load(), c.txt[2].Load()
		if c.seq.Load() == s1 {
			n := len(dst)
			if cap(dst)-n >= 19 {
				// The text goes straight into dst's room in three
				// word stores (no copy through a stack buffer, whose
				// read of word stores would stall on store
				// forwarding); the third covers bytes 11 to 18, so
				// nothing past the 19 bytes is written.
				b := dst[n : n+19]
				putLE64(b[0:], w0)
				putLE64(b[8:], w1)
				putLE64(b[11:], w1>>24|w2<<40)
				return dst[:n+19], true
			}
			var b [24]byte
			putLE64(b[0:], w0)
			putLE64(b[8:], w1)
			putLE64(b[16:], w2)
			return append(dst, b[:19]...), true
		}
	}
	start := len(dst)
	u := t.UTC()
	year, month, day := u.Date()
	hour, minute, second := u.Clock()
	dst = appendYMDHMS(dst, year, int(month), day, hour, minute, second)
	if s := c.seq.Load(); s&1 == 0 && c.seq.CompareAndSwap(s, s+1) {
		var b [24]byte
		copy(b[:], dst[start:])
		c.key.Store(sec)
		c.txt[0].Store(getLE64(b[0:]))
		c.txt[1].Store(getLE64(b[8:]))
		c.txt[2].Store(getLE64(b[16:]))
		c.seq.Store(s + 2)
	}
	return dst, true
}

func putLE64(b []byte, v uint64) {
	_ = b[7]
	b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7] =
		byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
}

func getLE64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// appendYMDHMS appends YYYY-MM-DDTHH:MM:SS (the year zero-padded to at
// least four digits; its sign, if any, is the caller's).
func appendYMDHMS(dst []byte, year, month, day, hour, minute, second int) []byte {
	dst = jsonAppendPadded(dst, year, 4)
	dst = append(dst, '-')
	dst = jsonAppendPadded(dst, month, 2)
	dst = append(dst, '-')
	dst = jsonAppendPadded(dst, day, 2)
	dst = append(dst, 'T')
	dst = jsonAppendPadded(dst, hour, 2)
	dst = append(dst, ':')
	dst = jsonAppendPadded(dst, minute, 2)
	dst = append(dst, ':')
	return jsonAppendPadded(dst, second, 2)
}
