package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc"
)

// Errors returned by Server methods.
var (
	// ErrServerClosed is returned by ServeGRPC after Shutdown or Close, and
	// by RequestConfigUpdate when the server closes while it waits.
	ErrServerClosed = errors.New("agentwire: agent server closed")
	// ErrNoControlStream is returned by RequestConfigUpdate when no proxy
	// has opened an agentwire ControlStream (the Rust proxy never does, and
	// never answers a config-update request).
	ErrNoControlStream = errors.New("agentwire: no agentwire control stream connected")
)

// Server serves a Handler to proxies over gRPC (and, through the same
// Handler, over other transports of this package). It is safe for
// concurrent use. Create it with NewServer; the zero value is not usable.
//
// Lifecycle: a Server accepts streams until Drain, Shutdown or Close is
// called. Drain announces the draining state and waits for quiet; Shutdown
// also ends every stream once its in-flight events are answered; Close ends
// everything at once. All three are idempotent.
type Server struct {
	h   Handler
	cfg config
	log *slog.Logger

	// Optional hooks, detected once in NewServer.
	handshaker Handshaker
	configurer Configurer
	canceller  Canceller
	drainer    Drainer
	shutdowner Shutdowner

	caps   agentwire.Capabilities
	capsPB *pb.AgentCapabilities // read-only after NewServer

	// baseCtx is the parent of every stream context; cancelled by Close.
	baseCtx    context.Context
	baseCancel context.CancelFunc

	// shutdownCtx is cancelled when Shutdown starts (streams finish and
	// end); shutdownCh is its Done channel, for selects. Unix-socket
	// connections hook their reaction to it with context.AfterFunc
	// instead of a watcher goroutine each (uds.go).
	shutdownCtx    context.Context
	shutdownCancel context.CancelFunc
	shutdownCh     <-chan struct{}
	// closeCh is closed by Close (everything ends now).
	closeCh   chan struct{}
	closeOnce sync.Once

	draining atomic.Bool // Drain or Shutdown called: refuse new streams
	inflight atomic.Int64
	idle     chan struct{} // capacity 1; signalled when inflight hits 0 while draining

	// health is the last report given to ReportHealth (nil = none); sent to
	// every stream right after its handshake.
	health atomic.Pointer[agentwire.HealthStatus]

	// mu guards the fields below.
	mu       sync.Mutex
	streams  map[*procStream]struct{}
	controls []*controlStream // agentwire-mode control streams, newest last
	gsrv     *grpc.Server     // created by ServeGRPC
	waiters  map[string]chan agentwire.ConfigUpdateResponse

	// wg counts every goroutine the server owns (stream readers, writers,
	// handlers, control streams).
	wg sync.WaitGroup

	// uds is the Unix-socket and reverse-connection state (uds.go).
	uds udsState

	stats serverStats
}

type serverStats struct {
	events         atomic.Uint64
	handlerErrors  atomic.Uint64
	handlerPanics  atomic.Uint64
	cancels        atomic.Uint64
	droppedPushes  atomic.Uint64
	protocolErrors atomic.Uint64
	byEvent        eventCounters // eventstats.go
}

// Stats is a snapshot of server counters.
type Stats struct {
	// Events is the number of events handed to the Handler. With
	// WithInlineHandlers, a Unix-socket or reverse connection's events
	// are added when their replies are written (just before), not one by
	// one as they are handled: an event whose reply has arrived is
	// counted, while one whose reply the reader has not written yet may
	// not be (the same for EventStats).
	Events uint64
	// HandlerErrors counts handler calls that returned an error, and
	// (Unix-socket and reverse connections) replies that could not be
	// encoded; each was answered with the error decision tagged
	// TagHandlerError.
	HandlerErrors uint64
	// HandlerPanics counts handler calls that panicked; each was answered
	// with the error decision tagged TagHandlerPanic.
	HandlerPanics uint64
	// Cancels counts cancel notices received.
	Cancels uint64
	// DroppedPushes counts health, metrics, flow-control and log pushes
	// dropped because a connection's outbound queue was full (gRPC streams,
	// Unix-socket and reverse connections alike; see Server.ReportHealth).
	DroppedPushes uint64
	// ProtocolErrors counts streams ended because of a protocol violation.
	ProtocolErrors uint64
	// InFlight is the number of events being handled now.
	InFlight int64
	// Streams is the number of open ProcessStreams.
	Streams int
	// Conns is the number of established Unix-socket and reverse
	// connections.
	Conns int
	// DecodeErrors counts Unix-socket events and cancels that could not be
	// decoded (events are answered with the error decision).
	DecodeErrors uint64
	// IgnoredFrames counts Unix-socket frames skipped because their type
	// is unknown or not one a proxy sends.
	IgnoredFrames uint64
}

