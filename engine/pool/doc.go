// Package pool is the multi-agent layer of the proxy side: pools of
// connections per agent, load balancing, a concurrency limit, a circuit
// breaker, failure policies, timeouts, request affinity and pipelines of
// agents per route, on top of the single connection of package engine.
// It is what a Go proxy talking to several agents (a WAF, auth, rate
// limiting), each behind several connections, would otherwise write by
// hand, and it keeps serving when one of them is slow, saturated,
// restarting or dead.
//
// # Quick start
//
//	p, err := pool.New()
//	if err != nil { ... }
//	defer p.Close()
//
//	waf, err := p.AddAgent("waf",
//		pool.WithEndpoint("unix:///run/waf.sock", 4),
//		pool.WithTimeout(200*time.Millisecond))
//	auth, err := p.AddAgent("auth",
//		pool.WithEndpoint("grpc://10.0.0.7:50051", 2, engine.WithInsecure()),
//		pool.WithFailurePolicy(engine.FailurePolicy{Mode: engine.FailOpen}))
//
//	route, err := pool.NewPipeline([]pool.Step{{Agent: waf}, {Agent: auth}})
//
//	// per request:
//	var r pool.Request // reuse one per request (Reset/End between requests)
//	v := route.RequestHeaders(ctx, &r, ev)
//	if !v.Allowed() {
//		// respond with v.Decision; v.Synthetic, v.Agent and v.Reason say
//		// whether an agent decided or a failure policy did, and why
//	}
//	// apply r.RequestHeaderOps to the upstream request, log r.Audit
//	...
//	route.End(&r)
//
// Every call returns an engine.Verdict: the decision to enforce, never an
// error to interpret. When an agent gives no decision (error, timeout,
// open breaker, no usable connection, body over its limit), its failure
// policy (engine.FailurePolicy) decides: fail-closed answers a synthetic
// block (503 on an error, an open breaker or no connection, 504 on a
// timeout, 413 on a body over the agent's inspection limit), fail-open a
// synthetic allow; both say which agent and why, and are counted.
//
// # Agents and their connections
//
// An Agent is one agent's pool of connections, on any transport:
// connections the pool dials (WithEndpoint, WithEndpoints,
// Agent.AddEndpoint), established engine.Conns handed over (Agent.AddConn)
// and reverse connections the agent opened (Pool.AddReverse, to be passed
// to engine.WithOnAgent), which join as they register and leave when they
// drop. Dialled connections start in parallel and in the background; an
// agent that is not up is retried forever with capped, jittered backoff
// (WithDialBackoff; the Rust pool gives up after three attempts, and never
// retries an agent that was down at startup) and its connections join
// when it comes up: Agent.WaitReady waits for them. Once connected, an
// engine.Conn reconnects by itself. Connections can be added and removed
// (Agent.RemoveConn: no new calls, calls in flight finish, then it
// closes) while traffic flows.
//
// A connection takes calls while it is connected and the agent has not
// reported it UNHEALTHY or DRAINING nor paused it with flow control. The
// pool takes a connection out as soon as a call finds it refusing, and
// re-reads every connection's health every WithHealthCheckInterval (250 ms
// by default; the Pool's one maintenance goroutine), so that recovered
// connections take calls again. A call refused by a connection before
// anything was sent (reconnecting, unhealthy, draining, paused) moves to
// another connection (at most 3 in all). A connection lost while a call
// waited fails that call (its event may have reached the agent) with the
// failure policy, at once.
//
// # Load balancing
//
// Per agent (WithBalance): power of two choices (the default: two
// connections drawn at random, the one with the lower (in flight + 1) ×
// latency EWMA wins), round robin, least in flight, random and weighted
// (smooth weighted round robin). Only usable connections are considered;
// ties are broken at random, and when a strategy's choice is unusable a
// usable connection is drawn uniformly (its share is spread, not handed
// to the next in line).
//
// # Concurrency limit, breaker, timeouts
//
// Each agent admits at most WithConcurrency calls at once over all its
// connections (default 100, as the Rust proxy's max-concurrent-calls);
// further callers wait for a slot, within their timeout and at most the
// configured wait. Each connection also honours the limit its agent
// announced (engine).
//
// Each agent has a lock-free circuit breaker (WithBreaker) with the Rust
// proxy's defaults: 5 consecutive failures open it, it refuses calls for
// 30 s, then lets 1 probe call through at a time, and 2 consecutive
// successful probes close it; a failed probe reopens it. Failures are
// timeouts and protocol violations of calls the agent received, and calls
// that find none of the agent's connections connected (every one lost
// and reconnecting, or none made yet: the agent as a whole is down; one
// failure per call, ReasonUnavailable). A lost connection counts one
// failure for that connection, not one per call that was pending on it,
// and takes the connection out: one dead connection among healthy ones
// never opens the breaker (their successes reset the consecutive count),
// and the agent's other connections carry on. The caller's own
// cancellation never counts, nor do refusals before sending (unhealthy,
// draining, paused, saturated) or calls that the agent's health or flow
// control kept from every connection. A probe that never reports cannot
// keep the breaker half-open: once its lease (the agent's longest
// timeout plus a second by default) has passed, the breaker reopens (the
// Rust proxy's stays half-open and rejecting forever). It is tested
// against sony/gobreaker as an oracle.
//
// An open breaker does not wait out its open period when the agent comes
// back: as soon as the pool sees one of the agent's connections connect
// (a connection joins connected, or one that was lost is connected again
// at a health check), the breaker moves to half-open and the next call
// is a probe. An agent that was killed, or that starts after the proxy,
// is used again within a health-check interval of its return, not 30 s
// later; one that comes back broken fails its probe and the breaker
// reopens.
//
// Every call is bounded by its agent's timeout (WithTimeout, default 1 s,
// the Rust proxy's), or by the timeout of its event kind
// (WithPhaseTimeout), or by WithCallTimeout; a caller's earlier deadline
// wins. The wait for a concurrency slot is part of it.
//
// # Failure policy and flow control
//
// The failure policy is the agent's (WithFailurePolicy; fail-closed by
// default), overridden by a pipeline step (Step.Policy, as a route's
// filter in the Rust proxy) and by a call (WithCallPolicy,
// WithAgentCallPolicy). It applies in every phase, the response phases
// included (the Rust proxy fails open there whatever the mode). When every
// usable connection of an agent is paused by its flow control, WithFlowControl
// decides: FlowFailClosed (the failure policy, ReasonUnavailable),
// FlowFailOpen (skip the agent) or FlowWaitAndRetry (wait up to the flow
// wait, 100 ms by default, for a resume).
//
// # Affinity
//
// Every event of one request goes to the connection that saw its request
// headers, for every event kind (the Rust pool pins request bodies only).
// Through a Pipeline, the pins live in the request's Request (one
// connection id per agent: no table, no lock, released by Pipeline.End
// with the Request). Through an Agent's own methods, which know a request
// only by its correlation id, the pins are kept in the agent's bounded
// table (WithAffinity: 16384 pins, idle time to live 5 minutes, refreshed
// by use) without locks, and released by Agent.End; agents that take no
// event after the request headers keep none. Either way, a pin whose
// connection became unusable is replaced explicitly: the event goes to
// another connection, which the request sticks to from then on
// (AgentStats.AffinityFallbacks). WebSocket frames of one stream stick to
// one connection in the same way (keep the upgrade request's Request for
// the stream). Agent.Cancel and Pipeline.Cancel send a cancel to the
// pinned connection only (the Rust pool sends it on every connection).
//
// # Pipelines
//
// A Pipeline is a route's ordered list of agents (see Pipeline for the
// phases and the merging rule). Only agents subscribed to an event kind
// receive it: their configuration (WithEvents) and the event kinds their
// connections announced. Per-agent body limits (WithBodyLimits, 1 MiB by
// default, capped by the agent's announced max_body_size) make a body
// chunk over the limit a synthetic 413 block (fail-closed) or a skip
// (fail-open) for that agent. Header operations of all agents are
// concatenated in agent order and audit data merged into the Request.
//
// # Statistics
//
// Agent.Stats and Agent.ConnStats return snapshots of atomic counters:
// calls in flight, requests, decisions by kind, synthetic verdicts by
// reason (errors, timeouts, cancellations, unavailability, open breaker,
// body too large, not subscribed), breaker state and transitions,
// connection states and health, latency histograms and the latency
// moving average, queue waits, retries and affinity counts; synthetic
// verdicts are also split by what they decided (fail-open skip,
// fail-closed block) and by kind of failure (FailureKind: timeout,
// connection lost, protocol, refused, saturated, ...). Agent.EventStats
// breaks decisions and latency down by event kind. Reading them takes no
// lock the calls use. Package promstats exports them to Prometheus.
//
// # Goroutines
//
// A Pool runs one maintenance goroutine (until Close or Drain). Each
// dialled connection runs one goroutine until its first connection
// succeeds (then the engine.Conn runs its own, see package engine). A
// parallel request-headers phase starts every subscribed agent's call on
// the caller's goroutine (engine.Conn.StartRequestHeaders) and then waits
// for each in agent order; only a call that must wait before its event
// can go out (for the agent's concurrency slot, a flow-control resume,
// the connection's admission) goes on on a goroutine of its own, so that
// it holds up neither the other agents nor their slots. A parallel
// request-complete phase runs its second and later agents on goroutines
// of their own. These goroutines end with the phase. Close and Drain
// return after every goroutine of the pool has exited and every
// connection is closed.
//
// # Costs
//
// The success path of a call takes no lock: an atomic load for the
// breaker, a CAS for the concurrency slot, an atomic pointer load for the
// connection set, the balancer's random draws or counter, two monotonic
// clock reads for the latency, a few atomic counters, and the pin (in the
// Request; through an Agent's own methods, a seeded hash and a few atomic
// operations on its table). A one-agent pipeline's request-headers phase allocates nothing
// beyond the engine.Conn's own round trip when the Request is reused and
// the call needs no timer of its own (the caller's context ends sooner
// than the agent's timeout, or has no deadline and the connection was
// dialled by the pool, which gives it the agent's timeout as its request
// timeout); a timer costs the allocations of context.WithTimeout. A
// parallel request-headers phase of several agents whose calls need not
// wait allocates nothing beyond their round trips either
// (TestAllocsThreeAgentParallel); a call that goes on on a goroutine (see
// Goroutines) and a parallel request-complete phase allocate their
// goroutines. Measured
// (BenchmarkLayer, a connection that answers at once, 2 shared cores):
// about 0.2 µs of CPU per request at 1 and at 64 in flight.
//
// All methods of Pool, Agent and Pipeline are safe for concurrent use. A
// Request belongs to one request and is used by one phase at a time.
package pool
