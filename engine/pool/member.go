package pool

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// link is what the pool needs of one connection. *engine.Conn implements
// it; tests use fakes.
type link interface {
	RequestHeadersInto(ctx context.Context, ev *agentwire.RequestHeadersEvent, dst *agentwire.AgentResponse) error
	RequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk) (*agentwire.AgentResponse, error)
	ResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent) (*agentwire.AgentResponse, error)
	ResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk) (*agentwire.AgentResponse, error)
	RequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent) (*agentwire.AgentResponse, error)
	WebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent) (*agentwire.AgentResponse, error)
	GuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent) (*agentwire.AgentResponse, error)
	Cancel(correlationID string, reason agentwire.CancelReason) error
	Health() engine.HealthSnapshot
	Capabilities() agentwire.Capabilities
	Drain(ctx context.Context) error
	Close() error
}

var _ link = (*engine.Conn)(nil)

// member is one connection of an agent's pool.
type member struct {
	id       uint32
	c        link
	endpoint string
	source   ConnSource
	weight   int
	// reqTimeout is the connection's own request timeout when the pool
	// knows it (it dialled the connection), else 0: a call with no
	// deadline of its own and this timeout needs no timer of the pool's.
	reqTimeout time.Duration

	state atomic.Uint32 // ConnState
	gone  atomic.Bool   // taken out of its agent: the state is final
	ewma  atomic.Int64  // latency moving average, ns
	ctr   callCounters
	// lost is set by the first call that fails because m's connection was
	// lost (it counts one breaker failure; the other calls pending on the
	// lost session count none) and cleared when m is seen connected again.
	lost atomic.Bool
	// idle is signalled when the last call on a member that is gone ends
	// (RemoveConn waits for it before draining the connection).
	idle chan struct{}
}

// enter counts a call on m; it reports false when m left its agent
// meanwhile (the call must go elsewhere). A remover sets gone and then
// waits for the count to drop to zero, so a call either sees gone here or
// is waited for.
func (m *member) enter() bool {
	m.ctr.inFlight.Add(1)
	if m.gone.Load() {
		m.exit()
		return false
	}
	return true
}

// exit ends a call counted by enter.
func (m *member) exit() {
	if m.ctr.inFlight.Add(-1) == 0 && m.gone.Load() {
		select {
		case m.idle <- struct{}{}:
		default:
		}
	}
}

