package pool

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/agentwire/agentwire/engine"
)

// dialSlot is a dialled connection that has not connected yet.
type dialSlot struct {
	id       uint32
	endpoint string
	weight   int
	err      error // set when the endpoint can never connect (refused options)
}

// dialFunc makes a connection's first connection; tests replace it.
var dialFunc = func(ctx context.Context, endpoint string, opts ...engine.Option) (link, error) {
	c, err := engine.Dial(ctx, endpoint, opts...)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AddEndpoint dials ep.Conns more connections to the agent, in parallel
// and in the background: it returns once ep is validated. An endpoint
// that is not up is retried forever (WithDialBackoff) while the agent is
// in the pool, and each connection joins the pool as it connects; use
// WaitReady to wait for them.
func (a *Agent) AddEndpoint(ep Endpoint) error {
	if err := checkEndpoint(&ep); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state.Load() != agentOpen {
		return a.errClosed
	}
	opts := slices.Clip(ep.Options)
	// The agent's timeout is the connections' request timeout (a call
	// without a deadline then needs no timer of the pool's), and verdicts
	// made by the connections carry the agent's name.
	opts = append(opts, engine.WithRequestTimeout(a.o.timeout), engine.WithAgentName(a.name))
	for range ep.Conns {
		d := &dialSlot{id: a.newID(), endpoint: ep.Address, weight: ep.Weight}
		a.dialing = append(a.dialing, d)
		a.dialingN.Store(int32(len(a.dialing)))
		a.dials.Add(1)
		go a.dialLoop(d, opts)
	}
	a.notifyLocked()
	return nil
}

// dialLoop makes slot d's first connection, retrying with capped, jittered
// exponential backoff until it succeeds or the agent closes; then the
// connection joins the pool (and reconnects by itself from then on).
//
// When engine.NewConn (lazy: it validates, returns at once and connects in
// the background, retrying forever) is available, this loop is replaced by
// one NewConn call in AddEndpoint: the member joins at once in its
// connecting state, check reads its state, and a refused endpoint is
// reported by AddEndpoint itself.
func (a *Agent) dialLoop(d *dialSlot, opts []engine.Option) {
	defer a.dials.Done()
	log := a.p.o.log
	for attempt := 0; ; attempt++ {
		c, err := dialFunc(a.ctx, d.endpoint, opts...)
		if err == nil {
			a.mu.Lock()
			a.dialing = slices.DeleteFunc(a.dialing, func(x *dialSlot) bool { return x == d })
			a.dialingN.Store(int32(len(a.dialing)))
			a.mu.Unlock()
			if _, err := a.addMember(c, SourceDialed, d.endpoint, d.weight, a.o.timeout, d.id); err != nil {
				_ = c.Close() // the agent closed meanwhile
			}
			return
		}
		if a.ctx.Err() != nil {
			return
		}
		a.dialFails.Add(1)
		if !retryable(err) {
			log.Error("agentwire: agent endpoint refused, not retried", "agent", a.name, "endpoint", d.endpoint, "err", err)
			a.mu.Lock()
			d.err = &Error{Kind: ErrInvalidConfig, Agent: a.name, Detail: "endpoint " + d.endpoint, Err: err}
			a.notifyLocked()
			a.mu.Unlock()
			return
		}
		wait := backoff(a.p.o.backoffBase, a.p.o.backoffMax, attempt)
		log.Debug("agentwire: agent not reachable, retrying", "agent", a.name, "endpoint", d.endpoint, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-a.ctx.Done():
			t.Stop()
			return
		}
	}
}

// retryable reports whether a Dial error may go away by itself (the agent
// is not up, not ready, or rejected this attempt); other errors are
// refused options or endpoints.
func retryable(err error) bool {
	if errors.Is(err, engine.ErrInvalidConfig) {
		return false
	}
	var e *engine.Error
	return errors.As(err, &e) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// backoff returns the wait before attempt n+1: base doubled n times,
// capped at max, with the upper half jittered.
func backoff(base, max time.Duration, n int) time.Duration {
	d := max
	if n < 30 && base<<n < max {
		d = base << n
	}
	return d/2 + rand.N(d/2+1)
}
