package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	"github.com/agentwire/agentwire/internal/pbwire"
	"github.com/agentwire/agentwire/internal/wiretext"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"github.com/agentwire/agentwire/ring"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// serviceDesc is a hand-written description of zentinel.agent.v2.AgentServiceV2.
// It is hand-written (instead of the generated one) because ControlStream
// carries different message types depending on the mode (see doc.go), which
// the generated typed stream wrappers cannot express.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: "zentinel.agent.v2.AgentServiceV2",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "ProcessEvent",
		Handler:    processEventHandler,
	}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ProcessStream", Handler: processStreamHandler, ServerStreams: true, ClientStreams: true},
		{StreamName: "ControlStream", Handler: controlStreamHandler, ServerStreams: true, ClientStreams: true},
	},
	Metadata: "agent_v2.proto",
}

var (
	controlHeader = metadata.Pairs(controlMetadataKey, "1")

	errUnavailable = status.Error(codes.Unavailable, "agentwire: agent server is shutting down")
	errBeforeHS    = status.Error(codes.FailedPrecondition, "agentwire: event received before a successful handshake")
)

// grpcCall is one event received on a ProcessStream: the inbound protobuf
// message (kept until the handler returned, since the payload event aliases
// its byte slices), the transport-independent exchange, and the outbound
// message storage, which lives until the writer has sent it.
type grpcCall struct {
	exchange
	st  *procStream
	in  *pb.ProxyToAgent
	enc pbconv.ResponseEncoder
	out pb.AgentToProxy
	wrp pb.AgentToProxy_Response
	// The writer's encoding of the reply (grpc_reply.go): measured once
	// per send; direct when internal/pbwire writes it.
	wsz      pbwire.AgentResponseSize
	measured bool
	direct   bool
}

var grpcCallPool = sync.Pool{New: func() any { return new(grpcCall) }}

func (c *grpcCall) release() {
	if c.in != nil {
		c.in.ReturnToVTPool()
		c.in = nil
	}
	// The event's strings are views of the received message text (fast
	// path): drop every one, or the pooled call pins those messages.
	c.exchange.scrub()
	c.st = nil
	c.cid = ""
	c.kind = kindNone
	c.out.Message = nil
	c.measured, c.direct = false, false
	if r := c.wrp.Response; r != nil {
		r.CorrelationId = ""
	}
	grpcCallPool.Put(c)
}

// outItem is one outbound message: a reply (call, released after sending)
// or any other message (msg).
type outItem struct {
	call *grpcCall
	msg  *pb.AgentToProxy
}

// procStream is the state of one ProcessStream.
//
// Goroutines: the grpc handler goroutine supervises; a reader goroutine
// receives and dispatches; a writer goroutine sends (with inline handlers
// the reader also sends its own replies while the writer is idle, under
// sendMu, grpc_direct.go); one goroutine per event being handled (at most
// maxConcurrency).
type procStream struct {
	srv *Server
	ss  grpc.ServerStream
	// ctx is the parent of the stream's request contexts; cancelled when the
	// stream ends abnormally or the server closes.
	ctx    context.Context
	cancel context.CancelFunc

	// sem holds a slot per event admitted for the workers (being handled,
	// or waiting for a worker; inline events take none, grpc_direct.go):
	// maxConcurrency + eventBacklog(maxConcurrency) slots, so the
	// reader goes on receiving cancels and pings while every handler is
	// busy, and pauses only when the backlog is full too.
	sem chan struct{}
	out *ring.Ring[outItem]
	// work hands events to worker goroutines. Only the reader sends and it
	// closes work when it exits; workers run until then. Workers are
	// started on demand, at most one per concurrency slot, and live as long
	// as the stream (their grown stacks are reused, which a goroutine per
	// event would pay for again every time).
	// work is buffered with cap(sem) slots: a send by the holder of a slot
	// never blocks.
	work       chan *grpcCall
	workers    int  // started so far; reader only
	maxWorkers int  // WithMaxConcurrency
	inline     bool // WithInlineHandlers: the reader runs the handlers
	// idle counts parked workers no event has been sent for yet (see
	// udsConn.idle).
	idle    atomic.Int32
	ctxSlab reqCtxSlab // request contexts; reader only
	// inflight holds the events handed to workers, for cancels. Inline
	// events are not in it and take no slot of sem (runInline).
	inflight inflightTable
	// inlineSeq is odd while the reader runs an inline event (from its
	// stopping check until its reply is sent or queued); inlineIdle
	// wakes waitInline when one ends during Shutdown. Inline streams
	// only (grpc_direct.go).
	inlineSeq  atomic.Uint64
	inlineIdle chan struct{}

	established atomic.Bool // a handshake succeeded
	// lastHealth is the last health report queued on this stream.
	lastHealth atomic.Pointer[agentwire.HealthStatus]
	// hsConfig is the configuration the last successful handshake carried
	// (when handed to the Configurer); reader only.
	hsConfig string
	stopping atomic.Bool // Shutdown: dispatch nothing more
	// abandon: the server was closed while the writer still had answers to
	// send; it sends nothing more (finishWriter).
	abandon atomic.Bool
	// broken: a send failed or the stream was abandoned; nothing more is
	// sent. Written by the send lock's holder.
	broken atomic.Bool
	// sendMu is the send lock of inline streams (grpc_direct.go): the
	// writer holds it while it sends a batch, the reader while it sends a
	// reply itself. Without inline handlers only the writer sends and it
	// is not used.
	sendMu sync.Mutex
	// directOff: finishWriter has begun; the reader sends nothing itself
	// any more. Read and written under sendMu.
	directOff  bool
	readerDone chan struct{}
	readerErr  error // written by the reader before closing readerDone
	writerDone chan struct{}
}

