package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// controlStream is an agentwire-mode ControlStream: the proxy sends
// ProxyControl, the agent sends AgentControl (see doc.go).
type controlStream struct {
	out  chan *pb.AgentControl
	done chan struct{} // closed when the stream ends
}

// send queues m for the stream's writer. It reports false when ctx ended or
// the stream is over.
func (cs *controlStream) send(ctx context.Context, m *pb.AgentControl) bool {
	select {
	case cs.out <- m:
		return true
	case <-ctx.Done():
		return false
	case <-cs.done:
		return false
	}
}

func controlStreamHandler(srv any, ss grpc.ServerStream) error {
	return srv.(*Server).controlStream(ss)
}

// isAgentwireControl reports whether the caller marked the stream with the
// agentwire control metadata.
func isAgentwireControl(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get(controlMetadataKey) {
		if v == "1" {
			return true
		}
	}
	return false
}

func (s *Server) controlStream(ss grpc.ServerStream) error {
	s.mu.Lock()
	if s.closed() {
		s.mu.Unlock()
		return errUnavailable
	}
	s.wg.Add(2) // this goroutine and the reader
	s.mu.Unlock()
	defer s.wg.Done()
	if isAgentwireControl(ss.Context()) {
		return s.agentwireControl(ss)
	}
	if err := ss.SendHeader(metadata.MD{}); err != nil {
		s.wg.Done()
		return err
	}
	return s.rustControl(ss)
}

