package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
	"github.com/agentwire/agentwire/internal/spinread"
	"github.com/agentwire/agentwire/internal/unixsock"
	"github.com/agentwire/agentwire/internal/wdeadline"
)

// This file is the binary Unix-socket transport (SPEC 6) and, without its
// handshake, the transport of reverse connections (SPEC 7, reverse.go).
//
// One session is one socket. Outbound: the session's writer encodes
// request-headers events itself into its write buffer (eventWriter), and
// callers encode the other frames (header and payload) into pooled buffers
// on their own goroutines, which the writer hands to send (small ones are
// copied into the write buffer). Nothing is written until the outbound
// queue is empty (or the batch is full): flush then writes everything
// collected with one write, or one writev when large frames go out from
// their own buffers. Inbound: the session's reader runs readLoop over a
// frame.Reader (one read system call brings in many frames; payloads are
// returned without a copy) and routes replies by their correlation id
// without decoding them first (uds_peek.go).

// parseUDSEndpoint accepts "unix:" endpoints ("unix:///path",
// "unix:/path", "unix:path"; "unix://a/b.sock" is /a/b.sock, as the Rust
// pool reads it: see unixsock.PathFromURL), "/path" and relative "*.sock"
// paths.
func parseUDSEndpoint(s string) (endpoint, error) {
	path := s
	if p, ok := unixsock.PathFromURL(s); ok {
		path = p
	}
	if path == "" {
		return endpoint{}, configErr("endpoint %q: empty socket path", s)
	}
	return endpoint{udsPath: path}, nil
}

// ---------------------------------------------------------------------------
// dialer

// udsDialer opens Unix-socket sessions: connect, then the JSON handshake.
type udsDialer struct {
	path string
	o    *options
}

func newUDSDialer(ep endpoint, o *options) (*udsDialer, error) {
	if o.tls != nil {
		return nil, configErr("WithTLS is not supported by the binary Unix-socket protocol")
	}
	return &udsDialer{path: ep.udsPath, o: o}, nil
}

func (d *udsDialer) close() error { return nil }

