package frame

import (
	"github.com/valyala/bytebufferpool"
	"google.golang.org/grpc/mem"
)

// largeBuf is a pooled buffer holding one large payload; h is the pool's
// handle for it (a pointer, so storing it in an interface does not allocate).
type largeBuf struct {
	b []byte
	h any
}

// largePool supplies buffers for payloads larger than the Reader's
// internal buffer.
type largePool interface {
	get(n int) largeBuf // len(b) == n
	put(largeBuf)
}

// bbPool backs large payloads with a dedicated bytebufferpool.Pool.
type bbPool struct{ p bytebufferpool.Pool }

func (p *bbPool) get(n int) largeBuf {
	bb := p.p.Get()
	if cap(bb.B) < n {
		// Exactly n: the old, smaller buffer is left to the GC.
		bb.B = make([]byte, n)
	}
	bb.B = bb.B[:n]
	return largeBuf{b: bb.B, h: bb}
}

func (p *bbPool) put(l largeBuf) { p.p.Put(l.h.(*bytebufferpool.ByteBuffer)) }

// memPool backs large payloads with a grpc mem.BufferPool.
type memPool struct{ p mem.BufferPool }

func (p memPool) get(n int) largeBuf {
	bp := p.p.Get(n)
	return largeBuf{b: *bp, h: bp}
}

func (p memPool) put(l largeBuf) { p.p.Put(l.h.(*[]byte)) }

var defaultLargePool largePool = &bbPool{}