func processStreamHandler(srv any, ss grpc.ServerStream) error {
	return srv.(*Server).processStream(ss)
}

// processStream serves one ProcessStream. It sends the response headers
// (with the agentwire control marker) before anything is read: the Rust
// client waits for them before it sends its handshake (SPEC 0, fact 2).
func (s *Server) processStream(ss grpc.ServerStream) error {
	if err := ss.SendHeader(controlHeader); err != nil {
		return err
	}
	st := &procStream{
		srv:        s,
		ss:         ss,
		sem:        make(chan struct{}, s.cfg.maxConcurrency+eventBacklog(s.cfg.maxConcurrency)),
		out:        ring.New[outItem](s.cfg.maxConcurrency + 64),
		work:       make(chan *grpcCall, s.cfg.maxConcurrency+eventBacklog(s.cfg.maxConcurrency)),
		maxWorkers: s.cfg.maxConcurrency,
		inline:     s.cfg.uds.inline,
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if st.inline {
		st.inlineIdle = make(chan struct{}, 1)
	}
	st.ctx, st.cancel = context.WithCancel(ss.Context())
	defer st.cancel()
	stopBase := context.AfterFunc(s.baseCtx, st.cancel)
	defer stopBase()

	s.mu.Lock()
	if s.draining.Load() || s.closed() {
		s.mu.Unlock()
		return errUnavailable
	}
	s.streams[st] = struct{}{}
	s.wg.Add(3) // supervisor (this goroutine), reader, writer
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, st)
		s.mu.Unlock()
		s.wg.Done()
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "agentwire: stream ended", slog.String("transport", "grpc"))
	}()

	go st.writer()
	// grpc-go forbids SendMsg once this handler has returned: every return
	// below waits for the writer to exit first.
	defer st.finishWriter()
	go st.reader()

	var result error
	select {
	case <-st.readerDone:
		err := st.readerErr
		switch {
		case err == nil || errors.Is(err, io.EOF):
			// The proxy half-closed: answer what was received, then end.
		default:
			// Stream broken or protocol error: nobody will read the
			// answers; cancel the requests.
			st.cancel()
			result = err
		}
		if !st.waitHandlers(s.closeCh) {
			return errUnavailable
		}
	case <-s.shutdownCh:
		st.stopping.Store(true)
		if !st.waitHandlers(s.closeCh) || !st.waitInline(s.closeCh) {
			return errUnavailable
		}
		result = errUnavailable
	case <-s.closeCh:
		// End now: requests are cancelled, queued answers are dropped. The
		// reader and any handler still running finish on their own (Close
		// waits for them).
		st.stopping.Store(true)
		st.cancel()
		return errUnavailable
	}
	// The deferred finishWriter lets the writer flush the answers (unless
	// the server is closed meanwhile).
	if pe, ok := status.FromError(result); ok && pe.Code() == codes.FailedPrecondition {
		s.stats.protocolErrors.Add(1)
	}
	if result != nil && !isStatus(result) {
		// Transport errors end the RPC anyway; report them as such.
		return status.FromContextError(result).Err()
	}
	return result
}

