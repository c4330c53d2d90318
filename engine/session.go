package engine

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/ring"
)

// session is one established stream to the agent: from a successful
// handshake until the stream dies. A Conn runs one session at a time and
// replaces it after a loss. Everything the agent tells the proxy (health,
// flow control) is per session and starts fresh on reconnect.
//
// Goroutines: exactly one reader (runs transport.readLoop), exactly one
// writer (drains the ring into transport.send), and, when the agent offers
// the agentwire control plane, one control reader. All three exit when the
// session fails; wg tracks them.
type session struct {
	c  *Conn
	t  transport
	ew eventWriter // t, when it encodes events itself (nil otherwise)
	// dw is t when callers may write their events themselves (direct.go;
	// nil otherwise), and wrole the write role that decides who does:
	// 0 free, 1 held (by the writer or by one direct caller).
	dw    directWriter
	wrole atomic.Int32
	// roleWaits counts the writer's turns waiting for the write role
	// (acquireWriteRole); tests read it.
	roleWaits atomic.Uint64
	// grpc is t on a gRPC session (nil otherwise): its direct sends
	// track how far the agent has read (grpc_direct.go).
	grpc *grpcTransport
	out  *ring.Ring[outbound]
	// ctx is cancelled when the session fails.
	ctx    context.Context
	cancel context.CancelFunc

	pending *pendingMap
	// pings holds the Pings waiting for their Pong (made on first use,
	// as is pausedIDs: see lazyMap).
	pings lazyMap[uint64, chan time.Time]

	caps   agentwire.Capabilities
	events uint32 // bit k set: event code k is subscribed

	controlOK atomic.Bool

	done     chan struct{} // closed when the session has failed
	lost     error         // why; written before done is closed
	failOnce sync.Once
	wg       sync.WaitGroup

	health atomic.Pointer[healthReport]

	paused    atomic.Bool // connection-wide PAUSE
	pausedIDs lazyMap[string, struct{}]
	nPaused   atomic.Int32
	// pausedBytes sums the lengths of the ids in pausedIDs (bounded by
	// maxPausedIDBytes).
	pausedBytes atomic.Int64
	capacity    atomic.Int64 // in-flight cap set by UPDATE_CAPACITY; < 0 = none
	// maxInFlight is the agent's announced limits.max_concurrency
	// (math.MaxInt64 when it announced none): admission keeps at most that
	// many requests in flight.
	maxInFlight int64
	// aq holds the callers that admission makes wait (admission.go).
	aq admissionQueue

	// The expirer's timer and tick (sweep.go), set by start; idleSent is
	// the sweep's own: the sent count it saw last.
	sweepT   *time.Timer
	tick     time.Duration
	idleSent uint64
}

// healthReport is the last health report of a session.
type healthReport struct {
	status     agentwire.HealthStatus
	received   time.Time
	validUntil time.Time // zero: no expiry
}

// active reports whether the report still applies at now.
func (r *healthReport) active(now time.Time) bool {
	return r.validUntil.IsZero() || now.Before(r.validUntil)
}

func newSession(c *Conn, t transport, caps agentwire.Capabilities) *session {
	ctx, cancel := context.WithCancel(context.Background())
	ringSize := sessionRingSize(c.opts.ringSize, caps.Limits.MaxConcurrency)
	s := &session{
		c:       c,
		t:       t,
		out:     ring.New[outbound](ringSize),
		ctx:     ctx,
		cancel:  cancel,
		pending: newPendingMap(ringSize),
		caps:    caps,
		events:  subscribedEvents(caps.SupportedEvents),
		done:    make(chan struct{}),

		maxInFlight: maxInFlightOf(caps.Limits.MaxConcurrency),
	}
	s.ew, _ = t.(eventWriter)
	s.grpc, _ = t.(*grpcTransport)
	if dw, ok := t.(directWriter); ok && dw.canDirect() {
		s.dw = dw
	}
	s.capacity.Store(-1)
	s.controlOK.Store(t.hasControl())
	return s
}

// allEventBits subscribes every event kind (1…7).
const allEventBits = 0xfe

