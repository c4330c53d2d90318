package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/bufcache"
	"github.com/agentwire/agentwire/internal/payload"
	"github.com/agentwire/agentwire/internal/spinread"
	"github.com/agentwire/agentwire/internal/unixsock"
	"github.com/agentwire/agentwire/internal/wdeadline"
	"github.com/agentwire/agentwire/ring"
)

// This file is the Unix-socket transport (SPEC 6) and the connection engine
// shared with reverse connections (SPEC 7, reverse.go).
//
// Per connection there is one reader (the connection's own goroutine), one
// writer and up to maxConcurrency workers, started on demand and kept for
// the connection's life; Shutdown and Close reach it through
// context.AfterFunc hooks (watch). With inline handlers there are no
// workers and no writer goroutine: the reader writes its replies, and a
// push starts a short-lived writer (uds_push.go). The reader decodes each
// event into a pooled udsCall — so the frame buffer can be reused at once
// and a cancel that follows finds the request already registered — and
// hands it to an idle worker. The worker runs the handler, encodes the
// reply into the call's own buffer and queues the call on the
// connection's ring. The writer copies every queued frame into one
// buffer and writes it with a single system call once the ring is empty (or
// the buffer full).

// udsState is the Server's Unix-socket bookkeeping (conns is guarded by
// Server.mu).
type udsState struct {
	conns map[*udsConn]struct{}

	decodeErrors  atomic.Uint64
	ignoredFrames atomic.Uint64
}

// udsOut is one outbound frame: a reply or a copied frame owned by call
// (released after writing), or an immutable shared frame (pushes). Two
// words, not four: the ring's slots (a sequence number and a udsOut) are
// most of what an idle connection's queue holds.
type udsOut struct {
	call   *udsCall
	shared *[]byte
}

// udsCall is one event on a Unix-socket connection, and the buffer of the
// frame that answers it.
type udsCall struct {
	exchange
	uc  *udsConn
	out []byte // the encoded reply frame (or a pong)
	// view is set while body.Data is a view of the reader's frame (inline
	// handlers, raw MessagePack body data: no copy); ownData then keeps
	// the call's own body storage, which release puts back.
	view    bool
	ownData []byte
}

var udsCallPool = sync.Pool{New: func() any { return new(udsCall) }}

// maxPooledBuf bounds the buffers a pooled call keeps (decoded body data,
// encoded reply): larger ones are dropped instead of pinned in the pool.
const maxPooledBuf = 256 << 10

func getUDSCall(uc *udsConn) *udsCall {
	c := udsCallPool.Get().(*udsCall)
	c.uc = uc
	return c
}

func (c *udsCall) release() {
	c.recycle()
	c.uc, c.run = nil, nil
	c.resp = agentwire.AgentResponse{}
	udsCallPool.Put(c)
}

// recycle readies c for its connection's next event: its own body storage
// back in place of a view of the reader's frame, oversized buffers dropped.
// c.resp is left as it is: every path that handles an event resets it
// first (resetResp); release clears it so that a pooled call pins nothing.
func (c *udsCall) recycle() {
	if c.view {
		c.body.Data, c.ownData, c.view = c.ownData, nil, false
	}
	c.kind = kindNone
	c.cid = ""
	if cap(c.body.Data) > maxPooledBuf {
		c.body.Data = nil
	}
	if cap(c.ws.Data) > maxPooledBuf {
		c.ws.Data = nil
	}
	if cap(c.out) > maxPooledBuf {
		c.out = nil
	}
}

// udsConn is one Unix-socket or reverse connection.
type udsConn struct {
	srv     *Server
	nc      net.Conn
	rd      *frame.Reader
	hsReply []byte // successful handshake reply, written by sendHandshakeReply
	// lastHealth is the last health report queued on this connection.
	lastHealth atomic.Pointer[agentwire.HealthStatus]
	msgpack    bool // negotiated encoding (events and replies)
	flushBytes int  // inline replies collected before a write (inlineFlushBytes)
	raw        bool // msgpack replies with raw bin bodies

	// ctx is the parent of the connection's request contexts; cancelled
	// when the connection fails or the server closes.
	ctx    context.Context
	cancel context.CancelFunc

	ctxSlab reqCtxSlab // request contexts; reader only
	// strs holds the strings of MessagePack request-headers events that
	// changed from the last event the call held (the correlation id, at
	// least), in shared chunks instead of an allocation each (see
	// payload.MsgpackArena), released whenever the reader waits
	// (dropSpare). Reader only: every event is decoded there.
	strs payload.MsgpackArena
	// sem holds a slot per admitted event (being handled, or decoded and
	// waiting for a worker): maxConcurrency + eventBacklog(maxConcurrency)
	// slots. The reader pauses only when all are taken. Nil on inline
	// connections, which admit one event at a time.
	sem chan struct{}
	// work hands events to workers. Buffered with cap(sem) slots, so a send
	// by the holder of a slot never blocks; closed by the reader side. Nil
	// with inline handlers.
	work       chan *udsCall
	workers    int // started so far; reader only
	maxWorkers int // the handler concurrency bound (WithMaxConcurrency)
	// idle counts workers parked on work that no event has been sent for
	// yet. The reader reserves one before sending (so it knows whether to
	// start a worker); exact while workers < maxWorkers, which is the only
	// time it is consulted.
	idle atomic.Int32
	// inline: handlers run on the reader (WithInlineHandlers), which then
	// also writes the replies it produced itself: they collect in wbuf and
	// go out in one write when no further whole frame is buffered (before
	// the reader may block) or inlineFlushBytes have collected. Pushes
	// go through the push writer started on demand (uds_push.go); each
	// write holds whole frames, so the two never interleave inside one.
	inline  bool
	wbuf    []byte // reader only
	wbroken bool   // a reader write failed; reader only
	// run collects the counters of the events the inline reader handles,
	// published before their replies are written (eventrun.go). Reader
	// only.
	run eventRun
	// spare is the inline reader's call, kept from one event to the next
	// while whole frames are buffered (no pool round trip, and its reply
	// is not cleared twice) and put back in the pool before the reader
	// reads the socket (dropSpare), so that a connection waiting for
	// events holds none. Reader only.
	spare *udsCall
	// wd bounds one write (WithWriteTimeout); every writer (the writer
	// goroutine, or the inline reader and the push writer) arms it.
	wd wdeadline.Deadline
	// readAhead is set while the reader has more frames buffered: the
	// writer then yields before flushing so that their replies share a
	// write.
	readAhead atomic.Bool
	// framesRead counts the frames read since the reader last had to read
	// the socket, and spinOK says whether that was at most one (uds_spin.go).
	// Reader only.
	framesRead int
	spinOK     bool
	// out is the writer's queue (nil with inline handlers, whose pushes
	// wait in pushes instead, uds_push.go).
	out      *ring.Ring[udsOut]
	pushes   inlinePushes
	inflight inflightTable

	// hsConfig is the configuration the handshake carried (when handed to
	// the Configurer); configured is set by the first 0x17. Reader only.
	hsConfig   string
	configured bool

	established atomic.Bool // handshake or registration done: pushes allowed
	stopping    atomic.Bool // Shutdown: read and dispatch nothing more
	writerDone  chan struct{}
}

