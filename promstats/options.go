package promstats

import (
	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// ErrInvalidConfig: a constructor was given a nil source or a refused
// option. It is engine.ErrInvalidConfig, so one errors.Is covers the
// configuration errors of every agentwire package.
var ErrInvalidConfig = engine.ErrInvalidConfig

// Option configures a collector (NewPoolCollector, NewConnCollector,
// NewServerCollector).
type Option interface{ apply(*options) }

type options struct {
	native bool
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

func buildOptions(opts []Option) options {
	o := options{native: true}
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	return o
}

// WithNativeHistograms says whether latency histograms carry their native
// form (schema 0) besides the classic buckets (default true). The native
// form travels only in the protobuf exposition format, to scrapers that ask
// for it; the text format always carries the classic buckets.
func WithNativeHistograms(on bool) Option {
	return optionFunc(func(o *options) { o.native = on })
}

// eventNames are the event label values, indexed by agentwire event code.
var eventNames = [8]string{
	agentwire.EventRequestHeaders:    "request_headers",
	agentwire.EventRequestBodyChunk:  "request_body_chunk",
	agentwire.EventResponseHeaders:   "response_headers",
	agentwire.EventResponseBodyChunk: "response_body_chunk",
	agentwire.EventRequestComplete:   "request_complete",
	agentwire.EventWebSocketFrame:    "websocket_frame",
	agentwire.EventGuardrailInspect:  "guardrail_inspect",
}

// healthNames are the health label values, indexed by
// agentwire.HealthState ("unknown": no report in force).
var healthNames = [...]string{
	agentwire.HealthUnspecified: "unknown",
	agentwire.HealthHealthy:     "healthy",
	agentwire.HealthDegraded:    "degraded",
	agentwire.HealthDraining:    "draining",
	agentwire.HealthUnhealthy:   "unhealthy",
}

func healthIndex(s agentwire.HealthState) int {
	if s < 0 || int(s) >= len(healthNames) {
		return int(agentwire.HealthUnspecified)
	}
	return int(s)
}

// decisionNames are the decision label values of agent decisions, indexed
// by agentwire.DecisionKind.
var decisionNames = [4]string{"allow", "block", "redirect", "challenge"}

// Label values of synthetic outcomes.
const (
	labelFailOpen      = "fail_open"
	labelFailClosed    = "fail_closed"
	labelNotSubscribed = "not_subscribed"
)

// reasonNames are the reason label values of synthetic decisions, indexed
// by engine.Reason (not-subscribed is not a failure and not listed).
var reasonNames = [...]struct {
	r    engine.Reason
	name string
}{
	{engine.ReasonError, "error"}, {engine.ReasonTimeout, "timeout"}, {engine.ReasonCanceled, "canceled"},
	{engine.ReasonUnavailable, "unavailable"}, {engine.ReasonBreakerOpen, "breaker_open"},
	{engine.ReasonBodyTooLarge, "body_too_large"},
}