// open connects (bounded by the connect timeout) and runs the handshake
// (bounded by the handshake timeout; SPEC 6.3, fact 10, 12): 0x01 with
// supported_versions [2], the proxy's id and version, the agent
// configuration (or null) and the offered encodings; the agent must answer
// 0x02 with success, protocol version 2, every capability key, and an
// encoding that was offered (a missing one means json). ctx bounds both.
func (d *udsDialer) open(ctx context.Context, hs *agentwire.HandshakeRequest) (transport, agentwire.Capabilities, error) {
	var caps agentwire.Capabilities
	cctx, cancel := context.WithTimeout(ctx, d.o.connectTimeout)
	var nd net.Dialer
	nc, err := nd.DialContext(cctx, "unix", d.path)
	cancel()
	if err != nil {
		detail := "connect " + d.path
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			detail = "connect timed out"
		}
		return nil, caps, &Error{Kind: ErrConnectFailed, Detail: detail, Err: err}
	}

	// The handshake is bounded by its own deadline and by ctx.
	timedOut := false
	nc.SetDeadline(time.Now().Add(d.o.handshakeTimeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	maxPayload, maxLen := udsLimits(d.o)
	fail := func(kind error, detail string, err error) (transport, agentwire.Capabilities, error) {
		stop()
		nc.Close()
		if ctx.Err() != nil {
			return nil, caps, &Error{Kind: ErrConnectFailed, Detail: detail, Err: ctx.Err()}
		}
		if timedOut {
			return nil, caps, &Error{Kind: ErrConnectFailed, Detail: "handshake timed out", Err: err}
		}
		return nil, caps, &Error{Kind: kind, Detail: detail, Err: err}
	}
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}

	req := agentwire.HandshakeRequest{
		SupportedVersions:  []uint32{agentwire.ProtocolVersion},
		ProxyID:            hs.ProxyID,
		ProxyVersion:       hs.ProxyVersion,
		Config:             hs.Config,
		SupportedEncodings: d.o.uds.offered(),
	}
	buf, start := frame.BeginFrame(make([]byte, 0, 256+len(hs.Config)), frame.TypeHandshakeRequest)
	buf = payload.AppendHandshakeRequestJSON(buf, &req)
	if err := frame.EndFrame(buf, start); err != nil {
		return fail(ErrMessageTooLarge, "handshake request", err)
	}
	if _, err := nc.Write(buf); err != nil {
		timedOut = isTimeout(err)
		if !timedOut && sniffHTTP2(nc) {
			// A gRPC server hung up on the bytes it read as a bad
			// HTTP/2 preface; its SETTINGS frame is still readable.
			return fail(ErrHandshakeRejected, speaksGRPCDetail(d.path), nil)
		}
		return fail(ErrConnectFailed, "send handshake", err)
	}
	// Exactly one frame, read without the session's frame reader (which
	// reads ahead) so that its header can be told from an HTTP/2 server's.
	typ, p, err := readHandshakeFrame(nc, maxLen)
	if err != nil {
		if errors.Is(err, errSpeaksHTTP2) {
			return fail(ErrHandshakeRejected, speaksGRPCDetail(d.path), nil)
		}
		var ut *frame.UnknownTypeError
		if errors.As(err, &ut) {
			return fail(ErrHandshakeRejected, "expected a handshake response (0x02), got "+ut.Type.String(), nil)
		}
		timedOut = isTimeout(err)
		if err == io.EOF {
			return fail(ErrConnectFailed, "agent closed the connection without a handshake response", err)
		}
		return fail(ErrConnectFailed, "read handshake response", err)
	}
	if typ != frame.TypeHandshakeResponse {
		return fail(ErrHandshakeRejected, "expected a handshake response (0x02), got "+typ.String(), nil)
	}
	var resp agentwire.HandshakeResponse
	if err := payload.DecodeHandshakeResponseJSON(p, &resp); err != nil {
		return fail(ErrHandshakeRejected, "undecodable handshake response", err)
	}
	switch {
	case !resp.Success:
		msg := resp.Error.Value
		if msg == "" {
			msg = "unknown handshake error"
		}
		return fail(ErrHandshakeRejected, "agent refused: "+msg, nil)
	case resp.ProtocolVersion != agentwire.ProtocolVersion:
		return fail(ErrHandshakeRejected, fmt.Sprintf("agent answered protocol version %d, want 2", resp.ProtocolVersion), nil)
	}
	enc := resp.Encoding
	if enc == "" {
		enc = agentwire.EncodingJSON
	}
	offered := false
	for _, e := range req.SupportedEncodings {
		if e == enc {
			offered = true
		}
	}
	if !offered {
		return fail(ErrHandshakeRejected, fmt.Sprintf("agent chose encoding %q, which was not offered (offered %q)", enc, req.SupportedEncodings), nil)
	}
	if !stop() {
		return fail(ErrConnectFailed, "handshake", nil) // ctx ended just now
	}
	nc.SetDeadline(time.Time{})

	caps = resp.Capabilities
	caps.ProtocolVersion = resp.ProtocolVersion
	caps.SupportedEvents = grpcEventCodes(caps.SupportedEvents)
	msgpack := enc == agentwire.EncodingMsgpack
	sr := spinread.New(nc, d.o.uds.spinBudget())
	rd := frame.NewReader(sr, maxLen)
	t := newUDSTransport(nc, rd, maxPayload, msgpack, msgpack && d.o.uds.rawBodies, d.o.logger)
	t.wd.Timeout = d.o.uds.writeTimeout
	t.sr = sr
	return t, caps, nil
}

// grpcEventCodes converts Unix-socket supported_events codes to the proto
// numbering used everywhere in this package (Configure 0 → 8, SPEC 2.4).
func grpcEventCodes(in []int32) []int32 {
	out := make([]int32, len(in))
	for i, e := range in {
		if e == agentwire.EventConfigureUDS {
			e = agentwire.EventConfigureGRPC
		}
		out[i] = e
	}
	return out
}

