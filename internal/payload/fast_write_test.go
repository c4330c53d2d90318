package payload

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// fastTestEvents returns request-headers events with sorted header names
// (the fast paths' precondition) covering every length class, optional
// field and special byte the fast writers must hand back to the general
// encoders.
func fastTestEvents() []*RequestHeadersEvent {
	var out []*RequestHeadersEvent
	base := mpBenchRequestHeaders()
	out = append(out, base)
	strs := []string{"", "a", "ab", "abc", "abcd", "abcde", "abcdefg", "abcdefgh", "abcdefghi",
		strings.Repeat("x", 31), strings.Repeat("y", 32), strings.Repeat("z", 255), strings.Repeat("w", 256),
		strings.Repeat("v", 70000), "caf\u00e9", "bad\xffutf8", "quote\"", "back\\slash", "ctl\x01", "tab\tx",
		"\x7f", "12345678\x80", strings.Repeat("\"", 5000), strings.Repeat("\xff", 3000), strings.Repeat("\x01", 300), "1234567\"", "\u2028", "<&>/"}
	for i, s := range strs {
		e := mpBenchRequestHeaders()
		switch i % 6 {
		case 0:
			e.URI = s
		case 1:
			e.Headers[3].Values = []string{s, "v2"}
		case 2:
			e.Metadata.Traceparent = s
			e.Metadata.ServerName = Opt[string]{}
		case 3:
			e.Metadata.TLSCipher = Some(s)
			e.Headers[0].Name = s
			if s >= e.Headers[1].Name {
				e.Headers = e.Headers[1:]
			}
		case 4:
			e.Metadata.CorrelationID = s
			e.Metadata.RouteID = Opt[string]{}
		case 5:
			e.Method = s
			e.Headers[14].Values = nil
		}
		out = append(out, e)
	}
	for _, port := range []uint16{0, 127, 128, 255, 256, 65535} {
		e := mpBenchRequestHeaders()
		e.Metadata.ClientPort = port
		out = append(out, e)
	}
	for _, ts := range []time.Time{{}, time.Unix(0, 0), time.Unix(1700000000, 123000000), time.Unix(1700000000, 123456000),
		time.Unix(1700000000, 123456789), time.Date(12000, 1, 1, 0, 0, 0, 1, time.UTC)} {
		e := mpBenchRequestHeaders()
		e.Metadata.Timestamp = ts
		out = append(out, e)
	}
	many := mpBenchRequestHeaders()
	many.Headers = nil
	for i := 0; i < 70000; i++ {
		many.Headers = append(many.Headers, Header{Name: "h" + strings.Repeat("0", 6-len(itoa(i))) + itoa(i), Values: []string{"v"}})
	}
	many.Headers[5].Values = make([]string, 20)
	out = append(out, many)
	empty := &RequestHeadersEvent{}
	out = append(out, empty)
	return out
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

func TestRequestHeadersFastPathMatchesGeneral(t *testing.T) {
	for i, e := range fastTestEvents() {
		if !headerNamesAscending(e.Headers) {
			t.Fatalf("event %d: test input not sorted", i)
		}
		prefix := []byte("prefix")
		want := mpAppendRequestHeadersGeneral(bytes.Clone(prefix), e)
		if got := AppendRequestHeadersMsgpack(bytes.Clone(prefix), e); !bytes.Equal(got, want) {
			t.Errorf("event %d: msgpack fast path differs from the general encoder", i)
		}
		want = jsonAppendRequestHeadersGeneral(bytes.Clone(prefix), e)
		if got := AppendRequestHeadersJSON(bytes.Clone(prefix), e); !bytes.Equal(got, want) {
			t.Errorf("event %d: JSON fast path differs from the general encoder:\n got %.300q\nwant %.300q", i, got, want)
		}
	}
}

func TestRequestHeadersFastPathRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("abcXYZ09-_ \"\\\t\x01\x7f\xc3\xa9\xff/")
	rs := func() string {
		n := r.IntN(40)
		b := make([]byte, n)
		for i := range b {
			if r.IntN(8) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = 'a' + byte(r.IntN(26))
			}
		}
		return string(b)
	}
	for it := 0; it < 2000; it++ {
		e := mpBenchRequestHeaders()
		e.URI, e.Method, e.Metadata.RequestID = rs(), rs(), rs()
		e.Metadata.Traceparent = rs()
		for i := range e.Headers {
			e.Headers[i].Values = []string{rs()}
			if r.IntN(3) == 0 {
				e.Headers[i].Values = append(e.Headers[i].Values, rs())
			}
		}
		want := mpAppendRequestHeadersGeneral(nil, e)
		if got := AppendRequestHeadersMsgpack(nil, e); !bytes.Equal(got, want) {
			t.Fatalf("iteration %d: msgpack fast path differs", it)
		}
		want = jsonAppendRequestHeadersGeneral(nil, e)
		if got := AppendRequestHeadersJSON(nil, e); !bytes.Equal(got, want) {
			t.Fatalf("iteration %d: JSON fast path differs:\n got %q\nwant %q", it, got, want)
		}
	}
}

