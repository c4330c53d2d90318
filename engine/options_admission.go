package engine

import "time"

// MaxStretchFactor is the default ceiling of a timeout stretched by a
// DEGRADED agent's timeout_multiplier, as a multiple of the request
// timeout (see WithMaxStretchedTimeout).
const MaxStretchFactor = 4

// WithSaturation selects what a call does when the agent's announced
// limits.max_concurrency requests are already in flight on the connection
// (each call from admission until its reply or failure holds one slot:
// request headers, body chunks and every other event kind alike; cancels,
// pings and configure events hold none): FlowWait (the default) waits for
// a slot within the call's deadline, slots going to waiters first come
// first served; FlowFailFast fails at once with ErrSaturated. A wait that
// outlasts the call's deadline or context fails with ErrTimeout or
// ErrCanceled (wrapping ErrSaturated). The limit is per session, from its
// handshake (gRPC and Unix socket; an agent announcing 0 has none), and
// is lowered further by a flow-control UPDATE_CAPACITY cap, which
// WithFlowControl governs. Stats.SaturationWaits and
// Stats.SaturationRejected count the calls concerned.
//
// Holding calls back keeps a saturated agent from having to stop reading
// its socket (which WithWriteTimeout would take for a stuck agent).
func WithSaturation(m FlowMode) Option { return optionFunc(func(o *options) { o.saturation = m }) }

// WithMaxStretchedTimeout caps the request timeout that a DEGRADED agent's
// timeout_multiplier may stretch (the agent chooses the multiplier: up to
// +Inf). d must lie between the request timeout and some 146 years.
// Default: MaxStretchFactor × the request timeout (2 minutes with the
// default request timeout), enough for the multipliers a degraded agent
// plausibly asks for (1.5-3) while bounding a bogus one by minutes rather
// than years, and scaling with the request timeout chosen. A stretched
// deadline is computed when a call starts; calls started after the
// report's valid_until use the plain request timeout.
func WithMaxStretchedTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.maxStretch = d })
}

// stretchCeiling returns the longest a DEGRADED multiplier may stretch
// the request timeout d to (never less than d).
func (o *options) stretchCeiling(d time.Duration) time.Duration {
	if o.maxStretch != 0 {
		return max(o.maxStretch, d)
	}
	if d > maxStretchedTimeout/MaxStretchFactor {
		return maxStretchedTimeout
	}
	return d * MaxStretchFactor
}
