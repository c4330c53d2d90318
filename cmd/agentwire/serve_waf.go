package main

import (
	"flag"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/waf"
)

// wafFlags are the flags of serve --agent waf.
type wafFlags struct {
	fs              *flag.FlagSet
	paranoia        int
	detectionOnly   bool
	rules           ruleFiles
	inspectResponse bool
	maxTransactions int
	ttl             time.Duration
}

// wafFlagNames are the flags that only apply to --agent waf.
var wafFlagNames = []string{"paranoia", "detection-only", "rules", "inspect-response", "max-transactions", "transaction-ttl"}

// ruleFiles is the repeatable --rules flag.
type ruleFiles []string

func (r *ruleFiles) String() string { return strings.Join(*r, ",") }

func (r *ruleFiles) Set(s string) error {
	if s == "" {
		return usagef("--rules: empty path")
	}
	*r = append(*r, s)
	return nil
}

func (w *wafFlags) register(fs *flag.FlagSet) {
	w.fs = fs
	fs.IntVar(&w.paranoia, "paranoia", waf.DefaultParanoia, "waf: OWASP CRS paranoia level, 1 (fewest false positives) to 4")
	fs.BoolVar(&w.detectionOnly, "detection-only", false, "waf: never block; report what the rules found (and would have blocked) in the audit metadata")
	fs.Var(&w.rules, "rules", "waf: SecLang rules file loaded after the CRS (repeatable)")
	fs.BoolVar(&w.inspectResponse, "inspect-response", false, "waf: also inspect response headers and bodies (CRS data-leakage rules)")
	fs.IntVar(&w.maxTransactions, "max-transactions", waf.DefaultMaxTransactions, "waf: requests inspected at once; more are answered block 503")
	fs.DurationVar(&w.ttl, "transaction-ttl", waf.DefaultTransactionTTL, "waf: how long a request's inspection waits for its next event")
}

// check validates the flags for the agent kind, before anything is built.
func (w *wafFlags) check(kind string) error {
	if kind != "waf" {
		var err error
		w.fs.Visit(func(f *flag.Flag) {
			for _, n := range wafFlagNames {
				if f.Name == n && err == nil {
					err = usagef("--%s applies to --agent waf only", n)
				}
			}
		})
		return err
	}
	switch {
	case w.paranoia < 1 || w.paranoia > 4:
		return usagef("--paranoia %d: want 1 to 4", w.paranoia)
	case w.maxTransactions < 1:
		return usagef("--max-transactions must be at least 1")
	case w.ttl < 10*time.Millisecond:
		return usagef("--transaction-ttl must be at least 10ms")
	}
	return nil
}

// build creates the WAF agent and the server options it needs: the
// capabilities of its configuration, and a fail-closed error decision
// (block 500), so that a request the WAF could not inspect is never
// allowed. Handlers run on worker goroutines (the rules cost hundreds of
// microseconds per request).
func (w *wafFlags) build() (*waf.Agent, []agent.Option, error) {
	opts := []waf.Option{
		waf.WithParanoia(w.paranoia),
		waf.WithResponseInspection(w.inspectResponse),
		waf.WithMaxTransactions(w.maxTransactions),
		waf.WithTransactionTTL(w.ttl),
	}
	if w.detectionOnly {
		opts = append(opts, waf.WithDetectionOnly())
	}
	for _, f := range w.rules {
		opts = append(opts, waf.WithRulesFile(f))
	}
	a, err := waf.New(opts...)
	if err != nil {
		return nil, nil, err
	}
	return a, []agent.Option{
		agent.WithCapabilities(a.Capabilities()),
		agent.WithErrorDecision(agentwire.Block(500)),
	}, nil
}
