package waf

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/corazawaf/coraza/v3"

	"github.com/agentwire/agentwire"
)

// Defaults.
const (
	// DefaultParanoia is the CRS paranoia level without WithParanoia.
	DefaultParanoia = 1
	// DefaultMaxTransactions bounds the transactions open at once without
	// WithMaxTransactions.
	DefaultMaxTransactions = 4096
	// DefaultTransactionTTL is how long a transaction may wait for its
	// request's next event without WithTransactionTTL.
	DefaultTransactionTTL = time.Minute
	// DefaultBlockStatus is the status of a block decision for an
	// interruption whose rule sets no status (Coraza's status 0), as
	// Coraza's net/http middleware answers a deny without status.
	DefaultBlockStatus = 403
)

// DefaultOverflowDecision is the decision for a request that arrives while
// WithMaxTransactions transactions are open: block 503. The request is not
// inspected, so it is not allowed either.
func DefaultOverflowDecision() agentwire.Decision { return agentwire.Block(503) }

// Option configures an Agent. Options are validated by New.
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

type config struct {
	paranoia        int
	paranoiaSet     bool
	detectionOnly   bool
	crs             bool
	ruleFiles       []string
	directives      []string
	waf             coraza.WAF
	requestBody     bool
	response        bool
	maxTransactions int
	ttl             time.Duration
	overflow        agentwire.Decision

	// Test hooks (set by this package's tests through unexported options).
	closeHook func(cid string, r closeReason) // when a transaction is closed
}

func defaultConfig() config {
	return config{
		paranoia:        DefaultParanoia,
		crs:             true,
		requestBody:     true,
		maxTransactions: DefaultMaxTransactions,
		ttl:             DefaultTransactionTTL,
		overflow:        DefaultOverflowDecision(),
	}
}

// newConfig applies opts over the defaults and checks the combination.
func newConfig(opts []Option) (config, error) {
	c := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return c, errors.New("agentwire: waf: nil option")
		}
		if err := o.apply(&c); err != nil {
			return c, err
		}
	}
	if c.waf != nil && (c.paranoiaSet || !c.crs || len(c.ruleFiles) > 0 || len(c.directives) > 0) {
		return c, errors.New("agentwire: waf: WithWAF excludes WithParanoia, WithoutCRS, WithRulesFile and WithDirectives (the WAF already holds its rules)")
	}
	if !c.crs && c.paranoiaSet {
		return c, errors.New("agentwire: waf: WithParanoia needs the Core Rule Set (it conflicts with WithoutCRS)")
	}
	return c, nil
}

// WithParanoia sets the CRS paranoia level, 1 (the default: few false
// positives) to 4 (most rules, most false positives). It sets the CRS
// variable tx.blocking_paranoia_level (the detection level follows it).
func WithParanoia(level int) Option {
	return optionFunc(func(c *config) error {
		if level < 1 || level > 4 {
			return fmt.Errorf("agentwire: waf: paranoia level %d out of range 1..4", level)
		}
		c.paranoia, c.paranoiaSet = level, true
		return nil
	})
}

// WithDetectionOnly makes the agent report instead of block: the rules run
// with SecRuleEngine DetectionOnly, every reply allows, and the audit
// metadata carries what matched and, tagged "waf:would-block", the
// interruption the rules would have caused. Default off (blocking). With
// WithWAF it also turns every interruption of that WAF into an allow.
func WithDetectionOnly() Option {
	return optionFunc(func(c *config) error { c.detectionOnly = true; return nil })
}

// WithoutCRS leaves the OWASP Core Rule Set out: only Coraza's recommended
// base configuration (@coraza.conf-recommended, with SecRuleEngine On) and
// the rules of WithRulesFile and WithDirectives are loaded. Default: the
// CRS is loaded (embedded, nothing is read from disk or the network).
func WithoutCRS() Option {
	return optionFunc(func(c *config) error { c.crs = false; return nil })
}

// WithRulesFile adds a SecLang file loaded after the CRS (repeatable, in
// order). The path is made absolute when the agent is built; an Include or
// a data file (@pmFromFile …) inside it is read relative to the file's
// directory, and names starting with @owasp_crs/, @crs-setup or
// @coraza.conf resolve to the embedded rule set.
func WithRulesFile(path string) Option {
	return optionFunc(func(c *config) error {
		if path == "" {
			return errors.New("agentwire: waf: empty rules file path")
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return fmt.Errorf("agentwire: waf: rules file %q: %w", path, err)
		}
		c.ruleFiles = append(c.ruleFiles, abs)
		return nil
	})
}

// WithDirectives adds SecLang directives loaded after the CRS and the rule
// files (repeatable, in order).
func WithDirectives(seclang string) Option {
	return optionFunc(func(c *config) error {
		c.directives = append(c.directives, seclang)
		return nil
	})
}

// WithWAF uses w, a Coraza WAF the caller built, instead of building one
// from the rule options (which it excludes). The inspection options
// (WithRequestBodyInspection, WithResponseInspection) still decide which
// events the agent asks for; w's SecRequestBodyAccess and
// SecResponseBodyAccess should agree with them. A WAF is safe for
// concurrent use and may be shared by several agents.
func WithWAF(w coraza.WAF) Option {
	return optionFunc(func(c *config) error {
		if w == nil {
			return errors.New("agentwire: waf: nil WAF")
		}
		c.waf = w
		return nil
	})
}

// WithRequestBodyInspection turns request body inspection on (the default)
// or off. Off, the agent asks for request headers only, runs the
// request-body phase without a body (SecRequestBodyAccess Off) and decides
// every request on its headers.
func WithRequestBodyInspection(on bool) Option {
	return optionFunc(func(c *config) error { c.requestBody = on; return nil })
}

// WithResponseInspection turns response inspection on or off (the
// default: the CRS's response rules are optional, and a proxy then sends
// the agent nothing after the request phases). On, the
// agent also asks for response headers and response body chunks and runs
// the CRS response phases (data leakage rules), with SecResponseBodyAccess
// On.
func WithResponseInspection(on bool) Option {
	return optionFunc(func(c *config) error { c.response = on; return nil })
}

// WithMaxTransactions bounds the transactions open at once (one per
// request between its request headers and the event that closes it).
// A request that arrives at the bound is not inspected: it is answered with
// the overflow decision (WithOverflowDecision) and counted in
// Stats.Rejected. Default DefaultMaxTransactions; at least 1.
func WithMaxTransactions(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1 {
			return fmt.Errorf("agentwire: waf: max transactions %d must be at least 1", n)
		}
		c.maxTransactions = n
		return nil
	})
}

// WithTransactionTTL sets how long an open transaction may wait for its
// request's next event. A transaction idle for longer is closed by the
// agent's sweeper (about every ttl/4) and counted in Stats.Expired; later
// events of that request find no transaction (see Agent). Default
// DefaultTransactionTTL; at least 10ms.
func WithTransactionTTL(ttl time.Duration) Option {
	return optionFunc(func(c *config) error {
		if ttl < 10*time.Millisecond {
			return fmt.Errorf("agentwire: waf: transaction ttl %v below 10ms", ttl)
		}
		c.ttl = ttl
		return nil
	})
}

// WithOverflowDecision sets the decision for a request that arrives while
// the maximum number of transactions is open. Default
// DefaultOverflowDecision (block 503); agentwire.Allow() lets such requests
// through uninspected (still tagged "waf:overloaded" and counted).
func WithOverflowDecision(d agentwire.Decision) Option {
	return optionFunc(func(c *config) error { c.overflow = d; return nil })
}