// ---------------------------------------------------------------------------
// transport

// Writer batching limits: send flushes early when this many frames or
// bytes are collected.
const (
	udsMaxBatchFrames = 512
	udsMaxBatchBytes  = 256 << 10
)

// udsTransport is one Unix-socket (or reverse) connection. The encoders are
// safe for concurrent use; send and flush belong to the session's writer,
// readLoop to its reader.
type udsTransport struct {
	nc         net.Conn
	rd         *frame.Reader
	maxPayload int
	msgpack    bool // negotiated encoding of events, replies and reports
	raw        bool // msgpack body data as raw bin
	log        *slog.Logger
	writev     bool // nc supports writev (net.Buffers)

	// Writer-owned batch: frames encoded by the writer itself and small
	// queued frames are appended to enc; larger queued buffers are kept
	// as segments of their own (writev) on connections that have it.
	wd     wdeadline.Deadline // WithWriteTimeout (Timeout 0: none)
	enc    []byte
	segs   []udsSeg
	frames int
	bytes  int
	iov    net.Buffers
	iovw   net.Buffers // the header writev consumes (see flush)

	// Direct writes (uds_direct.go), by the holder of the session's
	// write role: rc is nil when the connection has no descriptor;
	// rawWriteFn is rawWrite, whose input (tw) and results (twN, twErr)
	// live here so that a write allocates nothing.
	rc         syscall.RawConn
	rawWriteFn func(fd uintptr) bool
	tw         []byte
	twN        int
	twErr      error
	// directWrites counts the direct writes that went out whole.
	directWrites uint64

	// Configure events in flight: their replies are consumed here instead
	// of counting as orphans.
	cfgMu  sync.Mutex
	cfgIDs map[string]struct{}
	cfgSeq atomic.Uint64

	// sr is the spinning reader under rd (uds_spin.go; nil when rd reads
	// the connection itself).
	sr *spinread.Reader

	// scratch is the reader's reply for replies that need the slow path.
	scratch agentwire.AgentResponse

	closeOnce sync.Once
}

func newUDSTransport(nc net.Conn, rd *frame.Reader, maxPayload int, msgpack, raw bool, log *slog.Logger) *udsTransport {
	t := &udsTransport{
		nc:         nc,
		rd:         rd,
		maxPayload: maxPayload,
		msgpack:    msgpack,
		raw:        raw,
		log:        log,
		segs:       make([]udsSeg, 0, 8),
		// iov is made by the first flush with several segments (writev):
		// most connections never need its 1.5 KiB.
		cfgIDs: make(map[string]struct{}),
	}
	switch nc.(type) {
	case *net.UnixConn, *net.TCPConn:
		t.writev = true
	}
	t.initDirect(nc)
	return t
}

// udsSeg is one piece of the batch: a queued buffer, or (buf nil) the
// bytes enc[off:end].
type udsSeg struct {
	buf      mem.Buffer
	off, end int
}

// udsCopyMax is the largest queued frame copied into enc; larger ones go
// out from their own buffer (writev), without a copy.
const udsCopyMax = 4 << 10

// udsEncFlush is the size of enc at which a batch goes out early, and
// udsEncKeep the capacity enc keeps between batches: the write buffer is
// the connection's, whatever the number of requests waiting.
const (
	udsEncFlush = 32 << 10
	udsEncKeep  = 2 * udsEncFlush
)

// send collects o.buf for the next flush (flushing first when the batch is
// full). Writer goroutine only.
func (t *udsTransport) send(o outbound) error {
	data := o.buf.ReadOnlyData()
	if len(data) <= udsCopyMax || !t.writev {
		start := len(t.enc)
		t.enc = append(t.enc, data...)
		o.buf.Free()
		t.addEnc(start)
	} else {
		t.segs = append(t.segs, udsSeg{buf: o.buf})
		t.frames++
		t.bytes += len(data)
	}
	return t.flushIfFull()
}

