package main

import (
	"flag"
	"fmt"
	"net/http"

	"github.com/corazawaf/coraza/v3"
	corazahttp "github.com/corazawaf/coraza/v3/http"

	"github.com/agentwire/agentwire/agent/waf"
)

// gatewayWAFHelp is the part of the gateway's help about --waf-inprocess.
const gatewayWAFHelp = `

--waf-inprocess is a benchmark and comparison mode: the gateway runs
Coraza in its own process (Coraza's net/http middleware, outermost, in
front of the agents if any) with the rules of "agentwire serve --agent
waf" (the embedded OWASP CRS at --paranoia, default 1; request bodies
inspected), instead of or besides asking a WAF agent. It is what
bench/waf.sh gateway compares the WAF agent against.`

// gatewayWAF are the gateway's in-process WAF flags.
type gatewayWAF struct {
	fs        *flag.FlagSet
	inprocess bool
	paranoia  int
}

func (g *gatewayWAF) register(fs *flag.FlagSet) {
	g.fs = fs
	fs.BoolVar(&g.inprocess, "waf-inprocess", false, "benchmark/comparison mode: run Coraza with the WAF agent's CRS rules in-process (its net/http middleware) in front of the upstream")
	fs.IntVar(&g.paranoia, "paranoia", waf.DefaultParanoia, "CRS paranoia level of --waf-inprocess, 1 to 4")
}

// check validates the flags before anything is built.
func (g *gatewayWAF) check() error {
	if !g.inprocess {
		set := false
		if g.fs != nil {
			g.fs.Visit(func(f *flag.Flag) { set = set || f.Name == "paranoia" })
		}
		if set {
			return usagef("--paranoia applies to --waf-inprocess only")
		}
		return nil
	}
	if g.paranoia < 1 || g.paranoia > 4 {
		return usagef("--paranoia %d: want 1 to 4", g.paranoia)
	}
	return nil
}

// wrap returns h behind Coraza's net/http middleware with the WAF agent's
// configuration (waf.CorazaConfig: the same rules, limits and engine mode
// as agentwire serve --agent waf with the same paranoia level), or h
// itself without --waf-inprocess.
func (g *gatewayWAF) wrap(h http.Handler) (http.Handler, error) {
	if !g.inprocess {
		return h, nil
	}
	wc, err := waf.CorazaConfig(waf.WithParanoia(g.paranoia))
	if err != nil {
		return nil, err
	}
	w, err := coraza.NewWAF(wc)
	if err != nil {
		return nil, fmt.Errorf("agentwire: gateway: --waf-inprocess rules: %w", err)
	}
	return corazahttp.WrapHandler(w, h), nil
}
