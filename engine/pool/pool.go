package pool

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire/engine"
)

// Pool is the multi-agent layer: a set of named agents, each with its own
// pool of connections (Agent), and the maintenance goroutine that keeps
// their connections' health current. Build pipelines over its agents with
// NewPipeline. All methods are safe for concurrent use.
type Pool struct {
	o      poolOptions
	seed   maphash.Seed
	epoch  time.Time
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // agents changes
	agents atomic.Pointer[map[string]*Agent]
	closed atomic.Bool
	done   chan struct{} // maintenance goroutine exited
}

// New returns an empty Pool and starts its maintenance goroutine (one per
// Pool, until Close or Drain): every WithHealthCheckInterval it re-reads
// the health of every connection, so that recovered connections take
// calls again and closed reverse connections leave.
func New(opts ...Option) (*Pool, error) {
	o := defaultPoolOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt.applyPool(&o); err != nil {
			return nil, err
		}
	}
	p := &Pool{o: o, seed: maphash.MakeSeed(), epoch: time.Now(), done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	empty := map[string]*Agent{}
	p.agents.Store(&empty)
	go p.maintain()
	return p, nil
}

func (p *Pool) maintain() {
	defer close(p.done)
	t := time.NewTicker(p.o.healthEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			for _, a := range *p.agents.Load() {
				a.check()
			}
		case <-p.ctx.Done():
			return
		}
	}
}

// AddAgent adds an agent named name (the name verdicts carry, and the
// agent id its reverse connections register with) and starts dialling its
// endpoints in the background (WithEndpoint). An agent may start with no
// endpoint and get connections later (Agent.AddEndpoint, Agent.AddConn,
// AddReverse). It fails with ErrDuplicateAgent for a name already in use,
// ErrInvalidConfig for a refused option and ErrClosed after Close.
func (p *Pool) AddAgent(name string, opts ...AgentOption) (*Agent, error) {
	if name == "" {
		return nil, configErr("empty agent name")
	}
	o := defaultAgentOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt.applyAgent(&o); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Agent == "" {
				e.Agent = name
			}
			return nil, err
		}
	}
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		return nil, &Error{Kind: ErrClosed}
	}
	cur := *p.agents.Load()
	if cur[name] != nil {
		p.mu.Unlock()
		return nil, &Error{Kind: ErrDuplicateAgent, Agent: name}
	}
	a := newAgent(p, name, o)
	next := maps.Clone(cur)
	next[name] = a
	p.agents.Store(&next)
	p.mu.Unlock()
	for _, ep := range o.endpoints {
		if err := a.AddEndpoint(ep); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Agent returns the agent named name, nil when there is none.
func (p *Pool) Agent(name string) *Agent { return (*p.agents.Load())[name] }

// Agents returns the pool's agents, sorted by name.
func (p *Pool) Agents() []*Agent {
	m := *p.agents.Load()
	out := make([]*Agent, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// RemoveAgent takes the agent out of the pool and drains it
// (Agent.Drain). Pipelines that still use it get the failure policy
// (ReasonUnavailable, ErrClosed) for it from then on.
func (p *Pool) RemoveAgent(ctx context.Context, name string) error {
	p.mu.Lock()
	cur := *p.agents.Load()
	a := cur[name]
	if a == nil {
		p.mu.Unlock()
		return &Error{Kind: ErrUnknownAgent, Agent: name}
	}
	next := maps.Clone(cur)
	delete(next, name)
	p.agents.Store(&next)
	p.mu.Unlock()
	return a.Drain(ctx)
}

// AddReverse adds a reverse connection to the pool of the agent named
// agentID. Its signature is engine.WithOnAgent's, so that reverse
// connections join as they register:
//
//	ln, err := engine.ListenReverse(ctx, "unix:///run/proxy/agents.sock",
//		engine.WithOnAgent(p.AddReverse))
//
// The connection leaves the pool when it drops (the agent dials again and
// joins anew). A connection from an agent id the pool has no agent for is
// handed to WithUnknownReverseAgent, or closed.
func (p *Pool) AddReverse(agentID string, c *engine.Conn) {
	a := p.Agent(agentID)
	if a == nil {
		if p.o.unknownAgent != nil {
			p.o.unknownAgent(agentID, c)
			return
		}
		p.o.log.Warn("agentwire: reverse connection from an unknown agent closed", "agent", agentID)
		_ = c.Close()
		return
	}
	if _, err := a.addMember(c, SourceReverse, agentID, 1, 0, 0); err != nil {
		_ = c.Close()
	}
}

// Drain drains every agent at once (Agent.Drain) and then closes the pool.
// It returns the first error of an agent's drain (that agent was closed at
// once).
func (p *Pool) Drain(ctx context.Context) error {
	agents := p.Agents()
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Drain(ctx); err != nil {
				errs[i] = fmt.Errorf("agentwire: drain agent %s: %w", a.name, err)
			}
		}()
	}
	wg.Wait()
	_ = p.Close()
	return errors.Join(errs...)
}

// Close closes every agent at once (calls in flight fail and get their
// failure policy) and stops the pool's goroutines: when it returns, every
// goroutine the pool started has exited and every connection is closed.
// It is idempotent and returns nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed.Store(true)
	p.mu.Unlock()
	p.cancel()
	<-p.done
	var wg sync.WaitGroup
	for _, a := range *p.agents.Load() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.close()
		}()
	}
	wg.Wait()
	return nil
}