func isStatus(err error) bool {
	_, ok := status.FromError(err)
	return ok
}

// finishWriter closes the outbound queue and returns once the writer has
// exited, so that no SendMsg runs after processStream returns. Until the
// server is closed the writer first sends what is queued; once it is
// closed, the writer drops the rest. A SendMsg already running (a send
// waiting for flow-control window from a proxy that stopped reading) still
// has to end, which it does when the proxy reads or resets the stream or
// the connection closes: Close stops the grpc.Server that ServeGRPC
// created, which closes its connections (see RegisterGRPC for a server of
// the caller's own).
func (st *procStream) finishWriter() {
	st.out.Close()
	defer st.stopDirect()
	select {
	case <-st.writerDone:
		return
	case <-st.srv.closeCh:
	}
	st.abandon.Store(true)
	st.cancel()
	<-st.writerDone
}

// stopDirect makes sure no SendMsg of the reader (inline handlers, see
// grpc_direct.go) runs once it returns: it waits for one in progress and
// bars later ones.
func (st *procStream) stopDirect() {
	st.sendMu.Lock()
	st.directOff = true
	st.sendMu.Unlock()
}

// waitHandlers waits until every dispatched event of the stream has been
// answered (its reply queued), by taking every concurrency slot: a handler
// goroutine holds its slot until its reply is queued. Afterwards no event
// can be dispatched any more. It returns false if abort is closed first
// (the request contexts are then cancelled).
func (st *procStream) waitHandlers(abort <-chan struct{}) bool {
	for range cap(st.sem) {
		select {
		case st.sem <- struct{}{}:
		case <-abort:
			st.cancel()
			return false
		}
	}
	return true
}

// reader receives messages until the stream ends, dispatching events to
// handler goroutines.
func (st *procStream) reader() {
	s := st.srv
	defer s.wg.Done()
	defer close(st.readerDone)
	defer close(st.work)
	in := &inbound{}
	defer func() {
		if in.ProxyToAgent != nil {
			in.ProxyToAgent.ReturnToVTPool()
		}
	}()
	for {
		if in.ProxyToAgent == nil {
			in.ProxyToAgent = pb.ProxyToAgentFromVTPool()
		}
		in.raw = ""
		if err := st.ss.RecvMsg(in); err != nil {
			st.readerErr = err
			return
		}
		var err error
		if in.raw != "" {
			err = st.handleRaw(in.raw)
		} else {
			m := in.ProxyToAgent
			in.ProxyToAgent = nil
			err = st.handle(m)
		}
		if err != nil {
			st.readerErr = err
			return
		}
	}
}

// handleRaw processes a hot event kept as raw bytes by inbound: the fast
// decoder when the message has the plain shape, else the reference decoder
// and handle.
func (st *procStream) handleRaw(raw string) error {
	c := grpcCallPool.Get().(*grpcCall)
	if decodeFast(raw, &c.exchange) {
		return st.accept(c)
	}
	c.release()
	m := pb.ProxyToAgentFromVTPool()
	if err := m.UnmarshalVT(bytesOf(raw)); err != nil {
		m.ReturnToVTPool()
		return status.Errorf(codes.Internal, "agentwire: failed to unmarshal the received message: %v", err)
	}
	return st.handle(m)
}