// ---------------------------------------------------------------------------
// Listening

// ServeUDS serves the Unix-socket transport on ln (normally a *net.UnixListener;
// any stream listener works) until Shutdown or Close, then returns
// ErrServerClosed. Each accepted connection must start with the proxy's
// handshake (0x01), bounded by WithHandshakeTimeout. ServeUDS may be called
// for several listeners; ln is closed when it returns. The socket file
// stays the caller's, unless ln comes from ListenUDS (whose Close removes
// it). A nil ln is an error satisfying errors.Is(err, ErrInvalidConfig).
func (s *Server) ServeUDS(ln net.Listener) error {
	if ln == nil {
		return invalidConfig(errors.New("agentwire: nil listener"))
	}
	// Closed on every return (the watcher below may close it first); for a
	// listener from ListenUDS that also removes the socket file.
	defer ln.Close()
	done := make(chan struct{})
	defer close(done)
	s.mu.Lock()
	if s.closed() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		select {
		case <-s.shutdownCh:
		case <-s.closeCh:
		case <-done:
		}
		ln.Close()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Transient (out of descriptors): back off and retry.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.LogAttrs(context.Background(), slog.LevelWarn, "agentwire: accept failed; retrying",
					slog.Any("error", err), slog.Duration("delay", delay))
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.shutdownCh:
				case <-s.closeCh:
				}
				t.Stop()
				continue
			}
			return err
		}
		delay = 0
		if !s.track(1) {
			nc.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.wg.Done()
			s.serveConn(context.Background(), nc, nil, nil, false)
		}()
	}
}

// track adds n goroutines to the server's wait group unless the server is
// closed (then it reports false). Safe against a concurrent Close.
func (s *Server) track(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return false
	}
	s.wg.Add(n)
	return true
}

// ErrSocketInUse is returned by ListenAndServeUDS when another process is
// accepting connections on the socket path.
var ErrSocketInUse = unixsock.ErrInUse

// ListenAndServeUDS creates a Unix socket at path and serves it like
// ServeUDS until Shutdown or Close, then removes the socket file and
// returns ErrServerClosed.
//
// Existing files at path: a socket that nobody accepts on (left behind by a
// crashed process) is removed; a socket with a live listener makes it fail
// with an error wrapping ErrSocketInUse; any other kind of file is never
// removed (error). The new socket gets the permissions of WithSocketMode
// (default 0600) before it appears under path: it is created in a private
// temporary directory next to path, chmod-ed, then hard-linked to path
// (which fails if someone created path meanwhile).
//
// ListenAndServeUDS is ListenUDS followed by ServeUDS; use the two to know
// when the socket is ready.
func (s *Server) ListenAndServeUDS(path string) error {
	ln, err := s.ListenUDS(path)
	if err != nil {
		return err
	}
	return s.ServeUDS(ln)
}

// listenUnix binds a Unix socket at path with the given permissions,
// handling a stale socket file (see ListenAndServeUDS).
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	return unixsock.Listen(path, mode)
}

// ---------------------------------------------------------------------------
// Connection

// serveConn serves one connection until it ends. For an accepted Unix-socket
// connection (reverse false) it first runs the handshake; a reverse
// connection is already registered and speaks JSON. rd is the connection's
// frame reader when one was already used (registration), else nil; serveConn
// releases it. ext ends the connection when cancelled (reverse connections:
// ServeReverse's context). The caller has counted this goroutine in s.wg.
func (s *Server) serveConn(ext context.Context, nc net.Conn, rd *frame.Reader, sr *spinread.Reader, reverse bool) {
	if rd == nil {
		rd, sr = s.newFrameReader(nc)
	}
	uc := &udsConn{
		srv:        s,
		nc:         nc,
		rd:         rd,
		maxWorkers: s.cfg.maxConcurrency,
		inline:     s.cfg.uds.inline,
		flushBytes: inlineFlushBytes(false), // the handshake may choose MessagePack
	}
	// Inline handlers run on the reader: no concurrency slots (an event is
	// answered before the next is read), no workers, no work queue (1.7
	// KiB per connection at the default concurrency bound), no writer
	// goroutine and no queue for it (uds_push.go).
	if uc.inline {
		// serveConn holds the push writer's role until the handshake
		// reply is written (uds_push.go).
		uc.pushes.busy = true
	} else {
		uc.sem = make(chan struct{}, s.cfg.maxConcurrency+eventBacklog(s.cfg.maxConcurrency))
		uc.writerDone = make(chan struct{})
		uc.work = make(chan *udsCall, cap(uc.sem))
		uc.out = ring.New[udsOut](s.cfg.maxConcurrency + pushQueue)
	}
	uc.wd.Timeout = s.cfg.uds.writeTimeout()
	uc.gateSpin(sr)
	defer uc.rd.Release()
	uc.ctx, uc.cancel = context.WithCancel(s.baseCtx)
	defer uc.cancel()
	// The watch is armed from the start, so that Shutdown and Close also
	// interrupt a handshake in progress.
	defer uc.watch(ext)()

	if !reverse {
		if !uc.handshake() {
			nc.Close()
			return
		}
	}
	uc.raw = uc.msgpack && s.cfg.uds.rawMsgpack

	s.mu.Lock()
	if s.closed() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if s.uds.conns == nil {
		s.uds.conns = make(map[*udsConn]struct{})
	}
	s.uds.conns[uc] = struct{}{}
	// Established under s.mu: pushes from now on are queued for this
	// connection and leave after the handshake reply.
	uc.established.Store(true)
	if !uc.inline {
		s.wg.Add(1) // writer
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.uds.conns, uc)
		s.mu.Unlock()
	}()

	uc.sendHandshakeReply()
	s.log.LogAttrs(uc.ctx, slog.LevelDebug, "agentwire: connection established", slog.Bool("reverse", reverse),
		slog.Bool("msgpack", uc.msgpack))
	defer s.log.LogAttrs(context.Background(), slog.LevelDebug, "agentwire: connection closed", slog.Bool("reverse", reverse))
	if uc.inline {
		uc.startInlinePushes()
	} else {
		go uc.writer()
	}
	if h := s.health.Load(); h != nil {
		uc.pushHealth(h)
	}

	err := uc.readLoop()
	graceful := err == io.EOF || uc.stopping.Load()
	if !graceful {
		if !isClosedConnErr(err) {
			s.log.LogAttrs(uc.ctx, slog.LevelDebug, "agentwire: connection ended", slog.Any("error", err))
		}
		// Nobody will read the answers: cancel the requests.
		uc.cancel()
	}
	uc.waitHandlers()
	if uc.inline {
		uc.closeInlinePushes()
	} else {
		close(uc.work)
		uc.out.Close()
		<-uc.writerDone
	}
	nc.Close()
}

