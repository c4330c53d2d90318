package engine

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/ring"
)

// Conn is one multiplexed connection from a proxy to one agent. It is safe
// for concurrent use by any number of goroutines; create it with NewConn
// (connects in the background) or Dial (connects before it returns) and
// release it with Close.
//
// See the package documentation for the concurrency design, the deadline
// and cancellation rules, and buffer ownership.
type Conn struct {
	opts  options
	log   *slog.Logger
	d     dialer
	stats counters
	// policy counts the synthetic verdicts of Decide (verdict.go).
	policy policyCounters

	state  atomic.Int32  // stateOpen, stateDraining, stateClosed
	cstate atomic.Uint32 // ConnState (state.go)
	sess   atomic.Pointer[session]
	caps   atomic.Pointer[agentwire.Capabilities]

	mu     sync.Mutex
	sessCh chan struct{} // closed and replaced when sess changes

	// config is the configuration sent after every handshake (latest of
	// WithAgentConfig and Configure); nil when none.
	config atomic.Pointer[agentwire.ConfigureEvent]

	pingSeq atomic.Uint64

	// cbq is the callback queue (a pointer per slot), made by the first
	// report queued: most Conns never get one, and its WithCallbackQueueSize
	// slots (2 KiB by default) would be held for nothing.
	cbq      atomic.Pointer[chan *callback]
	cbBytes  atomic.Int64 // wire bytes of the reports in cbq (see maxCallbackBytes)
	drainSig chan struct{}

	baseCtx    context.Context // cancelled by Close: bounds reconnect attempts
	baseCancel context.CancelFunc
	closing    chan struct{}
	stopOnce   sync.Once      // first half of Close: mark closed, wake everyone
	closeOnce  sync.Once      // second half: wait for the goroutines, release
	dialerOnce sync.Once      // closes d (by release, or the supervisor of a one-shot Conn)
	wg         sync.WaitGroup // supervisor
	// The dispatcher, started on demand (dispatch.go): dispRunning is
	// set while one runs, dispWG counts it.
	dispRunning atomic.Bool
	dispWG      sync.WaitGroup
	// cbRunning is set while the dispatcher runs a user callback: Close
	// then does not wait for it (the callback may be the one calling).
	cbRunning atomic.Bool

	// Connection-state transitions waiting for WithOnStateChange
	// (state.go): stateQ under stateMu; queuing one starts the
	// dispatcher.
	stateMu sync.Mutex
	stateQ  []stateChange

	// lastErr is the outcome of the last failed connection attempt (nil
	// once one succeeded), reported by WaitConnected.
	lastErr atomic.Pointer[connectFailure]

	// Generated correlation ids (cid.go).
	cidPrefix string
	cidSeq    atomic.Uint64
}

// connectFailure boxes the error of a failed connection attempt.
type connectFailure struct{ err error }

const (
	stateOpen int32 = iota
	stateDraining
	stateClosed
)

var (
	errClosed       = &Error{Kind: ErrClosed}
	errDraining     = &Error{Kind: ErrDraining, Detail: "Drain was called"}
	errNotConnected = &Error{Kind: ErrNotConnected, Detail: "reconnecting"}
	errNotConnYet   = &Error{Kind: ErrNotConnected, Detail: "not connected yet"}
	errDuplicate    = &Error{Kind: ErrDuplicateCorrelationID}
	errNotSubscr    = &Error{Kind: ErrNotSubscribed}
)

// dialer opens sessions to one agent endpoint.
type dialer interface {
	// open connects (or reuses the underlying connection), opens the event
	// stream and performs the handshake. ctx bounds the whole operation.
	open(ctx context.Context, hs *agentwire.HandshakeRequest) (transport, agentwire.Capabilities, error)
	// close releases the underlying connection.
	close() error
}

// oneShotDialer marks dialers whose only session is the one they were
// created with (reverse connections): the Conn closes itself when it ends.
type oneShotDialer interface {
	dialer
	oneShot()
}

// NewConn returns a Conn for the agent at endpoint without waiting for it:
// the endpoint and the options are validated at once (an invalid one, or an
// option that does not apply to the endpoint's transport, is an
// ErrInvalidConfig error and nothing is started), and the Conn then
// connects in the background, retrying with the reconnect backoff
// (WithReconnectBackoff; every attempt bounded by WithConnectTimeout and
// WithHandshakeTimeout) for as long as it is open. A proxy can so be
// started before its agents. Until the first connection succeeds the Conn
// is in StateConnecting and calls behave as during a reconnection: they
// fail at once with ErrNotConnected, or wait for the connection within
// their context with WithFailFastWhileReconnecting(false). WaitConnected
// waits for the connection (and reports the last attempt's error when it
// gives up); State and WithOnStateChange observe it. Once connected, the
// Conn behaves exactly like one returned by Dial.
//
// Endpoints are those of Dial. Close releases the Conn whether or not it
// ever connected.
func NewConn(endpoint string, opts ...Option) (*Conn, error) {
	d, o, err := prepare(endpoint, opts)
	if err != nil {
		return nil, err
	}
	c := newConnObj(d, o)
	c.wg.Add(1)
	go c.supervise()
	return c, nil
}

// Dial connects to the agent at endpoint, performs the handshake and
// returns the ready Conn, or fails: unlike NewConn, an agent that is not up
// yet is an error (ErrConnectFailed, or ErrHandshakeRejected when it
// answered but refused), and nothing is retried. ctx bounds this first
// connection only; later reconnections are bounded by WithConnectTimeout
// and WithHandshakeTimeout and never give up while the Conn is open.
// Invalid options and endpoints fail at once with ErrInvalidConfig, as in
// NewConn.
//
// Endpoints: "grpc://host:port", "http://host:port" or "host:port" (gRPC
// over TCP; plaintext needs WithInsecure, or pass WithTLS), "grpcs://" or
// "https://host:port" (TLS), "grpc+unix:///path" (gRPC over a Unix socket;
// TLS only with WithTLS). "unix:///path", "unix:/path", "/path" and
// relative "*.sock" paths select the binary Unix-socket protocol (SPEC 6;
// see WithEncodings and the package documentation).
func Dial(ctx context.Context, endpoint string, opts ...Option) (*Conn, error) {
	d, o, err := prepare(endpoint, opts)
	if err != nil {
		return nil, err
	}
	return newConn(ctx, d, o)
}

