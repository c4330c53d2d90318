package pool

import (
	"sync/atomic"
	"time"
)

// BreakerState is the state of an agent's circuit breaker.
type BreakerState uint8

const (
	// BreakerClosed: calls go through; consecutive failures are counted.
	BreakerClosed BreakerState = iota
	// BreakerOpen: calls are refused (ReasonBreakerOpen) until the open
	// period has passed, or until one of the agent's connections
	// (re)connects, whichever comes first.
	BreakerOpen
	// BreakerHalfOpen: a bounded number of probe calls go through; enough
	// consecutive successes close the breaker, any failure reopens it.
	BreakerHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Breaker defaults: the Rust proxy's (SPEC 12.2).
const (
	DefaultFailureThreshold = 5
	DefaultOpenDuration     = 30 * time.Second
	DefaultHalfOpenProbes   = 1
	DefaultSuccessThreshold = 2
)

// BreakerConfig configures an agent's circuit breaker (WithBreaker). Zero
// fields take the defaults: 5 consecutive failures open it, it stays open
// 30 s, then lets 1 probe call through at a time, and 2 consecutive
// successful probes close it. A failed probe reopens it. An open breaker
// also half-opens, before the open period has passed, as soon as the pool
// sees one of the agent's connections (re)connect (a connection joins
// connected, or comes back after it was lost): an agent that was down
// and comes back is probed at once instead of after the cool-down.
//
// What counts as a failure: a timeout or a protocol violation of a call
// the agent received; a call that finds none of the agent's connections
// connected (all lost and reconnecting, or none made yet: the agent as a
// whole is down, ReasonUnavailable); and a lost connection, once per
// loss of that connection however many calls were pending on it (so
// that one dropped connection among healthy ones, whose successes reset
// the count, never opens the breaker). The caller's cancellation, a
// connection's refusal before sending (unhealthy, draining, paused by
// flow control, saturated) and calls that the agent's health or flow
// control kept from every connection never count.
type BreakerConfig struct {
	// Disabled turns the breaker off: every call goes through.
	Disabled bool
	// FailureThreshold is the number of consecutive failures (errors and
	// timeouts of calls the agent received) that open the breaker
	// (1..255; default DefaultFailureThreshold). A success resets the
	// count.
	FailureThreshold int
	// OpenDuration is how long the breaker refuses calls once open
	// (default DefaultOpenDuration; at least 1 ms). The breaker's clock
	// has millisecond resolution.
	OpenDuration time.Duration
	// HalfOpenProbes is the number of probe calls allowed in flight at
	// once while half-open (1..255; default DefaultHalfOpenProbes).
	HalfOpenProbes int
	// SuccessThreshold is the number of consecutive successful probes that
	// close the breaker (1..255; default DefaultSuccessThreshold).
	SuccessThreshold int
	// ProbeLease bounds how long a probe may stay unreported. When every
	// probe slot is taken and the newest probe was admitted longer ago
	// than the lease, the probes are presumed lost (a call that never
	// reports behaves like a timeout) and the breaker reopens, instead of
	// staying half-open and refusing calls forever as the Rust proxy's
	// does. Default: the agent's longest call timeout plus one second.
	ProbeLease time.Duration
}

// The breaker's state lives in one 64-bit word, changed only by CAS:
//
//	bits  0-1   state (BreakerState)
//	bits  2-9   count: consecutive failures (closed) or successes (half-open)
//	bits 10-17  probes in flight (half-open)
//	bits 18-33  generation: +1 on every state change; a report carrying an
//	            older generation is stale and ignored
//
// A second word holds the deadline of the current generation: the end of
// the open period (open), or the probe lease's expiry (half-open), as
// generation<<48 | milliseconds since the breaker's epoch. A deadline whose
// generation is not the state's is not written yet: the transition that
// makes it is in progress, and the breaker acts as if it had not passed.
const (
	bStateBits  = 0x3
	bCountShift = 2
	bCountMask  = 0xff << bCountShift
	bProbeShift = 10
	bProbeOne   = 1 << bProbeShift
	bProbeMask  = 0xff << bProbeShift
	bGenShift   = 18
	bGenMask    = 0xffff << bGenShift
	dlGenShift  = 48
	dlMSMask    = 1<<dlGenShift - 1
)

// breaker is a lock-free circuit breaker. Its success path is one atomic
// load in allow and one in report (closed, no failures counted).
type breaker struct {
	disabled  bool
	failures  uint64 // FailureThreshold
	openMS    int64  // OpenDuration in ms
	probes    uint64 // HalfOpenProbes
	successes uint64 // SuccessThreshold
	leaseMS   int64  // ProbeLease in ms

	w  atomic.Uint64
	dl atomic.Uint64

	epoch time.Time
	now   func() int64 // ms since epoch; replaced by tests

	opens     atomic.Uint64 // transitions to open
	rejected  atomic.Uint64 // calls refused
	leaseLost atomic.Uint64 // reopens because probes did not report in their lease
	wakes     atomic.Uint64 // open to half-open because a connection (re)connected (wake)
	// onChange, when set, is called after each state transition by the
	// goroutine that made it.
	onChange func(from, to BreakerState)
}

// probeToken is what allow hands to an admitted call, to be given back to
// report: the generation it was admitted in.
type probeToken uint32

// outcome is what a call reports to the breaker.
type outcome uint8

const (
	outcomeSuccess outcome = iota // the agent answered
	outcomeFailure                // an error or timeout the agent is to blame for
	outcomeIgnore                 // the caller cancelled, or the call never reached the agent
)

func newBreaker(cfg BreakerConfig, lease time.Duration) *breaker {
	b := &breaker{
		disabled:  cfg.Disabled,
		failures:  uint64(orDefault(cfg.FailureThreshold, DefaultFailureThreshold)),
		openMS:    max(orDefaultDur(cfg.OpenDuration, DefaultOpenDuration).Milliseconds(), 1),
		probes:    uint64(orDefault(cfg.HalfOpenProbes, DefaultHalfOpenProbes)),
		successes: uint64(orDefault(cfg.SuccessThreshold, DefaultSuccessThreshold)),
		leaseMS:   max(orDefaultDur(cfg.ProbeLease, lease).Milliseconds(), 1),
		epoch:     time.Now(),
	}
	b.now = b.sinceEpoch
	return b
}

func (b *breaker) sinceEpoch() int64 { return time.Since(b.epoch).Milliseconds() }

func bState(w uint64) BreakerState { return BreakerState(w & bStateBits) }
func bCount(w uint64) uint64       { return (w & bCountMask) >> bCountShift }
func bProbes(w uint64) uint64      { return (w & bProbeMask) >> bProbeShift }
func bGen(w uint64) uint64         { return (w & bGenMask) >> bGenShift }

// bNext returns the word of the next generation in state s (count and
// probes zero).
func bNext(w uint64, s BreakerState) uint64 {
	return ((bGen(w)+1)<<bGenShift)&bGenMask | uint64(s)
}

func dlWord(gen uint64, ms int64) uint64 { return gen<<dlGenShift | uint64(ms)&dlMSMask }

// setDeadline stores the deadline of generation gen, unless a later
// generation's is already there (a goroutine that made a transition can be
// overtaken by the next transition before it stores its deadline).
func (b *breaker) setDeadline(gen uint64, ms int64) {
	nd := dlWord(gen, ms)
	for {
		d := b.dl.Load()
		if older := (d>>dlGenShift - gen) & 0xffff; older != 0 && older < 0x8000 {
			return // d's generation is after gen
		}
		if b.dl.CompareAndSwap(d, nd) {
			return
		}
	}
}

// passed reports whether the deadline of w's generation is known and not
// after now.
func (b *breaker) passed(w uint64, now int64) bool {
	d := b.dl.Load()
	return d>>dlGenShift == bGen(w) && int64(d&dlMSMask) <= now
}

// State returns the current state (an open breaker whose period has passed
// reads open until the next call moves it to half-open).
func (b *breaker) State() BreakerState { return bState(b.w.Load()) }

// allow asks to let a call through. When it says yes, the call must end
// with exactly one report(token, ...).
func (b *breaker) allow() (probeToken, bool) {
	if b.disabled {
		return 0, true
	}
	for {
		w := b.w.Load()
		switch bState(w) {
		case BreakerClosed:
			return probeToken(bGen(w)), true
		case BreakerOpen:
			now := b.now()
			if !b.passed(w, now) {
				b.rejected.Add(1)
				return 0, false
			}
			// The open period is over: half-open, with this call as the
			// first probe.
			nw := bNext(w, BreakerHalfOpen) + bProbeOne
			if b.w.CompareAndSwap(w, nw) {
				b.setDeadline(bGen(nw), now+b.leaseMS)
				b.changed(BreakerOpen, BreakerHalfOpen)
				return probeToken(bGen(nw)), true
			}
		case BreakerHalfOpen:
			if bProbes(w) < b.probes {
				if b.w.CompareAndSwap(w, w+bProbeOne) {
					b.setDeadline(bGen(w), b.now()+b.leaseMS)
					return probeToken(bGen(w)), true
				}
				continue
			}
			now := b.now()
			if !b.passed(w, now) {
				b.rejected.Add(1)
				return 0, false
			}
			// Every probe slot is held by a probe that outlived its lease:
			// they count as failed (a hung agent), the breaker reopens.
			if b.reopen(w, now) {
				b.leaseLost.Add(1)
				b.changed(BreakerHalfOpen, BreakerOpen)
				b.rejected.Add(1)
				return 0, false
			}
		default:
			return 0, false
		}
	}
}

// wake moves an open breaker to half-open at once, without waiting for
// the end of its open period: one of the agent's connections has just
// (re)connected, so a probe can tell whether the agent answers again (an
// agent that comes back is used promptly instead of after the
// cool-down). Reports of calls admitted before are stale, as after any
// transition. In other states it does nothing. It reports whether it
// made the transition. This transition is outside the model of the
// gobreaker oracle (TestBreakerOracle); TestBreakerWake tests it.
func (b *breaker) wake() bool {
	if b.disabled {
		return false
	}
	for {
		w := b.w.Load()
		if bState(w) != BreakerOpen {
			return false
		}
		nw := bNext(w, BreakerHalfOpen)
		if b.w.CompareAndSwap(w, nw) {
			b.setDeadline(bGen(nw), b.now()+b.leaseMS)
			b.wakes.Add(1)
			b.changed(BreakerOpen, BreakerHalfOpen)
			return true
		}
	}
}

// reopen moves w to a new open generation. It reports whether it did.
func (b *breaker) reopen(w uint64, now int64) bool {
	nw := bNext(w, BreakerOpen)
	if !b.w.CompareAndSwap(w, nw) {
		return false
	}
	b.setDeadline(bGen(nw), now+b.openMS)
	b.opens.Add(1)
	return true
}

// report records the outcome of a call admitted by allow with token t.
func (b *breaker) report(t probeToken, o outcome) {
	if b.disabled {
		return
	}
	for {
		w := b.w.Load()
		if uint64(t) != bGen(w) {
			return // admitted in an earlier generation: stale
		}
		switch bState(w) {
		case BreakerClosed:
			switch o {
			case outcomeSuccess:
				if bCount(w) == 0 {
					return
				}
				if b.w.CompareAndSwap(w, w&^bCountMask) {
					return
				}
			case outcomeFailure:
				n := bCount(w) + 1
				if n >= b.failures {
					if b.reopen(w, b.now()) {
						b.changed(BreakerClosed, BreakerOpen)
						return
					}
					continue
				}
				if b.w.CompareAndSwap(w, w&^bCountMask|n<<bCountShift) {
					return
				}
			default:
				return
			}
		case BreakerHalfOpen:
			if bProbes(w) == 0 {
				return // cannot happen: every token of this generation holds a probe
			}
			switch o {
			case outcomeSuccess:
				n := bCount(w) + 1
				if n >= b.successes {
					if b.w.CompareAndSwap(w, bNext(w, BreakerClosed)) {
						b.changed(BreakerHalfOpen, BreakerClosed)
						return
					}
					continue
				}
				if b.w.CompareAndSwap(w, (w-bProbeOne)&^bCountMask|n<<bCountShift) {
					return
				}
			case outcomeFailure:
				if b.reopen(w, b.now()) {
					b.changed(BreakerHalfOpen, BreakerOpen)
					return
				}
			default:
				if b.w.CompareAndSwap(w, w-bProbeOne) {
					return
				}
			}
		default:
			return // open: no call of this generation was admitted
		}
	}
}

func (b *breaker) changed(from, to BreakerState) {
	if b.onChange != nil {
		b.onChange(from, to)
	}
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func orDefaultDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}