// TestAppendDateTimeConcurrent formats times from several goroutines, many
// sharing a second and many not, and checks every result against the time
// package (the one-entry cache must never hand out another second's text).
func TestAppendDateTimeConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			var buf []byte
			for i := 0; i < 20000; i++ {
				sec := int64(1700000000 + r.IntN(4))
				if r.IntN(10) == 0 {
					sec = r.Int64N(maxDateTimeSec-minDateTimeSec) + minDateTimeSec
				}
				tm := time.Unix(sec, int64(r.IntN(1e9)))
				var ok bool
				buf, ok = appendDateTime(buf[:0], tm)
				if want := tm.UTC().Format("2006-01-02T15:04:05"); !ok || string(buf) != want {
					errs <- fmt.Sprintf("%v: got %q (ok=%v), want %q", tm, buf, ok, want)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for _, sec := range []int64{minDateTimeSec - 1, maxDateTimeSec + 1} {
		if b, ok := appendDateTime([]byte("x"), time.Unix(sec, 0)); ok || string(b) != "x" {
			t.Errorf("second %d: got %q ok=%v, want nothing appended", sec, b, ok)
		}
	}
	for _, sec := range []int64{minDateTimeSec, maxDateTimeSec} {
		tm := time.Unix(sec, 0)
		if b, ok := appendDateTime(nil, tm); !ok || string(b) != tm.UTC().Format("2006-01-02T15:04:05") {
			t.Errorf("second %d: got %q ok=%v", sec, b, ok)
		}
	}
}

// TestMsgpackHeaderDecodingRandomNames decodes header maps with many
// repeated and bit-colliding names (the duplicate filter's hard cases) and
// checks serde's semantics: first position, last values win.
func TestMsgpackHeaderDecodingRandomNames(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	names := []string{"a", "b", "ab", "ba", "aa", "bb", "aba", "abb", "x", "", "xa", "ax"}
	for it := 0; it < 500; it++ {
		n := 1 + r.IntN(20)
		parts := []any{mpMap(3), "correlation_id", "c", "status", 200, "headers", mpMap(n)}
		var order []string
		last := map[string]string{}
		for i := 0; i < n; i++ {
			name, val := names[r.IntN(len(names))], itoa(i)
			parts = append(parts, name, mpArr(1), val)
			if _, ok := last[name]; !ok {
				order = append(order, name)
			}
			last[name] = val
		}
		var e ResponseHeadersEvent
		if err := DecodeResponseHeadersMsgpack(mpBuild(parts...), &e); err != nil {
			t.Fatal(err)
		}
		if len(e.Headers) != len(order) {
			t.Fatalf("iteration %d: %d headers, want %d", it, len(e.Headers), len(order))
		}
		for i, name := range order {
			if h := e.Headers[i]; h.Name != name || len(h.Values) != 1 || h.Values[0] != last[name] {
				t.Fatalf("iteration %d: header %d = %+v, want %s: %s", it, i, h, name, last[name])
			}
		}
	}
}
