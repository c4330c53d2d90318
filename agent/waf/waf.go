package waf

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corazawaf/coraza/v3"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// Errors returned by the handler methods (the agent server answers them
// with its error decision, see the package documentation). Test with
// errors.Is.
var (
	// ErrNoTransaction: an event that carries something to inspect (a
	// non-empty body chunk, response headers) arrived for a request without
	// an open transaction: its request headers never reached this agent,
	// were refused at the bound, or its transaction was closed by a block,
	// a cancel or expiry.
	ErrNoTransaction = errors.New("agentwire: waf: no open transaction for the request")
	// ErrOutOfSequence: an event arrived that the request's transaction
	// does not expect at this point (a request body chunk after the last
	// one, response headers twice, a response body chunk before the
	// response headers). The transaction is closed.
	ErrOutOfSequence = errors.New("agentwire: waf: event out of sequence")
	// ErrInspection: Coraza failed (an error from a body write or body
	// processing) or panicked. The transaction is closed.
	ErrInspection = errors.New("agentwire: waf: inspection failed")
	// ErrClosed: the Agent was closed; new requests are not inspected.
	ErrClosed = errors.New("agentwire: waf: agent closed")
)

// Audit tags set by the agent (AgentResponse.Audit.Tags).
const (
	// TagBlocked marks a block decision caused by a rule interruption.
	TagBlocked = "waf:blocked"
	// TagWouldBlock marks an allow in detection-only mode where the rules
	// would have interrupted the request (the interruption is in
	// Audit.Custom[CustomKey]).
	TagWouldBlock = "waf:would-block"
	// TagDetectionOnly is set on every reply with audit data in
	// detection-only mode.
	TagDetectionOnly = "waf:detection-only"
	// TagOverloaded marks the overflow decision given to a request that
	// arrived while the maximum number of transactions was open.
	TagOverloaded = "waf:overloaded"
)

// CustomKey is the Audit.Custom key under which an interruption (real or,
// in detection-only mode, potential) is reported as a JSON object
// {"action","status","rule_id","data","detection_only"}.
const CustomKey = "waf"

