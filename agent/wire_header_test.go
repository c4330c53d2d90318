package agent

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestFastDecodeHeaderShapes holds the request-headers decoder's shortcuts
// for the usual header (a field-5 length below 128, then name and value
// both present with one-byte lengths and nothing else) to the reference
// on the shapes around them: lengths 127/128 (two-byte varints), a
// truncated value whose length varint's first byte matches what follows, fields in the other order,
// repeated or missing fields, an unknown field. Each event must be
// accepted by the fast decoder and decode as the reference does, except
// the truncated one, which both refuse.
func TestFastDecodeHeaderShapes(t *testing.T) {
	str := func(b []byte, num protowire.Number, s string) []byte {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, s)
	}
	long := strings.Repeat("v", 200)
	headers := map[string][]byte{
		"usual":       str(str(nil, 1, "host"), 2, "example.com"),
		"name-127":    str(str(nil, 1, strings.Repeat("n", 127)), 2, "x"),
		"value-128":   str(str(nil, 1, "n"), 2, strings.Repeat("v", 128)),
		"body-128":    str(str(nil, 1, strings.Repeat("n", 60)), 2, strings.Repeat("v", 64)),
		"value-long":  str(str(nil, 1, "n"), 2, long),
		"reversed":    str(str(nil, 2, "v"), 1, "n"),
		"name-only":   str(nil, 1, "n"),
		"value-only":  str(nil, 2, "v"),
		"empty":       nil,
		"name-twice":  str(str(str(nil, 1, "a"), 2, "v"), 1, "b"),
		"value-twice": str(str(str(nil, 1, "n"), 2, "v"), 2, "w"),
		"unknown":     str(str(str(nil, 1, "n"), 2, "v"), 3, "x"),
		// A value length of 129 (0x81 0x01) followed by 128 bytes: the
		// varint's first byte read alone (129) equals what follows it.
		"multibyte-vl": append(append(str(nil, 1, "n"), 2<<3|2, 0x81, 0x01), strings.Repeat("v", 128)...),
	}
	for name, h := range headers {
		var ev []byte
		ev = str(ev, 1, string(str(nil, 1, "cid")))
		ev = str(ev, 5, string(h))
		ev = str(ev, 5, string(str(str(nil, 1, "host"), 2, "other")))
		msg := str(nil, fieldRequestHeaders, string(ev))
		var x exchange
		accepted := checkFast(t, msg, &x)
		if accepted == (name == "multibyte-vl") {
			t.Errorf("%s: fast decoder accepted: %v", name, accepted)
		}
	}
}