// subscribedEvents turns supported_events into a bit set. An agent that
// lists no event at all is treated as subscribing to every kind (it
// announced nothing to go by); unknown codes are ignored.
func subscribedEvents(codes []int32) uint32 {
	var m uint32
	for _, c := range codes {
		if c >= agentwire.EventRequestHeaders && c <= agentwire.EventGuardrailInspect {
			m |= 1 << uint(c)
		}
	}
	if len(codes) == 0 {
		return allEventBits
	}
	return m
}

// start launches the session's goroutines and its sweep timer (sweep.go).
func (s *session) start() {
	s.startSweeper()
	s.wg.Add(2)
	go s.writer()
	go s.reader()
	if s.t.hasControl() {
		s.wg.Add(1)
		go s.controlReader()
	}
	if s.c.opts.livenessInterval > 0 {
		s.wg.Add(1)
		go s.pinger()
	}
}

// expiryTick returns how often the expirer sweeps for requests past the
// default request timeout d: a 32nd of it, at least 1ms, so a timeout
// fires at most about 3% late (never early).
func expiryTick(d time.Duration) time.Duration {
	return max(d/32, time.Millisecond)
}

// The expirer enforces the default request timeout of calls whose context
// has no deadline: every expiryTick (watchTick) a sweep (sweep.go) removes
// the pending requests whose deadline has passed, queues their cancel
// (reason timeout) and completes them with errEngineTimeout, and ends the
// admission waits past theirs. Running one sweep per session replaces a
// timer per request on the hot path. On gRPC it also watches the writer's
// sends (checkSends).

// expire times out every pending request whose deadline is at or before
// now (a monoNow instant).
func (s *session) expire(now int64) {
	// Removed under the map's locks (the decision is the removal), then
	// completed after them.
	expired := s.pending.removeIf(func(p *pending) bool {
		d := p.deadline.Load()
		return d != 0 && d <= now
	})
	for p := expired; p != nil; {
		next := p.next
		p.next = nil
		// An event still waiting for the writer is dropped instead: the
		// agent never sees it, so no cancel either, unless the agent
		// already knows its request (settle; nor for one the
		// writer failed to encode; settle waits out a writer reading it,
		// which does no I/O). p is this sweep's until it is completed,
		// and its caller waits for that: its id is read before.
		if p.settle() {
			s.sendCancel(p.id, agentwire.CancelTimeout)
		}
		p.done <- errEngineTimeout
		p = next
	}
}

// errLiveness is the cause of a session declared lost by the liveness ping.
var errLiveness = errors.New("agentwire: no pong within the liveness timeout")

// pinger sends a liveness Ping every interval and fails the session when a
// Pong does not come back in time (WithLivenessPing).
func (s *session) pinger() {
	defer s.wg.Done()
	t := time.NewTicker(s.c.opts.livenessInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.c.opts.livenessTimeout)
		_, err := s.c.pingOn(ctx, s)
		cancel()
		if errors.Is(err, ErrTimeout) && !s.failed() {
			s.c.log.Warn("agentwire: agent missed a liveness ping")
			s.fail(ErrConnectionLost, errLiveness)
			return
		}
	}
}

// fail ends the session once: every waiter wakes up (they select on done)
// and fails with an error of kind (ErrConnectionLost, or ErrClosed when the
// Conn closes) wrapping cause.
func (s *session) fail(kind, cause error) {
	s.failOnce.Do(func() {
		s.lost = &Error{Kind: kind, Err: cause}
		s.out.Close()
		s.cancel()
		s.t.close()
		close(s.done)
		s.stopSweeper()
		s.closeWaiters()
		// Complete every waiting call here, so that exchange waits on its
		// own channel only (one select case less per request). A call
		// registered after this sweep started sees done closed (exchange
		// checks after registering) and removes itself.
		//
		// Every entry is removed under the map's locks, and completed
		// after them (the list is this sweep's: next is read before the
		// entry is handed to its caller).
		for p := s.pending.removeIf(func(*pending) bool { return true }); p != nil; {
			next := p.next
			p.next = nil
			p.done <- s.lost
			p = next
		}
	})
}