// agentwireControl serves an agentwire-mode ControlStream. This goroutine is
// the writer; a reader goroutine handles ProxyControl messages.
func (s *Server) agentwireControl(ss grpc.ServerStream) error {
	cs := &controlStream{out: make(chan *pb.AgentControl, 16), done: make(chan struct{})}
	s.mu.Lock()
	s.controls = append(s.controls, cs)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		for i, c := range s.controls {
			if c == cs {
				s.controls = append(s.controls[:i], s.controls[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		close(cs.done)
	}()

	// Registered before the headers go out: once a proxy has seen them,
	// RequestConfigUpdate can use the stream.
	if err := ss.SendHeader(controlHeader); err != nil {
		s.wg.Done() // the reader never starts
		return err
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(s.baseCtx, cancel)
	defer stop()

	readerDone := make(chan error, 1)
	go func() {
		defer s.wg.Done()
		readerDone <- s.readProxyControl(ctx, ss)
	}()
	for {
		select {
		case m := <-cs.out:
			if err := ss.SendMsg(m); err != nil {
				return err
			}
		case err := <-readerDone:
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-s.shutdownCh:
			return errUnavailable
		case <-s.closeCh:
			return errUnavailable
		}
	}
}

// readProxyControl reads ProxyControl messages until the stream ends.
func (s *Server) readProxyControl(ctx context.Context, ss grpc.ServerStream) error {
	for {
		m := new(pb.ProxyControl)
		if err := ss.RecvMsg(m); err != nil {
			return err
		}
		switch x := m.Message.(type) {
		case *pb.ProxyControl_Configure:
			var ev agentwire.ConfigureEvent
			pbconv.ConfigureEventFromPB(&ev, x.Configure)
			_ = s.configure(ctx, ev.Config, ev.ConfigVersion.Value)
		case *pb.ProxyControl_Drain:
			n := DrainNotice{DurationMS: x.Drain.GetDurationMs(), Reason: DrainReason(x.Drain.GetReason()), TimestampMS: x.Drain.GetTimestampMs()}
			s.log.LogAttrs(ctx, slog.LevelInfo, "agentwire: proxy drains this agent", slog.Uint64("duration_ms", n.DurationMS), slog.Int("reason", int(n.Reason)))
			if s.drainer != nil {
				_ = safeHook(func() error { s.drainer.OnDrain(ctx, n); return nil })
			}
		case *pb.ProxyControl_Shutdown:
			n := ShutdownNotice{Reason: ShutdownReason(x.Shutdown.GetReason()), GracePeriodMS: x.Shutdown.GetGracePeriodMs(), TimestampMS: x.Shutdown.GetTimestampMs()}
			s.log.LogAttrs(ctx, slog.LevelInfo, "agentwire: proxy announces shutdown", slog.Uint64("grace_period_ms", n.GracePeriodMS), slog.Int("reason", int(n.Reason)))
			if s.shutdowner != nil {
				_ = safeHook(func() error { s.shutdowner.OnShutdown(ctx, n); return nil })
			}
		case *pb.ProxyControl_ConfigResponse:
			r := pbconv.ConfigUpdateResponseFromPB(x.ConfigResponse)
			if !s.deliverConfigResponse(r) {
				s.log.LogAttrs(ctx, slog.LevelDebug, "agentwire: config response without a waiter", slog.String("request_id", r.RequestID))
			}
		default:
			s.log.LogAttrs(ctx, slog.LevelDebug, "agentwire: ignoring unknown ProxyControl message")
		}
	}
}

// rustControl serves a ControlStream the way the Rust SDK server does
// (SPEC 4.8): it reads AgentControl messages, answers config_update with an
// accepting config_response, and sends a ProxyControl.configure keep-alive
// ({} config) right away and then every health report interval. With a zero
// interval no keep-alive is sent (the Rust SDK panics there).
func (s *Server) rustControl(ss grpc.ServerStream) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(s.baseCtx, cancel)
	defer stop()

	replies := make(chan *pb.ProxyControl, 16)
	readerDone := make(chan error, 1)
	go func() {
		defer s.wg.Done()
		readerDone <- s.readAgentControl(ctx, ss, replies)
	}()

	var tick <-chan time.Time
	if iv := s.caps.Health.ReportIntervalMS; iv > 0 {
		t := time.NewTicker(time.Duration(iv) * time.Millisecond)
		defer t.Stop()
		tick = t.C
		if err := ss.SendMsg(keepAlive()); err != nil {
			return err
		}
	}
	for {
		select {
		case m := <-replies:
			if err := ss.SendMsg(m); err != nil {
				return err
			}
		case <-tick:
			if err := ss.SendMsg(keepAlive()); err != nil {
				return err
			}
		case err := <-readerDone:
			// Flush answers the reader queued before it finished.
			for {
				select {
				case m := <-replies:
					if serr := ss.SendMsg(m); serr != nil {
						return serr
					}
					continue
				default:
				}
				break
			}
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-s.shutdownCh:
			return errUnavailable
		case <-s.closeCh:
			return errUnavailable
		}
	}
}

func keepAlive() *pb.ProxyControl {
	return &pb.ProxyControl{Message: &pb.ProxyControl_Configure{Configure: &pb.ConfigureEvent{
		ConfigJson: "{}", TimestampMs: nowMS(),
	}}}
}

// readAgentControl reads AgentControl messages (Rust-SDK mode) until the
// stream ends; config updates are answered through replies.
func (s *Server) readAgentControl(ctx context.Context, ss grpc.ServerStream, replies chan<- *pb.ProxyControl) error {
	for {
		m := new(pb.AgentControl)
		if err := ss.RecvMsg(m); err != nil {
			return err
		}
		switch x := m.Message.(type) {
		case *pb.AgentControl_Health:
			s.log.LogAttrs(ctx, slog.LevelDebug, "agentwire: control stream health", slog.Int("state", int(x.Health.GetState())))
		case *pb.AgentControl_Metrics:
			s.log.LogAttrs(ctx, slog.LevelDebug, "agentwire: control stream metrics", slog.Int("counters", len(x.Metrics.GetCounters())))
		case *pb.AgentControl_ConfigUpdate:
			r := &pb.ProxyControl{Message: &pb.ProxyControl_ConfigResponse{ConfigResponse: &pb.ConfigUpdateResponse{
				RequestId: x.ConfigUpdate.GetRequestId(), Accepted: true, TimestampMs: nowMS(),
			}}}
			select {
			case replies <- r:
			case <-ctx.Done():
				return ctx.Err()
			}
		case *pb.AgentControl_Log:
			s.log.LogAttrs(ctx, logLevel(x.Log.GetLevel()), x.Log.GetMessage(), slog.String("source", "control_stream"))
		}
	}
}

// logLevel maps a proto LogLevel to slog (1 debug, 2 info, 3 warn, 4 error).
func logLevel(l int32) slog.Level {
	switch agentwire.LogLevel(l) {
	case agentwire.LogDebug:
		return slog.LevelDebug
	case agentwire.LogWarn:
		return slog.LevelWarn
	case agentwire.LogError:
		return slog.LevelError
	}
	return slog.LevelInfo
}
