package payload

import (
	"encoding/binary"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// This file is the only place in the JSON codec that uses package unsafe.
//
// Decoded strings are not allocated one by one. A decoder copies string
// bytes into an append-only chunk of memory (the arena) and makes each
// string point at its own bytes with unsafe.String. Bytes that have been
// handed out are never written again: a chunk only grows by appending into
// its spare capacity, and a full chunk is replaced by a fresh one (the old
// one stays alive for as long as any string points into it). Decoded strings
// are therefore ordinary immutable Go strings, valid independently of the
// input buffer and of later decodes.
//
// Chunks travel between decode calls through a sync.Pool, so small messages
// (an AgentResponse whose only string is a correlation id, a request-headers
// event with a dozen headers) share a chunk with other messages and need no
// allocation of their own most of the time. The price is that a retained
// string keeps its whole chunk (jsonArenaChunk bytes) reachable; callers that
// keep a few small strings for a long time can strings.Clone them.

const (
	// jsonArenaChunk is the size of one shared string chunk.
	jsonArenaChunk = 4 << 10
	// jsonArenaMaxShared is the longest string placed in a shared chunk;
	// longer strings get an allocation of their own so that one large value
	// does not waste the rest of a chunk.
	jsonArenaMaxShared = 512
)

// jsonArena is the per-decode view of a pooled chunk plus reusable scratch
// space for unescaping keys and base64 text. It is owned by one decode call
// at a time.
type jsonArena struct {
	buf     []byte // len = bytes handed out so far, cap = chunk size
	scratch []byte // reusable; never referenced by decoded values
}

var jsonArenaPool = sync.Pool{New: func() any { return new(jsonArena) }}

// jsonView returns a string that shares b's memory. The caller guarantees
// that b is never modified while the string is in use (arena memory, or an
// input buffer in the documented NoCopy decoders, or a short-lived read-only
// view used only for the duration of a call such as strconv.ParseFloat).
func jsonView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// reserve makes room for n more bytes in a's chunk and returns the offset at
// which they will start.
func (a *jsonArena) reserve(n int) int {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, jsonArenaChunk)
	}
	return len(a.buf)
}

// arena returns the decoder's arena, taking one from the pool on first use.
func (d *jsonDecoder) arena() *jsonArena {
	if d.ar == nil {
		d.ar = jsonArenaPool.Get().(*jsonArena)
	}
	return d.ar
}

// releaseArena hands the arena back to the pool. Strings already made from
// it stay valid (see the file comment).
func (d *jsonDecoder) releaseArena() {
	if d.ar != nil {
		if cap(d.ar.scratch) > 64<<10 {
			d.ar.scratch = nil // do not pool huge scratch buffers
		}
		jsonArenaPool.Put(d.ar)
		d.ar = nil
	}
}

// copyBytes copies b into arena memory and returns the copy with its
// capacity clipped, so appending to it can never touch neighbouring data.
func (d *jsonDecoder) copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if len(b) > jsonArenaMaxShared {
		c := make([]byte, len(b))
		copy(c, b)
		return c
	}
	a := d.arena()
	start := a.reserve(len(b))
	a.buf = append(a.buf, b...)
	end := len(a.buf)
	return a.buf[start:end:end]
}

// makeString returns raw string content (no escapes) as a string: a view of
// the input in NoCopy mode, otherwise an arena copy.
func (d *jsonDecoder) makeString(b []byte) string {
	if d.noCopy {
		return jsonView(b)
	}
	return jsonView(d.copyBytes(b))
}

// makeEscapedString unescapes the body of a JSON string (between the quotes,
// containing at least one backslash) straight into arena memory. The
// unescaped text is never longer than the raw text.
func (d *jsonDecoder) makeEscapedString(raw []byte, at int) (string, bool) {
	if len(raw) > jsonArenaMaxShared {
		out, ok := d.unescape(make([]byte, 0, len(raw)), raw, at)
		if !ok {
			return "", false
		}
		return jsonView(out), true
	}
	a := d.arena()
	start := a.reserve(len(raw))
	out, ok := d.unescape(a.buf, raw, at)
	if !ok {
		return "", false
	}
	a.buf = out
	end := len(a.buf)
	return jsonView(a.buf[start:end:end]), true
}

// scratchUnescape unescapes raw into the arena's scratch buffer. The result
// is only valid until the next scratch use.
func (d *jsonDecoder) scratchUnescape(raw []byte, at int) ([]byte, bool) {
	a := d.arena()
	out, ok := d.unescape(a.scratch[:0], raw, at)
	if ok {
		a.scratch = out
	}
	return out, ok
}

// validUTF8 reports whether b is valid UTF-8 (fast path for ASCII).
func jsonValidUTF8(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return utf8.Valid(b[i:])
		}
	}
	return true
}

// jsonPlainPrefix returns the length of the longest prefix of s that
// jsonAppendString writes unchanged (no escaping, ASCII), reading 8 bytes
// per load through a read-only view of the string.
func jsonPlainPrefix(s string) int {
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if !jsonPlainWord(binary.LittleEndian.Uint64(b[i:])) {
			break
		}
	}
	for i < len(b) && jsonStrPlain[b[i]] {
		i++
	}
	return i
}
