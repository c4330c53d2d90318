package httpguard

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
)

// FrameInspector decides on one frame. It is called on the goroutine that
// moves the frame's direction, one frame at a time, so the frames of a
// direction reach it in order (the two directions run concurrently). The
// event and its Data are valid only during the call. Typically it sends
// the event to the agents and returns WebSocketDecisionOf the verdict.
type FrameInspector func(ctx context.Context, ev *agentwire.WebSocketFrameEvent) agentwire.WebSocketDecision

// DefaultMaxFramePayload is the largest frame payload a WebSocketFilter
// inspects when WebSocketConfig.MaxPayload is 0: 1 MiB, the agents'
// default body limit. A larger frame closes the connection with
// CloseMessageTooBig.
const DefaultMaxFramePayload = 1 << 20

// closeWriteTimeout bounds the write of a close frame to the upstream.
const closeWriteTimeout = 5 * time.Second

// WebSocketConfig configures a WebSocketFilter.
type WebSocketConfig struct {
	// Stream names the connection in events (correlation id, route, client
	// address).
	Stream WebSocketStream
	// Inspect decides on each frame (required).
	Inspect FrameInspector
	// MaxPayload is the largest frame payload let through (0:
	// DefaultMaxFramePayload).
	MaxPayload int
}

// WebSocketFilter inspects the frames of an upgraded connection. It wraps
// the upstream side of the connection: Write takes the bytes the client
// sent, Read returns the bytes for the client, and every frame in either
// direction goes to the FrameInspector first. Frames are forwarded as
// they arrived (masked client frames stay masked, byte for byte) when
// allowed, left out when dropped, and a close decision sends a close
// frame with the agent's code and reason to both sides (masked with a
// fresh random key towards the upstream), after which Read returns
// io.EOF and Writes are discarded.
//
// Because it is an io.ReadWriteCloser it drops into
// httputil.ReverseProxy: a ModifyResponse hook that replaces the body of
// a 101 Switching Protocols response with a WebSocketFilter around it
// makes the proxy's own upgrade copier go through the filter. Anything
// that copies bytes both ways between two connections works the same.
//
// Rules the filter enforces itself, closing both sides: client frames
// must be masked and upstream frames must not be (CloseProtocolError), no
// reserved opcodes or broken control frames (CloseProtocolError), no
// payload over MaxPayload (CloseMessageTooBig). A close frame is forwarded
// even when its decision is drop: dropping it would leave the other side
// waiting for a close that never comes. Compressed frames
// (permessage-deflate, RSV1) pass with their compressed payload; use
// StripWebSocketExtensions on the upgrade request when agents inspect
// frames.
//
// Read and Write may be called concurrently with each other (one
// goroutine each), not with themselves.
type WebSocketFilter struct {
	ctx     context.Context
	up      io.ReadWriteCloser
	inspect FrameInspector
	max     int
	stream  WebSocketStream

	// Write side (client → upstream): owned by the goroutine calling Write.
	wbuf  []byte
	wev   agentwire.WebSocketFrameEvent
	wfrm  Frame
	upErr error // the upstream write error that ends Writes

	// Read side (upstream → client): owned by the goroutine calling Read.
	rbuf   []byte // rbuf[rstart:rend] holds unparsed bytes
	rstart int
	rend   int
	rout   []byte // allowed frame bytes not yet returned
	rerr   error  // the upstream read error, returned once rbuf is drained
	rev    agentwire.WebSocketFrameEvent
	rfrm   Frame

	upMu sync.Mutex // serialises writes to up (Write's frames, close frames from Read)

	mu       sync.Mutex // guards the fields below
	closing  bool       // a close was decided: Writes are discarded, Read ends
	toClient []byte     // the close frame Read must still return
}

// NewWebSocketFilter returns a filter around upstream. ctx is passed to
// the inspector (the upgrade request's context).
func NewWebSocketFilter(ctx context.Context, upstream io.ReadWriteCloser, cfg WebSocketConfig) (*WebSocketFilter, error) {
	if upstream == nil || cfg.Inspect == nil {
		return nil, errors.New("agentwire: NewWebSocketFilter: nil upstream or inspector")
	}
	if cfg.MaxPayload < 0 {
		return nil, errors.New("agentwire: NewWebSocketFilter: negative MaxPayload")
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxFramePayload
	}
	return &WebSocketFilter{ctx: ctx, up: upstream, inspect: cfg.Inspect, max: cfg.MaxPayload, stream: cfg.Stream}, nil
}

// Write inspects the client's frames in p and forwards the allowed ones
// to the upstream. It buffers the start of a frame until the rest
// arrives. It returns len(p) unless writing to the upstream failed.
func (f *WebSocketFilter) Write(p []byte) (int, error) {
	if f.upErr != nil {
		return 0, f.upErr
	}
	if f.isClosing() {
		return len(p), nil
	}
	f.wbuf = append(f.wbuf, p...)
	off, run := 0, 0 // run: start of the allowed frames not yet written
	for off < len(f.wbuf) {
		n, err := ParseFrame(f.wbuf[off:], f.max, &f.wfrm)
		if n == 0 && err == nil {
			break
		}
		fr := &f.wfrm
		if err != nil || !fr.Masked {
			// The allowed frames before the bad one still go out.
			if werr := f.writeUp(f.wbuf[run:off]); werr != nil {
				return 0, werr
			}
			code := CloseProtocolError
			if err != nil {
				code = protocolCloseCode(err)
			}
			f.closeFromWrite(code, "")
			return len(p), nil
		}
		fr.ToggleMask()
		f.stream.Event(&f.wev, fr, true)
		d := f.inspect(f.ctx, &f.wev)
		f.wev.Data = nil
		fr.ToggleMask() // the bytes are forwarded as they came
		if d.Kind == agentwire.WebSocketClose {
			if err := f.writeUp(f.wbuf[run:off]); err != nil {
				return 0, err
			}
			f.closeFromWrite(d.Code, d.Reason)
			return len(p), nil
		}
		if d.Kind == agentwire.WebSocketDrop && fr.Opcode != OpClose {
			if err := f.writeUp(f.wbuf[run:off]); err != nil {
				return 0, err
			}
			run = off + n
		}
		off += n
	}
	if err := f.writeUp(f.wbuf[run:off]); err != nil {
		return 0, err
	}
	rest := copy(f.wbuf, f.wbuf[off:])
	f.wbuf = f.wbuf[:rest]
	return len(p), nil
}

