package payload

import (
	"bytes"
	"testing"
)

// jsonSameRef is jsonSameString's specification: the general scan of the
// string at data[p], which must be plain (no escape, no non-ASCII byte) and
// equal to s.
func jsonSameRef(data []byte, p int, s string) (int, bool) {
	if p < 0 || p >= len(data) || data[p] != '"' {
		return p, false
	}
	d := jsonDecoder{data: data, pos: p}
	body, escaped, nonASCII, ok := d.scanString()
	if !ok || escaped || nonASCII || string(body) != s {
		return p, false
	}
	return d.pos, true
}

func checkJSONSame(t *testing.T, data []byte, p int, s string) {
	t.Helper()
	q, same := jsonSameString(data, p, s)
	wq, wsame := jsonSameRef(data, p, s)
	if same != wsame || (same && q != wq) {
		t.Fatalf("jsonSameString(%q, %d, %q) = %d, %v; the scan says %d, %v", data, p, s, q, same, wq, wsame)
	}
}

// TestJSONSameString compares jsonSameString with the general scan for
// strings of every length up to 40 holding each byte that needs escaping
// (and a non-ASCII byte, and a differing byte) at each position, with the
// destination string holding the same raw bytes: a quote, a backslash, a
// control character or a byte at or above 0x80 must send the string to the
// general readers, as must a closing quote that is missing or elsewhere.
func TestJSONSameString(t *testing.T) {
	specials := []byte{'"', '\\', 0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff, 'X'}
	for n := 0; n <= 40; n++ {
		plain := bytes.Repeat([]byte{'a'}, n)
		for i := range plain {
			plain[i] = "abcdefghij-/:; ~!"[i%17]
		}
		enc := func(body []byte, tail string) []byte {
			return append(append(append([]byte(`{"k":"`), body...), '"'), tail...)
		}
		checkJSONSame(t, enc(plain, ","), 5, string(plain))
		checkJSONSame(t, enc(plain, ""), 5, string(plain))
		checkJSONSame(t, enc(plain, ""), 4, string(plain))
		checkJSONSame(t, enc(plain, ""), 6, string(plain))
		// The input cut before the closing quote, or one byte longer
		// than s.
		checkJSONSame(t, enc(plain, "")[:6+n], 5, string(plain))
		checkJSONSame(t, enc(append(plain[:n:n], 'z'), ""), 5, string(plain))
		if n > 0 {
			checkJSONSame(t, enc(plain, ""), 5, string(plain[:n-1]))
		}
		for i := 0; i < n; i++ {
			for _, c := range specials {
				b := bytes.Clone(plain)
				b[i] = c
				// The destination holds the raw bytes themselves.
				checkJSONSame(t, enc(b, ""), 5, string(b))
				// The destination holds the plain string.
				checkJSONSame(t, enc(b, ""), 5, string(plain))
			}
		}
	}
}

// FuzzJSONSameString is the differential test of jsonSameString against
// the general scan, with s taken from the input's own bytes after the
// position (so that equal strings are common).
func FuzzJSONSameString(f *testing.F) {
	f.Add([]byte(`"abc"`), uint8(0), uint8(3))
	f.Add([]byte(`"a\"b"`), uint8(0), uint8(4))
	f.Add([]byte("\"0123456789\x80abcdef\""), uint8(0), uint8(17))
	f.Add([]byte("x\"\x1f\""), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, p, n uint8) {
		s := ""
		if int(p)+1 <= len(data) {
			rest := data[int(p)+1:]
			s = string(rest[:min(int(n), len(rest))])
		}
		checkJSONSame(t, data, int(p), s)
	})
}

