package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/grpccodec"
	"github.com/agentwire/agentwire/internal/pbconv"
	"github.com/agentwire/agentwire/internal/pbwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// Method paths and the agentwire control-plane marker (see doc.go).
const (
	processStreamMethod = "/zentinel.agent.v2.AgentServiceV2/ProcessStream"
	controlStreamMethod = "/zentinel.agent.v2.AgentServiceV2/ControlStream"
	controlMetadataKey  = "agentwire-control"
)

var (
	processStreamDesc = grpc.StreamDesc{StreamName: "ProcessStream", ServerStreams: true, ClientStreams: true}
	controlStreamDesc = grpc.StreamDesc{StreamName: "ControlStream", ServerStreams: true, ClientStreams: true}
)

// ---------------------------------------------------------------------------
// codec

// sendFrame carries one pre-encoded message through grpc's SendMsg. The
// codec hands the buffer to grpc as is (no copy, no re-encoding); grpc
// frees it after writing.
type sendFrame struct {
	buf   mem.Buffer
	taken bool
}

// recvFrame receives one raw message: the codec keeps a reference to grpc's
// receive buffers instead of decoding, and the reader decodes in place.
type recvFrame struct {
	data    mem.BufferSlice
	scratch []byte
}

// bytes returns the message bytes (valid until release).
func (f *recvFrame) bytes() []byte {
	switch len(f.data) {
	case 0:
		return nil
	case 1:
		return f.data[0].ReadOnlyData()
	}
	f.scratch = f.scratch[:0]
	for _, b := range f.data {
		f.scratch = append(f.scratch, b.ReadOnlyData()...)
	}
	return f.scratch
}

func (f *recvFrame) release() {
	f.data.Free()
	f.data = nil
}

// wireCodec is the CodecV2 of the engine's streams: sendFrame and recvFrame
// pass bytes through untouched, anything else goes to grpccodec (vtproto on
// pooled buffers). Its name is "proto", the content-subtype every agent
// expects.
type wireCodec struct{}

func (wireCodec) Name() string { return grpccodec.Name }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*sendFrame); ok {
		f.taken = true
		return mem.BufferSlice{f.buf}, nil
	}
	return grpccodec.Codec().Marshal(v)
}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*recvFrame); ok {
		data.Ref()
		f.data = data
		return nil
	}
	return grpccodec.Codec().Unmarshal(data, v)
}

// ---------------------------------------------------------------------------
// dialer

type grpcDialer struct {
	cc   *grpc.ClientConn
	o    *options
	name string
	// unixPath is the socket path of a grpc+unix endpoint ("" for TCP).
	unixPath string
}

func newGRPCDialer(ep endpoint, o *options) (*grpcDialer, error) {
	var creds credentials.TransportCredentials
	switch {
	case ep.tls && o.insecure:
		return nil, configErr("endpoint is TLS (grpcs/https) but WithInsecure was given")
	case ep.tls || o.tls != nil:
		cfg := o.tls
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		creds = credentials.NewTLS(cfg)
	case ep.unix || o.insecure:
		creds = insecure.NewCredentials()
	default:
		return nil, configErr("plaintext gRPC endpoint needs WithInsecure() (or WithTLS / a grpcs:// endpoint)")
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  o.backoffBase,
				Multiplier: 2,
				Jitter:     0.2,
				MaxDelay:   o.backoffMax,
			},
			MinConnectTimeout: o.connectTimeout,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(o.maxRecv),
			grpc.MaxCallSendMsgSize(o.maxSend),
		),
	}
	if o.keepaliveTime > 0 {
		dopts = append(dopts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: o.keepaliveTime, Timeout: o.keepaliveTimeout, PermitWithoutStream: true,
		}))
	}
	if o.grpcWindow > 0 {
		dopts = append(dopts,
			grpc.WithInitialWindowSize(int32(o.grpcWindow)),
			grpc.WithInitialConnWindowSize(int32(o.grpcWindow)))
	}
	dopts = append(dopts, o.dialOptions...)
	cc, err := grpc.NewClient(ep.target, dopts...)
	if err != nil {
		// grpc.NewClient does not connect: it refuses the target or the
		// dial options.
		return nil, &Error{Kind: ErrInvalidConfig, Detail: ep.target, Err: err}
	}
	d := &grpcDialer{cc: cc, o: o, name: ep.target}
	if ep.unix {
		d.unixPath = strings.TrimPrefix(ep.target, "unix://")
	}
	return d, nil
}