// waitIdle waits until no call is on m (m must be gone), or ctx ends.
func (m *member) waitIdle(ctx context.Context) error {
	for m.ctr.inFlight.Load() > 0 {
		select {
		case <-m.idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (m *member) up() bool { return ConnState(m.state.Load()) == ConnUp }

// setState changes the state unless the member left its agent (its
// state is then final). It reports whether m came back: it was not
// connected (down, or making its first connection) and now is (the
// caller wakes the agent's breaker).
func (m *member) setState(s ConnState) (back bool) {
	for {
		cur := m.state.Load()
		if m.gone.Load() || cur == uint32(s) {
			return false
		}
		if m.state.CompareAndSwap(cur, uint32(s)) {
			if !connected(ConnState(cur)) && connected(s) {
				m.lost.Store(false)
				return true
			}
			return false
		}
	}
}

// connected reports whether a connection in state s has a session (it
// may still refuse calls: unhealthy, draining, paused).
func connected(s ConnState) bool {
	return s != ConnConnecting && s != ConnDown && s != ConnClosed
}

// lossOutcome is what a call that failed because m's connection was lost
// counts for the breaker: one failure for the first such call of a loss,
// nothing for the others pending on the same session.
func (m *member) lossOutcome() outcome {
	if !m.lost.Load() && m.lost.CompareAndSwap(false, true) {
		return outcomeFailure
	}
	return outcomeIgnore
}

// leave marks the member as taken out of its agent, in final state s.
func (m *member) leave(s ConnState) {
	m.gone.Store(true)
	m.state.Store(uint32(s))
}

// observe records a call's latency.
func (m *member) observe(d time.Duration) {
	m.ctr.latency.observe(d)
	old := m.ewma.Load()
	if old == 0 {
		m.ewma.Store(int64(d))
		return
	}
	m.ewma.Store(old + (int64(d)-old)/8)
}

// stateOf is the pool's reading of a connection's health snapshot.
func stateOf(h engine.HealthSnapshot) ConnState {
	switch {
	case !h.Connected:
		return ConnDown
	case h.State == agentwire.HealthUnhealthy:
		return ConnUnhealthy
	case h.State == agentwire.HealthDraining:
		return ConnDraining
	case h.Paused:
		return ConnPaused
	}
	return ConnUp
}

// refusal classifies a call's error: refused reports whether the event
// was certainly not sent (the call may go to another connection), and
// state is what the connection should be marked (ConnUp: unchanged).
func refusal(err error) (refused bool, state ConnState) {
	switch {
	case errors.Is(err, engine.ErrNotConnected):
		return true, ConnDown
	case errors.Is(err, engine.ErrAgentUnhealthy):
		return true, ConnUnhealthy
	case errors.Is(err, engine.ErrDraining):
		return true, ConnDraining
	case errors.Is(err, engine.ErrFlowPaused):
		// Connection-wide pause, a per-request pause or the in-flight cap
		// the agent set: the snapshot tells (the caller checks it).
		return true, ConnPaused
	case errors.Is(err, engine.ErrSaturated) && !errors.Is(err, engine.ErrTimeout) && !errors.Is(err, engine.ErrCanceled):
		// The connection's agent has its announced max_concurrency in
		// flight and the Conn fails fast (engine.WithSaturation): nothing
		// was sent and the connection stays up; another may have room.
		return true, ConnUp
	case errors.Is(err, engine.ErrConnectionLost):
		return false, ConnDown
	case errors.Is(err, engine.ErrClosed):
		return false, ConnClosed
	}
	return false, ConnUp
}

// breakerOutcome says how a call's result counts for the breaker: the
// agent's answers are successes; timeouts and protocol violations are its
// failures; the caller's cancellation, refusals before sending, a closed
// connection and the caller's own mistakes (invalid event, duplicate id)
// are not counted. A lost connection is counted by the caller, once per
// loss (member.lossOutcome), not here.
func breakerOutcome(err error) outcome {
	switch {
	case err == nil:
		return outcomeSuccess
	case errors.Is(err, engine.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return outcomeFailure
	case errors.Is(err, engine.ErrProtocol):
		return outcomeFailure
	}
	return outcomeIgnore
}

// memberSet is an immutable snapshot of an agent's connections.
type memberSet struct {
	list []*member
	// wrr is the smooth weighted round-robin schedule (indexes into list),
	// for BalanceWeighted.
	wrr []uint16
}

func newMemberSet(list []*member) *memberSet {
	s := &memberSet{list: list}
	s.wrr = smoothSchedule(list)
	return s
}

func (s *memberSet) byID(id uint32) *member {
	for _, m := range s.list {
		if m.id == id {
			return m
		}
	}
	return nil
}

// smoothSchedule interleaves the members by weight (nginx's smooth
// weighted round robin, computed once per member set): weights 5,1,1 give
// a a b a c a a, not a a a a a b c. The weights are divided by their
// greatest common divisor and the schedule is at most 4096 long (larger
// totals are scaled down, keeping every weight at least 1).
func smoothSchedule(list []*member) []uint16 {
	if len(list) == 0 || len(list) > 1<<16 {
		return nil
	}
	w := make([]int, len(list))
	g, total := 0, 0
	for i, m := range list {
		w[i] = max(m.weight, 1)
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > 4096 {
		scaled := 0
		for i := range w {
			w[i] = max(w[i]*4096/total, 1)
			scaled += w[i]
		}
		total = scaled
	}
	cur := make([]int, len(w))
	out := make([]uint16, 0, total)
	for range total {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, uint16(best))
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
