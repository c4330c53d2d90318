package engine

import (
	"fmt"

	"github.com/agentwire/agentwire"
)

type cbKind uint8

const (
	cbHealth cbKind = iota + 1
	cbMetrics
	cbLog
	cbConfig
)

// callback is one queued user callback (or config-update answer).
type callback struct {
	kind cbKind
	// health points into the session's stored report (never written
	// after it is stored).
	health  *agentwire.HealthStatus
	metrics *agentwire.MetricsReport
	log     *agentwire.LogMessage
	cfg     *agentwire.ConfigUpdateRequest
	s       *session
	// size is the wire size of the report, counted against
	// maxCallbackBytes while it waits (0 for small fixed-size reports).
	size int64
}

// maxCallbackBytes bounds the wire bytes of the reports waiting for the
// dispatcher, besides their number (WithCallbackQueueSize): an agent that
// floods large metrics, log or config-update messages while a callback is
// slow cannot park more than this. A report larger than the budget is
// still taken when nothing else waits.
const maxCallbackBytes = 16 << 20

// dispatch queues cb for the dispatcher goroutine without blocking. When
// the queue is full the report is dropped and counted; a config-update
// request is then answered at once with a rejection, so the agent is never
// left waiting.
func (c *Conn) dispatch(cb callback) {
	if cb.size > 0 {
		if total := c.cbBytes.Add(cb.size); total > maxCallbackBytes && total != cb.size {
			c.cbBytes.Add(-cb.size)
			c.dropCallback(cb)
			return
		}
	}
	select {
	case c.callbackQueue() <- &cb: // reports are rare: one allocation each keeps the queue at a pointer per slot
		c.kickDispatcher()
	default:
		c.cbBytes.Add(-cb.size)
		c.dropCallback(cb)
	}
}

// dropCallback counts a report the queue had no room for; a config-update
// request is answered at once with a rejection.
func (c *Conn) dropCallback(cb callback) {
	c.stats.callbacksDropped.Add(1)
	if cb.kind == cbConfig {
		cb.s.answerConfig(cb.cfg, agentwire.ConfigUpdateResponse{
			Accepted: false,
			Error:    agentwire.Some("agentwire: proxy callback queue full"),
		}, false)
	}
}

// The dispatcher runs user callbacks one at a time, off the reader
// goroutine. It is started on demand: by the first report or state
// transition queued while it is not running (kickDispatcher), and it exits
// once nothing is left to deliver, so that a Conn whose agent sends no
// reports and whose state does not change holds no goroutine for it (an
// idle Unix-socket Conn used to hold a parked dispatcher all its life,
// about a fifth of its memory). dispRunning is set from the start until
// the exit; dispWG counts the running dispatcher, so that Close waits for
// it. cbRunning is set while a callback runs, so that a Close meanwhile
// (possibly from that very callback) does not wait for it. State
// transitions (WithOnStateChange) are never dropped: once the Conn
// closes, the dispatcher delivers those still waiting, the final
// StateClosed included (Close queues it before it closes c.closing), and
// then exits; reports still queued are dropped.

// kickDispatcher starts the dispatcher unless it is running. Called after
// work was queued; a dispatcher that is about to exit checks for work
// after it cleared dispRunning (see dispatcher), so none is left behind.
// Never called once Close has waited for the Conn's goroutines: reports
// come from the session's reader, transitions from the supervisor, Dial
// and Close's own StateClosed (queued before that wait).
func (c *Conn) kickDispatcher() {
	if c.dispRunning.CompareAndSwap(false, true) {
		c.dispWG.Add(1)
		go c.dispatcher()
	}
}

// dispatcher delivers what is queued and exits when nothing is (see
// above).
func (c *Conn) dispatcher() {
	defer c.dispWG.Done()
	for {
		c.dispatchQueued()
		c.dispRunning.Store(false)
		// Work queued after the last look and before the store above
		// found the dispatcher running and started none: take it over,
		// unless a new dispatcher already did.
		if !c.dispatchPending() || !c.dispRunning.CompareAndSwap(false, true) {
			return
		}
	}
}

// dispatchQueued runs the queued callbacks and state transitions until
// none is left; once the Conn is closing, queued reports are dropped
// instead of run. Dispatcher only.
func (c *Conn) dispatchQueued() {
	for {
		if cb := c.nextCallback(); cb != nil {
			if c.isClosing() {
				c.cbBytes.Add(-cb.size)
				continue
			}
			c.cbRunning.Store(true)
			c.runCallback(*cb)
			c.cbRunning.Store(false)
			continue
		}
		if !c.statesQueued() {
			return
		}
		c.runStateChanges()
	}
}