// Agent is a web application firewall agent: an agent.Handler (and
// agent.Canceller) that runs every request through Coraza with the OWASP
// Core Rule Set. See the package documentation for the transaction
// lifecycle. Create it with New, serve it with an agent.Server (pass
// agent.WithCapabilities(a.Capabilities())), and Close it after the server
// has stopped. All methods are safe for concurrent use.
type Agent struct {
	agent.BaseHandler

	cfg   config
	waf   coraza.WAF
	txns  *xsync.Map[string, *txn]
	open  atomic.Int64
	epoch time.Time
	st    counters

	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

var (
	_ agent.Handler   = (*Agent)(nil)
	_ agent.Canceller = (*Agent)(nil)
)

// New builds the Coraza WAF described by opts (unless WithWAF supplies
// one) and returns the agent, whose sweeper goroutine runs until Close.
// Building the WAF parses the CRS's rule files from the embedded rule set:
// about 0.2 s of CPU and 20 MiB of heap (measured on a 2-core Xeon).
func New(opts ...Option) (*Agent, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	w := cfg.waf
	if w == nil {
		wc, err := corazaConfig(&cfg)
		if err != nil {
			return nil, err
		}
		if w, err = coraza.NewWAF(wc); err != nil {
			return nil, fmt.Errorf("agentwire: waf: rules: %w", err)
		}
	}
	a := &Agent{
		cfg:   cfg,
		waf:   w,
		txns:  xsync.NewMap[string, *txn](),
		epoch: time.Now(),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go a.sweeper()
	return a, nil
}

// CorazaConfig returns the Coraza configuration New builds its WAF from
// for opts: the same rules, limits and engine mode. It lets a program
// evaluate requests in-process exactly as the agent does (for example
// with Coraza's net/http middleware, as this package's differential test
// and the bench/waf comparison do). WithWAF is not accepted.
func CorazaConfig(opts ...Option) (coraza.WAFConfig, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.waf != nil {
		return nil, errors.New("agentwire: waf: CorazaConfig does not take WithWAF")
	}
	return corazaConfig(&cfg)
}

// corazaConfig assembles the directives: Coraza's recommended base
// configuration, the engine mode and body access the options ask for, no
// Coraza audit log (the agent reports in its replies), then the CRS setup,
// the paranoia level and the CRS rules, then the user's files and
// directives.
func corazaConfig(c *config) (coraza.WAFConfig, error) {
	var b strings.Builder
	b.WriteString("Include @coraza.conf-recommended\n")
	if c.detectionOnly {
		b.WriteString("SecRuleEngine DetectionOnly\n")
	} else {
		b.WriteString("SecRuleEngine On\n")
	}
	b.WriteString("SecAuditEngine Off\n")
	b.WriteString("SecRequestBodyAccess " + onOff(c.requestBody) + "\n")
	b.WriteString("SecResponseBodyAccess " + onOff(c.response) + "\n")
	if c.crs {
		b.WriteString("Include @crs-setup.conf.example\n")
		fmt.Fprintf(&b, "SecAction \"id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d\"\n", c.paranoia)
		b.WriteString("Include @owasp_crs/*.conf\n")
	}
	wc := coraza.NewWAFConfig().WithRootFS(rootFS{}).WithDirectives(b.String())
	for _, f := range c.ruleFiles {
		wc = wc.WithDirectivesFromFile(f)
	}
	for _, d := range c.directives {
		wc = wc.WithDirectives(d)
	}
	return wc, nil
}

func onOff(on bool) string {
	if on {
		return "On"
	}
	return "Off"
}

// Capabilities returns what the agent announces in the handshake: exactly
// the events its configuration needs (request headers always; request
// body chunks with request body inspection; response headers and body
// chunks with response inspection; request complete whenever a
// transaction can outlive one event, so that the proxy can close it),
// streaming bodies and cancellation, the agent SDK's default concurrency
// (agent.DefaultMaxConcurrency: adjust Features.ConcurrentRequests and
// Limits.MaxConcurrency when the server uses agent.WithMaxConcurrency) and
// the default limits (agentwire.DefaultLimits: bodies up to 10 MiB, below
// the 12.5 MiB Coraza accepts by default). Pass it to the server with
// agent.WithCapabilities; empty agent id, name and version are filled in by
// the server.
func (a *Agent) Capabilities() agentwire.Capabilities {
	ev := []int32{agentwire.EventRequestHeaders}
	if a.cfg.requestBody {
		ev = append(ev, agentwire.EventRequestBodyChunk)
	}
	if a.cfg.response {
		ev = append(ev, agentwire.EventResponseHeaders, agentwire.EventResponseBodyChunk)
	}
	if a.cfg.requestBody || a.cfg.response {
		ev = append(ev, agentwire.EventRequestComplete)
	}
	lim := agentwire.DefaultLimits()
	lim.MaxConcurrency = agent.DefaultMaxConcurrency
	return agentwire.Capabilities{
		SupportedEvents: ev,
		Features: agentwire.Features{
			StreamingBody:      a.cfg.requestBody || a.cfg.response,
			ConcurrentRequests: agent.DefaultMaxConcurrency,
			Cancellation:       true,
		},
		Limits: lim,
		Health: agentwire.HealthConfig{ReportIntervalMS: agent.DefaultHealthReportIntervalMS},
	}
}

// Close stops the sweeper and closes every open transaction (counted in
// Stats.ClosedShutdown). Requests that arrive later are answered with
// ErrClosed. Close it after the agent server has stopped. Idempotent.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.closed.Store(true)
		close(a.stop)
		<-a.done
		a.txns.Range(func(_ string, t *txn) bool {
			a.requestClose(t, closeShutdown)
			return true
		})
	})
	return nil
}