// NewServer returns a server for h with the options applied. It panics if
// h is nil or an option is invalid: both are programmer input, checked once
// at start-up. The panic value is an error satisfying
// errors.Is(err, ErrInvalidConfig). The server serves nothing until
// ServeGRPC (or another Serve method) is called or it is registered on a
// grpc.Server.
func NewServer(h Handler, opts ...Option) *Server {
	s, err := newServer(h, opts...)
	if err != nil {
		panic(err)
	}
	return s
}

func newServer(h Handler, opts ...Option) (*Server, error) {
	if h == nil {
		return nil, invalidConfig(errors.New("agentwire: nil handler"))
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, invalidConfig(errors.New("agentwire: nil option"))
		}
		if err := o.apply(&cfg); err != nil {
			return nil, invalidConfig(err)
		}
	}
	s := &Server{
		h:       h,
		cfg:     cfg,
		log:     cfg.logger,
		closeCh: make(chan struct{}),
		idle:    make(chan struct{}, 1),
		streams: make(map[*procStream]struct{}),
		waiters: make(map[string]chan agentwire.ConfigUpdateResponse),
	}
	hk := hooksOf(h)
	s.handshaker, s.configurer, s.canceller, s.drainer, s.shutdowner =
		hk.handshaker, hk.configurer, hk.canceller, hk.drainer, hk.shutdowner
	s.caps = cfg.capabilities()
	s.capsPB = pbconv.CapabilitiesToPB(&s.caps)
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	s.shutdownCtx, s.shutdownCancel = context.WithCancel(context.Background())
	s.shutdownCh = s.shutdownCtx.Done()
	return s, nil
}

// Capabilities returns the capabilities the server announces.
func (s *Server) Capabilities() agentwire.Capabilities {
	c := s.caps
	c.SupportedEvents = append([]int32(nil), s.caps.SupportedEvents...)
	return c
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.streams)
	conns := len(s.uds.conns)
	s.mu.Unlock()
	return Stats{
		Events:         s.stats.events.Load(),
		HandlerErrors:  s.stats.handlerErrors.Load(),
		HandlerPanics:  s.stats.handlerPanics.Load(),
		Cancels:        s.stats.cancels.Load(),
		DroppedPushes:  s.stats.droppedPushes.Load(),
		ProtocolErrors: s.stats.protocolErrors.Load(),
		InFlight:       s.inflight.Load(),
		Streams:        n,
		Conns:          conns,
		DecodeErrors:   s.uds.decodeErrors.Load(),
		IgnoredFrames:  s.uds.ignoredFrames.Load(),
	}
}

// RegisterGRPC registers the agent service (zentinel.agent.v2.AgentServiceV2)
// on g. The caller owns g: it serves, stops and configures it (codec,
// message size limits, credentials). Shutdown and Close end this server's
// streams but do not stop g.
//
// Create g with grpccodec.ServerOption() (package codec/grpccodec) for the
// fast path: hot events are then decoded straight from the wire bytes with
// one allocation each. With grpc-go's default codec everything works the
// same, decoded through the generated protobuf code (one allocation per
// string field).
//
// A ProcessStream ends only after its last SendMsg returned (grpc-go
// forbids sends after the stream's handler returned). A send blocked by a
// proxy that stopped reading returns when the proxy reads or resets the
// stream, or when g closes the connection; so with g of your own, stop g
// before or while calling Close (Close waits for the stream), not only
// after it.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	g.RegisterService(&serviceDesc, s)
}