// handle processes one inbound message on the reader goroutine. It takes
// ownership of m.
func (st *procStream) handle(m *pb.ProxyToAgent) error {
	s := st.srv
	var kind eventKind
	var cid string
	switch x := m.Message.(type) {
	case *pb.ProxyToAgent_RequestHeaders:
		kind, cid = kindRequestHeaders, x.RequestHeaders.GetMetadata().GetCorrelationId()
	case *pb.ProxyToAgent_RequestBodyChunk:
		kind, cid = kindRequestBodyChunk, x.RequestBodyChunk.GetCorrelationId()
	case *pb.ProxyToAgent_ResponseHeaders:
		kind, cid = kindResponseHeaders, x.ResponseHeaders.GetCorrelationId()
	case *pb.ProxyToAgent_ResponseBodyChunk:
		kind, cid = kindResponseBodyChunk, x.ResponseBodyChunk.GetCorrelationId()
	case *pb.ProxyToAgent_RequestComplete:
		kind, cid = kindRequestComplete, x.RequestComplete.GetCorrelationId()
	case *pb.ProxyToAgent_WebsocketFrame:
		kind, cid = kindWebSocketFrame, x.WebsocketFrame.GetCorrelationId()
	case *pb.ProxyToAgent_Guardrail:
		kind, cid = kindGuardrailInspect, x.Guardrail.GetCorrelationId()
	case *pb.ProxyToAgent_Handshake:
		var req agentwire.HandshakeRequest
		var resp agentwire.HandshakeResponse
		pbconv.HandshakeRequestFromPB(&req, x.Handshake)
		s.handshake(st.ctx, &req, &resp)
		if resp.Success && meaningfulConfig(req.Config) {
			st.hsConfig = string(req.Config)
		}
		m.ReturnToVTPool()
		hs := &pb.AgentToProxy{Message: &pb.AgentToProxy_Handshake{Handshake: s.handshakeToPB(&resp)}}
		if !resp.Success {
			s.log.LogAttrs(st.ctx, slog.LevelWarn, "agentwire: handshake rejected", slog.String("error", resp.Error.Value))
			st.enqueue(hs)
			return nil
		}
		if st.established.Load() {
			// A repeated handshake: the queue may be full by now, so its
			// reply waits for room like any other message.
			st.enqueue(hs)
			return nil
		}
		// Queue the reply and mark the stream established under s.mu, the
		// lock broadcast holds: a push can then neither overtake the
		// handshake reply nor miss a proxy that has already received it.
		// The queue is empty at this point (nothing is sent before the
		// first handshake), so TryEnqueue cannot be full.
		s.mu.Lock()
		err := st.out.TryEnqueue(outItem{msg: hs})
		if err == nil {
			st.established.Store(true)
			if h := s.health.Load(); h != nil {
				st.pushHealth(h)
			}
		}
		s.mu.Unlock()
		if err == nil {
			s.log.LogAttrs(st.ctx, slog.LevelDebug, "agentwire: stream established", slog.String("transport", "grpc"),
				slog.String("proxy_id", req.ProxyID))
		}
		return nil // on err the stream is closing
	case *pb.ProxyToAgent_Ping:
		pong := &pb.Pong{Sequence: x.Ping.GetSequence(), PingTimestampMs: x.Ping.GetTimestampMs(), TimestampMs: nowMS()}
		m.ReturnToVTPool()
		st.enqueue(&pb.AgentToProxy{Message: &pb.AgentToProxy_Pong{Pong: pong}})
		return nil
	case *pb.ProxyToAgent_Cancel:
		c := pbconv.CancelFromPB(x.Cancel)
		m.ReturnToVTPool()
		if st.established.Load() {
			if !st.inline {
				// Inline events are never in the table (runInline):
				// the reader reads a cancel only after their handler
				// returned.
				st.inflight.cancel(c.CorrelationID)
			}
			s.cancelled(st.ctx, c)
		}
		return nil
	case *pb.ProxyToAgent_Configure:
		if !st.established.Load() {
			m.ReturnToVTPool()
			return errBeforeHS
		}
		if x.Configure.GetIsInitial() && st.hsConfig != "" && x.Configure.GetConfigJson() == st.hsConfig {
			// An agentwire proxy repeats its handshake configuration as the
			// initial configure event; it was applied already.
			m.ReturnToVTPool()
			return nil
		}
		var ev agentwire.ConfigureEvent
		pbconv.ConfigureEventFromPB(&ev, x.Configure)
		_ = s.configure(st.ctx, ev.Config, ev.ConfigVersion.Value)
		m.ReturnToVTPool()
		return nil
	default:
		// An empty message or a field this version does not know.
		s.log.LogAttrs(st.ctx, slog.LevelDebug, "agentwire: ignoring unknown ProxyToAgent message")
		m.ReturnToVTPool()
		return nil
	}

	c := grpcCallPool.Get().(*grpcCall)
	c.in = m
	c.kind = kind
	c.cid = cid
	return st.accept(c)
}