// appendRequestHeadersEvent encodes ev into the batch (see eventWriter).
// Writer goroutine only.
func (t *udsTransport) appendRequestHeadersEvent(ev *agentwire.RequestHeadersEvent) error {
	var now uint64
	if ev.Metadata.Timestamp.IsZero() {
		now = nowMS()
	}
	start := len(t.enc)
	var err error
	if t.enc, err = t.appendRequestHeaders(t.enc, ev, now); err != nil {
		t.enc = t.enc[:start]
		if start == 0 && cap(t.enc) > udsEncKeep {
			t.enc = nil // an oversized event grew it (flush trims the rest)
		}
		return err
	}
	t.addEnc(start)
	return nil
}

// batchFull flushes a batch that reached its limits (see eventWriter).
func (t *udsTransport) batchFull() error { return t.flushIfFull() }

// addEnc records the frame appended to enc at start.
func (t *udsTransport) addEnc(start int) {
	end := len(t.enc)
	if n := len(t.segs); n > 0 && t.segs[n-1].buf == nil && t.segs[n-1].end == start {
		t.segs[n-1].end = end
	} else {
		t.segs = append(t.segs, udsSeg{off: start, end: end})
	}
	t.frames++
	t.bytes += end - start
}

func (t *udsTransport) flushIfFull() error {
	if t.frames >= udsMaxBatchFrames || t.bytes >= udsMaxBatchBytes || len(t.enc) >= udsEncFlush {
		return t.flush()
	}
	return nil
}

// data returns the bytes of segment g.
func (t *udsTransport) data(g *udsSeg) []byte {
	if g.buf != nil {
		return g.buf.ReadOnlyData()
	}
	return t.enc[g.off:g.end]
}

// flush writes the collected frames with one system call (one write when
// they are all in enc, writev otherwise) and frees them.
func (t *udsTransport) flush() error {
	n := len(t.segs)
	if n == 0 {
		return nil
	}
	t.wd.Arm(t.nc)
	var err error
	var r writeRetry
	if n == 1 {
		data := t.data(&t.segs[0])
		for {
			var w int
			if w, err = t.nc.Write(data); err == nil || !t.retryWrite(err, w > 0, &r) {
				break
			}
			data = data[w:]
		}
	} else {
		iov := t.iov[:0]
		for i := range t.segs {
			iov = append(iov, t.data(&t.segs[i]))
		}
		t.iov = iov[:0]
		// WriteTo consumes the slice header it is called on (what it
		// wrote, also when it fails): use one that lives in t, so that
		// its address does not escape to a fresh allocation on every
		// flush.
		t.iovw = iov
		for {
			var w int64
			if w, err = t.iovw.WriteTo(t.nc); err == nil || !t.retryWrite(err, w > 0, &r) {
				break
			}
		}
		t.iovw = nil
		clear(iov[:n])
	}
	t.resetBatch()
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("agentwire: agent not reading: no byte of a write accepted within %v: %w", t.wd.Timeout, err)
	}
	return err
}

// resetBatch frees the batch's buffers and empties it.
func (t *udsTransport) resetBatch() {
	for i := range t.segs {
		if b := t.segs[i].buf; b != nil {
			b.Free()
		}
		t.segs[i] = udsSeg{}
	}
	t.segs = t.segs[:0]
	t.frames, t.bytes = 0, 0
	if cap(t.enc) > udsEncKeep {
		t.enc = nil
	} else {
		t.enc = t.enc[:0]
	}
}

// releaseIdle drops the write buffer of an idle connection (see
// idleReleaser): the next batch grows a new one. Write-role holder only.
func (t *udsTransport) releaseIdle() {
	if len(t.segs) == 0 {
		t.enc = nil
	}
}