// now is the agent's monotonic clock in nanoseconds.
func (a *Agent) now() int64 { return int64(time.Since(a.epoch)) }

// sweeper closes idle transactions about every ttl/4 until Close.
func (a *Agent) sweeper() {
	defer close(a.done)
	tk := time.NewTicker(max(a.cfg.ttl/4, 5*time.Millisecond))
	defer tk.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-tk.C:
			a.sweep(a.now())
		}
	}
}

// OnCancel closes the cancelled request's transaction (at once, or as
// soon as an event of that request being inspected right now is done).
func (a *Agent) OnCancel(_ context.Context, c agentwire.Cancel) {
	if t, ok := a.txns.Load(c.CorrelationID); ok {
		a.requestClose(t, closeCancel)
	}
}

// Stats are the agent's counters. Transactions: Open = Opened - Closed,
// and Closed is the sum of the Closed* counters.
type Stats struct {
	// Open is the number of transactions open now.
	Open int64
	// Opened counts transactions begun (request headers accepted).
	Opened uint64
	// Closed counts transactions closed, for any reason.
	Closed uint64
	// ClosedDone: closed after the last event the rules needed (a
	// decision was final and no further event was expected).
	ClosedDone uint64
	// ClosedComplete: closed by the request's RequestComplete event.
	ClosedComplete uint64
	// ClosedCancel: closed by a cancel from the proxy.
	ClosedCancel uint64
	// ClosedExpired: closed by the sweeper after WithTransactionTTL of
	// idleness.
	ClosedExpired uint64
	// ClosedReplaced: closed because new request headers arrived with the
	// same correlation id.
	ClosedReplaced uint64
	// ClosedError: closed after an inspection error, a panic or an event
	// out of sequence.
	ClosedError uint64
	// ClosedShutdown: closed by Close.
	ClosedShutdown uint64
	// Blocked counts block decisions caused by interruptions.
	Blocked uint64
	// Detected counts transactions with an interruption that was reported
	// and not enforced (detection-only mode).
	Detected uint64
	// Rejected counts requests that arrived at the bound (not inspected,
	// answered with the overflow decision).
	Rejected uint64
	// Errors counts handler errors (ErrNoTransaction, ErrOutOfSequence,
	// ErrInspection, ErrClosed) and panics while a transaction was being
	// closed (recovered; the transaction is closed all the same).
	Errors uint64
}

type counters struct {
	opened, blocked, detected, rejected, errors atomic.Uint64
	closed                                      [closeReasons]atomic.Uint64
}

// Stats returns a snapshot of the counters (each read atomically; the set
// is not one atomic snapshot while requests are running).
func (a *Agent) Stats() Stats {
	s := Stats{
		Open:           a.open.Load(),
		Opened:         a.st.opened.Load(),
		ClosedDone:     a.st.closed[closeDone].Load(),
		ClosedComplete: a.st.closed[closeComplete].Load(),
		ClosedCancel:   a.st.closed[closeCancel].Load(),
		ClosedExpired:  a.st.closed[closeExpired].Load(),
		ClosedReplaced: a.st.closed[closeReplaced].Load(),
		ClosedError:    a.st.closed[closeError].Load(),
		ClosedShutdown: a.st.closed[closeShutdown].Load(),
		Blocked:        a.st.blocked.Load(),
		Detected:       a.st.detected.Load(),
		Rejected:       a.st.rejected.Load(),
		Errors:         a.st.errors.Load(),
	}
	s.Closed = s.ClosedDone + s.ClosedComplete + s.ClosedCancel + s.ClosedExpired + s.ClosedReplaced + s.ClosedError + s.ClosedShutdown
	return s
}

// parseLength parses a Content-Length value; ok is false when it is not a
// decimal number.
func parseLength(s string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 63)
	return n, err == nil
}