// accept admits an event whose kind and correlation id are set: protocol
// check, a slot (the reader waits for one only when every handler is busy
// and the backlog is full: backpressure on the proxy), registration and
// dispatch to a worker; with inline handlers, runInline. Reader only; it
// takes ownership of c.
func (st *procStream) accept(c *grpcCall) error {
	s := st.srv
	if !st.established.Load() {
		c.release()
		return errBeforeHS
	}
	if st.inline {
		st.runInline(c)
		return nil
	}
	select {
	case st.sem <- struct{}{}:
	case <-st.ctx.Done():
		c.release()
		return st.ctx.Err()
	}
	if st.stopping.Load() {
		// Shutdown: events that arrive now are not handled.
		<-st.sem
		c.release()
		return nil
	}
	c.st = st
	s.beginWith(st.ctxSlab.get(st.ctx), &st.inflight, &c.exchange)
	st.dispatch(c)
	return nil
}

// dispatch hands c to an idle worker, starts a new one if none is idle and
// fewer than maxConcurrency exist, or else leaves c in the backlog for the
// next free worker. The send never blocks: the caller holds a slot. Reader
// only.
func (st *procStream) dispatch(c *grpcCall) {
	for {
		n := st.idle.Load()
		if n <= 0 {
			break
		}
		if st.idle.CompareAndSwap(n, n-1) {
			st.work <- c
			return
		}
	}
	if st.workers < st.maxWorkers {
		st.workers++
		st.srv.wg.Add(1)
		go st.worker(c)
		return
	}
	st.work <- c
}

// worker runs events until the reader closes the work channel.
func (st *procStream) worker(c *grpcCall) {
	defer st.srv.wg.Done()
	for {
		c.run()
		var ok bool
		select {
		case c, ok = <-st.work: // backlog
		default:
			st.idle.Add(1)
			c, ok = <-st.work
		}
		if !ok {
			return
		}
	}
}

func (s *Server) handshakeToPB(r *agentwire.HandshakeResponse) *pb.HandshakeResponse {
	out := &pb.HandshakeResponse{
		ProtocolVersion: r.ProtocolVersion,
		Capabilities:    s.capsPB,
		Success:         r.Success,
	}
	c := &r.Capabilities
	if c.AgentID != s.caps.AgentID || c.Name != s.caps.Name || c.Version != s.caps.Version ||
		c.Features != s.caps.Features || c.Health != s.caps.Health || c.Limits != s.caps.Limits ||
		!slices.Equal(c.SupportedEvents, s.caps.SupportedEvents) || c.ProtocolVersion != s.caps.ProtocolVersion {
		// A Handshaker changed the capabilities.
		out.Capabilities = pbconv.CapabilitiesToPB(&r.Capabilities)
	}
	if r.Error.Valid {
		// Valid UTF-8 only: a Rust (prost) peer rejects anything else.
		e := wiretext.Valid(r.Error.Value)
		out.Error = &e
	}
	return out
}

// run handles one event on a worker goroutine and queues the reply.
func (c *grpcCall) run() {
	st := c.st
	c.process(st.srv, &st.inflight)
	if !st.enqueueReply(c) {
		c.release()
	}
	<-st.sem
}

// process converts the event, runs the handler, builds the outbound message
// and releases what begin acquired.
func (c *grpcCall) process(s *Server, t *inflightTable) {
	if c.in != nil {
		c.decode() // else the fast decoder filled the exchange already
	}
	s.invoke(&c.exchange)
	// The reply is encoded by the writer (grpcReply) from c.resp, which
	// stays as the handler left it until the call is released. The handler
	// is done with the event: the inbound message can go back to its pool
	// (the reply references only strings and the handler's own slices, not
	// the inbound byte slices).
	if c.in != nil {
		c.in.ReturnToVTPool()
		c.in = nil
	}
	s.end(t, &c.exchange)
}

