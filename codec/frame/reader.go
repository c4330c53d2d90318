package frame

import (
	"encoding/binary"
	"io"
	"sync"
	"syscall"
)

// readBufSize is the size of a Reader's internal buffer: one read syscall
// can bring in many small frames, and every payload up to this size is
// returned straight from it without a copy.
const readBufSize = 64 << 10

// maxEmptyReads bounds the number of consecutive (0, nil) reads tolerated
// from the underlying reader before failing with io.ErrNoProgress.
const maxEmptyReads = 100

var readBufPool = sync.Pool{New: func() any { return new([readBufSize]byte) }}

// Reader reads frames from a byte stream (SPEC 6.1).
//
// A Reader is not safe for concurrent use: it belongs to the connection's
// single reader goroutine. Its zero value is not usable; create it with
// NewReader and call Release when done. It must not be copied.
//
// Errors: io.EOF only when the stream ends exactly on a frame boundary;
// io.ErrUnexpectedEOF when it ends inside a frame; *UnknownTypeError for a
// type byte outside SPEC 6.2 (payload consumed, reading may go on);
// *TooLargeError and ErrZeroLength for a LEN that is out of range (fatal:
// every later call returns the same error). Errors of the underlying reader
// are returned as they are and are also sticky.
type Reader struct {
	_ noCopy

	rd     io.Reader
	maxLen int
	pool   largePool

	// buf is the internal buffer; buf[r:w] holds unread bytes.
	bufp *[readBufSize]byte
	r, w int
	// rerr is the pending error from rd, reported once buffered bytes run out.
	rerr error
	// err is the sticky fatal error.
	err error

	// large holds the pooled buffer of the last large payload; it goes back
	// to the pool at the next ReadFrame or at Release.
	large    largeBuf
	hasLarge bool

	// raw is rd's raw connection when rd is a Unix or TCP socket: an
	// empty Reader then waits for data without a buffer (idle.go). rawFn
	// is r.rawRead, rawN and rawErr its results.
	raw    syscall.RawConn
	rawFn  func(fd uintptr) bool
	rawN   int
	rawErr error
	hint   uint32  // the Reader's own slot in idleBufs
	spin   spinner // rd, when it spins before parking (idle.go)
}

// noCopy makes go vet's copylocks check report copies.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// NewReader returns a Reader on rd that rejects frames whose LEN exceeds
// maxLen. maxLen <= 0 or above MaxLen means MaxLen. Its buffers come from
// pools: call Release when the Reader is no longer needed. On a Unix or
// TCP socket (*net.UnixConn, *net.TCPConn) a Reader that has returned
// everything it read waits for the next frame without holding its 64 KiB
// buffer (see idle.go).
func NewReader(rd io.Reader, maxLen int) *Reader {
	if maxLen <= 0 || maxLen > MaxLen {
		maxLen = MaxLen
	}
	r := &Reader{rd: rd, maxLen: maxLen, pool: defaultLargePool}
	r.initIdle(rd)
	return r
}

// Release returns the Reader's buffers to their pools. Payloads returned by
// ReadFrame must not be used after Release, nor may the Reader be; later
// calls of ReadFrame fail. Release is idempotent.
func (r *Reader) Release() {
	r.putLarge()
	if r.bufp != nil {
		readBufPool.Put(r.bufp)
		r.bufp = nil
	}
	r.r, r.w = 0, 0
	r.err = errReleased
}

func (r *Reader) putLarge() {
	if r.hasLarge {
		r.pool.put(r.large)
		r.large = largeBuf{}
		r.hasLarge = false
	}
}