// isClosedConnErr reports errors that just mean "the connection is gone".
func isClosedConnErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// watch ends the connection's reading on Shutdown (read deadline in the
// past: the reader stops, in-flight events are answered) and closes the
// connection on Close or when ext ends; it returns the function that
// disarms it, which serveConn calls when the connection is over.
//
// It holds no goroutine: the reactions are context.AfterFunc hooks on the
// server's shutdown context, on uc.ctx (a child of the server's base
// context, which Close cancels) and on ext, so they run on a short-lived
// goroutine only when one of them ends. A watcher goroutine per
// connection used to wait for them instead; its stack (grown by the
// stack-size estimate of the runtime, never shrunk while the process
// idles) was a fifth of what an idle connection holds.
func (uc *udsConn) watch(ext context.Context) (stop func()) {
	s := uc.srv
	stopShutdown := context.AfterFunc(s.shutdownCtx, func() {
		uc.stopping.Store(true)
		uc.nc.SetReadDeadline(time.Unix(1, 0))
	})
	// uc.ctx ends on Close (through the base context), when ext ends
	// (below), on a write failure and when the read loop fails: each
	// time the connection is over, so closing it here is what the
	// watcher did for the first two and what the others do themselves.
	stopClose := context.AfterFunc(uc.ctx, func() { uc.nc.Close() })
	stopExt := context.AfterFunc(ext, uc.cancel)
	return func() {
		stopExt()
		stopClose()
		stopShutdown()
	}
}

// waitHandlers waits until every dispatched event has been answered (its
// reply queued) by taking every concurrency slot. If the server is closed
// meanwhile it stops waiting (the request contexts are cancelled; workers
// finish on their own and Close waits for them).
func (uc *udsConn) waitHandlers() {
	for range cap(uc.sem) {
		select {
		case uc.sem <- struct{}{}:
		case <-uc.srv.closeCh:
			uc.cancel()
			return
		}
	}
}

// handshake runs the Unix-socket handshake (SPEC 6.3). It reports whether
// the connection may go on.
func (uc *udsConn) handshake() bool {
	s := uc.srv
	deadline := time.Now().Add(s.cfg.uds.handshakeTimeout())
	uc.nc.SetDeadline(deadline)
	if uc.stopping.Load() {
		// Shutdown began before the deadline above was set, which replaced
		// the read deadline in the past set by watch's Shutdown hook:
		// restore it.
		uc.nc.SetReadDeadline(time.Unix(1, 0))
	}
	var resp agentwire.HandshakeResponse
	resp.ProtocolVersion = agentwire.ProtocolVersion
	resp.Capabilities = s.caps
	ok := uc.answerHandshake(&resp)
	resp.Capabilities.SupportedEvents = udsEventCodes(resp.Capabilities.SupportedEvents)
	if !ok {
		resp.Success = false
		if !resp.Error.Valid {
			resp.Error = agentwire.Some("agentwire: handshake failed")
		}
		s.log.LogAttrs(uc.ctx, slog.LevelWarn, "agentwire: Unix-socket handshake failed", slog.String("error", resp.Error.Value))
	}
	buf, start := frame.BeginFrame(nil, frame.TypeHandshakeResponse)
	buf = payload.AppendHandshakeResponseJSON(buf, &resp)
	if err := frame.EndFrame(buf, start); err != nil {
		return false
	}
	if !ok {
		uc.nc.Write(buf)
		return false
	}
	// A successful reply is written by serveConn once the connection is
	// registered for pushes (sendHandshakeReply), so that no push sent after
	// the proxy saw the reply can miss this connection.
	uc.hsReply = buf
	return true
}