// ServeGRPC serves gRPC on ln until Shutdown or Close, then returns
// ErrServerClosed. It may be called for several listeners (e.g. TCP and a
// Unix socket); they share one grpc.Server, created on first use with the
// vtprotobuf codec, the configured message size limits and flow-control
// window (WithGRPCWindow) and the options of WithGRPCServerOptions. ln is
// closed when ServeGRPC returns. A nil ln is an error satisfying
// errors.Is(err, ErrInvalidConfig) (ErrServerClosed after Shutdown or
// Close).
func (s *Server) ServeGRPC(ln net.Listener) error {
	s.mu.Lock()
	if s.closed() {
		s.mu.Unlock()
		if ln != nil {
			ln.Close()
		}
		return ErrServerClosed
	}
	if ln == nil {
		s.mu.Unlock()
		return invalidConfig(errors.New("agentwire: nil listener"))
	}
	if s.gsrv == nil {
		opts := []grpc.ServerOption{
			grpc.MaxRecvMsgSize(s.cfg.maxRecv),
			grpc.MaxSendMsgSize(s.cfg.maxSend),
		}
		if w := s.cfg.grpcWindow; w > 0 {
			opts = append(opts, grpc.InitialWindowSize(int32(w)), grpc.InitialConnWindowSize(int32(w)))
		}
		opts = append(opts, codecServerOptions()...)
		opts = append(opts, s.cfg.grpcOpts...)
		s.gsrv = grpc.NewServer(opts...)
		s.RegisterGRPC(s.gsrv)
	}
	g := s.gsrv
	s.mu.Unlock()
	err := g.Serve(ln)
	if err == nil || errors.Is(err, grpc.ErrServerStopped) || s.closed() {
		return ErrServerClosed
	}
	return err
}

// closed reports whether Shutdown or Close has been called.
func (s *Server) closed() bool {
	select {
	case <-s.shutdownCh:
		return true
	case <-s.closeCh:
		return true
	default:
		return false
	}
}

// Drain puts the server into the draining state: it reports
// HealthDraining on every connected stream (agentwire proxies stop sending
// new requests; the Rust proxy ignores health), refuses new streams, and
// waits until no event is being handled or ctx ends (then it returns
// ctx.Err()). Open streams keep being served: events still arriving are
// handled and answered. Call Shutdown or Close afterwards to end them.
// Drain does not call the Drainer hook (that reports a proxy's drain).
func (s *Server) Drain(ctx context.Context) error {
	if s.draining.CompareAndSwap(false, true) {
		h := s.healthTemplate()
		h.State = agentwire.HealthDraining
		s.ReportHealth(h)
	}
	return s.waitIdle(ctx)
}

func (s *Server) waitIdle(ctx context.Context) error {
	for {
		if s.inflight.Load() == 0 {
			// idle holds a single token: pass it on, so that other
			// Drain calls waiting at the same time wake up too.
			select {
			case s.idle <- struct{}{}:
			default:
			}
			return nil
		}
		select {
		case <-s.idle:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closeCh:
			return ErrServerClosed
		}
	}
}

func (s *Server) healthTemplate() agentwire.HealthStatus {
	if p := s.health.Load(); p != nil {
		h := *p
		h.DisabledFeatures = append([]string(nil), p.DisabledFeatures...)
		return h
	}
	return agentwire.HealthStatus{AgentID: s.caps.AgentID, State: agentwire.HealthHealthy}
}

// Shutdown stops the server gracefully: it refuses new streams, stops
// reading new events, waits until every event already received has been
// answered and the answers flushed, then ends every stream (gRPC status
// UNAVAILABLE) and control stream and stops the grpc.Server created by
// ServeGRPC. Events that arrive after Shutdown started are not handled
// (an agentwire proxy fails them at once when the stream ends and retries
// elsewhere). If ctx ends first, Shutdown falls back to Close and returns
// ctx.Err(). Handlers still running are waited for in any case; they see
// their context cancelled only in the Close fallback.
//
// The deadline of ctx is the graceful part's bound: at it every
// connection is closed hard (a proxy that stopped reading, or a write
// blocked on it, holds nothing up; WithWriteTimeout bounds such a write
// even without a deadline; for a grpc.Server of the caller's see
// RegisterGRPC). What Close then waits for is the server's own
// goroutines, which a closed connection ends, and handler calls, which
// end only when the handler returns: a handler that ignores its context
// keeps Shutdown from returning. A process that must stop within a bound
// whatever its handlers do stops waiting after its own grace period and
// exits (agentwire serve: --drain-timeout, then --stop-grace).
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.shutdownCancel()
	done := make(chan struct{})
	go func() {
		s.waitStreams()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
	s.mu.Lock()
	g := s.gsrv
	s.mu.Unlock()
	if g != nil {
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			g.Stop()
			<-stopped
			s.Close()
			return ctx.Err()
		}
	}
	s.Close()
	return nil
}