// writeRetry is the state of one flush's write across its deadlines.
type writeRetry struct {
	// silent is how long the agent has at least accepted nothing; window
	// the least time the current deadline gave the write.
	silent, window time.Duration
}

// retryWrite decides, after a write failed with err (progressed: some of
// it was accepted), whether to go on with the rest: the write timeout
// bounds how long the agent may accept nothing, not how long a write may
// take. A busy agent reading slowly keeps its connection however long
// the write lasts; one that accepts no byte for WithWriteTimeout (d) is
// stuck and the flush fails (detected between d and 2d after its last
// byte). Only a deadline error is retried; the first deadline was armed
// at least d/2 ahead (wdeadline), a retry's is set here (the Deadline's
// own record is then in the past, so its next Arm sets a fresh one).
func (t *udsTransport) retryWrite(err error, progressed bool, r *writeRetry) bool {
	d := t.wd.Timeout
	if d <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if r.window == 0 {
		r.window = d / 2
	}
	if progressed {
		r.silent = 0
	} else if r.silent += r.window; r.silent >= d {
		return false
	}
	r.window = d - r.silent
	return t.nc.SetWriteDeadline(time.Now().Add(r.window)) == nil
}

func (t *udsTransport) sendControl(buf mem.Buffer) error {
	buf.Free()
	return errNoControl
}

func (t *udsTransport) hasControl() bool { return false }

func (t *udsTransport) readControlLoop(*session) error { return errNoControl }

func (t *udsTransport) close() {
	t.closeOnce.Do(func() { t.nc.Close() })
}

// readLoop reads frames until the connection fails (SPEC 6.2 table, agent
// to proxy). Unknown type bytes are skipped (the frame reader consumes the
// payload) and counted; an invalid LEN (zero, or above the receive limit)
// ends the connection with the frame package's typed error, which becomes
// the cause of every pending request's ErrConnectionLost.
func (t *udsTransport) readLoop(s *session) error {
	defer t.rd.Release()
	t.spinWhileDue(s)
	for {
		typ, p, err := t.rd.ReadFrame()
		if err != nil {
			var ut *frame.UnknownTypeError
			if errors.As(err, &ut) {
				s.c.stats.protocolErrors.Add(1)
				s.c.log.Warn("agentwire: skipping frame of unknown type from agent", "type", ut.Type.String())
				continue
			}
			var tl *frame.TooLargeError
			if errors.As(err, &tl) || errors.Is(err, frame.ErrZeroLength) {
				s.c.stats.protocolErrors.Add(1)
				s.c.log.Warn("agentwire: closing connection after an invalid frame length", "err", err)
			}
			return err
		}
		switch typ {
		case frame.TypeAgentResponse:
			t.handleReply(s, p)
		case frame.TypePong:
			var pong agentwire.Pong
			if err := payload.DecodePongJSON(p, &pong); err != nil {
				s.protocolError("undecodable pong", err)
				continue
			}
			s.onPong(pong)
		case frame.TypeHealthStatus:
			var h agentwire.HealthStatus
			if err := t.decodeReport(p, func(b []byte) error { return payload.DecodeHealthStatusJSON(b, &h) },
				func(b []byte) error { return payload.DecodeHealthStatusMsgpack(b, &h) }); err != nil {
				s.protocolError("undecodable health status", err)
				continue
			}
			s.onHealth(h)
		case frame.TypeMetricsReport:
			m := new(agentwire.MetricsReport)
			if err := t.decodeReport(p, func(b []byte) error { return payload.DecodeMetricsReportJSON(b, m) },
				func(b []byte) error { return payload.DecodeMetricsReportMsgpack(b, m) }); err != nil {
				s.protocolError("undecodable metrics report", err)
				continue
			}
			s.onMetrics(m, len(p))
		case frame.TypeConfigUpdateRequest:
			r := new(agentwire.ConfigUpdateRequest)
			if err := t.decodeReport(p, func(b []byte) error { return payload.DecodeConfigUpdateRequestJSON(b, r) },
				func(b []byte) error { return payload.DecodeConfigUpdateRequestMsgpack(b, r) }); err != nil {
				s.protocolError("undecodable config update request", err)
				continue
			}
			// No frame type carries an answer (SPEC 6.9): the core runs
			// the handler and counts the answer as unsent.
			s.onConfigUpdate(r, len(p))
		case frame.TypeFlowControl:
			var f agentwire.FlowControlSignal
			if err := t.decodeReport(p, func(b []byte) error { return payload.DecodeFlowControlSignalJSON(b, &f) },
				func(b []byte) error { return payload.DecodeFlowControlSignalMsgpack(b, &f) }); err != nil {
				s.protocolError("undecodable flow-control signal", err)
				continue
			}
			s.onFlow(f)
		default:
			// A valid type that agents do not send (0x01, 0x02 again, events,
			// cancel, ping): ignored, like Rust readers do.
			s.protocolError("unexpected frame from agent: "+typ.String(), nil)
		}
	}
}