// writeUp writes b to the upstream.
func (f *WebSocketFilter) writeUp(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	f.upMu.Lock()
	_, err := f.up.Write(b)
	f.upMu.Unlock()
	if err != nil {
		f.upErr = err
	}
	return err
}

// Read returns the upstream's allowed frames for the client.
func (f *WebSocketFilter) Read(p []byte) (int, error) {
	for {
		if len(f.rout) > 0 {
			n := copy(p, f.rout)
			f.rout = f.rout[n:]
			return n, nil
		}
		f.mu.Lock()
		closing, tc := f.closing, f.toClient
		f.toClient = nil
		f.mu.Unlock()
		if closing {
			if len(tc) > 0 {
				f.rout = tc
				continue
			}
			return 0, io.EOF
		}
		n, err := ParseFrame(f.rbuf[f.rstart:f.rend], f.max, &f.rfrm)
		if err != nil {
			f.closeFromRead(protocolCloseCode(err), "")
			continue
		}
		if n == 0 {
			if f.rerr != nil {
				return 0, f.rerr
			}
			f.fill()
			continue
		}
		fr := &f.rfrm
		f.rstart += n
		if fr.Masked {
			f.closeFromRead(CloseProtocolError, "")
			continue
		}
		f.stream.Event(&f.rev, fr, false)
		d := f.inspect(f.ctx, &f.rev)
		f.rev.Data = nil
		switch {
		case d.Kind == agentwire.WebSocketClose:
			f.closeFromRead(d.Code, d.Reason)
		case d.Kind == agentwire.WebSocketDrop && fr.Opcode != OpClose:
		default:
			f.rout = fr.Raw
		}
	}
}

// fill reads more upstream bytes into rbuf, compacting or growing it as a
// frame needs (at most the largest frame: header plus MaxPayload).
func (f *WebSocketFilter) fill() {
	if f.rstart > 0 && f.rstart == f.rend {
		f.rstart, f.rend = 0, 0
	}
	if f.rend == len(f.rbuf) {
		switch {
		case f.rstart > 0:
			f.rend = copy(f.rbuf, f.rbuf[f.rstart:f.rend])
			f.rstart = 0
		default:
			size := min(max(2*len(f.rbuf), 4096), f.max+14)
			if size <= len(f.rbuf) {
				// Cannot happen: ParseFrame rejects frames over the limit.
				f.rerr = ErrFrameTooLarge
				return
			}
			nb := make([]byte, size)
			f.rend = copy(nb, f.rbuf[f.rstart:f.rend])
			f.rstart = 0
			f.rbuf = nb
		}
	}
	n, err := f.up.Read(f.rbuf[f.rend:])
	f.rend += n
	if err != nil {
		f.rerr = err
	}
}

// Close closes the upstream connection.
func (f *WebSocketFilter) Close() error { return f.up.Close() }

func (f *WebSocketFilter) isClosing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closing
}

// startClose records a close decision; false if one was made already.
func (f *WebSocketFilter) startClose(code uint16, reason string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.closing = true
	f.toClient = AppendCloseFrame(nil, code, reason, nil)
	return true
}

// closeFromRead closes both sides from the Read goroutine: the client's
// close frame is returned by the next Read; the upstream's is written now.
func (f *WebSocketFilter) closeFromRead(code uint16, reason string) {
	if f.startClose(code, reason) {
		f.closeUpstream(code, reason)
	}
}

// closeFromWrite closes both sides from the Write goroutine: the
// upstream's close frame is written now, and the Read goroutine is woken
// (a read deadline in the past, or closing the upstream when it has no
// deadlines) to return the client's close frame and then io.EOF.
func (f *WebSocketFilter) closeFromWrite(code uint16, reason string) {
	if !f.startClose(code, reason) {
		return
	}
	f.closeUpstream(code, reason)
	if d, ok := f.up.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(time.Unix(1, 0))
		return
	}
	_ = f.up.Close()
}

// closeUpstream writes a masked close frame to the upstream, bounded in
// time when the upstream supports write deadlines.
func (f *WebSocketFilter) closeUpstream(code uint16, reason string) {
	var key [4]byte
	_, _ = rand.Read(key[:])
	frame := AppendCloseFrame(nil, code, reason, &key)
	f.upMu.Lock()
	defer f.upMu.Unlock()
	if d, ok := f.up.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	}
	_, _ = f.up.Write(frame)
}

// protocolCloseCode is the close code for a frame ParseFrame refused.
func protocolCloseCode(err error) uint16 {
	if errors.Is(err, ErrFrameTooLarge) {
		return CloseMessageTooBig
	}
	return CloseProtocolError
}