// failed reports whether the session has failed.
func (s *session) failed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// writerYields bounds the yields of the writer before a flush (see writer).
const writerYields = 2

// writerState is what the writer keeps between its rounds (writeRound).
type writerState struct {
	fl      flusher
	sendErr error
	// held: the writer holds the write role (direct.go). Without direct
	// writes it is never contended and stays held.
	held bool
}

// writer drains the outbound ring into the transport. With direct writes
// it waits for the ring here, between rounds, and not inside writeRound,
// whose 64-item batch (3 KiB) lives on its stack: a writer parked with
// only this frame uses little of its stack, so that the collector can
// shrink it (to a fraction of the 8 KiB it held while parked with the
// batch) on an idle connection.
func (s *session) writer() {
	defer s.wg.Done()
	w := writerState{held: s.dw == nil}
	w.fl, _ = s.t.(flusher)
	for s.writeRound(&w) {
		// Wait for the ring without taking items, and take them only
		// with the write role: a direct caller that holds it and finds
		// the ring empty knows that everything queued before has been
		// written (see direct.go).
		if s.out.Wait() != nil {
			return // closed and drained
		}
		s.acquireWriteRole()
		w.held = true
	}
}

// writeRound writes what the ring holds, batch by batch, until it would
// wait: with direct writes it then gives up the write role and returns
// true (writer waits); without, it waits in the ring itself. It returns
// false once the ring is closed and drained.
func (s *session) writeRound(w *writerState) bool {
	batch := make([]outbound, 64)
	fl := w.fl
	for {
		n := 0
		if fl != nil && w.held {
			// Flush only once nothing more is ready (see flusher). While
			// other calls are in flight, yield first (up to writerYields
			// times while nothing arrives): callers woken by replies get
			// to queue their next messages, and the batch goes out in
			// one write (measured over a Unix socket at 64 in flight: one
			// yield ~1.2 → ~8-11 frames per write; a second one 7 of 7
			// serve+bench pairs better, client ~4.7 → ~4.2 CPU-µs per
			// request; a third 4 of 6 pairs better, ~4.3 → ~4.1; nothing
			// changes with one call in flight. Once the agent's decoders
			// got faster, six beat three: ten pairs each, MessagePack
			// 209k → 222k requests/s and 4.4 → 4.2 µs, JSON 147k → 151k
			// and 6.1 → 6.0 µs; ten against six was within noise). With
			// the encoders and decoders of today two beat six again
			// (bench/ab.sh, 64 in flight, 8 pairs MessagePack: client
			// CPU per request 0.915 of six's as the median of pair
			// ratios, agent 0.957, requests/s 1.037; 6 pairs JSON: 0.933,
			// 0.988, 1.025; 1 and 3 were no better than 2): every
			// Gosched also wakes an idle processor (a futex wake-up, and
			// that thread's search for work), and the yields after the
			// last caller has queued find nothing; with two, the proxy
			// makes ~15% fewer futex calls and context switches per
			// request and no more writes.
			if n = s.out.TryDequeueBatch(batch); n == 0 && w.sendErr == nil && s.c.stats.inFlight.Load() > 1 {
				for y := 0; y < writerYields && n == 0; y++ {
					runtime.Gosched()
					n = s.out.TryDequeueBatch(batch)
				}
			}
			if n == 0 && w.sendErr == nil {
				if err := fl.flush(); err != nil {
					w.sendErr = err
					s.fail(ErrConnectionLost, err)
				}
			}
		}
		if n == 0 && s.dw != nil {
			// The writer waits for the ring (see writer), without the
			// write role.
			if w.held {
				w.held = false
				s.wrole.Store(0)
			}
			return true
		}
		if n == 0 {
			var err error
			if n, err = s.out.DequeueBatch(batch); err != nil {
				return false // closed and drained
			}
		}
		for i := 0; i < n; i++ {
			o := batch[i]
			batch[i] = outbound{}
			if o.buf == nil && o.p == nil {
				continue // wakes the writer to flush the rest of a direct write
			}
			if w.sendErr != nil {
				o.free()
				if o.notice != nil {
					o.notice <- s.lost
				}
				continue
			}
			var err error
			if o.ctl {
				if s.controlOK.Load() {
					err = s.t.sendControl(o.buf)
					if err != nil {
						// The control plane is an extension: losing it
						// does not end the session.
						s.controlOK.Store(false)
						s.c.log.Debug("agentwire: control stream send failed", "err", err)
					}
				} else {
					o.buf.Free()
					err = errNoControl
				}
			} else if p := o.p; p != nil && o.buf != nil {
				// An event the caller encoded, on a gRPC session: its
				// end in the stream is marked before the send (the reply
				// may come before the send returns), unless its caller
				// already left. eventDone is the writer's last touch of
				// p (see pending).
				if p.claimEvent() {
					s.markSentAt(p, s.grpc.queued+uint64(o.buf.Len())+grpcPrefixLen)
					p.eventDone(true)
					err = s.sendOut(w, o)
				} else {
					o.buf.Free()
				}
			} else if p != nil {
				// An event encoded here, unless its caller already
				// left. eventDone is the writer's last touch of p
				// (see pending).
				if p.claimEvent() {
					if encErr := s.ew.appendRequestHeadersEvent(o.rh); encErr != nil {
						s.failEvent(p, encErr)
					} else {
						s.markSent(p)
						p.eventDone(true)
						// Counted once in the batch, as send
						// counts what it collects (the write may
						// answer before batchFull returns).
						s.c.stats.sent.Add(1)
						err = s.ew.batchFull()
					}
				}
				if err != nil {
					w.sendErr = err
					s.fail(ErrConnectionLost, err)
				}
			} else {
				err = s.sendOut(w, o)
			}
			if o.notice != nil {
				if err != nil && !o.ctl {
					err = s.lost
				}
				o.notice <- err
			}
		}
	}
}