// dispatchPending reports whether a report or a transition is waiting.
func (c *Conn) dispatchPending() bool {
	if q := c.cbq.Load(); q != nil && len(*q) > 0 {
		return true
	}
	return c.statesQueued()
}

// callbackQueue returns the callback queue, making it on first use.
func (c *Conn) callbackQueue() chan *callback {
	if q := c.cbq.Load(); q != nil {
		return *q
	}
	q := make(chan *callback, c.opts.callbackQueue)
	if c.cbq.CompareAndSwap(nil, &q) {
		return q
	}
	return *c.cbq.Load()
}

// nextCallback takes the next queued report without waiting (nil when
// none is queued).
func (c *Conn) nextCallback() *callback {
	q := c.cbq.Load()
	if q == nil {
		return nil
	}
	select {
	case cb := <-*q:
		return cb
	default:
		return nil
	}
}

// isClosing reports whether Close has started.
func (c *Conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

func (c *Conn) runCallback(cb callback) {
	defer c.cbBytes.Add(-cb.size)
	defer func() {
		if r := recover(); r != nil {
			c.stats.callbackPanics.Add(1)
			c.log.Error("agentwire: callback panicked", "panic", fmt.Sprint(r))
			if cb.kind == cbConfig {
				cb.s.answerConfig(cb.cfg, agentwire.ConfigUpdateResponse{
					Error: agentwire.Some("agentwire: config update handler panicked"),
				}, true)
			}
		}
	}()
	switch cb.kind {
	case cbHealth:
		c.opts.onHealth(*cb.health)
	case cbMetrics:
		c.opts.onMetrics(cb.metrics)
	case cbLog:
		c.opts.onLog(cb.log)
	case cbConfig:
		var resp agentwire.ConfigUpdateResponse
		if c.opts.onConfigUpdate != nil {
			resp = c.opts.onConfigUpdate(cb.cfg)
		} else {
			resp = defaultConfigUpdate(cb.cfg)
		}
		cb.s.answerConfig(cb.cfg, resp, true)
	}
}

// defaultConfigUpdate answers like the Rust pool's handler: reloads,
// restart notices and configuration errors are accepted (noted), rule and
// list updates rejected.
func defaultConfigUpdate(r *agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse {
	switch r.Kind {
	case agentwire.ConfigRuleUpdate:
		return agentwire.ConfigUpdateResponse{Error: agentwire.Some("rule updates not supported")}
	case agentwire.ConfigListUpdate:
		return agentwire.ConfigUpdateResponse{Error: agentwire.Some("list updates not supported")}
	}
	return agentwire.ConfigUpdateResponse{Accepted: true}
}

// answerConfig sends resp for req on the control stream. block says
// whether it may wait for room in the outbound queue (the dispatcher may,
// the reader may not). Without a control stream the answer cannot be sent
// and is counted.
func (s *session) answerConfig(req *agentwire.ConfigUpdateRequest, resp agentwire.ConfigUpdateResponse, block bool) {
	resp.RequestID = req.RequestID
	if resp.TimestampMS == 0 {
		resp.TimestampMS = nowMS()
	}
	if !s.controlOK.Load() || s.failed() {
		s.c.stats.configUnanswered.Add(1)
		s.c.log.Debug("agentwire: config update cannot be answered (no control stream)", "request_id", req.RequestID)
		return
	}
	buf, err := s.t.configResponse(&resp)
	if err != nil {
		s.c.stats.configUnanswered.Add(1)
		return
	}
	o := outbound{buf: buf, ctl: true}
	if block {
		err = s.enqueue(s.ctx, o)
	} else if err = s.out.TryEnqueue(o); err != nil {
		buf.Free()
	}
	if err != nil {
		s.c.stats.configUnanswered.Add(1)
		return
	}
	s.c.stats.configAnswered.Add(1)
}

// onConfigUpdate queues an agent config-update request for its answer;
// size is its wire size.
func (s *session) onConfigUpdate(r *agentwire.ConfigUpdateRequest, size int) {
	s.c.stats.configUpdates.Add(1)
	s.c.dispatch(callback{kind: cbConfig, cfg: r, s: s, size: int64(size)})
}

// onMetrics queues a metrics report (size: its wire size) for the callback.
func (s *session) onMetrics(r *agentwire.MetricsReport, size int) {
	s.c.stats.metricsReports.Add(1)
	if s.c.opts.onMetrics != nil {
		s.c.dispatch(callback{kind: cbMetrics, metrics: r, size: int64(size)})
	}
}

// onLog queues a forwarded log line (size: its wire size) for the
// callback.
func (s *session) onLog(m *agentwire.LogMessage, size int) {
	s.c.stats.logMessages.Add(1)
	if s.c.opts.onLog != nil {
		s.c.dispatch(callback{kind: cbLog, log: m, size: int64(size)})
	}
}
