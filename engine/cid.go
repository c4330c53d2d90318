package engine

import (
	"math/rand/v2"
	"strconv"
)

// Generated correlation ids: an event sent with an empty correlation id
// gets "aw<16 hex digits>-<hex counter>": a random prefix drawn once per
// Conn (64 bits) and a per-Conn counter, so that ids are unique within the
// Conn and, with overwhelming probability, across Conns and processes
// (a pool may move a request between Conns). Generating one costs an
// atomic add and the string's one allocation (BenchmarkGenerateCID).

// cidPrefixLen is the length of a Conn's id prefix: "aw", 16 hex digits,
// "-".
const cidPrefixLen = 2 + 16 + 1

// newCIDPrefix draws a Conn's random id prefix.
func newCIDPrefix() string {
	b := make([]byte, 0, cidPrefixLen)
	b = append(b, "aw"...)
	v := rand.Uint64()
	const hexDigits = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hexDigits[(v>>uint(i))&0xf])
	}
	return string(append(b, '-'))
}

// newCID returns a correlation id unique to this Conn (see above). Safe
// for concurrent use.
func (c *Conn) newCID() string {
	var buf [cidPrefixLen + 16]byte
	b := append(buf[:0], c.cidPrefix...)
	b = strconv.AppendUint(b, c.cidSeq.Add(1), 16)
	return string(b)
}
