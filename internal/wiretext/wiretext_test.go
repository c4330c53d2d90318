package wiretext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValid(t *testing.T) {
	for in, want := range map[string]string{
		"":                               "",
		"plain ascii":                    "plain ascii",
		"café €":                         "café €",
		"caf\xe9":                        "caf\uFFFD",
		"\xff\xfe":                       "\uFFFD\uFFFD",
		"a\xe2\x82":                      "a\uFFFD\uFFFD",      // truncated sequence: one per byte
		"\xed\xa0\x80":                   "\uFFFD\uFFFD\uFFFD", // surrogate
		strings.Repeat("x", 20) + "\x80": strings.Repeat("x", 20) + "\uFFFD",
	} {
		got := Valid(in)
		if got != want || !utf8.ValidString(got) {
			t.Errorf("Valid(%q) = %q, want %q", in, got, want)
		}
		if n := Len(in); n != len(want) {
			t.Errorf("Len(%q) = %d, want %d", in, n, len(want))
		}
		if b := Append([]byte("p:"), in); string(b) != "p:"+want {
			t.Errorf("Append(%q) = %q", in, b)
		}
	}
}

func TestIsASCII(t *testing.T) {
	for n := 0; n <= 40; n++ {
		s := strings.Repeat("a", n)
		if !IsASCII(s) {
			t.Fatalf("IsASCII(%d a's) = false", n)
		}
		for i := 0; i < n; i++ {
			b := []byte(s)
			b[i] = 0x80
			if IsASCII(string(b)) {
				t.Fatalf("IsASCII missed a high byte at %d of %d", i, n)
			}
		}
	}
}
