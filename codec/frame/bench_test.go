package frame

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/grpc/mem"
)

// loopReader replays data forever, handing out as much as the caller asks
// for, like a socket with a full receive buffer.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], l.data[l.off:])
		n += k
		l.off = (l.off + k) % len(l.data)
	}
	return n, nil
}

var benchSizes = []int{0, 1 << 10, 16 << 10, 64 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			payload := bytes.Repeat([]byte{'a'}, n)
			buf := make([]byte, 0, n+HeaderSize)
			b.ReportAllocs()
			b.SetBytes(int64(n + HeaderSize))
			for b.Loop() {
				buf, _ = AppendFrame(buf[:0], TypeRequestBodyChunk, payload)
			}
		})
	}
}

func BenchmarkReadFrame(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			f, _ := AppendFrame(nil, TypeRequestBodyChunk, bytes.Repeat([]byte{'a'}, n))
			// Several frames per loop so a small frame's buffer refills
			// are amortised as they would be on a socket.
			var stream []byte
			for len(stream) < 256<<10 {
				stream = append(stream, f...)
			}
			rd := NewReader(&loopReader{data: stream}, 0)
			defer rd.Release()
			b.ReportAllocs()
			b.SetBytes(int64(len(f)))
			for b.Loop() {
				if _, _, err := rd.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// memPool backs large payloads with a grpc mem.BufferPool; it lost to
// bytebufferpool (see pool.go) and is kept here for the comparison.
type memPool struct{ p mem.BufferPool }

func (p memPool) get(n int) largeBuf {
	bp := p.p.Get(n)
	return largeBuf{b: *bp, h: bp}
}

func (p memPool) put(l largeBuf) { p.p.Put(l.h.(*[]byte)) }

// BenchmarkLargePool compares the two candidate pools for payloads that do
// not fit the Reader's internal buffer, read through the whole Reader.
func BenchmarkLargePool(b *testing.B) {
	pools := []struct {
		name string
		p    func() largePool
	}{
		{"bytebufferpool", func() largePool { return &bbPool{} }},
		{"grpcmem", func() largePool { return memPool{mem.DefaultBufferPool()} }},
	}
	for _, n := range []int{96 << 10, 256 << 10, 1 << 20, 4 << 20} {
		for _, pl := range pools {
			b.Run(fmt.Sprintf("%s/%s", sizeName(n), pl.name), func(b *testing.B) {
				f, _ := AppendFrame(nil, TypeRequestBodyChunk, bytes.Repeat([]byte{'a'}, n))
				rd := NewReader(&loopReader{data: f}, 0)
				rd.pool = pl.p()
				defer rd.Release()
				b.ReportAllocs()
				b.SetBytes(int64(len(f)))
				for b.Loop() {
					if _, _, err := rd.ReadFrame(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
