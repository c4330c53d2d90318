package payload

import (
	"sync"
	"unsafe"
)

// MsgpackArena is where the MessagePack request-headers decoder
// (DecodeRequestHeadersMsgpackRoutedIn) puts the strings of an event that
// differ from what the destination held: appended into a chunk of
// msgpackArenaChunk bytes, each string a view of its own bytes, instead of
// an allocation each. Bytes handed out are never written again (a chunk
// only grows into its spare capacity; a full one is replaced by a fresh
// one, which the strings of the old one keep alive), so the strings are
// ordinary immutable Go strings, valid independently of the input and of
// later decodes. The rules of the JSON decoder's arena (json_arena.go),
// with the chunk kept by its caller across decodes (a connection's reader
// keeps it for a whole read of events, and Releases it before it waits
// for the next) instead of taken from the pool and put back per decode.
//
// A string kept for long keeps its whole chunk reachable; strings longer
// than msgpackArenaMaxShared get an allocation of their own. The zero
// value is ready to use; a nil *MsgpackArena allocates every string. Not
// safe for concurrent use: one decode at a time (the strings it made may
// be read concurrently, and other arenas may append to the chunk once it
// is released).
type MsgpackArena struct {
	c *mpChunk // nil while released
}

// mpChunk is a chunk of string bytes: len(buf) bytes handed out, cap(buf)
// its size. Pooled by pointer (putting a slice in a sync.Pool allocates).
type mpChunk struct{ buf []byte }

// mpChunkPool holds the chunks of released arenas, for any arena to take.
var mpChunkPool sync.Pool

const (
	// msgpackArenaChunk is the size of one chunk (a size class: no
	// rounding up).
	msgpackArenaChunk = 4 << 10
	// msgpackArenaMaxShared is the longest string placed in a chunk.
	msgpackArenaMaxShared = 256
)

// str returns v as a string: a view of a copy in a's chunk, or an
// allocation of its own (a nil a, an empty or long v).
func (a *MsgpackArena) str(v []byte) string {
	n := len(v)
	if a == nil || n == 0 || n > msgpackArenaMaxShared {
		return string(v)
	}
	c := a.c
	if c == nil {
		c = a.take()
	}
	if cap(c.buf)-len(c.buf) < n {
		c.buf = make([]byte, 0, msgpackArenaChunk)
	}
	start := len(c.buf)
	c.buf = append(c.buf, v...)
	return unsafe.String(&c.buf[start], n)
}

// take gives a a chunk: a released one from the pool, else a new empty
// one (its bytes are allocated by the first string).
func (a *MsgpackArena) take() *mpChunk {
	c, _ := mpChunkPool.Get().(*mpChunk)
	if c == nil {
		c = new(mpChunk)
	}
	a.c = c
	return c
}

// Release hands a's chunk over to the other arenas (a pool), so that an
// arena that waits holds no memory; a takes a chunk again for its next
// string. Strings made before stay valid. Call it when decodes pause (a
// connection's reader: before it waits for more events).
func (a *MsgpackArena) Release() {
	if c := a.c; c != nil {
		a.c = nil
		mpChunkPool.Put(c)
	}
}