func (d *grpcDialer) close() error { return d.cc.Close() }

// open opens ProcessStream, performs the handshake (SPEC 4.4/4.5: offer
// [2], require success and version 2), reads the response headers and, when
// they carry the agentwire control-plane marker, opens ControlStream. The
// connect timeout bounds opening the stream, the handshake timeout the
// rest.
func (d *grpcDialer) open(ctx context.Context, hs *agentwire.HandshakeRequest) (transport, agentwire.Capabilities, error) {
	var caps agentwire.Capabilities
	streamCtx, cancel := context.WithCancel(context.Background())
	var phase atomic.Value // "connect" or "handshake" when its timer fired
	timer := time.AfterFunc(d.o.connectTimeout, func() { phase.Store("connect"); cancel() })
	stop := context.AfterFunc(ctx, cancel)
	fail := func(kind error, detail string, err error) (transport, agentwire.Capabilities, error) {
		timer.Stop()
		stop()
		cancel()
		if p, ok := phase.Load().(string); ok {
			return nil, caps, &Error{Kind: ErrConnectFailed, Detail: p + " timed out", Err: context.DeadlineExceeded}
		}
		if ctx.Err() != nil {
			return nil, caps, &Error{Kind: ErrConnectFailed, Detail: detail, Err: ctx.Err()}
		}
		if d.unixPath != "" && kind == ErrConnectFailed && err != nil &&
			probeNotHTTP2(ctx, d.unixPath, min(d.o.handshakeTimeout, maxMixupProbe)) {
			detail += ": " + notGRPCDetail(d.unixPath)
		}
		return nil, caps, &Error{Kind: kind, Detail: detail, Err: err}
	}

	stream, err := d.cc.NewStream(streamCtx, &processStreamDesc, processStreamMethod, grpc.ForceCodecV2(wireCodec{}))
	if err != nil {
		return fail(ErrConnectFailed, "open ProcessStream", err)
	}
	if !timer.Stop() {
		return fail(ErrConnectFailed, "", nil)
	}
	timer = time.AfterFunc(d.o.handshakeTimeout, func() { phase.Store("handshake"); cancel() })

	// The handshake goes out before waiting for the response headers: the
	// Rust client waits for the headers first (SPEC fact 2), which
	// deadlocks against agents that only send them with their first
	// message; sending first works with both kinds of agent.
	t := &grpcTransport{stop: cancel, stream: stream, grpcEncoder: grpcEncoder{maxSend: d.o.maxSend}}
	buf, err := t.handshake(hs)
	if err != nil {
		return fail(ErrConnectFailed, "encode handshake", err)
	}
	if err := t.send(outbound{buf: buf}); err != nil {
		return fail(ErrConnectFailed, "send handshake", err)
	}
	md, err := stream.Header()
	if err != nil {
		return fail(ErrConnectFailed, "ProcessStream headers", err)
	}
	var f recvFrame
	if err := stream.RecvMsg(&f); err != nil {
		return fail(ErrConnectFailed, "read handshake reply", err)
	}
	var reply pb.AgentToProxy
	err = reply.UnmarshalVT(f.bytes())
	f.release()
	if err != nil {
		return fail(ErrHandshakeRejected, "undecodable handshake reply", err)
	}
	h := reply.GetHandshake()
	switch {
	case h == nil:
		return fail(ErrHandshakeRejected, "first message is not a handshake reply", nil)
	case !h.GetSuccess():
		return fail(ErrHandshakeRejected, "agent refused: "+h.GetError(), nil)
	case h.GetProtocolVersion() != agentwire.ProtocolVersion:
		return fail(ErrHandshakeRejected, fmt.Sprintf("agent answered protocol version %d, want 2", h.GetProtocolVersion()), nil)
	}
	caps = pbconv.CapabilitiesFromPB(h.GetCapabilities())

	if hasControlMarker(md) {
		cctx := metadata.AppendToOutgoingContext(streamCtx, controlMetadataKey, "1")
		ctl, err := d.cc.NewStream(cctx, &controlStreamDesc, controlStreamMethod, grpc.ForceCodecV2(wireCodec{}))
		if err == nil {
			t.ctl = ctl
		} else {
			d.o.logger.Debug("agentwire: control stream not opened", "err", err)
		}
	}
	if !timer.Stop() {
		return fail(ErrConnectFailed, "", nil)
	}
	stop()
	return t, caps, nil
}