// sendOut hands o, encoded already, to the transport and counts it; a
// failed send ends the session and is kept in w.sendErr.
func (s *session) sendOut(w *writerState, o outbound) error {
	err := s.t.send(o)
	if err != nil {
		w.sendErr = err
		s.fail(ErrConnectionLost, err)
	} else {
		s.c.stats.sent.Add(1)
	}
	return err
}

func (s *session) reader() {
	defer s.wg.Done()
	err := s.t.readLoop(s)
	s.fail(ErrConnectionLost, err)
}

func (s *session) controlReader() {
	defer s.wg.Done()
	err := s.t.readControlLoop(s)
	s.controlOK.Store(false)
	if !s.failed() {
		s.c.log.Debug("agentwire: control stream ended", "err", err)
	}
}

// enqueue queues o, blocking while the ring is full until ctx ends. On
// failure o's storage is freed and an error of this package returned.
func (s *session) enqueue(ctx context.Context, o outbound) error {
	err := s.out.Enqueue(ctx, o)
	if err == nil {
		return nil
	}
	o.free()
	if err == ring.ErrClosed {
		<-s.done // the ring is only closed by fail
		return s.lost
	}
	return ctxError(ctx)
}

// failEvent ends the writer's claim on p (claimEvent) for an event that
// failed to encode with err, and fails the call with err unless someone
// else removed it first. p is removed before eventDone, after which its
// caller may recycle it; the send on done needs no such care: a caller
// whose entry the writer removed waits for it.
func (s *session) failEvent(p *pending, err error) {
	removed := s.remove(p)
	p.eventDone(false)
	if removed {
		p.done <- err
	}
}

// remove deletes p from the pending map if it is still registered there.
// It reports whether this call removed it (and so owns its completion).
func (s *session) remove(p *pending) bool {
	return s.pending.remove(p)
}

// claim removes and returns the request waiting under cid (nil when none).
// cid may be a view of a receive buffer: it is not retained.
func (s *session) claim(cid string) *pending {
	p := s.pending.loadAndDelete(cid)
	if p == nil {
		s.c.stats.orphans.Add(1)
	}
	return p
}