// prepare applies and validates opts, parses endpoint, checks that every
// option applies to its transport and builds the dialer (which does not
// connect). Every error is of kind ErrInvalidConfig.
func prepare(endpoint string, opts []Option) (dialer, options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if err := o.validate(); err != nil {
		return nil, o, err
	}
	ep, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, o, err
	}
	kind := transportGRPC
	if ep.udsPath != "" {
		kind = transportUDS
	}
	if err := o.checkTransport(kind); err != nil {
		return nil, o, err
	}
	o.endpoint = endpoint
	var d dialer
	if kind == transportUDS {
		d, err = newUDSDialer(ep, &o)
	} else {
		d, err = newGRPCDialer(ep, &o)
	}
	if err != nil {
		return nil, o, err
	}
	return d, o, nil
}

// newConnObj returns a Conn on d in StateConnecting, with no session and no
// goroutine.
func newConnObj(d dialer, o options) *Conn {
	c := &Conn{
		opts:      o,
		log:       connLogger(o.logger, o.endpoint),
		d:         d,
		sessCh:    make(chan struct{}),
		drainSig:  make(chan struct{}, 1),
		closing:   make(chan struct{}),
		cidPrefix: newCIDPrefix(),
	}
	c.baseCtx, c.baseCancel = context.WithCancel(context.Background())
	if len(o.agentConfig) > 0 {
		c.config.Store(&agentwire.ConfigureEvent{Config: o.agentConfig})
	}
	return c
}

// newConn runs the first connection and starts the Conn's goroutines.
func newConn(ctx context.Context, d dialer, o options) (*Conn, error) {
	c := newConnObj(d, o)
	// ctx bounds this first connection only: it must not end the Conn's
	// base context, which bounds every later reconnection (ctx may end
	// after the dialer succeeded, before stop).
	cctx, ccancel := context.WithCancel(c.baseCtx)
	stop := context.AfterFunc(ctx, ccancel)
	s, err := c.connect(cctx)
	stop()
	ccancel()
	if err != nil {
		c.baseCancel()
		_ = d.close()
		if ctx.Err() != nil && !errors.Is(err, ErrHandshakeRejected) {
			return nil, &Error{Kind: ErrConnectFailed, Err: ctx.Err()}
		}
		return nil, err
	}
	c.publish(s)
	c.setState(StateConnected)
	c.wg.Add(1)
	c.watch(s)
	return c, nil
}

// connect opens a session and starts it (not yet published).
func (c *Conn) connect(ctx context.Context) (*session, error) {
	hs := agentwire.HandshakeRequest{
		SupportedVersions: []uint32{agentwire.ProtocolVersion},
		ProxyID:           c.opts.proxyID,
		ProxyVersion:      c.opts.proxyVersion,
	}
	cfg := c.config.Load()
	if cfg != nil {
		hs.Config = cfg.Config
	}
	c.log.Debug("agentwire: dialing agent")
	t, caps, err := c.d.open(ctx, &hs)
	if err != nil {
		return nil, err
	}
	c.log.Debug("agentwire: handshake accepted", "agent_id", caps.AgentID, "agent_version", caps.Version,
		"encoding", transportEncoding(t), "max_concurrency", caps.Limits.MaxConcurrency)
	c.caps.Store(&caps)
	s := newSession(c, t, caps)
	if cfg != nil {
		// The configuration goes out before any event of this session.
		buf, err := t.configure(cfg, true, nowMS())
		if err == nil {
			if s.out.TryEnqueue(outbound{buf: buf}) != nil {
				buf.Free()
			}
		} else {
			c.log.Warn("agentwire: agent configuration not sent", "err", err)
		}
	}
	s.start()
	return s, nil
}

// publish makes s the current session and wakes callers waiting for one.
func (c *Conn) publish(s *session) {
	c.sess.Store(s)
	c.notifySession()
}

func (c *Conn) notifySession() {
	c.mu.Lock()
	close(c.sessCh)
	c.sessCh = make(chan struct{})
	c.mu.Unlock()
}

func (c *Conn) sessionChanged() <-chan struct{} {
	c.mu.Lock()
	ch := c.sessCh
	c.mu.Unlock()
	return ch
}

// Supervision: the sessions are owned by the Conn's supervisor. When one
// fails it is replaced, with capped, jittered exponential backoff between
// attempts, for as long as the Conn is open; on Close the current session
// is ended and its goroutines waited for. The supervisor holds a goroutine
// only while it has work: making NewConn's first connection, and from a
// session's failure until the next one is up. While a session runs it is
// a context.AfterFunc on the session's context (cancelled by fail), not a
// parked goroutine: an idle connection used to hold one all its life, with
// a stack of 4-8 KiB. c.wg holds one count for the supervisor from its
// start until it is done for good (Close, or a reverse Conn's end), across
// those hand-overs.

// supervise is the supervisor's goroutine for NewConn: it makes the first
// connection (its first attempt at once) and hands the session to watch.
// The caller added the supervisor's count to c.wg.
func (c *Conn) supervise() {
	s := c.reconnect(newStoppedTimer(), true, nil)
	if s == nil {
		c.wg.Done() // closed
		return
	}
	c.watch(s)
}

// newStoppedTimer returns a timer that is not running (reconnect's backoff
// timer).
func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// watch hands the running session s to the supervisor: sessionEnded runs
// once s fails. stop fails the published session when Close starts; a
// session published as Close starts is failed here, so that either finds
// the other (both may: fail runs once).
func (c *Conn) watch(s *session) {
	context.AfterFunc(s.ctx, func() { c.sessionEnded(s) })
	if c.isClosing() {
		s.fail(ErrClosed, nil)
	}
}