// TestJSONRequestHeadersKeepPlainOnly decodes into a destination whose
// header names, values and metadata strings equal the raw text (between the
// quotes) of the input's strings, where that raw text is not the value: an
// escape sequence, a control character, invalid UTF-8. The result, error
// included, must be the one a fresh destination gets: the raw text must
// not be mistaken for the old value.
func TestJSONRequestHeadersKeepPlainOnly(t *testing.T) {
	for _, raw := range []string{`a\"b`, `x\\y`, `\u0041BCDEFGHIJ`, "ctl\x01", "bad\xff\xfeutf8-long-enough", `é`} {
		in := []byte(`{"metadata":{"correlation_id":"` + raw + `","request_id":"` + raw + `","client_ip":"` + raw +
			`","client_port":1,"protocol":"` + raw + `","timestamp":"2026-01-01T00:00:00Z"},` +
			`"method":"` + raw + `","uri":"/","headers":{"` + raw + `":["` + raw + `"]}}`)
		var fresh RequestHeadersEvent
		wantErr := DecodeRequestHeadersJSON(in, &fresh)
		dirty := RequestHeadersEvent{
			Metadata: RequestMetadata{CorrelationID: raw, ClientIP: raw, Protocol: raw},
			Method:   raw,
			Headers:  Headers{{Name: raw, Values: []string{raw}}},
		}
		err := DecodeRequestHeadersJSON(in, &dirty)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("raw %q: error %v, fresh destination's %v", raw, err, wantErr)
		}
		if err == nil && !jsonEqual(dirty, fresh) {
			t.Fatalf("raw %q: decoded %+v, fresh destination's %+v", raw, dirty, fresh)
		}
	}
}

// checkJSONEscapedSame compares jsonEscapedSame(body, s) with the general
// path (unescape, then compare) for a body that scanString accepted with
// escapes: a yes must be the general path's yes, and for a body without
// \u escapes and non-ASCII bytes the answers must be equal.
func checkJSONEscapedSame(t *testing.T, body []byte, s string) {
	t.Helper()
	d := jsonDecoder{data: append(append([]byte{'"'}, body...), '"')}
	raw, escaped, _, ok := d.scanString()
	if !ok || !escaped || d.pos != len(d.data) {
		return
	}
	b, uok := d.unescape(nil, raw, 1)
	want := uok && string(b) == s
	got := jsonEscapedSame(raw, s)
	if got && !want {
		t.Fatalf("jsonEscapedSame(%q, %q) = true; the unescaped text is %q (ok %v)", raw, s, b, uok)
	}
	if !got && want && !bytes.Contains(raw, []byte(`\u`)) && jsonValidUTF8(raw) && !bytes.ContainsFunc(raw, func(r rune) bool { return r >= 0x80 }) {
		t.Fatalf("jsonEscapedSame(%q, %q) = false for its own ASCII value", raw, s)
	}
}

// TestJSONEscapedSame: each one-character escape compares as its
// character; \u escapes and non-ASCII bytes are left to the general path
// (never a yes the general path would not give); a longer or shorter s,
// or one differing at an escape, is no.
func TestJSONEscapedSame(t *testing.T) {
	for _, c := range []struct{ body, s string }{
		{`a\"b`, `a"b`}, {`a\"b`, `a\"b`}, {`a\"b`, `a"`}, {`a\"b`, `a"bc`}, {`\\`, `\`}, {`\/`, `/`},
		{`\b\f\n\r\t`, "\b\f\n\r\t"}, {`\n`, `n`}, {`\u0041`, `A`}, {`\ud83d\ude00`, "😀"}, {`\ud83d`, "\xed\xa0\xbd"},
		{"\xc3\xa9\\\"", "é\""}, {"\xff\\\"", "\xff\""}, {`x\"`, `y"`},
		{`\"Chromium\";v=\"120\", \"Not?A_Brand\";v=\"24\"`, `"Chromium";v="120", "Not?A_Brand";v="24"`},
	} {
		checkJSONEscapedSame(t, []byte(c.body), c.s)
	}
	if !jsonEscapedSame([]byte(`a\"b\\c\/`), `a"b\c/`) || jsonEscapedSame([]byte(`a\"b`), `a'b`) {
		t.Fatal("jsonEscapedSame: wrong answer on plain escapes")
	}
}

// FuzzJSONEscapedSame is the differential test of jsonEscapedSame against
// unescaping and comparing, with s either the body's unescaped value
// (equal strings are the case it settles) or the fuzzer's other string.
func FuzzJSONEscapedSame(f *testing.F) {
	f.Add([]byte(`a\"b`), "", true)
	f.Add([]byte(`\u00e9\n`), "é\n", false)
	f.Add([]byte("\\t\xc3\xa9"), "\té", false)
	f.Fuzz(func(t *testing.T, body []byte, s string, own bool) {
		if own {
			// Only a body scanString accepts whole may be unescaped.
			d := jsonDecoder{data: append(append([]byte{'"'}, body...), '"')}
			raw, escaped, _, ok := d.scanString()
			if !ok || !escaped || d.pos != len(d.data) {
				return
			}
			b, ok := d.unescape(nil, raw, 1)
			if !ok {
				return
			}
			s = string(b)
		}
		checkJSONEscapedSame(t, body, s)
	})
}