// decode converts the inbound protobuf event into the exchange's payload
// event.
func (c *grpcCall) decode() {
	switch x := c.in.Message.(type) {
	case *pb.ProxyToAgent_RequestHeaders:
		pbconv.RequestHeadersEventFromPB(&c.reqHeaders, x.RequestHeaders)
	case *pb.ProxyToAgent_RequestBodyChunk:
		pbconv.BodyChunkFromPB(&c.body, x.RequestBodyChunk)
	case *pb.ProxyToAgent_ResponseHeaders:
		pbconv.ResponseHeadersEventFromPB(&c.respHeaders, x.ResponseHeaders)
	case *pb.ProxyToAgent_ResponseBodyChunk:
		pbconv.BodyChunkFromPB(&c.body, x.ResponseBodyChunk)
	case *pb.ProxyToAgent_RequestComplete:
		pbconv.RequestCompleteEventFromPB(&c.complete, x.RequestComplete)
	case *pb.ProxyToAgent_WebsocketFrame:
		pbconv.WebSocketFrameEventFromPB(&c.ws, x.WebsocketFrame)
	case *pb.ProxyToAgent_Guardrail:
		pbconv.GuardrailInspectEventFromPB(&c.guard, x.Guardrail)
	}
}

// enqueue queues an outbound message, waiting while the queue is full. It
// reports false when the stream is over (the message was not queued).
func (st *procStream) enqueue(m *pb.AgentToProxy) bool {
	return st.out.Enqueue(st.ctx, outItem{msg: m}) == nil
}

// enqueueReply queues a reply like enqueue; on false the caller still owns c.
func (st *procStream) enqueueReply(c *grpcCall) bool {
	return st.out.Enqueue(st.ctx, outItem{call: c}) == nil
}

// pushHealth queues h once per stream: a stream established while
// ReportHealth runs could otherwise get the same report both from its
// initial push and from the broadcast.
func (st *procStream) pushHealth(h *agentwire.HealthStatus) {
	if st.lastHealth.Swap(h) == h {
		return
	}
	st.push(&pb.AgentToProxy{Message: &pb.AgentToProxy_Health{Health: pbconv.HealthStatusToPB(h)}})
}

// push queues an unsolicited message without blocking; a full queue drops
// it.
func (st *procStream) push(m *pb.AgentToProxy) {
	if err := st.out.TryEnqueue(outItem{msg: m}); err == ring.ErrFull {
		st.srv.stats.droppedPushes.Add(1)
	}
}

// writer sends what is queued on the stream, and it exits before
// processStream returns (finishWriter). With inline handlers it shares the
// sending with the reader (grpc_direct.go): it waits for the queue without
// taking items and sends them holding the send lock. After a send error,
// or once the stream is abandoned, it sends nothing more and keeps
// draining (and releasing) the queue until it is closed.
func (st *procStream) writer() {
	s := st.srv
	defer s.wg.Done()
	defer close(st.writerDone)
	batch := make([]outItem, 64)
	for {
		var n int
		if st.inline {
			if st.out.Wait() != nil {
				return // closed and drained
			}
			st.sendMu.Lock()
			if n = st.out.TryDequeueBatch(batch); n == 0 {
				st.sendMu.Unlock()
				continue
			}
		} else {
			var err error
			if n, err = st.out.DequeueBatch(batch); err != nil {
				return
			}
		}
		for i := range batch[:n] {
			it := batch[i]
			batch[i] = outItem{}
			if !st.broken.Load() && st.abandon.Load() {
				st.broken.Store(true)
			}
			if !st.broken.Load() {
				var err error
				if it.call != nil {
					err = st.ss.SendMsg((*grpcReply)(it.call))
				} else {
					err = st.ss.SendMsg(it.msg)
				}
				if err != nil {
					st.sendFailed(err)
				}
			}
			if it.call != nil {
				it.call.release()
			}
		}
		if st.inline {
			st.sendMu.Unlock()
		}
	}
}

// sendFailed records a failed SendMsg: nothing more is sent on the stream
// and its requests are cancelled. Send lock holder only.
func (st *procStream) sendFailed(err error) {
	st.broken.Store(true)
	st.cancel()
	st.srv.log.LogAttrs(context.Background(), slog.LevelDebug, "agentwire: ProcessStream send failed", slog.Any("error", err))
}