// sessionEnded is the supervisor, on a goroutine of its own, once session
// s failed: on Close it waits for s's goroutines and is done; otherwise it
// publishes StateReconnecting, waits for s's goroutines and reconnects (a
// reverse Conn closes itself instead: the agent dials again and gets a
// new Conn).
func (c *Conn) sessionEnded(s *session) {
	if c.isClosing() {
		s.wg.Wait()
		c.wg.Done()
		return
	}
	c.sess.CompareAndSwap(s, nil)
	c.notifySession()
	_, oneShot := c.d.(oneShotDialer)
	if !oneShot {
		c.setState(StateReconnecting)
	}
	s.wg.Wait()
	c.log.Warn("agentwire: connection to agent lost", "err", s.lost)
	if oneShot {
		// The supervisor closes the Conn itself, on its own goroutine (a
		// Close meanwhile waits for it): it must not leave a goroutine of
		// its own behind.
		c.stop()
		c.dispWG.Wait()
		c.closeDialer()
		c.wg.Done()
		return
	}
	ns := c.reconnect(newStoppedTimer(), false, s.lost)
	if ns == nil {
		c.wg.Done() // closed
		return
	}
	c.watch(ns)
}

// reconnect connects until a session is up, waiting c.backoff between
// attempts (first: the first connection of NewConn, whose first attempt
// does not wait), publishes it and returns it; nil when the Conn closed
// meanwhile. cause is why the last session ended (nil for the first
// connection).
func (c *Conn) reconnect(timer *time.Timer, first bool, cause error) *session {
	for attempt := 0; ; attempt++ {
		if !first || attempt > 0 {
			n := attempt
			if first {
				n-- // the attempt at once did not count
			}
			d := c.backoff(n)
			c.log.Debug("agentwire: reconnecting", "attempt", attempt+1, "backoff", d, "reason", errText(cause))
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-c.closing:
				timer.Stop()
				return nil
			}
		}
		ns, err := c.connect(c.baseCtx)
		if err != nil {
			cause = err
			c.lastErr.Store(&connectFailure{err})
			c.stats.reconnectFails.Add(1)
			if attempt == 0 {
				c.log.Warn("agentwire: connecting to agent failed; retrying", "err", err)
			} else {
				c.log.Debug("agentwire: connection attempt failed", "attempt", attempt+1, "err", err)
			}
			continue
		}
		if c.state.Load() == stateClosed {
			ns.fail(ErrClosed, nil)
			ns.wg.Wait()
			return nil
		}
		c.lastErr.Store(nil)
		c.publish(ns)
		c.setState(StateConnected)
		if first {
			c.log.Info("agentwire: connected to agent", "attempts", attempt+1)
		} else {
			c.stats.reconnects.Add(1)
			c.log.Info("agentwire: reconnected to agent", "attempts", attempt+1)
		}
		return ns
	}
}

// backoff returns the wait before reconnect attempt n (0-based): a random
// duration in [base/2, min(max, base·2^n)].
func (c *Conn) backoff(n int) time.Duration {
	d := c.opts.backoffMax
	if n < 30 {
		if e := c.opts.backoffBase << uint(n); e > 0 && e < d {
			d = e
		}
	}
	half := c.opts.backoffBase / 2
	if d <= half {
		return d
	}
	return half + rand.N(d-half+1)
}

// Close ends the connection: pending calls fail with ErrClosed, later calls
// fail with ErrClosed, the state becomes StateClosed, the
// WithOnStateChange callback has been called with it and every goroutine
// of the Conn has exited when Close returns. It is idempotent and always
// returns nil. It also stops NewConn's background connection attempts.
//
// The one exception is a user callback (WithOnHealth, WithOnMetrics,
// WithOnStateChange, ...) running when Close is called: Close may be
// called from it, so it does not wait for it. The Conn is closed for every
// caller at once; the StateClosed callback is made, the goroutines exit
// and the connection is released in the background as soon as that
// callback returns.
func (c *Conn) Close() error {
	c.stop()
	if c.cbRunning.Load() {
		go c.release()
		return nil
	}
	c.release()
	return nil
}

// stop is the first half of Close: the Conn is closed for every caller
// and every goroutine told to exit, once.
func (c *Conn) stop() {
	c.stopOnce.Do(func() {
		c.log.Debug("agentwire: closing connection")
		c.state.Store(stateClosed)
		c.setState(StateClosed) // queued before closing: the dispatcher delivers it
		close(c.closing)
		c.baseCancel()
		// The supervisor waits for the session's end (watch); a session
		// being made now is failed by reconnect or watch.
		if s := c.sess.Load(); s != nil {
			s.fail(ErrClosed, nil)
		}
		c.notifySession()
	})
}

// release is the second half of Close: it waits for the Conn's goroutines
// and closes the dialer, once.
func (c *Conn) release() {
	c.closeOnce.Do(func() {
		c.wg.Wait()
		c.dispWG.Wait()
		c.closeDialer()
	})
}

// closeDialer closes the dialer once.
func (c *Conn) closeDialer() {
	c.dialerOnce.Do(func() { _ = c.d.close() })
}

// current returns the session to use, waiting for one when the Conn is
// reconnecting and fail-fast is off.
func (c *Conn) current(ctx context.Context) (*session, error) {
	for {
		switch c.state.Load() {
		case stateClosed:
			return nil, errClosed
		}
		ch := c.sessionChanged()
		if s := c.sess.Load(); s != nil && !s.failed() {
			return s, nil
		}
		if c.opts.failFast {
			return nil, c.notConnected()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctxError(ctx)
		case <-c.closing:
			return nil, errClosed
		}
	}
}

// notConnected returns the fail-fast error of a Conn without a session.
func (c *Conn) notConnected() error {
	if c.State() == StateConnecting {
		return errNotConnYet
	}
	return errNotConnected
}