// complete hands the outcome to a claimed request. The caller must not
// touch p afterwards.
func (s *session) complete(p *pending, err error) {
	if err == nil {
		s.c.stats.received.Add(1)
	} else {
		s.c.stats.protocolErrors.Add(1)
	}
	p.done <- err
}

// protocolError records an inbound message that could not be used.
func (s *session) protocolError(detail string, err error) {
	s.c.stats.protocolErrors.Add(1)
	s.c.log.Debug("agentwire: protocol error", "detail", detail, "err", err)
}

// onPong completes the Ping waiting for p.Sequence.
func (s *session) onPong(p agentwire.Pong) {
	s.c.stats.pongs.Add(1)
	if ch, ok := s.pings.loadAndDelete(p.Sequence); ok {
		ch <- time.Now()
		return
	}
	s.c.log.Debug("agentwire: pong without ping", "sequence", p.Sequence)
}

// onHealth applies an agent health report.
func (s *session) onHealth(h agentwire.HealthStatus) {
	r := &healthReport{status: h, received: time.Now()}
	if v, ok := h.ValidUntilMS.Get(); ok {
		r.validUntil = time.UnixMilli(int64(v))
	}
	s.health.Store(r)
	s.flowChanged() // a waiting caller may now be refused or admitted
	// Counted once applied: a report that Stats shows is in force.
	s.c.stats.healthReports.Add(1)
	if s.c.opts.onHealth != nil {
		s.c.dispatch(callback{kind: cbHealth, health: &r.status})
	}
}

// healthGate returns the error for a new request under the current health
// report, or nil.
func (s *session) healthGate() error {
	r := s.health.Load()
	if r == nil {
		return nil
	}
	switch r.status.State {
	case agentwire.HealthDraining, agentwire.HealthUnhealthy:
	default:
		return nil
	}
	if !r.active(time.Now()) {
		return nil
	}
	if r.status.State == agentwire.HealthDraining {
		return errAgentDraining
	}
	return errAgentUnhealthy
}

var errAgentUnhealthy = &Error{Kind: ErrAgentUnhealthy}

// timeoutMultiplier returns the DEGRADED timeout multiplier in force (1
// when none, and when the agent's value is not a number above 1: NaN
// included).
func (s *session) timeoutMultiplier() float64 {
	r := s.health.Load()
	if r == nil || r.status.State != agentwire.HealthDegraded || !(r.status.TimeoutMultiplier > 1) {
		return 1
	}
	if !r.active(time.Now()) {
		return 1
	}
	return float64(r.status.TimeoutMultiplier)
}

// maxStretchedTimeout is the longest timeout a DEGRADED multiplier may
// ever produce, whatever WithMaxStretchedTimeout says (some 146 years, far
// enough from the int64 range that adding it to a monoNow instant cannot
// overflow).
const maxStretchedTimeout = time.Duration(1 << 62)

// stretch returns the request timeout d stretched by the DEGRADED
// multiplier in force (none once the report's valid_until has passed),
// clamped to the stretch ceiling (WithMaxStretchedTimeout) and never
// shorter than d. The agent chooses the multiplier (any float32, +Inf
// included), so the product saturates instead of overflowing the
// conversion to a Duration. A call keeps the deadline computed when it
// started even if the report expires meanwhile.
func (s *session) stretch(d time.Duration) time.Duration {
	m := s.timeoutMultiplier()
	if m == 1 {
		return d
	}
	ceil := s.c.opts.stretchCeiling(d)
	if f := float64(d) * m; f < float64(ceil) {
		return time.Duration(f)
	}
	return ceil
}