// waitStreams waits until every goroutine owned by the server has exited.
func (s *Server) waitStreams() {
	// Taking mu orders every s.wg.Add made under mu by a transport (after
	// checking closed()) before this Wait, as WaitGroup requires for the
	// first Add.
	s.mu.Lock()
	//lint:ignore SA2001 the empty critical section orders earlier wg.Add calls made under mu before Wait
	s.mu.Unlock()
	s.wg.Wait()
}

// Close ends everything at once: every request context is cancelled, every
// stream ends (answers not yet sent are dropped), the grpc.Server created
// by ServeGRPC is stopped. It waits for the server's goroutines, including
// handler calls still running (handlers must honour their context) and a
// ProcessStream send blocked by the proxy's flow control (see RegisterGRPC
// for a grpc.Server of the caller's). Close is idempotent.
func (s *Server) Close() error {
	s.draining.Store(true)
	s.closeOnce.Do(func() {
		close(s.closeCh)
		s.baseCancel()
	})
	s.mu.Lock()
	g := s.gsrv
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
	s.wg.Wait()
	return nil
}

// ---------------------------------------------------------------------------
// Pushes to connected proxies

// ReportHealth sends h to every established connection: each gRPC
// ProcessStream (AgentToProxy.health) and each Unix-socket or reverse
// connection (frame 0x30). It also remembers h: connections established
// later receive it right after their handshake. An empty AgentID is filled
// with the server's; a zero TimestampMS with the current time.
//
// The call never blocks. A connection whose outbound queue is full misses the
// report, and Stats.DroppedPushes counts it; nothing else records a drop (no
// log line, no error). A queue holds 64 pushes beyond the replies; with
// inline handlers on a Unix-socket connection it is a list of 64 pushes
// waiting for the push writer. The same holds for ReportMetrics,
// SendFlowControl and Log.
func (s *Server) ReportHealth(h agentwire.HealthStatus) {
	if h.AgentID == "" {
		h.AgentID = s.caps.AgentID
	}
	if h.TimestampMS == 0 {
		h.TimestampMS = nowMS()
	}
	h.DisabledFeatures = append([]string(nil), h.DisabledFeatures...)
	s.health.Store(&h)
	s.mu.Lock()
	for st := range s.streams {
		if st.established.Load() {
			st.pushHealth(&h)
		}
	}
	s.mu.Unlock()
	s.udsPushHealth(&h)
}

// ReportMetrics sends r to every established connection
// (AgentToProxy.metrics on gRPC, frame 0x31 otherwise). Empty AgentID and zero TimestampMS are filled in.
// Never blocks (see ReportHealth).
func (s *Server) ReportMetrics(r *agentwire.MetricsReport) {
	c := *r
	if c.AgentID == "" {
		c.AgentID = s.caps.AgentID
	}
	if c.TimestampMS == 0 {
		c.TimestampMS = nowMS()
	}
	s.broadcast(&pb.AgentToProxy{Message: &pb.AgentToProxy_Metrics{Metrics: pbconv.MetricsReportToPB(&c)}})
	s.udsPushMetrics(&c)
}

// SendFlowControl sends f to every established connection
// (AgentToProxy.flow_control on gRPC, frame 0x33 otherwise). A zero
// TimestampMS is filled in. Never blocks (see ReportHealth). The Rust proxy ignores flow control; an
// agentwire proxy honours it.
func (s *Server) SendFlowControl(f agentwire.FlowControlSignal) {
	if f.TimestampMS == 0 {
		f.TimestampMS = nowMS()
	}
	s.broadcast(&pb.AgentToProxy{Message: &pb.AgentToProxy_FlowControl{FlowControl: pbconv.FlowControlSignalToPB(&f)}})
	s.udsPushFlowControl(&f)
}

