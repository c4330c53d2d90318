package frame

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// fuzzMaxLen keeps hostile lengths cheap while still exercising the large
// payload path (anything above the 64 KiB internal buffer).
const fuzzMaxLen = 256 << 10

// recordingPool wraps a largePool and remembers the largest request.
type recordingPool struct {
	largePool
	maxReq int
}

func (p *recordingPool) get(n int) largeBuf {
	p.maxReq = max(p.maxReq, n)
	return p.largePool.get(n)
}

// FuzzReader feeds arbitrary bytes to a Reader. It checks that the reader
// never panics, that it never asks for a payload buffer larger than the
// frame's payload nor for a frame above its limit, that the heap grows by
// no more than the frame's payload (plus the fixed internal buffer) per
// ReadFrame, and that every frame it returns re-encodes to the bytes it was
// read from.
func FuzzReader(f *testing.F) {
	for _, g := range loadGolden(f) {
		f.Add(g.frame)
	}
	var all []byte
	for _, g := range loadGolden(f) {
		all = append(all, g.frame...)
	}
	f.Add(all)
	f.Add([]byte{})
	f.Add(header(0, TypePing))
	f.Add(header(1, TypePing))
	f.Add(header(MaxLen+1, TypeRequestBodyChunk))
	f.Add(header(fuzzMaxLen, TypeRequestBodyChunk))
	f.Add(append(header(readBufSize+2, TypeRequestBodyChunk), make([]byte, readBufSize+1)...))
	f.Add(append(header(3, 0xF0), 'a', 'b', 0, 0, 0, 1, 0x41))
	f.Add([]byte{0, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		pool := &recordingPool{largePool: defaultLargePool}
		rd := NewReader(bytes.NewReader(data), fuzzMaxLen)
		rd.pool = pool
		defer rd.Release()
		var ms runtime.MemStats
		off := 0
		for range len(data) + 1 {
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			pool.maxReq = 0
			typ, p, err := rd.ReadFrame()
			runtime.ReadMemStats(&ms)
			grown := ms.TotalAlloc - before

			declared := 0
			if len(data)-off >= 4 {
				declared = int(uint32(data[off])<<24 | uint32(data[off+1])<<16 | uint32(data[off+2])<<8 | uint32(data[off+3]))
			}
			if pool.maxReq > 0 && (pool.maxReq != declared-1 || declared > fuzzMaxLen) {
				t.Fatalf("asked the pool for %d bytes for a frame with LEN %d (limit %d)", pool.maxReq, declared, fuzzMaxLen)
			}
			// Slack: the 64 KiB read buffer on first use, size-class
			// rounding and small error values.
			if limit := uint64(max(declared, 0)) + readBufSize + 16<<10; grown > limit {
				t.Fatalf("ReadFrame allocated %d bytes for a frame with LEN %d", grown, declared)
			}

			var ut *UnknownTypeError
			switch {
			case err == nil:
				re, aerr := AppendFrame(nil, typ, p)
				if aerr != nil || !bytes.Equal(re, data[off:off+len(re)]) {
					t.Fatalf("frame at %d does not re-encode to its input: %v", off, aerr)
				}
				off += len(re)
			case errors.As(err, &ut):
				if ut.Type.Valid() {
					t.Fatalf("UnknownTypeError for valid type %v", ut.Type)
				}
				off += HeaderSize + declared - 1
			case err == io.EOF:
				if off != len(data) {
					t.Fatalf("io.EOF at offset %d of %d", off, len(data))
				}
				return
			default:
				var tl *TooLargeError
				if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrZeroLength) && !errors.As(err, &tl) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
		}
		t.Fatal("reader made no progress")
	})
}
