package agent

import "log/slog"

// Audit tags that mark a reply the server produced because the handler
// failed (see Handler, "The reply"). A proxy, an audit log or a test can
// tell such a reply from one the handler chose: the error decision is
// allow by default, and without the tag a failure would look like a real
// allow.
const (
	// TagHandlerError is the only audit tag of a reply sent because the
	// handler returned an error, or (Unix-socket and reverse connections)
	// because its reply could not be encoded. Counted in
	// Stats.HandlerErrors.
	TagHandlerError = "agentwire:handler-error"
	// TagHandlerPanic is the only audit tag of a reply sent because the
	// handler panicked. Counted in Stats.HandlerPanics.
	TagHandlerPanic = "agentwire:handler-panic"
)

// handlerFailed counts and logs a failed handler call and replaces
// whatever the handler wrote into x.resp by a fresh reply: the error
// decision (WithErrorDecision) and the failure's audit tag. Only failures
// come here, so the success path pays nothing for it.
//
//go:noinline
func (s *Server) handlerFailed(x *exchange, err error, panicked bool) {
	tag := TagHandlerError
	level := slog.LevelWarn
	if panicked {
		s.stats.handlerPanics.Add(1)
		tag = TagHandlerPanic
		level = slog.LevelError
	} else {
		s.stats.handlerErrors.Add(1)
	}
	if !panicked && x.ctx.Err() != nil {
		// Cancelled by the proxy or the stream's end: an error is expected
		// (a panic never is).
		level = slog.LevelDebug
	}
	s.log.LogAttrs(x.ctx, level, "agentwire: handler failed; answering with the error decision",
		slog.String("correlation_id", x.cid), slog.String("event", x.kind.String()),
		slog.Bool("panic", panicked), slog.Any("error", err))
	s.failedReply(x, tag)
}

// failedReply resets x.resp to the error decision tagged with tag.
func (s *Server) failedReply(x *exchange, tag string) {
	x.resetResp()
	x.resp.Decision = s.cfg.errDecision
	x.resp.Audit.Tags = []string{tag}
}