// Log forwards a log line to every established gRPC ProcessStream
// (AgentToProxy.log; the Unix-socket protocol has no log frame). A zero
// TimestampMS is filled in. Never blocks (see ReportHealth).
func (s *Server) Log(m agentwire.LogMessage) {
	if m.TimestampMS == 0 {
		m.TimestampMS = nowMS()
	}
	s.broadcast(&pb.AgentToProxy{Message: &pb.AgentToProxy_Log{Log: pbconv.LogMessageToPB(&m)}})
}

func (s *Server) broadcast(m *pb.AgentToProxy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for st := range s.streams {
		if st.established.Load() {
			st.push(m)
		}
	}
}

// RequestConfigUpdate asks the proxy to act on r (reload, rule or list
// update, restart, configuration error) and waits for its answer. The
// request goes out as AgentControl.config_update on the most recently
// opened agentwire ControlStream, and the answer comes back as
// ProxyControl.config_response with the same request_id. An empty RequestID
// is generated; a zero TimestampMS is filled in. It returns
// ErrNoControlStream when no agentwire proxy is connected (the Rust proxy
// never answers such requests), ctx.Err() when ctx ends first, and
// ErrServerClosed when the server or that control stream closes first.
func (s *Server) RequestConfigUpdate(ctx context.Context, r *agentwire.ConfigUpdateRequest) (agentwire.ConfigUpdateResponse, error) {
	c := *r
	if c.RequestID == "" {
		c.RequestID = newRequestID()
	}
	if c.TimestampMS == 0 {
		c.TimestampMS = nowMS()
	}
	// Unix-socket and reverse connections carry the request (0x32) but have
	// no frame type for an answer (SPEC 6.9).
	s.udsPushConfigUpdate(&c)
	ch := make(chan agentwire.ConfigUpdateResponse, 1)
	s.mu.Lock()
	if len(s.controls) == 0 {
		s.mu.Unlock()
		return agentwire.ConfigUpdateResponse{}, ErrNoControlStream
	}
	cs := s.controls[len(s.controls)-1]
	if _, dup := s.waiters[c.RequestID]; dup {
		s.mu.Unlock()
		return agentwire.ConfigUpdateResponse{}, errors.New("agentwire: duplicate config update request id " + c.RequestID)
	}
	s.waiters[c.RequestID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, c.RequestID)
		s.mu.Unlock()
	}()
	msg := &pb.AgentControl{Message: &pb.AgentControl_ConfigUpdate{ConfigUpdate: pbconv.ConfigUpdateRequestToPB(&c)}}
	if !cs.send(ctx, msg) {
		if err := ctx.Err(); err != nil {
			return agentwire.ConfigUpdateResponse{}, err
		}
		return agentwire.ConfigUpdateResponse{}, ErrServerClosed
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return agentwire.ConfigUpdateResponse{}, ctx.Err()
	case <-cs.done:
		return agentwire.ConfigUpdateResponse{}, ErrServerClosed
	case <-s.closeCh:
		return agentwire.ConfigUpdateResponse{}, ErrServerClosed
	}
}

// deliverConfigResponse routes a config_response to its waiter; it reports
// whether one was waiting.
func (s *Server) deliverConfigResponse(r agentwire.ConfigUpdateResponse) bool {
	s.mu.Lock()
	ch, ok := s.waiters[r.RequestID]
	if ok {
		delete(s.waiters, r.RequestID)
	}
	s.mu.Unlock()
	if ok {
		ch <- r // capacity 1, one sender
	}
	return ok
}

// ---------------------------------------------------------------------------
// small helpers

func nowMS() uint64 { return uint64(time.Now().UnixMilli()) }

var reqIDCounter atomic.Uint64

// newRequestID returns a process-unique id for config-update requests.
func newRequestID() string {
	var b [40]byte
	out := append(b[:0], "agentwire-"...)
	out = appendUint(out, uint64(time.Now().UnixNano()))
	out = append(out, '-')
	out = appendUint(out, reqIDCounter.Add(1))
	return string(out)
}

func appendUint(dst []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, tmp[i:]...)
}