// WaitConnected returns nil once the Conn has a session (at once when it
// has one now), or an error when ctx ends first (kind ErrTimeout or
// ErrCanceled, satisfying errors.Is with ctx's error too; its detail names
// the last failed connection attempt, if any) or when the Conn is closed
// (ErrClosed; a reverse Conn closes itself when its socket dies). It does
// not depend on WithFailFastWhileReconnecting. Safe for concurrent use.
func (c *Conn) WaitConnected(ctx context.Context) error {
	for {
		if c.state.Load() == stateClosed {
			return fresh(errClosed)
		}
		ch := c.sessionChanged()
		if s := c.sess.Load(); s != nil && !s.failed() {
			return nil
		}
		select {
		case <-ch:
		case <-c.closing:
		case <-ctx.Done():
			if c.state.Load() == stateClosed {
				return fresh(errClosed)
			}
			e := fresh(ctxError(ctx)).(*Error)
			e.Detail = "not connected"
			if f := c.lastErr.Load(); f != nil {
				e.Detail += " (last attempt: " + f.err.Error() + ")"
			}
			return e
		}
	}
}

// ensureDeadline gives ctx the request timeout when it has none and the
// call is about to wait outside the reply wait (cold path: allocates).
func (c *Conn) ensureDeadline(ctx context.Context, s *session) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, nil
	}
	d := c.opts.requestTimeout
	if s != nil {
		d = s.stretch(d)
	}
	return context.WithTimeout(ctx, d)
}

// admit checks that a new request for cid of event kind may go out now
// and counts it in flight. On success the caller must call c.leave(s). The
// returned context replaces ctx (it gained a deadline when admit had to
// wait); cancel, when non-nil, must be called when the call ends.
//
// Fast path (nobody waiting, limits not reached): one atomic add on the
// in-flight count. Otherwise the call fails fast or waits in the session's
// admission queue (admission.go), by its kind of hold: the agent's
// max_concurrency (WithSaturation), its UPDATE_CAPACITY cap or a pause
// (WithFlowControl).
//
// With nowait, admit returns errWouldBlock (nothing counted, nothing held)
// where it would otherwise wait: for a session, or for a slot or a resume
// in the admission queue.
func (c *Conn) admit(ctx context.Context, cid string, kind int32, nowait bool) (context.Context, context.CancelFunc, *session, int64, error) {
	if cid == "" {
		return ctx, nil, nil, 0, c.invalid(errNoCID)
	}
	if !utf8.ValidString(cid) {
		return ctx, nil, nil, 0, c.invalid(errBadCID)
	}
	var cancel context.CancelFunc
	// dl is the call's one deadline once it had to wait and its context
	// has none: the default request timeout from the first wait (a
	// monoNow instant; 0 until then).
	var dl int64
	// held is the session whose slot a waiter was handed (counted in
	// flight for this call): it is used, or given back with leave.
	var held *session
	drop := func() {
		if held != nil {
			c.leave(held)
			held = nil
		}
	}
	fail := func(err error) (context.Context, context.CancelFunc, *session, int64, error) {
		drop()
		if cancel != nil {
			cancel()
		}
		if err != errWouldBlock {
			c.countErr(err) // a deadline or cancellation while held counts as such
		}
		return ctx, nil, nil, 0, err
	}
	satWaited := false
	for {
		switch c.state.Load() {
		case stateClosed:
			return fail(errClosed)
		case stateDraining:
			return fail(errDraining)
		}
		s := c.sess.Load()
		if s == nil || s.failed() {
			drop()
			if c.opts.failFast {
				return fail(c.notConnected())
			}
			if nowait {
				return fail(errWouldBlock)
			}
			if cancel == nil {
				ctx, cancel = c.deadlineFrom(ctx, dl)
			}
			if _, err := c.current(ctx); err != nil {
				return fail(err)
			}
			continue // re-check the state: Drain or Close may have begun meanwhile
		}
		if held != nil && held != s {
			drop()
		}
		if kind != 0 && s.events&(1<<uint(kind)) == 0 {
			return fail(errNotSubscr)
		}
		if err := s.healthGate(); err != nil {
			return fail(err)
		}
		err := s.flowBlocked(cid)
		if err == nil {
			if held != nil {
				return ctx, cancel, s, dl, nil // the slot handed over while waiting
			}
			if s.aq.nslots.Load() == 0 { // nobody to overtake
				n := c.stats.inFlight.Add(1)
				if n <= s.maxInFlight {
					if capa := s.capacity.Load(); capa < 0 || n <= capa {
						return ctx, cancel, s, dl, nil
					}
				}
				c.leave(s)
			}
			err = s.limitError()
		} else {
			drop() // paused meanwhile: the slot goes to the next waiter
		}
		mode := c.opts.flow
		if err == errSaturated {
			mode = c.opts.saturation
		}
		if mode == FlowFailFast {
			if err == errSaturated {
				c.stats.satRejected.Add(1)
			} else {
				c.stats.flowRejected.Add(1)
			}
			return fail(err)
		}
		if nowait {
			return fail(errWouldBlock)
		}
		if err == errSaturated && !satWaited {
			satWaited = true
			c.stats.satWaits.Add(1)
		}
		// Wait (within the call's one deadline) for a slot, or for the
		// next flow-control or health change. Without a context deadline
		// the session's expirer ends the wait: no timer per wait.
		if dl == 0 && cancel == nil {
			if _, ok := ctx.Deadline(); !ok {
				dl = monoNow() + int64(s.stretch(c.opts.requestTimeout))
			}
		}
		slot := err == errSaturated || err == errCapacity
		granted, ended := s.await(ctx, slot, cid, dl)
		if granted {
			held = s
		}
		if ended != nil {
			if err == errSaturated {
				c.stats.satRejected.Add(1)
			} else {
				c.stats.flowRejected.Add(1)
			}
			return fail(waitError(ended, err))
		}
	}
}