// ---------------------------------------------------------------------------
// ProcessEvent (unary)

func processEventHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(pb.ProxyToAgent)
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.processEvent(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: pb.AgentServiceV2_ProcessEvent_FullMethodName}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return s.processEvent(ctx, req.(*pb.ProxyToAgent))
	})
}

// processEvent answers one event without a handshake: handshake → handshake
// answer, any event → response, ping → pong; cancel, configure and unknown
// messages → INVALID_ARGUMENT.
func (s *Server) processEvent(ctx context.Context, m *pb.ProxyToAgent) (*pb.AgentToProxy, error) {
	// Counted in s.wg like every other handler call, so that Close (and
	// Shutdown) wait for it.
	if s.draining.Load() || !s.track(1) {
		return nil, errUnavailable
	}
	defer s.wg.Done()
	ctx, stop := mergeCancel(ctx, s.baseCtx)
	defer stop()
	var x exchange
	switch e := m.Message.(type) {
	case *pb.ProxyToAgent_Handshake:
		var req agentwire.HandshakeRequest
		var resp agentwire.HandshakeResponse
		pbconv.HandshakeRequestFromPB(&req, e.Handshake)
		s.handshake(ctx, &req, &resp)
		return &pb.AgentToProxy{Message: &pb.AgentToProxy_Handshake{Handshake: s.handshakeToPB(&resp)}}, nil
	case *pb.ProxyToAgent_Ping:
		return &pb.AgentToProxy{Message: &pb.AgentToProxy_Pong{Pong: &pb.Pong{
			Sequence: e.Ping.GetSequence(), PingTimestampMs: e.Ping.GetTimestampMs(), TimestampMs: nowMS(),
		}}}, nil
	case *pb.ProxyToAgent_RequestHeaders:
		x.kind, x.cid = kindRequestHeaders, e.RequestHeaders.GetMetadata().GetCorrelationId()
		pbconv.RequestHeadersEventFromPB(&x.reqHeaders, e.RequestHeaders)
	case *pb.ProxyToAgent_RequestBodyChunk:
		x.kind, x.cid = kindRequestBodyChunk, e.RequestBodyChunk.GetCorrelationId()
		pbconv.BodyChunkFromPB(&x.body, e.RequestBodyChunk)
	case *pb.ProxyToAgent_ResponseHeaders:
		x.kind, x.cid = kindResponseHeaders, e.ResponseHeaders.GetCorrelationId()
		pbconv.ResponseHeadersEventFromPB(&x.respHeaders, e.ResponseHeaders)
	case *pb.ProxyToAgent_ResponseBodyChunk:
		x.kind, x.cid = kindResponseBodyChunk, e.ResponseBodyChunk.GetCorrelationId()
		pbconv.BodyChunkFromPB(&x.body, e.ResponseBodyChunk)
	case *pb.ProxyToAgent_RequestComplete:
		x.kind, x.cid = kindRequestComplete, e.RequestComplete.GetCorrelationId()
		pbconv.RequestCompleteEventFromPB(&x.complete, e.RequestComplete)
	case *pb.ProxyToAgent_WebsocketFrame:
		x.kind, x.cid = kindWebSocketFrame, e.WebsocketFrame.GetCorrelationId()
		pbconv.WebSocketFrameEventFromPB(&x.ws, e.WebsocketFrame)
	case *pb.ProxyToAgent_Guardrail:
		x.kind, x.cid = kindGuardrailInspect, e.Guardrail.GetCorrelationId()
		pbconv.GuardrailInspectEventFromPB(&x.guard, e.Guardrail)
	default:
		return nil, status.Error(codes.InvalidArgument, "agentwire: unsupported event type for ProcessEvent")
	}
	s.begin(ctx, nil, &x)
	s.invoke(&x)
	s.end(nil, &x)
	return &pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: pbconv.AgentResponseToPB(&x.resp)}}, nil
}

// mergeCancel returns a context derived from ctx that is also cancelled
// when other is.
func mergeCancel(ctx, other context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() { stop(); cancel() }
}