// sendHandshakeReply writes the successful handshake reply kept by
// handshake, before the writer starts (so it is the first frame), and
// clears the handshake deadline. On a write error the connection is closed,
// which ends the read loop at once.
func (uc *udsConn) sendHandshakeReply() {
	buf := uc.hsReply
	uc.hsReply = nil
	if buf == nil {
		return
	}
	if _, err := uc.nc.Write(buf); err != nil {
		uc.nc.Close()
		return
	}
	uc.nc.SetDeadline(time.Time{})
	if uc.stopping.Load() {
		// Shutdown began during the handshake: keep the reader stopped
		// (the deadline watch's Shutdown hook set was just cleared).
		uc.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// answerHandshake reads the proxy's 0x01 and fills resp. It reports success;
// on failure resp.Error says why (and the caller sends the failure).
func (uc *udsConn) answerHandshake(resp *agentwire.HandshakeResponse) bool {
	s := uc.srv
	typ, p, err := uc.rd.ReadFrame()
	if err != nil {
		var ut *frame.UnknownTypeError
		if !errors.As(err, &ut) {
			// Nothing useful to answer on a broken or silent connection,
			// but try: the proxy may still be reading.
			resp.Error = agentwire.Some("agentwire: no handshake received: " + err.Error())
			return false
		}
		resp.Error = agentwire.Some("agentwire: expected a handshake request (0x01), got " + ut.Type.String())
		return false
	}
	if typ != frame.TypeHandshakeRequest {
		resp.Error = agentwire.Some("agentwire: expected a handshake request (0x01), got " + typ.String())
		return false
	}
	var req agentwire.HandshakeRequest
	if err := payload.DecodeHandshakeRequestJSON(p, &req); err != nil {
		resp.Error = agentwire.Some("agentwire: invalid handshake request: " + err.Error())
		return false
	}
	enc, ok := s.negotiateEncoding(req.SupportedEncodings)
	if !ok {
		resp.Error = agentwire.Some(fmt.Sprintf("agentwire: none of the offered encodings %q is supported", req.SupportedEncodings))
		return false
	}
	if s.draining.Load() || s.closed() {
		resp.Error = agentwire.Some("agentwire: agent is draining")
		return false
	}
	resp.Encoding = enc
	s.handshake(uc.ctx, &req, resp)
	if !resp.Success {
		return false
	}
	if s.configurer != nil && meaningfulConfig(req.Config) {
		uc.hsConfig = string(req.Config)
	}
	// A Handshaker may have changed the encoding: it must still be one the
	// proxy offered and this server supports.
	chosen := resp.Encoding
	if chosen == "" {
		chosen = agentwire.EncodingJSON
	}
	if !s.encodingAllowed(chosen, req.SupportedEncodings) {
		resp.Error = agentwire.Some("agentwire: handshake hook chose encoding " + strconv.Quote(chosen) + ", which was not offered")
		return false
	}
	resp.Encoding = chosen
	uc.msgpack = chosen == agentwire.EncodingMsgpack
	uc.flushBytes = inlineFlushBytes(uc.msgpack)
	return true
}

// negotiateEncoding picks the first offered encoding the server supports;
// an empty offer means json (SPEC 6.3).
func (s *Server) negotiateEncoding(offered []string) (string, bool) {
	if len(offered) == 0 {
		return agentwire.EncodingJSON, true
	}
	for _, e := range offered {
		if s.encodingAllowed(e, offered) {
			return e, true
		}
	}
	return "", false
}

// encodingAllowed reports whether e is supported and was offered.
func (s *Server) encodingAllowed(e string, offered []string) bool {
	switch e {
	case agentwire.EncodingJSON:
	case agentwire.EncodingMsgpack:
		if s.cfg.uds.noMsgpack {
			return false
		}
	default:
		return false
	}
	if len(offered) == 0 {
		return e == agentwire.EncodingJSON
	}
	for _, o := range offered {
		if o == e {
			return true
		}
	}
	return false
}

// udsEventCodes converts gRPC event codes to the Unix-socket numbering
// (Configure 8 → 0, SPEC 2.4), dropping duplicates.
func udsEventCodes(in []int32) []int32 {
	out := make([]int32, 0, len(in))
	for _, e := range in {
		if e == agentwire.EventConfigureGRPC {
			e = agentwire.EventConfigureUDS
		}
		dup := false
		for _, o := range out {
			if o == e {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}

// readLoop reads and dispatches frames until the connection ends; it
// returns the error that ended it (io.EOF for a clean end of stream).
func (uc *udsConn) readLoop() error {
	if !uc.inline {
		return uc.readFrames()
	}
	err := uc.readFrames()
	uc.flushInline()
	return err
}

// inlineFlushBytes is how many bytes of replies the inline reader collects
// before it writes them even though more events are buffered, per encoding:
// about fourteen allow replies either way (~73 bytes in MessagePack, ~320 in
// JSON). Writing all of a read's replies at its end would hold the first
// reply until the last event of the batch is handled, leaving the proxy
// idle meanwhile; writing every dozen or so replies lets the proxy work on
// them while the agent handles the rest. Measured with agentwire serve and
// bench, 64 in flight, alternating runs. MessagePack (means of six):
// end-of-read only 240k requests/s and 3.7 µs proxy CPU per request,
// 2 KiB 279k and 3.3 µs; then in a second set 4 KiB 238k / 3.8 µs, 2 KiB
// 254k / 3.6 µs, 1 KiB 275k / 3.3 µs; and in a third 1 KiB and 512 B
// both 247k, 256 B 233k with the agent's CPU per request up by a sixth.
// JSON (eight pairs): 1 KiB 159k / 5.6 µs proxy / 4.4 µs agent, 4 KiB
// 167k / 5.2 / 3.9.
func inlineFlushBytes(msgpack bool) int {
	if msgpack {
		return 1 << 10
	}
	return 4 << 10
}

// flushInline writes the replies the reader collected (inline mode),
// after publishing their events' counters.
func (uc *udsConn) flushInline() {
	uc.run.publish(uc.srv)
	if len(uc.wbuf) == 0 {
		return
	}
	if !uc.wbroken {
		uc.wd.Arm(uc.nc)
		if _, err := uc.nc.Write(uc.wbuf); err != nil {
			uc.wbroken = true
			uc.cancel()
			uc.nc.Close()
			if !isClosedConnErr(err) {
				uc.srv.log.LogAttrs(context.Background(), slog.LevelDebug, "agentwire: Unix-socket write failed", slog.Any("error", err))
			}
		}
	}
	if cap(uc.wbuf) > 4*writeBufSize {
		uc.wbuf = nil
	} else {
		uc.wbuf = uc.wbuf[:0]
	}
}

func (uc *udsConn) readFrames() error {
	s := uc.srv
	defer uc.dropSpare()
	for {
		if uc.inline && len(uc.wbuf) > 0 && (len(uc.wbuf) >= uc.flushBytes || !uc.rd.FrameBuffered()) {
			uc.flushInline()
		}
		if !uc.rd.FrameBuffered() {
			uc.dropSpare()
			uc.noteRead()
		}
		typ, p, err := uc.rd.ReadFrame()
		if err != nil {
			var ut *frame.UnknownTypeError
			if errors.As(err, &ut) {
				s.uds.ignoredFrames.Add(1)
				s.log.LogAttrs(uc.ctx, slog.LevelWarn, "agentwire: skipping frame of unknown type", slog.String("type", ut.Type.String()))
				continue
			}
			var tl *frame.TooLargeError
			if errors.As(err, &tl) || errors.Is(err, frame.ErrZeroLength) {
				s.stats.protocolErrors.Add(1)
				s.log.LogAttrs(uc.ctx, slog.LevelWarn, "agentwire: closing connection after an invalid frame length", slog.Any("error", err))
			}
			return err
		}
		uc.framesRead++
		if uc.stopping.Load() {
			return nil
		}
		if uc.inline {
			// No writer goroutine to tell.
		} else if ahead := uc.rd.Buffered() >= frame.HeaderSize; ahead != uc.readAhead.Load() {
			uc.readAhead.Store(ahead)
		}
		switch typ {
		case frame.TypeRequestHeaders, frame.TypeRequestBodyChunk, frame.TypeResponseHeaders,
			frame.TypeResponseBodyChunk, frame.TypeRequestComplete, frame.TypeWebSocketFrame,
			frame.TypeGuardrailInspect:
			if !uc.dispatchEvent(typ, p) {
				return uc.ctx.Err()
			}
		case frame.TypeConfigure:
			uc.configure(p)
		case frame.TypeCancel:
			uc.handleCancel(p)
		case frame.TypePing:
			c := getUDSCall(uc)
			c.out, _ = frame.AppendFrame(c.out[:0], frame.TypePong, p) // p fits: it came in a frame
			uc.enqueue(c)
		default:
			// A valid type that a proxy does not send (0x01 again, 0x02,
			// agent-to-proxy types): ignored, like Rust readers do.
			s.uds.ignoredFrames.Add(1)
			s.log.LogAttrs(uc.ctx, slog.LevelDebug, "agentwire: ignoring unexpected frame", slog.String("type", typ.String()))
		}
	}
}

// eventBacklog is how many decoded events may wait for a worker on one
// connection beyond the n being handled. While they fit, the reader keeps
// reading, so cancels (0x40) and pings (0x41) are processed even when
// every handler is busy; when the backlog is full too, the reader pauses
// (memory stays bounded: at most n + eventBacklog(n) decoded events). A
// proxy that honours the announced max_concurrency never fills it.
func eventBacklog(n int) int { return n }

// dispatchEvent decodes one event and has it handled: on the reader
// (WithInlineHandlers), by an idle worker, by a new worker while fewer than
// maxConcurrency exist, or else queued in the backlog for the next free
// worker. It reports false when the connection is over.
func (uc *udsConn) dispatchEvent(typ frame.Type, p []byte) bool {
	s := uc.srv
	if uc.inline {
		// The event is handled before the reader goes on: it needs no
		// concurrency slot (waitHandlers finds them all free).
		return uc.dispatchInline(typ, p)
	}
	select {
	case uc.sem <- struct{}{}:
	default:
		// Every handler is busy and the backlog is full: pause reading.
		select {
		case uc.sem <- struct{}{}:
		case <-uc.ctx.Done():
			return false
		}
	}
	c := getUDSCall(uc)
	if err := c.decodeEvent(typ, p, uc.msgpack); err != nil {
		<-uc.sem
		uc.decodeFailed(c, typ, p, err)
		return true
	}
	uc.begin(c)
	for {
		n := uc.idle.Load()
		if n <= 0 {
			break
		}
		if uc.idle.CompareAndSwap(n, n-1) {
			uc.work <- c // a parked worker takes it
			return true
		}
	}
	if uc.workers < uc.maxWorkers {
		uc.workers++
		s.wg.Add(1) // the connection's goroutines are counted: Add is safe
		go uc.worker(c)
		return true
	}
	// Every worker is busy: c waits in the backlog. The send does not
	// block: the slot taken above guarantees room.
	uc.work <- c
	return true
}

// dispatchInline decodes one event and handles it on the reader
// (WithInlineHandlers), collecting the reply in uc.wbuf.
func (uc *udsConn) dispatchInline(typ frame.Type, p []byte) bool {
	c := uc.spare
	if c != nil {
		uc.spare = nil
	} else {
		c = getUDSCall(uc)
	}
	var err error
	if uc.msgpack && (typ == frame.TypeRequestBodyChunk || typ == frame.TypeResponseBodyChunk) {
		// The handler runs before the next frame is read: raw body data
		// can stay in the frame (one copy of the body bytes in this
		// process, the frame reader's, instead of two).
		err = c.decodeBodyView(typ, p)
	} else {
		err = c.decodeEvent(typ, p, uc.msgpack)
	}
	if err != nil {
		uc.decodeFailed(c, typ, p, err)
		return true
	}
	c.run = &uc.run
	uc.begin(c)
	uc.srv.invoke(&c.exchange)
	uc.wbuf = uc.encodeReplyTo(uc.wbuf, c)
	uc.end(c)
	c.recycle()
	uc.spare = c
	if len(uc.wbuf) >= writeBufSize {
		uc.flushInline()
	}
	return true
}

// dropSpare puts the inline reader's spare call back in the pool (see
// spare), and the chunk of its string arena (strs), so that a connection
// waiting for events holds neither. Reader only.
func (uc *udsConn) dropSpare() {
	if c := uc.spare; c != nil {
		uc.spare = nil
		c.release()
	}
	uc.strs.Release()
}

// decodeFailed answers an undecodable event with the decode-error decision
// (block 503 by default, never a silent allow) and the best-effort
// correlation id (SPEC 6.5), so the proxy gets its answer at once.
func (uc *udsConn) decodeFailed(c *udsCall, typ frame.Type, p []byte, err error) {
	s := uc.srv
	s.uds.decodeErrors.Add(1)
	c.cid = bestEffortID(p, uc.msgpack)
	s.log.LogAttrs(uc.ctx, slog.LevelWarn, "agentwire: undecodable event; answering with the decode-error decision",
		slog.String("type", typ.String()), slog.String("correlation_id", c.cid), slog.Any("error", err))
	c.kind = kindNone
	c.resetResp()
	c.resp.Decision = s.cfg.decodeErr
	if typ == frame.TypeWebSocketFrame {
		ws := agentwire.WebSocketDecision{} // allow
		if c.resp.Decision.Kind != agentwire.DecisionAllow {
			ws = agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: 1011, Reason: "agent could not decode the frame"}
		}
		c.resp.WebSocketDecision = agentwire.Some(ws)
	}
	uc.encodeReply(c)
	uc.enqueue(c)
}

// decodeEvent decodes the payload of an event frame into c and sets its
// kind and routing correlation id.
func (c *udsCall) decodeEvent(typ frame.Type, p []byte, msgpack bool) error {
	var err error
	switch typ {
	case frame.TypeRequestHeaders:
		c.kind = kindRequestHeaders
		if msgpack {
			// The decoder hands back the envelope's id when it is the
			// first key (every known proxy's shape): no second parse.
			var strs *payload.MsgpackArena
			if c.uc != nil {
				strs = &c.uc.strs
			}
			top, topOK, err := payload.DecodeRequestHeadersMsgpackRoutedIn(p, &c.reqHeaders, strs)
			if err == nil {
				c.cid = routedID(p, top, topOK, c.reqHeaders.Metadata.CorrelationID)
			}
			return err
		}
		if err = payload.DecodeRequestHeadersJSON(p, &c.reqHeaders); err == nil {
			c.cid = routingIDJSON(p, c.reqHeaders.Metadata.CorrelationID)
		}
		return err
	case frame.TypeRequestBodyChunk:
		c.kind = kindRequestBodyChunk
		err = decodeIn(msgpack, p, &c.body, payload.DecodeRequestBodyChunkMsgpack, payload.DecodeRequestBodyChunkJSON)
		c.cid = c.body.CorrelationID
	case frame.TypeResponseBodyChunk:
		c.kind = kindResponseBodyChunk
		err = decodeIn(msgpack, p, &c.body, payload.DecodeResponseBodyChunkMsgpack, payload.DecodeResponseBodyChunkJSON)
		c.cid = c.body.CorrelationID
	case frame.TypeResponseHeaders:
		c.kind = kindResponseHeaders
		err = decodeIn(msgpack, p, &c.respHeaders, payload.DecodeResponseHeadersMsgpack, payload.DecodeResponseHeadersJSON)
		c.cid = c.respHeaders.CorrelationID
	case frame.TypeRequestComplete:
		c.kind = kindRequestComplete
		err = decodeIn(msgpack, p, &c.complete, payload.DecodeRequestCompleteMsgpack, payload.DecodeRequestCompleteJSON)
		c.cid = c.complete.CorrelationID
	case frame.TypeWebSocketFrame:
		c.kind = kindWebSocketFrame
		err = decodeIn(msgpack, p, &c.ws, payload.DecodeWebSocketFrameMsgpack, payload.DecodeWebSocketFrameJSON)
		c.cid = c.ws.CorrelationID
	case frame.TypeGuardrailInspect:
		c.kind = kindGuardrailInspect
		err = decodeIn(msgpack, p, &c.guard, payload.DecodeGuardrailInspectMsgpack, payload.DecodeGuardrailInspectJSON)
		c.cid = c.guard.CorrelationID
	default:
		return fmt.Errorf("agentwire: frame type %v is not an event", typ)
	}
	return err
}

// decodeBodyView decodes a MessagePack body chunk into c leaving raw (bin)
// data in p: c.body.Data is then a view of p, valid until the reader reads
// the next frame, and release puts the call's own storage back.
func (c *udsCall) decodeBodyView(typ frame.Type, p []byte) error {
	own := c.body.Data
	var viewed bool
	var err error
	if typ == frame.TypeRequestBodyChunk {
		c.kind = kindRequestBodyChunk
		viewed, err = payload.DecodeRequestBodyChunkMsgpackView(p, &c.body)
	} else {
		c.kind = kindResponseBodyChunk
		viewed, err = payload.DecodeResponseBodyChunkMsgpackView(p, &c.body)
	}
	if viewed {
		c.view, c.ownData = true, own
	}
	c.cid = c.body.CorrelationID
	return err
}

// decodeIn decodes p into v with the decoder of the connection's encoding.
func decodeIn[T any](msgpack bool, p []byte, v *T, fromMsgpack, fromJSON func([]byte, *T) error) error {
	if msgpack {
		return fromMsgpack(p, v)
	}
	return fromJSON(p, v)
}

// worker handles events until the work channel is closed.
func (uc *udsConn) worker(c *udsCall) {
	defer uc.srv.wg.Done()
	for {
		uc.process(c)
		var ok bool
		select {
		case c, ok = <-uc.work: // backlog
		default:
			uc.idle.Add(1)
			c, ok = <-uc.work
		}
		if !ok {
			return
		}
	}
}

// process runs the handler for c on a worker, encodes and queues the
// reply and frees c's concurrency slot.
func (uc *udsConn) process(c *udsCall) {
	s := uc.srv
	s.invoke(&c.exchange)
	uc.encodeReply(c)
	uc.end(c)
	uc.enqueue(c)
	<-uc.sem
}

// begin registers c for cancels with an allocation-free request context,
// pre-initialises the reply and counts the event. Reader only.
func (uc *udsConn) begin(c *udsCall) {
	uc.srv.beginWith(uc.ctxSlab.get(uc.ctx), uc.cancelTable(), &c.exchange)
}

// end releases what begin acquired (the request context is cancelled, as
// context.WithCancel's would be).
func (uc *udsConn) end(c *udsCall) { uc.srv.end(uc.cancelTable(), &c.exchange) }

// cancelTable returns the table through which cancels reach the events
// being handled, or nil with inline handlers: those run on the reader,
// which reads a cancel only after the handler of every event before it
// has returned, so a cancel never finds one of them in flight and the
// table would only cost a lock and two map operations per event.
func (uc *udsConn) cancelTable() *inflightTable {
	if uc.inline {
		return nil
	}
	return &uc.inflight
}

// encodeReply encodes c.resp as a 0x20 frame into c.out (encodeReplyTo).
func (uc *udsConn) encodeReply(c *udsCall) { c.out = uc.encodeReplyTo(c.out[:0], c) }

// encodeReplyTo appends c.resp as a 0x20 frame to dst. If the reply cannot
// be encoded (an invalid audit.custom value in MessagePack, or more than
// 16 MiB) the error decision tagged TagHandlerError is appended instead.
func (uc *udsConn) encodeReplyTo(dst []byte, c *udsCall) []byte {
	mark := len(dst)
	b, err := uc.appendReply(dst, c)
	if err != nil {
		s := uc.srv
		s.stats.handlerErrors.Add(1)
		s.log.LogAttrs(uc.ctx, slog.LevelWarn, "agentwire: reply cannot be encoded; answering with the error decision",
			slog.String("correlation_id", c.cid), slog.Any("error", err))
		pt := c.resp.ProcessingTimeMS
		s.failedReply(&c.exchange, TagHandlerError)
		c.resp.ProcessingTimeMS = pt
		b, _ = uc.appendReply(b[:mark], c)
	}
	return b
}

// appendReply appends c.resp as a 0x20 frame to dst (on error, what it
// appended is to be cut off).
func (uc *udsConn) appendReply(dst []byte, c *udsCall) ([]byte, error) {
	b, start := frame.BeginFrame(dst, frame.TypeAgentResponse)
	var err error
	switch {
	case !uc.msgpack:
		b = payload.AppendAgentResponseJSON(b, &c.resp)
	case uc.raw:
		b, err = payload.AppendAgentResponseMsgpackRaw(b, &c.resp)
	default:
		b, err = payload.AppendAgentResponseMsgpack(b, &c.resp)
	}
	if err == nil {
		err = frame.EndFrame(b, start)
	}
	return b, err
}

// enqueue queues c's frame for the writer, waiting while the ring is full.
// If the connection is over, c is released.
func (uc *udsConn) enqueue(c *udsCall) {
	if uc.inline {
		// Only the reader handles events and answers pings in inline
		// mode: collect the frame for flushInline.
		uc.wbuf = append(uc.wbuf, c.out...)
		c.release()
		if len(uc.wbuf) >= writeBufSize {
			uc.flushInline()
		}
		return
	}
	if uc.out.Enqueue(uc.ctx, udsOut{call: c}) != nil {
		c.release()
	}
}

// pushQueue is the room an outbound queue has for pushes beyond replies
// (with inline handlers, the length of the push list).
const pushQueue = 64

// push queues a shared frame without blocking; a full ring drops it.
func (uc *udsConn) push(f *[]byte) {
	if uc.inline {
		uc.pushInline(f)
		return
	}
	if err := uc.out.TryEnqueue(udsOut{shared: f}); err == ring.ErrFull {
		uc.srv.stats.droppedPushes.Add(1)
	}
}

// configure handles a 0x17 Configure on the reader (so later events see the
// new configuration) and answers it: allow, or block 500 "Configuration
// rejected" when the hook fails (as the Rust SDK does).
func (uc *udsConn) configure(p []byte) {
	s := uc.srv
	c := getUDSCall(uc)
	var ev agentwire.ConfigureEvent
	var err error
	if uc.msgpack && !looksLikeJSON(p) {
		err = payload.DecodeConfigureMsgpack(p, &ev)
	} else {
		err = payload.DecodeConfigureJSON(p, &ev)
	}
	if err != nil {
		uc.decodeFailed(c, frame.TypeConfigure, p, err)
		return
	}
	c.cid = ev.CorrelationID
	c.resetResp()
	first := !uc.configured
	uc.configured = true
	if first && uc.hsConfig != "" && string(ev.Config) == uc.hsConfig {
		// An agentwire proxy repeats the handshake configuration as its
		// first Configure; the hook already ran for it.
		uc.encodeReply(c)
		uc.enqueue(c)
		return
	}
	if err := s.configure(uc.ctx, ev.Config, ev.ConfigVersion.Value); err != nil {
		c.resp.Decision = agentwire.Block(500)
		c.resp.Decision.Body = agentwire.Some("Configuration rejected")
	}
	uc.encodeReply(c)
	uc.enqueue(c)
}

// handleCancel cancels the request contexts of a 0x40's correlation id. A
// cancel is never answered.
func (uc *udsConn) handleCancel(p []byte) {
	s := uc.srv
	var c agentwire.Cancel
	if err := decodeCancel(p, &c); err != nil {
		s.uds.decodeErrors.Add(1)
		s.log.LogAttrs(uc.ctx, slog.LevelWarn, "agentwire: undecodable cancel ignored", slog.Any("error", err))
		return
	}
	uc.inflight.cancel(c.CorrelationID)
	s.cancelled(uc.ctx, c)
}

// busy reports whether events of the connection are being handled.
func (uc *udsConn) busy() bool { return len(uc.sem) > 0 }

// writeBufSize is the size of the writer's batch buffer; frames are copied
// into it and written with one system call.
const writeBufSize = 64 << 10

// writer writes the connection after the handshake on connections whose
// handlers run on workers (inline connections write from the reader and
// the push writer instead). It drains the ring in batches and flushes when the ring is
// empty; if events are still being handled at that point it first yields
// once, so that their replies join the same write (under pipelined load
// this cuts the write calls from about one per reply to one per four or
// five, see BenchmarkUDSPipelined). After a write error it cancels the connection and keeps releasing
// queued calls until the ring is closed.
func (uc *udsConn) writer() {
	s := uc.srv
	defer s.wg.Done()
	defer close(uc.writerDone)
	batch := make([]udsOut, 64)
	// The batch buffer is the cache's while the writer waits for replies:
	// an idle connection holds none (writeBufs).
	hint := writeBufs.Hint()
	var bp *[]byte
	var buf []byte
	broken := false
	yielded := false
	write := func(b []byte) {
		if broken || len(b) == 0 {
			return
		}
		uc.wd.Arm(uc.nc)
		if _, err := uc.nc.Write(b); err != nil {
			broken = true
			uc.cancel()
			uc.nc.Close() // wakes the reader
			if !isClosedConnErr(err) {
				s.log.LogAttrs(context.Background(), slog.LevelDebug, "agentwire: Unix-socket write failed", slog.Any("error", err))
			}
		}
	}
	n, err := uc.out.DequeueBatch(batch)
	for err == nil {
		if bp == nil {
			if bp = writeBufs.Get(hint); bp == nil {
				b := make([]byte, 0, writeBufSize)
				bp = &b
			}
			buf = (*bp)[:0]
		}
		for i := range batch[:n] {
			it := batch[i]
			batch[i] = udsOut{}
			var f []byte
			if it.call != nil {
				f = it.call.out
			} else {
				f = *it.shared
			}
			if len(buf)+len(f) > cap(buf) {
				write(buf)
				buf = buf[:0]
			}
			if len(f) > cap(buf) {
				write(f)
			} else {
				buf = append(buf, f...)
			}
			if it.call != nil {
				it.call.release()
			}
		}
		if n = uc.out.TryDequeueBatch(batch); n > 0 {
			continue
		}
		if !yielded && (uc.busy() || uc.readAhead.Load()) {
			// Events are being handled: let their workers run first so
			// that their replies share this write.
			yielded = true
			runtime.Gosched()
			if n = uc.out.TryDequeueBatch(batch); n > 0 {
				continue
			}
		}
		yielded = false
		write(buf)
		*bp = buf[:0]
		writeBufs.Put(hint, bp) // a full cache leaves it to the GC
		bp, buf = nil, nil
		n, err = uc.out.DequeueBatch(batch)
	}
}

// writeBufs holds the writers' batch buffers (writeBufSize bytes) while
// their connections wait for replies to write (bufcache says why not
// sync.Pool).
var writeBufs bufcache.Cache[[]byte]

// ---------------------------------------------------------------------------
// Pushes

// udsConns returns the established connections (a snapshot).
func (s *Server) udsConnsSnapshot() []*udsConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.uds.conns) == 0 {
		return nil
	}
	out := make([]*udsConn, 0, len(s.uds.conns))
	for uc := range s.uds.conns {
		if uc.established.Load() {
			out = append(out, uc)
		}
	}
	return out
}

// udsPush sends one agent-originated message to every established
// Unix-socket and reverse connection, encoded once per encoding in use.
func (s *Server) udsPush(t frame.Type, appendJSON func([]byte) []byte, appendMsgpack func([]byte) ([]byte, error)) {
	conns := s.udsConnsSnapshot()
	if len(conns) == 0 {
		return
	}
	var jsonFrame, mpFrame *[]byte
	for _, uc := range conns {
		if uc.msgpack {
			if mpFrame == nil {
				b, start := frame.BeginFrame(nil, t)
				b, err := appendMsgpack(b)
				if err == nil {
					err = frame.EndFrame(b, start)
				}
				if err != nil {
					s.log.LogAttrs(context.Background(), slog.LevelWarn, "agentwire: push cannot be encoded", slog.String("type", t.String()), slog.Any("error", err))
					return
				}
				mpFrame = &b
			}
			uc.push(mpFrame)
			continue
		}
		if jsonFrame == nil {
			b, start := frame.BeginFrame(nil, t)
			b = appendJSON(b)
			if err := frame.EndFrame(b, start); err != nil {
				s.log.LogAttrs(context.Background(), slog.LevelWarn, "agentwire: push cannot be encoded", slog.String("type", t.String()), slog.Any("error", err))
				return
			}
			jsonFrame = &b
		}
		uc.push(jsonFrame)
	}
}

// pushHealth sends h to one connection, once: a connection established
// while ReportHealth runs could otherwise get the same report both from
// its initial push and from the broadcast.
func (uc *udsConn) pushHealth(h *agentwire.HealthStatus) {
	if uc.lastHealth.Swap(h) == h {
		return
	}
	b, start := frame.BeginFrame(nil, frame.TypeHealthStatus)
	if uc.msgpack {
		b = payload.AppendHealthStatusMsgpack(b, h)
	} else {
		b = payload.AppendHealthStatusJSON(b, h)
	}
	if frame.EndFrame(b, start) == nil {
		uc.push(&b)
	}
}

func (s *Server) udsPushHealth(h *agentwire.HealthStatus) {
	for _, uc := range s.udsConnsSnapshot() {
		uc.pushHealth(h)
	}
}

func (s *Server) udsPushMetrics(r *agentwire.MetricsReport) {
	s.udsPush(frame.TypeMetricsReport,
		func(b []byte) []byte { return payload.AppendMetricsReportJSON(b, r) },
		func(b []byte) ([]byte, error) { return payload.AppendMetricsReportMsgpack(b, r), nil })
}

func (s *Server) udsPushFlowControl(f *agentwire.FlowControlSignal) {
	s.udsPush(frame.TypeFlowControl,
		func(b []byte) []byte { return payload.AppendFlowControlSignalJSON(b, f) },
		func(b []byte) ([]byte, error) { return payload.AppendFlowControlSignalMsgpack(b, f), nil })
}

func (s *Server) udsPushConfigUpdate(r *agentwire.ConfigUpdateRequest) {
	s.udsPush(frame.TypeConfigUpdateRequest,
		func(b []byte) []byte { return payload.AppendConfigUpdateRequestJSON(b, r) },
		func(b []byte) ([]byte, error) { return payload.AppendConfigUpdateRequestMsgpack(b, r) })
}