// onFlow applies an agent flow-control signal.
func (s *session) onFlow(f agentwire.FlowControlSignal) {
	// Counted once applied (or refused): a signal that Stats shows is in
	// force for the next call.
	defer s.c.stats.flowSignals.Add(1)
	if cid, ok := f.CorrelationID.Get(); ok {
		switch f.Action {
		case agentwire.FlowPause:
			// Bounded: an agent must not grow the proxy's memory with
			// pauses for ids that never end. Entries leave on RESUME, on
			// the request's RequestComplete or Cancel, or with the
			// session. Past the bound a per-request pause is refused
			// (counted as a protocol error); it is not widened into a
			// connection pause, which a per-request RESUME would never
			// lift.
			// The ids are bounded in bytes too: each may be as long as
			// the receive limit allows.
			if s.nPaused.Load() >= maxPausedIDs || s.pausedBytes.Load()+int64(len(cid)) > maxPausedIDBytes {
				if _, ok := s.pausedIDs.load(cid); !ok {
					s.protocolError("per-request pause refused: too many paused requests", nil)
					return
				}
			}
			if _, loaded := s.pausedIDs.get().LoadOrStore(cid, struct{}{}); !loaded {
				s.nPaused.Add(1)
				s.pausedBytes.Add(int64(len(cid)))
			}
		case agentwire.FlowResume:
			if _, loaded := s.pausedIDs.loadAndDelete(cid); loaded {
				s.nPaused.Add(-1)
				s.pausedBytes.Add(-int64(len(cid)))
			}
		default:
			s.protocolError("flow-control action not applicable to one request", nil)
		}
		s.flowChanged()
		return
	}
	switch f.Action {
	case agentwire.FlowPause:
		s.paused.Store(true)
	case agentwire.FlowResume:
		s.paused.Store(false)
	case agentwire.FlowUpdateCapacity:
		if v, ok := f.BufferAvailable.Get(); ok {
			if v > 1<<62 {
				v = 1 << 62
			}
			s.capacity.Store(int64(v))
		} else {
			s.capacity.Store(-1)
		}
	default:
		s.protocolError("unknown flow-control action", nil)
	}
	s.flowChanged()
}

// maxPausedIDs bounds the requests an agent may pause one by one on a
// connection (see onFlow).
const maxPausedIDs = 8192

// maxPausedIDBytes bounds the total length of those requests' correlation
// ids (see onFlow): 256 bytes each on average at the count bound.
const maxPausedIDBytes = 2 << 20

// forgetPause drops a per-request pause of cid: the request is over.
func (s *session) forgetPause(cid string) {
	if s.nPaused.Load() == 0 {
		return
	}
	if _, loaded := s.pausedIDs.loadAndDelete(cid); loaded {
		s.nPaused.Add(-1)
		s.pausedBytes.Add(-int64(len(cid)))
		s.flowChanged()
	}
}

// flowBlocked returns the flow-control error for cid, or nil.
func (s *session) flowBlocked(cid string) error {
	if s.paused.Load() {
		return errPaused
	}
	if s.nPaused.Load() > 0 {
		if _, ok := s.pausedIDs.load(cid); ok {
			return errPausedCID
		}
	}
	return nil
}

var (
	errPaused    = &Error{Kind: ErrFlowPaused, Detail: "agent paused the connection"}
	errNoControl = &Error{Kind: ErrNotConnected, Detail: "agent offers no control stream"}
)

// sendCancel queues a cancel notice for cid without blocking; a full queue
// drops it (counted).
func (s *session) sendCancel(cid string, reason agentwire.CancelReason) {
	buf, err := s.t.cancel(cid, reason, nowMS())
	if err != nil {
		return
	}
	if s.out.TryEnqueue(outbound{buf: buf}) != nil {
		buf.Free()
		s.c.stats.cancelsDropped.Add(1)
		return
	}
	s.c.stats.cancelsSent.Add(1)
}

// sendControl queues an encoded control-plane message and waits until the
// writer handed it to the transport (or ctx ends).
func (s *session) sendControl(ctx context.Context, buf mem.Buffer) error {
	notice := make(chan error, 1)
	if err := s.enqueue(ctx, outbound{buf: buf, ctl: true, notice: notice}); err != nil {
		return err
	}
	select {
	case err := <-notice:
		return err
	case <-ctx.Done():
		return ctxError(ctx)
	}
}

func nowMS() uint64 { return uint64(time.Now().UnixMilli()) }
