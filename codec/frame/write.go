package frame

import "encoding/binary"

// MaxLen is the largest LEN a frame may carry: the type byte plus a
// payload of at most MaxLen-1 bytes (SPEC 6.1). Every Rust reader rejects
// anything larger.
const MaxLen = 16 << 20

// HeaderSize is the size of a frame header: 4-byte big-endian LEN + type.
const HeaderSize = 5

// AppendFrame appends one frame carrying payload to dst and returns the
// extended slice. It returns dst unchanged and a *TooLargeError when the
// payload is longer than MaxLen-1 bytes, or an *UnknownTypeError when t is
// not Valid (a Rust peer would drop the connection). It allocates only when
// dst must grow; it is safe for concurrent use on distinct buffers.
func AppendFrame(dst []byte, t Type, payload []byte) ([]byte, error) {
	n := uint64(len(payload)) + 1
	if n > MaxLen {
		return dst, &TooLargeError{Len: n, Max: MaxLen}
	}
	if !t.Valid() {
		return dst, &UnknownTypeError{Type: t}
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(t))
	return append(dst, payload...), nil
}

// BeginFrame appends a frame header for type t with a placeholder LEN and
// returns the extended slice and the offset of the header. The caller then
// appends the payload directly to out (for example with an append-style
// JSON encoder) and calls EndFrame(out, start) to fill in LEN, so the
// payload is never copied.
func BeginFrame(dst []byte, t Type) (out []byte, start int) {
	start = len(dst)
	return append(dst, 0, 0, 0, 0, byte(t)), start
}

// EndFrame patches the LEN of the frame that BeginFrame started at offset
// start of buf, counting everything appended after the header as payload.
// It returns a *TooLargeError if the payload exceeds MaxLen-1 bytes and an
// *UnknownTypeError if the frame's type is not Valid; in both cases the
// caller should truncate buf to buf[:start]. It panics if start does not
// leave room for a header, which is a programming error.
func EndFrame(buf []byte, start int) error {
	hdr := buf[start : start+HeaderSize]
	n := uint64(len(buf)-start-HeaderSize) + 1
	if n > MaxLen {
		return &TooLargeError{Len: n, Max: MaxLen}
	}
	if t := Type(hdr[4]); !t.Valid() {
		return &UnknownTypeError{Type: t}
	}
	binary.BigEndian.PutUint32(hdr, uint32(n))
	return nil
}