// ReadFrame reads the next frame and returns its type and payload. The
// payload aliases the Reader's buffers: it is valid only until the next call
// of ReadFrame or Release, and must be copied to be kept. Reading a frame
// whose payload fits the internal buffer (64 KiB) does not allocate.
func (r *Reader) ReadFrame() (Type, []byte, error) {
	if r.err != nil {
		return 0, nil, r.err
	}
	r.putLarge()
	if r.raw != nil && r.r == r.w && r.rerr == nil {
		// Everything read has been returned (the payloads handed out
		// before are dead now): wait for more without a buffer.
		r.readIdle()
		if r.bufp == nil {
			// The wait failed (closed, deadline): no data, no buffer.
			return 0, nil, r.fail(r.rerr)
		}
	} else if r.bufp == nil {
		r.bufp = readBufPool.Get().(*[readBufSize]byte)
	}
	if err := r.fill(HeaderSize); err != nil {
		if err == io.EOF && r.w > r.r {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, r.fail(err)
	}
	buf := r.bufp[:]
	n := binary.BigEndian.Uint32(buf[r.r:])
	if n == 0 {
		return 0, nil, r.fail(ErrZeroLength)
	}
	if uint64(n) > uint64(r.maxLen) {
		return 0, nil, r.fail(&TooLargeError{Len: uint64(n), Max: r.maxLen})
	}
	t := Type(buf[r.r+4])
	r.r += HeaderSize
	size := int(n) - 1

	if !t.Valid() {
		if err := r.discard(size); err != nil {
			return 0, nil, r.fail(err)
		}
		return 0, nil, &UnknownTypeError{Type: t}
	}
	if size <= readBufSize {
		if err := r.fill(size); err != nil {
			return 0, nil, r.fail(eofIsUnexpected(err))
		}
		p := buf[r.r : r.r+size : r.r+size]
		r.r += size
		return t, p, nil
	}
	return r.readLarge(t, size)
}

// readLarge reads a payload larger than the internal buffer into a pooled
// buffer of exactly size bytes. The size was validated against maxLen, so a
// hostile LEN cannot make it allocate more than the limit.
func (r *Reader) readLarge(t Type, size int) (Type, []byte, error) {
	r.large = r.pool.get(size)
	r.hasLarge = true
	p := r.large.b[:size]
	k := copy(p, r.bufp[r.r:r.w])
	r.r, r.w = 0, 0
	if k < size {
		if r.rerr != nil {
			return 0, nil, r.fail(eofIsUnexpected(r.rerr))
		}
		if _, err := io.ReadFull(r.rd, p[k:]); err != nil {
			return 0, nil, r.fail(eofIsUnexpected(err))
		}
	}
	return t, p, nil
}

// discard skips size payload bytes through the internal buffer.
func (r *Reader) discard(size int) error {
	for size > 0 {
		if r.w == r.r {
			if err := r.fill(1); err != nil {
				return eofIsUnexpected(err)
			}
		}
		k := min(size, r.w-r.r)
		r.r += k
		size -= k
	}
	return nil
}

// fill makes at least n (<= readBufSize) unread bytes available in
// buf[r:w], moving unread bytes to the front when the tail is too short.
// It returns the underlying reader's error (io.EOF included) when the
// stream ends before n bytes are available.
func (r *Reader) fill(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	buf := r.bufp[:]
	if r.r+n > len(buf) {
		r.w = copy(buf, buf[r.r:r.w])
		r.r = 0
	}
	empty := 0
	for r.w-r.r < n {
		if r.rerr != nil {
			return r.rerr
		}
		k, err := r.rd.Read(buf[r.w:])
		if k < 0 || k > len(buf)-r.w {
			r.rerr = errInvalidRead
			continue
		}
		r.w += k
		if err != nil {
			r.rerr = err
			continue
		}
		if k == 0 {
			if empty++; empty >= maxEmptyReads {
				r.rerr = io.ErrNoProgress
			}
		} else {
			empty = 0
		}
	}
	return nil
}

var errInvalidRead = ioError("agentwire: frame: reader returned an invalid count")

type ioError string

func (e ioError) Error() string { return string(e) }

// fail records err as sticky, except for an unknown type, which is not
// fatal and never reaches here.
func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Buffered returns the number of bytes read from the stream but not yet
// returned as frames. A reader can use it to tell whether the next
// ReadFrame may block.
func (r *Reader) Buffered() int { return r.w - r.r }

// FrameBuffered reports whether a whole frame (header and payload) is
// buffered, so that the next ReadFrame returns without reading from the
// stream. A reader that batches its own output flushes it when this is
// false, before it may block.
func (r *Reader) FrameBuffered() bool {
	if r.bufp == nil || r.w-r.r < HeaderSize {
		return false
	}
	n := binary.BigEndian.Uint32(r.bufp[r.r:])
	return n > 0 && uint64(n) <= uint64(r.w-r.r-4)
}