// leave ends a request admitted by admit: its slot goes to the first
// caller waiting for one, if any.
func (c *Conn) leave(s *session) {
	n := c.stats.inFlight.Add(-1)
	if s.aq.nslots.Load() > 0 {
		s.grant()
	}
	// The in-flight count is the Conn's, limits are per session: a call
	// that ends on a session already replaced frees room on the current
	// one too, whose waiters would otherwise miss it.
	if cur := c.sess.Load(); cur != s && cur != nil && cur.aq.nslots.Load() > 0 {
		cur.grant()
	}
	c.drained(n)
}

// exchange registers p (from getPending, for cid; the caller's reference
// passes here), queues o (ownership passes here too) and waits for the
// outcome, which p.dst receives.
//
// dl is the call's default-timeout deadline when admission already set it
// (a monoNow instant; 0: not yet). It only applies when ctx has no
// deadline.
func (c *Conn) exchange(ctx context.Context, s *session, cid string, p *pending, o outbound, dl int64) error {
	ctx, cancel, err := c.send(ctx, s, cid, p, o, dl)
	if err != nil {
		return err
	}
	err = c.await(ctx, s, cid, p)
	if cancel != nil {
		cancel()
	}
	return err
}

// send is the first half of exchange: it registers p and writes or queues
// o. On error the call is over (p is released and the error counted);
// otherwise the caller must await p with the returned context and then
// call cancel when it is not nil (the context of a wait for room in a full
// queue).
func (c *Conn) send(ctx context.Context, s *session, cid string, p *pending, o outbound, dl int64) (context.Context, context.CancelFunc, error) {
	if _, ok := ctx.Deadline(); !ok {
		// The default request timeout, enforced by the session's expirer.
		if dl == 0 {
			dl = monoNow() + int64(s.stretch(c.opts.requestTimeout))
		}
		p.deadline.Store(dl)
	}
	if !s.pending.store(p) {
		o.free()
		putPending(p)
		c.stats.duplicates.Add(1)
		c.stats.errors.Add(1)
		return ctx, nil, errDuplicate
	}
	if s.failed() {
		// The session failed before or while p was registered: fail's
		// sweep may have missed it (see session.fail).
		o.free()
		err := s.lost
		if !s.remove(p) {
			err = <-p.done
		}
		putPending(p)
		c.countErr(err)
		return ctx, nil, err
	}
	var cancel context.CancelFunc
	if o.rh != nil && s.tryDirect(o) {
		// Written by this caller (direct.go): o is taken.
	} else if err := s.out.TryEnqueue(o); err != nil {
		// Slow path: the queue is full (or closed). The wait for room is
		// part of the call, so it runs under the call's one deadline.
		if err == ring.ErrFull {
			if d := p.deadline.Load(); d != 0 {
				ctx, cancel = context.WithTimeout(ctx, time.Duration(d-monoNow()))
				// The context's new deadline is the call's one
				// deadline: the expirer must not time p out (and
				// send its cancel) before the event is even queued.
				p.deadline.Store(0)
			}
		}
		if err := s.enqueue(ctx, o); err != nil {
			if !s.remove(p) {
				err = <-p.done // completed concurrently; take that outcome
			}
			putPending(p)
			if cancel != nil {
				cancel()
			}
			c.countErr(err)
			return ctx, nil, err
		}
	}
	return ctx, cancel, nil
}

// await is the second half of exchange: it waits for the outcome of p
// (sent by send) and releases p.
func (c *Conn) await(ctx context.Context, s *session, cid string, p *pending) error {
	var err error
	var reason agentwire.CancelReason
	cd := ctx.Done()
	if cd == nil {
		// A context that can never end (context.Background, TODO, and
		// values over them): a plain receive, without selectgo's fixed
		// cost (a select leaves the nil case out, so it too locks and
		// queues on p.done alone; no measurement isolates the saving,
		// and request contexts from net/http always have a Done). The
		// call's deadline is then the default timeout, which the
		// session's expirer enforces by completing p, as a failing
		// session and Cancel do.
		err = <-p.done
		putPending(p)
		c.countErr(err)
		return err
	}
	select {
	case err = <-p.done:
		// A reply, or the outcome set by whoever removed p (the
		// session's expirer on the default timeout, Cancel, a failing
		// session).
		putPending(p)
		c.countErr(err)
		return err
	case <-cd:
		err = ctxError(ctx)
		reason = agentwire.CancelClientDisconnect
		if err == errCtxDeadline {
			reason = agentwire.CancelTimeout
		}
	}
	if !s.remove(p) {
		// The reader, Cancel or nobody else got there first: their outcome
		// is on its way (a reply that raced the deadline is returned).
		err = <-p.done
		putPending(p)
		c.countErr(err)
		return err
	}
	// No cancel for an event that never went out.
	sent := p.settle()
	putPending(p)
	if reason != 0 && sent {
		s.sendCancel(cid, reason)
	}
	c.countErr(err)
	return err
}

// invalid books a call refused before it started (nil event, empty or
// invalid correlation id) and returns err.
func (c *Conn) invalid(err error) error {
	c.stats.errors.Add(1)
	return err
}

// countErr books the outcome of a finished call.
func (c *Conn) countErr(err error) {
	if err == nil {
		return
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Kind {
		case ErrTimeout:
			c.stats.timeouts.Add(1)
			return
		case ErrCanceled:
			c.stats.canceled.Add(1)
			return
		case ErrConnectionLost:
			c.stats.lost.Add(1)
		}
	}
	c.stats.errors.Add(1)
}

// event names one outbound event (no allocation: passed by value).
type event struct {
	kind     int32
	response bool // body chunk direction
	rh       *agentwire.RequestHeadersEvent
	bc       *agentwire.BodyChunk
	rs       *agentwire.ResponseHeadersEvent
	rc       *agentwire.RequestCompleteEvent
	ws       *agentwire.WebSocketFrameEvent
	gr       *agentwire.GuardrailInspectEvent
}

