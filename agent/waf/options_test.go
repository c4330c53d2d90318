package waf

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/agentwire/agentwire"
)

// TestOptionsValidated: New rejects invalid options and conflicting
// combinations with an "agentwire: waf:" error.
func TestOptionsValidated(t *testing.T) {
	w, err := coraza.NewWAF(coraza.NewWAFConfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]Option{
		"paranoia 0":          {WithParanoia(0)},
		"paranoia 5":          {WithParanoia(5)},
		"nil option":          {nil},
		"nil waf":             {WithWAF(nil)},
		"waf and paranoia":    {WithWAF(w), WithParanoia(2)},
		"waf and directives":  {WithWAF(w), WithDirectives("SecRuleEngine On")},
		"waf and no crs":      {WithWAF(w), WithoutCRS()},
		"waf and rules file":  {WithWAF(w), WithRulesFile("x.conf")},
		"paranoia and no crs": {WithoutCRS(), WithParanoia(2)},
		"max transactions 0":  {WithMaxTransactions(0)},
		"ttl 1ms":             {WithTransactionTTL(time.Millisecond)},
		"empty rules file":    {WithRulesFile("")},
		"missing rules file":  {WithoutCRS(), WithRulesFile(filepath.Join(t.TempDir(), "none.conf"))},
		"bad directive":       {WithoutCRS(), WithDirectives("SecNoSuchDirective 1")},
	} {
		a, err := New(opts...)
		if err == nil {
			_ = a.Close()
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "agentwire: waf: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := CorazaConfig(WithWAF(w)); err == nil {
		t.Error("CorazaConfig took WithWAF")
	}
}

// TestWithWAF: the agent inspects with a WAF the caller built.
func TestWithWAF(t *testing.T) {
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithDirectives(`SecRuleEngine On
SecRule REQUEST_URI "@beginsWith /private" "id:1,phase:1,deny,status:401,log,msg:'private'"`))
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, WithWAF(w))
	if r := mustDo(t, a.OnRequestHeaders, headers("w1", "GET", "/private/x")); !isDecision(r, agentwire.Block(401)) {
		t.Fatalf("%+v", r)
	}
	if r := mustDo(t, a.OnRequestHeaders, headers("w2", "GET", "/public")); r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v", r)
	}
	// Detection-only on a WAF whose engine is On: the interruption is
	// reported, not enforced, and the request goes on.
	d := newAgent(t, WithWAF(w), WithDetectionOnly())
	r := mustDo(t, d.OnRequestHeaders, headers("w3", "GET", "/private/x"))
	if r.Decision.Kind != agentwire.DecisionAllow || !slices.Contains(r.Audit.Tags, TagWouldBlock) || !strings.Contains(string(r.Audit.Custom[CustomKey]), `"status":401`) {
		t.Fatalf("%+v", r)
	}
	wantStats(t, d, func(s Stats) bool { return s.Detected == 1 && s.Blocked == 0 && s.Open == 0 })
}

// TestRulesFile: a rules file is loaded after the rule set, with its
// Include and data files resolved relative to it.
func TestRulesFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("words.data", "forbiddenword\nanotherbadword\n")
	write("extra.conf", `SecRule REQUEST_URI "@beginsWith /from-include" "id:3001,phase:1,deny,status:451,log,msg:'included rule'"`+"\n")
	main := write("main.conf", `Include extra.conf
SecRule ARGS "@pmFromFile words.data" "id:3002,phase:2,deny,status:403,log,msg:'bad word'"
`)
	a := newAgent(t, WithoutCRS(), WithRulesFile(main))
	if r := mustDo(t, a.OnRequestHeaders, headers("f1", "GET", "/from-include")); !isDecision(r, agentwire.Block(451)) {
		t.Fatalf("%+v", r)
	}
	if r := mustDo(t, a.OnRequestHeaders, headers("f2", "GET", "/?q=a+forbiddenword")); !isDecision(r, agentwire.Block(403)) || !slices.Equal(r.Audit.RuleIDs, []string{"3002"}) {
		t.Fatalf("%+v", r)
	}
	if r := mustDo(t, a.OnRequestHeaders, headers("f3", "GET", "/fine")); r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("%+v", r)
	}
}

// TestParanoia: the paranoia level reaches the CRS: a request the
// differential corpus shows allowed at level 1 is blocked at level 2.
func TestParanoia(t *testing.T) {
	a := newAgent(t, WithParanoia(2))
	r := mustDo(t, a.OnRequestHeaders, headers("pl", "GET", "/?id=1%20or%201", "user-agent", "curl/8.5.0", "accept", "*/*"))
	if !isDecision(r, agentwire.Block(403)) || !slices.Contains(r.Audit.RuleIDs, "942390") {
		t.Fatalf("%+v", r)
	}
}

// TestDecisionFor: interruptions map to decisions as documented.
func TestDecisionFor(t *testing.T) {
	for _, tc := range []struct {
		it   types.Interruption
		want agentwire.Decision
	}{
		{types.Interruption{Action: "deny", Status: 0}, agentwire.Block(403)},
		{types.Interruption{Action: "deny", Status: 418}, agentwire.Block(418)},
		{types.Interruption{Action: "deny", Status: 5000}, agentwire.Block(403)},
		{types.Interruption{Action: "drop"}, agentwire.Block(403)},
		{types.Interruption{Action: "redirect", Status: 0, Data: "https://example.test/"}, agentwire.Redirect("https://example.test/", 302)},
		{types.Interruption{Action: "redirect", Status: 307, Data: "/login"}, agentwire.Redirect("/login", 307)},
		{types.Interruption{Action: "redirect", Status: 307}, agentwire.Block(307)},
	} {
		got := decisionFor(&tc.it)
		if got.Kind != tc.want.Kind || got.Status != tc.want.Status || got.URL != tc.want.URL {
			t.Errorf("%+v: %+v, want %+v", tc.it, got, tc.want)
		}
	}
}

// TestErrorsWrap: the handler errors are typed.
func TestErrorsWrap(t *testing.T) {
	a := newAgent(t, smallRules()...)
	_, err := do(a.OnRequestBodyChunk, chunk("nope", "x", 0, true))
	if !errors.Is(err, ErrNoTransaction) || !strings.HasPrefix(err.Error(), "agentwire: waf: ") {
		t.Fatalf("%v", err)
	}
}