func hasControlMarker(md metadata.MD) bool {
	for _, v := range md.Get(controlMetadataKey) {
		if v == "1" {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// transport

// grpcTransport is one ProcessStream (plus the optional agentwire
// ControlStream). send/sendControl are called by the writer goroutine only,
// readLoop/readControlLoop by one reader goroutine each, so the per-stream
// frames need no locking.
type grpcTransport struct {
	stop   context.CancelFunc
	stream grpc.ClientStream
	ctl    grpc.ClientStream
	grpcEncoder

	out, ctlOut sendFrame // writer-owned
	in, ctlIn   recvFrame // reader-owned

	// batch holds the request-headers events encoded since the last flush
	// (grpc_direct.go); write-role holder only.
	batch []mem.Buffer
	// directSends counts the flushes done by direct callers (tests read
	// it); write-role holder only.
	directSends int
	// handed counts the bytes handed to ProcessStream's SendMsg (each
	// message with gRPC's 5-byte prefix), queued those and the ones
	// collected in batch since: stream offsets. Write-role holder only
	// (before the session: the dialer).
	handed, queued uint64
	// acked is the stream offset, in units of 2^grpcMarkShift bytes, up
	// to which the agent has provably read the stream: the end of the
	// furthest event it has answered. Stored by the reader, loaded by
	// direct callers (grpc_direct.go).
	acked atomic.Uint64

	// watch sees every SendMsg in and out: the expirer fails the session
	// when one blocks (a full HTTP/2 window) for the write timeout.
	watch sendWatch

	closeOnce sync.Once
}

func (t *grpcTransport) send(o outbound) error {
	if err := t.flushBefore(o.buf); err != nil {
		return err
	}
	n := uint64(o.buf.Len()) + grpcPrefixLen
	t.queued += n
	t.handed += n
	t.watch.begin()
	err := sendOn(t.stream, &t.out, o.buf) // gRPC messages are always buffers
	t.watch.end()
	return err
}

func (t *grpcTransport) sendControl(buf mem.Buffer) error {
	t.watch.begin()
	err := sendOn(t.ctl, &t.ctlOut, buf)
	t.watch.end()
	return err
}

func (t *grpcTransport) sendWatch() *sendWatch { return &t.watch }

func sendOn(st grpc.ClientStream, f *sendFrame, buf mem.Buffer) error {
	f.buf, f.taken = buf, false
	err := st.SendMsg(f)
	if !f.taken {
		buf.Free()
	}
	f.buf = nil
	return err
}

func (t *grpcTransport) readLoop(s *session) error {
	for {
		if err := t.stream.RecvMsg(&t.in); err != nil {
			return err
		}
		handleAgentToProxy(t.in.bytes(), s)
		t.in.release()
	}
}

func (t *grpcTransport) hasControl() bool { return t.ctl != nil }

func (t *grpcTransport) readControlLoop(s *session) error {
	for {
		if err := t.ctl.RecvMsg(&t.ctlIn); err != nil {
			return err
		}
		handleAgentControl(t.ctlIn.bytes(), s)
		t.ctlIn.release()
	}
}

func (t *grpcTransport) close() { t.closeOnce.Do(t.stop) }

// ---------------------------------------------------------------------------
// encoder (hand-written protobuf straight into pooled buffers)

// grpcEncoder is the gRPC transport's encoder (see encoder): hand-written
// protobuf straight into pooled buffers, refusing messages over maxSend.
// It is stateless apart from the limit and safe for concurrent use.
type grpcEncoder struct {
	maxSend int
}

func tooLarge(n, limit int) error {
	return &Error{Kind: ErrMessageTooLarge, Detail: fmt.Sprintf("%d bytes encoded, limit %d", n, limit)}
}

func (t *grpcEncoder) check(n int) error {
	if n > t.maxSend {
		return tooLarge(n, t.maxSend)
	}
	return nil
}

func (t *grpcEncoder) handshake(hs *agentwire.HandshakeRequest) (mem.Buffer, error) {
	n := pbwire.SizeHandshake(hs)
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = pbwire.AppendHandshake(*bp, hs)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) requestHeaders(ev *agentwire.RequestHeadersEvent, now uint64) (mem.Buffer, error) {
	sz := pbwire.MeasureRequestHeaders(ev, now)
	if err := t.check(sz.Len); err != nil {
		return nil, err
	}
	bp := newOutBuffer(sz.Len)
	*bp = pbwire.AppendMeasuredRequestHeaders(*bp, ev, sz)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) bodyChunk(ev *agentwire.BodyChunk, response bool, now uint64) (mem.Buffer, error) {
	n := pbwire.SizeBodyChunk(ev, now)
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = pbwire.AppendBodyChunk(*bp, ev, response, now)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) responseHeaders(ev *agentwire.ResponseHeadersEvent) (mem.Buffer, error) {
	n := pbwire.SizeResponseHeaders(ev)
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = pbwire.AppendResponseHeaders(*bp, ev)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) requestComplete(ev *agentwire.RequestCompleteEvent) (mem.Buffer, error) {
	n := pbwire.SizeRequestComplete(ev)
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = pbwire.AppendRequestComplete(*bp, ev)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) webSocketFrame(ev *agentwire.WebSocketFrameEvent) (mem.Buffer, error) {
	n := pbwire.SizeWebSocketFrame(ev)
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = pbwire.AppendWebSocketFrame(*bp, ev)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) guardrail(ev *agentwire.GuardrailInspectEvent) (mem.Buffer, error) {
	ctxJSON := pbwire.GuardrailContext(nil, ev)
	n := pbwire.SizeGuardrail(ev, ctxJSON)
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = pbwire.AppendGuardrail(*bp, ev, ctxJSON)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) configure(ev *agentwire.ConfigureEvent, initial bool, now uint64) (mem.Buffer, error) {
	n := pbwire.SizeConfigure(ev, initial, now)
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = pbwire.AppendConfigure(*bp, ev, initial, now)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) cancel(cid string, reason agentwire.CancelReason, now uint64) (mem.Buffer, error) {
	n := pbwire.SizeCancel(cid, reason, now)
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = pbwire.AppendCancel(*bp, cid, reason, now)
	return wrapOut(bp), nil
}

func (t *grpcEncoder) ping(seq, now uint64) (mem.Buffer, error) {
	bp := newOutBuffer(pbwire.SizePing(seq, now))
	*bp = pbwire.AppendPing(*bp, seq, now)
	return wrapOut(bp), nil
}

// marshalControl encodes a ProxyControl message (cold path, vtproto).
func (t *grpcEncoder) marshalControl(m *pb.ProxyControl) (mem.Buffer, error) {
	n := m.SizeVT()
	if err := t.check(n); err != nil {
		return nil, err
	}
	bp := newOutBuffer(n)
	*bp = (*bp)[:n]
	if _, err := m.MarshalToSizedBufferVT(*bp); err != nil {
		outPool.Put(bp)
		return nil, err
	}
	return wrapOut(bp), nil
}

func (t *grpcEncoder) drain(durationMS, now uint64) (mem.Buffer, error) {
	return t.marshalControl(&pb.ProxyControl{Message: &pb.ProxyControl_Drain{Drain: &pb.DrainRequest{
		DurationMs: durationMS, Reason: int32(pb.DrainRequest_REASON_MANUAL), TimestampMs: now,
	}}})
}

func (t *grpcEncoder) shutdown(graceMS, now uint64) (mem.Buffer, error) {
	return t.marshalControl(&pb.ProxyControl{Message: &pb.ProxyControl_Shutdown{Shutdown: &pb.ShutdownRequest{
		Reason: int32(pb.ShutdownRequest_REASON_GRACEFUL), GracePeriodMs: graceMS, TimestampMs: now,
	}}})
}

func (t *grpcEncoder) configResponse(r *agentwire.ConfigUpdateResponse) (mem.Buffer, error) {
	return t.marshalControl(&pb.ProxyControl{Message: &pb.ProxyControl_ConfigResponse{
		ConfigResponse: pbconv.ConfigUpdateResponseToPB(r),
	}})
}