func (e *event) encode(t transport) (mem.Buffer, error) {
	switch e.kind {
	case agentwire.EventRequestHeaders:
		// The clock is only read for an event without a timestamp (the
		// transports send nowMS in its place).
		var now uint64
		if e.rh.Metadata.Timestamp.IsZero() {
			now = nowMS()
		}
		return t.requestHeaders(e.rh, now)
	case agentwire.EventRequestBodyChunk, agentwire.EventResponseBodyChunk:
		return t.bodyChunk(e.bc, e.response, nowMS())
	case agentwire.EventResponseHeaders:
		return t.responseHeaders(e.rs)
	case agentwire.EventRequestComplete:
		return t.requestComplete(e.rc)
	case agentwire.EventWebSocketFrame:
		return t.webSocketFrame(e.ws)
	default:
		return t.guardrail(e.gr)
	}
}

// call runs one request/reply exchange for ev into dst. A failure is
// returned as an error of its own carrying cid (see withCID).
func (c *Conn) call(ctx context.Context, cid string, ev event, dst *agentwire.AgentResponse) error {
	if tr := c.opts.tracing.tracer; tr != nil {
		return c.tracedCall(ctx, tr, cid, ev, dst)
	}
	if err := c.roundTrip(ctx, cid, ev, dst); err != nil {
		return withCID(err, cid)
	}
	return nil
}

// roundTrip is call without the error copy: its errors may be shared
// templates.
func (c *Conn) roundTrip(ctx context.Context, cid string, ev event, dst *agentwire.AgentResponse) error {
	ctx, cancel, s, dl, err := c.admit(ctx, cid, ev.kind, false)
	if err != nil {
		return err
	}
	if cancel != nil {
		defer cancel()
	}
	defer c.leave(s)
	if ev.kind == agentwire.EventRequestHeaders && ev.rh.Metadata.Traceparent == "" {
		// The trace context of ctx goes into a copy of the event (trace.go).
		if te := withTraceparent(ctx, ev.rh); te != nil {
			defer te.release()
			ev.rh = &te.ev
		}
	}
	if s.ew != nil && ev.kind == agentwire.EventRequestHeaders {
		// The writer encodes the event straight into its write buffer
		// (see eventWriter): the queued outbound carries the pending
		// (see pending for who recycles it).
		p := getPending(cid, dst, wQueued)
		return c.exchange(ctx, s, cid, p, outbound{p: p, rh: ev.rh}, dl)
	}
	buf, err := ev.encode(s.t)
	if err != nil {
		c.stats.errors.Add(1)
		return err
	}
	if s.grpc != nil {
		// The writer marks where the event ends in the stream before it
		// sends it, so that the reply moves acked as a request-headers
		// reply does (grpc_direct.go): the queued outbound carries the
		// pending (wQueuedLater: an event of a request the agent
		// already knows, whose cancel goes out even if the event is
		// dropped unsent, see pending).
		ws := int32(wQueuedLater)
		if ev.kind == agentwire.EventRequestHeaders {
			ws = wQueued
		}
		p := getPending(cid, dst, ws)
		return c.exchange(ctx, s, cid, p, outbound{buf: buf, p: p}, dl)
	}
	return c.exchange(ctx, s, cid, getPending(cid, dst, wNone), outbound{buf: buf}, dl)
}

// Correlation ids of the request calls: every event carries the request's
// correlation id (RequestHeadersEvent in Metadata.CorrelationID, the others
// in CorrelationID). An empty one is replaced by an id generated by the
// Conn (unique, see cid.go), written into that field of the caller's event
// before anything is sent, so that the caller can read it back after the
// call (even a failed one) and reuse it for the request's later events
// and for Cancel. Every error of a request call carries the id in
// Error.CorrelationID.