// decodeReport decodes an agent-originated report in the negotiated
// encoding; on a MessagePack connection a payload that starts like a JSON
// object is read as JSON (a '{' is never the first byte of a MessagePack
// struct).
func (t *udsTransport) decodeReport(p []byte, fromJSON, fromMsgpack func([]byte) error) error {
	if t.msgpack && !looksLikeJSONObject(p) {
		return fromMsgpack(p)
	}
	return fromJSON(p)
}

func looksLikeJSONObject(p []byte) bool {
	for _, c := range p {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

// handleReply routes one 0x20 reply (SPEC 6.5): the routing id
// (audit.custom.correlation_id) is located without decoding, the waiting
// request is claimed with a view of those bytes (no allocation), and the
// reply is decoded straight into the caller's destination. Replies of the
// common shapes (payload.ScanReplyJSON, payload.ScanReplyMsgpack) are read
// once: the scan that finds the id checks and records the whole reply,
// which is then written into the destination without a second pass; the
// others take the id scan and the general decoder. A reply that names a
// waiting request but does not decode fails that request at once with
// ErrProtocol instead of leaving it to time out.
func (t *udsTransport) handleReply(s *session, p []byte) {
	var sc payload.ReplyScan
	if t.msgpack {
		// The common shapes, read once: routed by the id the scan
		// found, then written into the destination from the scan.
		if id, ok := payload.ScanReplyMsgpack(p, &sc); ok {
			t.handleScannedReply(s, p, bytesView(id), &sc)
			return
		}
	} else {
		// The same, the canonical allow reply matched whole first.
		if id, ok := payload.ScanReplyJSON(p, &sc); ok {
			t.handleScannedReply(s, p, bytesView(id), &sc)
			return
		}
	}
	cid, err := t.routeReply(p)
	if err != nil {
		s.protocolError("unroutable reply", err)
		return
	}
	pd := s.pending.loadAndDelete(cid)
	if pd == nil {
		t.unclaimed(s, p, cid)
		return
	}
	dst := pd.dst
	if t.msgpack {
		dst.CorrelationID = pd.id // an equal decoded id reuses this string
		err = payload.DecodeAgentResponseMsgpack(p, dst)
	} else {
		err = payload.DecodeAgentResponseJSON(p, dst)
	}
	dst.CorrelationID = pd.id
	if err != nil {
		s.complete(pd, &Error{Kind: ErrProtocol, CorrelationID: pd.id, Detail: "undecodable reply", Err: err})
		return
	}
	s.complete(pd, nil)
}

// handleScannedReply completes the call of reply p, which
// payload.ScanReplyJSON or ScanReplyMsgpack (per the connection's
// encoding) read into sc; cid is a view of p.
func (t *udsTransport) handleScannedReply(s *session, p []byte, cid string, sc *payload.ReplyScan) {
	pd := s.pending.loadAndDelete(cid)
	if pd == nil {
		t.unclaimed(s, p, cid)
		return
	}
	if t.msgpack {
		sc.DecodeMsgpack(p, pd.dst)
	} else {
		sc.DecodeJSON(p, pd.dst)
	}
	pd.dst.CorrelationID = pd.id
	s.complete(pd, nil)
}

// Reasons a reply cannot be routed.
var (
	errReplyNoID = errors.New("agentwire: reply without a string audit.custom.correlation_id")
)

// routeReply returns the routing id of reply p. On the fast path it is a
// view of p's bytes (valid while p is, for lookups only); a JSON id with
// escape sequences is unescaped, and a reply whose shape the scan does not
// follow is decoded in full (into the reader's scratch reply). It fails
// when the reply is undecodable and the scan found no id, or when the id
// is missing, not a string, or empty (the Rust proxy routes such replies
// to "", which matches nothing).
func (t *udsTransport) routeReply(p []byte) (string, error) {
	if t.msgpack {
		if id, ok := payload.ResponseCorrelationIDMsgpack(p); ok && len(id) > 0 {
			return bytesView(id), nil
		}
	} else {
		start, end, escaped, ok := replyIDJSON(p)
		switch {
		case ok && !escaped && end > start:
			return bytesView(p[start:end]), nil
		case ok && escaped:
			var cid string
			quoted := make([]byte, 0, end-start+2)
			quoted = append(append(append(quoted, '"'), p[start:end]...), '"')
			if err := json.Unmarshal(quoted, &cid); err == nil && cid != "" {
				return cid, nil
			}
		}
	}
	r := &t.scratch
	var err error
	if t.msgpack {
		err = payload.DecodeAgentResponseMsgpack(p, r)
	} else {
		err = payload.DecodeAgentResponseJSON(p, r)
	}
	switch {
	case err != nil:
		return "", err
	case r.CorrelationID == "":
		return "", errReplyNoID
	}
	return r.CorrelationID, nil
}

// unclaimed handles a reply that no request is waiting for: the answer to
// a configure event, or an orphan (late reply after a deadline or cancel,
// or an unknown id).
func (t *udsTransport) unclaimed(s *session, p []byte, cid string) {
	if t.takeConfigureID(cid) {
		r := &t.scratch
		var err error
		if t.msgpack {
			err = payload.DecodeAgentResponseMsgpack(p, r)
		} else {
			err = payload.DecodeAgentResponseJSON(p, r)
		}
		switch {
		case err != nil:
			s.protocolError("undecodable reply to a configure event", err)
		case r.Decision.Kind != agentwire.DecisionAllow:
			s.c.log.Warn("agentwire: agent rejected the configuration",
				"decision", r.Decision.Kind.String(), "status", r.Decision.Status, "body", r.Decision.Body.Value)
		default:
			s.c.log.Debug("agentwire: agent accepted the configuration")
		}
		return
	}
	s.c.stats.orphans.Add(1)
}

// maxConfigureIDs bounds the set of unanswered configure ids (an agent that
// never answers configure events must not grow it without limit).
const maxConfigureIDs = 64

// configureID returns the correlation id for a configure event and
// remembers it, so the agent's reply is recognised.
func (t *udsTransport) configureID(given string) string {
	cid := given
	if cid == "" {
		cid = "agentwire-configure-" + fmt.Sprint(t.cfgSeq.Add(1))
	}
	t.cfgMu.Lock()
	if len(t.cfgIDs) >= maxConfigureIDs {
		clear(t.cfgIDs)
	}
	t.cfgIDs[cid] = struct{}{}
	t.cfgMu.Unlock()
	return cid
}

func (t *udsTransport) takeConfigureID(cid string) bool {
	t.cfgMu.Lock()
	defer t.cfgMu.Unlock()
	if len(t.cfgIDs) == 0 {
		return false
	}
	if _, ok := t.cfgIDs[cid]; ok {
		delete(t.cfgIDs, cid)
		return true
	}
	return false
}
