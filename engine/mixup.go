package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"time"

	"github.com/agentwire/agentwire/codec/frame"
)

// Endpoint mix-ups: a gRPC agent dialled as "unix://" (the binary
// Unix-socket protocol) and a Unix-socket agent dialled as "grpc+unix://".
// Both fail anyway; these helpers make the error name the likely cause.

// errSpeaksHTTP2: the peer's first bytes are an HTTP/2 server's connection
// preface (a SETTINGS frame on stream 0).
var errSpeaksHTTP2 = errors.New("agentwire: the peer sent an HTTP/2 SETTINGS frame")

// http2HeaderSize is the size of an HTTP/2 frame header (RFC 9113 4.1).
const http2HeaderSize = 9

// looksLikeHTTP2Settings reports whether b (at least frame.HeaderSize
// bytes) can start an HTTP/2 server preface: a SETTINGS frame (type 0x04)
// without flags whose 24-bit length is a multiple of 6 (one setting is 6
// bytes). Read as a Unix-socket frame header its type byte (the HTTP/2
// flags, 0) is no frame type at all, so a real Unix-socket agent never
// matches.
func looksLikeHTTP2Settings(b []byte) bool {
	n := uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
	return b[3] == 0x04 && b[4] == 0 && n%6 == 0
}

// readHandshakeFrame reads exactly one frame from r, without reading
// ahead (the bytes after it stay in the socket for the session's reader),
// and returns its type and payload. Errors: io.EOF when the stream ended
// before the first byte, io.ErrUnexpectedEOF inside the frame,
// errSpeaksHTTP2 when the peer is an HTTP/2 server, frame.ErrZeroLength and
// *frame.TooLargeError for an invalid LEN (maxLen is the largest one
// accepted), *frame.UnknownTypeError for a type byte outside SPEC 6.2
// (its payload is not read), and r's own errors.
func readHandshakeFrame(r io.Reader, maxLen int) (frame.Type, []byte, error) {
	var hdr [http2HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:frame.HeaderSize]); err != nil {
		return 0, nil, err
	}
	if looksLikeHTTP2Settings(hdr[:]) {
		// Confirm with the stream id (0 for SETTINGS): the rest of the
		// HTTP/2 frame header.
		if _, err := io.ReadFull(r, hdr[frame.HeaderSize:]); err == nil &&
			binary.BigEndian.Uint32(hdr[frame.HeaderSize:])&0x7fffffff == 0 {
			return 0, nil, errSpeaksHTTP2
		}
		return 0, nil, &frame.UnknownTypeError{Type: frame.Type(hdr[4])}
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	t := frame.Type(hdr[4])
	switch {
	case n == 0:
		return 0, nil, frame.ErrZeroLength
	case uint64(n) > uint64(maxLen):
		return 0, nil, &frame.TooLargeError{Len: uint64(n), Max: maxLen}
	case !t.Valid():
		return 0, nil, &frame.UnknownTypeError{Type: t}
	}
	// Grown as the bytes arrive: a LEN is no reason to allocate it all.
	p, err := io.ReadAll(io.LimitReader(r, int64(n-1)))
	if err != nil {
		return 0, nil, err
	}
	if len(p) < int(n-1) {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return t, p, nil
}

// sniffHTTP2 reads an HTTP/2 frame header from r (the peer hung up or
// stopped reading while the handshake was being sent) and reports whether
// it is an HTTP/2 server's SETTINGS frame.
func sniffHTTP2(r io.Reader) bool {
	var hdr [http2HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return false
	}
	return looksLikeHTTP2Settings(hdr[:]) && binary.BigEndian.Uint32(hdr[frame.HeaderSize:])&0x7fffffff == 0
}

// speaksGRPCDetail is the error detail for a gRPC agent dialled with the
// binary Unix-socket protocol.
func speaksGRPCDetail(path string) string {
	return fmt.Sprintf("the agent at %s speaks gRPC (it answered the handshake with an HTTP/2 SETTINGS frame); use grpc+unix://%s", path, absPath(path))
}

// notGRPCDetail is the error detail for a Unix-socket agent dialled with
// gRPC.
func notGRPCDetail(path string) string {
	return fmt.Sprintf("the agent at %s does not speak gRPC (it did not answer the HTTP/2 connection preface); if it is a Unix-socket agent use unix://%s", path, absPath(path))
}

// absPath returns path made absolute (as it is when that fails).
func absPath(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}

// http2ClientPreface is what an HTTP/2 client sends first (RFC 9113 3.4):
// the fixed preface, then its SETTINGS frame (empty here).
var http2ClientPreface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")

// probeNotHTTP2 finds out why a gRPC connection to the Unix socket at path
// failed: it connects, sends an HTTP/2 client preface and reads the
// answer, within d and ctx. It reports true when the peer accepted the
// connection but did not answer like an HTTP/2 server (with a SETTINGS
// frame on stream 0): it closed the connection, or sent something else. A
// Unix-socket agent reads the preface as a frame whose LEN exceeds the
// protocol's limit and hangs up. Anything inconclusive (nothing listens,
// no answer in time) reports false. Cold path: only after a failed
// connection attempt.
func probeNotHTTP2(ctx context.Context, path string, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "unix", path)
	if err != nil {
		return false
	}
	defer nc.Close()
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// A write error (the peer hung up at once) still leaves its answer,
	// if any, readable.
	_, _ = nc.Write(http2ClientPreface)
	var hdr [http2HeaderSize]byte
	n, err := io.ReadFull(nc, hdr[:])
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false // silent: inconclusive
		}
		// Closed (or reset) before a whole frame header: no HTTP/2
		// server does that to a valid preface.
		return n < http2HeaderSize
	}
	return !(looksLikeHTTP2Settings(hdr[:]) && binary.BigEndian.Uint32(hdr[frame.HeaderSize:])&0x7fffffff == 0)
}

// maxMixupProbe bounds probeNotHTTP2.
const maxMixupProbe = time.Second