// RequestHeaders sends a request-headers event and returns the agent's
// reply. The correlation id is ev.Metadata.CorrelationID; when it is empty
// the Conn generates one and sets it there (see above). A zero
// Metadata.Timestamp is sent as the current time. ev must not be modified
// until the call returns.
func (c *Conn) RequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent) (*agentwire.AgentResponse, error) {
	if ev == nil {
		return nil, fresh(c.invalid(errNilEvent))
	}
	if ev.Metadata.CorrelationID == "" {
		ev.Metadata.CorrelationID = c.newCID()
	}
	dst := new(agentwire.AgentResponse)
	if err := c.call(ctx, ev.Metadata.CorrelationID, event{kind: agentwire.EventRequestHeaders, rh: ev}, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// RequestHeadersInto is RequestHeaders decoding the reply into dst (reset
// first) instead of a new value: with a reused dst the round trip
// allocates nothing in memory or over a Unix socket (a reply whose
// strings differ from dst's may); grpc-go adds its own per-message
// allocations. dst must not be used by anyone else until the call
// returns; on error its content is undefined. An empty
// correlation id is generated and set as in RequestHeaders.
func (c *Conn) RequestHeadersInto(ctx context.Context, ev *agentwire.RequestHeadersEvent, dst *agentwire.AgentResponse) error {
	if ev == nil || dst == nil {
		var cid string
		if ev != nil {
			cid = ev.Metadata.CorrelationID
		}
		return withCID(c.invalid(errNilEvent), cid)
	}
	if ev.Metadata.CorrelationID == "" {
		ev.Metadata.CorrelationID = c.newCID()
	}
	return c.call(ctx, ev.Metadata.CorrelationID, event{kind: agentwire.EventRequestHeaders, rh: ev}, dst)
}

// RequestBodyChunk sends a request body chunk and returns the reply.
// ev.Data is copied into the outbound message before the call blocks, but
// ev must not be modified until the call returns. An empty ev.CorrelationID
// is generated and set (see RequestHeaders).
func (c *Conn) RequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk) (*agentwire.AgentResponse, error) {
	if ev == nil {
		return nil, fresh(c.invalid(errNilEvent))
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = c.newCID()
	}
	dst := new(agentwire.AgentResponse)
	if err := c.call(ctx, ev.CorrelationID, event{kind: agentwire.EventRequestBodyChunk, bc: ev}, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// ResponseHeaders sends a response-headers event and returns the reply. An
// empty ev.CorrelationID is generated and set (see RequestHeaders).
func (c *Conn) ResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent) (*agentwire.AgentResponse, error) {
	if ev == nil {
		return nil, fresh(c.invalid(errNilEvent))
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = c.newCID()
	}
	dst := new(agentwire.AgentResponse)
	if err := c.call(ctx, ev.CorrelationID, event{kind: agentwire.EventResponseHeaders, rs: ev}, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// ResponseBodyChunk sends a response body chunk and returns the reply (see
// RequestBodyChunk for ownership of ev.Data). An empty ev.CorrelationID is
// generated and set (see RequestHeaders).
func (c *Conn) ResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk) (*agentwire.AgentResponse, error) {
	if ev == nil {
		return nil, fresh(c.invalid(errNilEvent))
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = c.newCID()
	}
	dst := new(agentwire.AgentResponse)
	if err := c.call(ctx, ev.CorrelationID, event{kind: agentwire.EventResponseBodyChunk, bc: ev, response: true}, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// RequestComplete sends a request-complete event and returns the reply
// (agentwire and Rust SDK agents answer it). An empty ev.CorrelationID is
// generated and set (see RequestHeaders).
func (c *Conn) RequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent) (*agentwire.AgentResponse, error) {
	if ev == nil {
		return nil, fresh(c.invalid(errNilEvent))
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = c.newCID()
	}
	dst := new(agentwire.AgentResponse)
	// The request is over whatever the outcome: a per-request pause of
	// it is dropped.
	defer c.forgetPause(ev.CorrelationID)
	if err := c.call(ctx, ev.CorrelationID, event{kind: agentwire.EventRequestComplete, rc: ev}, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// forgetPause drops a per-request pause of cid on the current session.
func (c *Conn) forgetPause(cid string) {
	if s := c.sess.Load(); s != nil {
		s.forgetPause(cid)
	}
}

// WebSocketFrame sends one WebSocket frame and returns the reply. gRPC
// cannot carry a WebSocket decision (SPEC 4.6): the reply's decision is the
// verdict. An empty ev.CorrelationID is generated and set (see
// RequestHeaders).
func (c *Conn) WebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent) (*agentwire.AgentResponse, error) {
	if ev == nil {
		return nil, fresh(c.invalid(errNilEvent))
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = c.newCID()
	}
	dst := new(agentwire.AgentResponse)
	if err := c.call(ctx, ev.CorrelationID, event{kind: agentwire.EventWebSocketFrame, ws: ev}, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// GuardrailInspect sends a guardrail inspection and returns the reply.
// Rust SDK agents never answer it over gRPC (the call then ends at its
// deadline); agentwire agents do. An empty ev.CorrelationID is generated
// and set (see RequestHeaders).
func (c *Conn) GuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent) (*agentwire.AgentResponse, error) {
	if ev == nil {
		return nil, fresh(c.invalid(errNilEvent))
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = c.newCID()
	}
	dst := new(agentwire.AgentResponse)
	if err := c.call(ctx, ev.CorrelationID, event{kind: agentwire.EventGuardrailInspect, gr: ev}, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// Configure pushes configuration to the agent as a ProcessStream configure
// event (is_initial false) and remembers it: every later reconnection
// sends it in the handshake and as the initial configure event. A
// configuration the Conn refuses (ErrInvalidEvent, ErrMessageTooLarge) is
// not remembered; one that could not be sent because the Conn is
// reconnecting is.
//
// Reply semantics: the protocol defines no reply to a configure event
// (it has no correlation id on gRPC), so Configure returns nil once the
// event was handed to the transport, ordered after every event sent
// before it and before every event sent after it. Whether the agent
// accepted the configuration is not reported. The agentwire ControlStream
// is not used for configuration: ProcessStream keeps it ordered with the
// events, and a second copy would be applied twice.
func (c *Conn) Configure(ctx context.Context, ev *agentwire.ConfigureEvent) error {
	return fresh(c.configure(ctx, ev))
}

func (c *Conn) configure(ctx context.Context, ev *agentwire.ConfigureEvent) error {
	if ev == nil {
		return errNilEvent
	}
	if len(ev.Config) > 0 && !json.Valid(ev.Config) {
		return &Error{Kind: ErrInvalidEvent, Detail: "configuration is not valid JSON"}
	}
	cp := &agentwire.ConfigureEvent{Config: append(json.RawMessage(nil), ev.Config...), ConfigVersion: ev.ConfigVersion}
	prev := c.config.Swap(cp)
	s, err := c.current(ctx)
	if err != nil {
		return err
	}
	buf, err := s.t.configure(cp, false, nowMS())
	if err != nil {
		// Refused (too large, not encodable): not the configuration of
		// later reconnects either, whose handshakes it would fail.
		c.config.CompareAndSwap(cp, prev)
		return err
	}
	notice := make(chan error, 1)
	if err := s.enqueue(ctx, outbound{buf: buf, notice: notice}); err != nil {
		return err
	}
	select {
	case err := <-notice:
		return err
	case <-ctx.Done():
		return ctxError(ctx)
	}
}

// Cancel tells the agent to stop working on correlationID (a CancelRequest
// with reason, fire and forget) and ends the local call waiting for it, if
// any, with an ErrCanceled error. When that call's event has not gone out
// yet (over a Unix socket the writer encodes request-headers events as it
// reaches them), the event is never sent and no CancelRequest either.
// Cancellation never counts against the agent's health. It does not block.
// Its errors carry correlationID.
func (c *Conn) Cancel(correlationID string, reason agentwire.CancelReason) error {
	return withCID(c.cancel(correlationID, reason), correlationID)
}

func (c *Conn) cancel(correlationID string, reason agentwire.CancelReason) error {
	if correlationID == "" {
		return errNoCID
	}
	if !utf8.ValidString(correlationID) {
		return errBadCID
	}
	if reason < agentwire.CancelClientDisconnect || reason > agentwire.CancelManual {
		return &Error{Kind: ErrInvalidEvent, Detail: "cancel reason out of range 1..6"}
	}
	if c.state.Load() == stateClosed {
		return errClosed
	}
	s := c.sess.Load()
	if s == nil || s.failed() {
		return c.notConnected()
	}
	dropped := false
	if p := s.pending.loadAndDelete(correlationID); p != nil {
		// An event still waiting for the writer is taken back: the
		// agent never sees it, so no cancel follows it, unless the
		// agent already knows its request (drop).
		dropped = p.drop()
		p.done <- errManualCancel
	}
	s.forgetPause(correlationID)
	if !dropped {
		s.sendCancel(correlationID, reason)
	}
	return nil
}

// Ping sends a protocol ping and returns the round-trip time measured when
// the matching pong (same sequence) arrives. Without a context deadline the
// request timeout applies.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	d, err := c.ping(ctx)
	return d, fresh(err)
}

func (c *Conn) ping(ctx context.Context) (time.Duration, error) {
	s := c.sess.Load()
	if s != nil && s.failed() {
		s = nil
	}
	// The deadline also bounds the wait for a connection (fail-fast off).
	ctx, cancel := c.ensureDeadline(ctx, s)
	if cancel != nil {
		defer cancel()
	}
	s, err := c.current(ctx)
	if err != nil {
		return 0, err
	}
	return c.pingOn(ctx, s)
}

// pingOn pings over session s; ctx must have a deadline.
func (c *Conn) pingOn(ctx context.Context, s *session) (time.Duration, error) {
	seq := c.pingSeq.Add(1)
	ch := make(chan time.Time, 1)
	pings := s.pings.get()
	pings.Store(seq, ch)
	defer pings.Delete(seq)
	start := time.Now()
	buf, err := s.t.ping(seq, uint64(start.UnixMilli()))
	if err != nil {
		return 0, err
	}
	if err := s.enqueue(ctx, outbound{buf: buf}); err != nil {
		return 0, err
	}
	c.stats.pings.Add(1)
	select {
	case at := <-ch:
		return at.Sub(start), nil
	case <-ctx.Done():
		return 0, ctxError(ctx)
	case <-s.done:
		return 0, s.lost
	}
}

// Drain retires the connection gracefully: new calls fail with ErrDraining
// at once, the agent is told (ProxyControl.drain on the agentwire
// ControlStream, when offered), in-flight calls are waited for, then a
// shutdown notice is sent the same way and the Conn is closed. If ctx ends
// first, Drain returns its error and the Conn stays draining (call Close).
func (c *Conn) Drain(ctx context.Context) error {
	return fresh(c.drain(ctx))
}

func (c *Conn) drain(ctx context.Context) error {
	if !c.state.CompareAndSwap(stateOpen, stateDraining) {
		if c.state.Load() == stateClosed {
			return errClosed
		}
	}
	c.log.Debug("agentwire: draining connection", "in_flight", c.stats.inFlight.Load())
	s := c.sess.Load()
	if s != nil {
		s.flowChanged() // callers waiting for admission fail with ErrDraining
	}
	if s != nil && !s.failed() && s.controlOK.Load() {
		var dur uint64
		if dl, ok := ctx.Deadline(); ok {
			dur = uint64(max(time.Until(dl), 0).Milliseconds())
		}
		if buf, err := s.t.drain(dur, nowMS()); err == nil {
			if err := s.sendControl(ctx, buf); err != nil {
				c.log.Debug("agentwire: drain notice not sent", "err", err)
			}
		}
	}
	for c.stats.inFlight.Load() > 0 {
		select {
		case <-c.drainSig:
		case <-ctx.Done():
			c.log.Debug("agentwire: drain interrupted; the connection stays draining", "in_flight", c.stats.inFlight.Load(), "err", ctx.Err())
			return ctxError(ctx)
		case <-c.closing:
			return nil
		}
	}
	c.log.Debug("agentwire: drained; closing connection")
	if s := c.sess.Load(); s != nil && !s.failed() && s.controlOK.Load() {
		if buf, err := s.t.shutdown(0, nowMS()); err == nil {
			_ = s.sendControl(ctx, buf)
		}
	}
	return c.Close()
}

// Capabilities returns the capabilities the agent announced in its last
// successful handshake.
func (c *Conn) Capabilities() agentwire.Capabilities {
	if p := c.caps.Load(); p != nil {
		return *p
	}
	return agentwire.Capabilities{}
}

// Payload encodings reported by Conn.Encoding besides agentwire.EncodingJSON
// and agentwire.EncodingMsgpack.
const EncodingProtobuf = "protobuf"

// Encoding returns the payload encoding of the current session, as
// negotiated in its handshake: agentwire.EncodingJSON or
// agentwire.EncodingMsgpack on the Unix-socket and reverse transports,
// EncodingProtobuf on gRPC; "" while no session is established.
func (c *Conn) Encoding() string {
	s := c.sess.Load()
	if s == nil || s.failed() {
		return ""
	}
	switch t := s.t.(type) {
	case *udsTransport:
		if t.msgpack {
			return agentwire.EncodingMsgpack
		}
		return agentwire.EncodingJSON
	case *grpcTransport:
		return EncodingProtobuf
	}
	return ""
}

// Health returns the Conn's view of the agent's health.
func (c *Conn) Health() HealthSnapshot {
	var h HealthSnapshot
	h.Capacity = -1
	s := c.sess.Load()
	if s == nil || s.failed() || c.state.Load() == stateClosed {
		return h
	}
	h.Connected = true
	now := time.Now()
	if r := s.health.Load(); r != nil {
		h.Report, h.ReceivedAt, h.ValidUntil = r.status, r.received, r.validUntil
		if r.active(now) {
			h.State = r.status.State
		} else {
			h.Expired = true
		}
	}
	h.Paused = s.paused.Load()
	h.Capacity = s.capacity.Load()
	h.AcceptsRequests = c.state.Load() == stateOpen && s.healthGate() == nil && !h.Paused &&
		(h.Capacity < 0 || c.stats.inFlight.Load() < h.Capacity)
	return h
}
