package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent/waf"
	"github.com/agentwire/agentwire/engine"
)

func wafEvent(cid, method, uri string, kv ...string) *agentwire.RequestHeadersEvent {
	ev := &agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{CorrelationID: cid, ClientIP: "127.0.0.1", ClientPort: 50000, Protocol: "HTTP/1.1"},
		Method:   method,
		URI:      uri,
	}
	ev.Headers.Add("host", "127.0.0.1:8080")
	ev.Headers.Add("user-agent", "curl/8.5.0")
	ev.Headers.Add("accept", "*/*")
	for i := 0; i+1 < len(kv); i += 2 {
		ev.Headers.Add(kv[i], kv[i+1])
	}
	return ev
}

func dialWAF(t *testing.T, addr string) (*engine.Conn, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	var opts []engine.Option
	if !strings.HasPrefix(addr, "unix:") {
		opts = append(opts, engine.WithInsecure())
	}
	c, err := engine.Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, ctx
}

// TestServeWAF: serve --agent waf on a Unix socket blocks the issue's
// SQL injection with 403 (CRS rule ids in the audit) and lets
// /index.html through, streams a request body with needs_more, fails
// closed on what it cannot inspect, and announces only the events it
// needs.
func TestServeWAF(t *testing.T) {
	addr := startServe(t, "--listen", "unix://"+shortSocketPath(t, "w.sock"), "--agent", "waf")
	c, ctx := dialWAF(t, addr)
	caps := c.Capabilities()
	if want := []int32{agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk, agentwire.EventRequestComplete}; !slices.Equal(caps.SupportedEvents, want) || caps.AgentID != "agentwire-waf" {
		t.Fatalf("capabilities %+v", caps)
	}
	r, err := c.RequestHeaders(ctx, wafEvent("w1", "GET", "/?id=1'%20OR%20'1'='1"))
	if err != nil || r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 403 ||
		!slices.Contains(r.Audit.RuleIDs, "942100") || !slices.Contains(r.Audit.Tags, waf.TagBlocked) {
		t.Fatalf("sqli: %+v %v", r, err)
	}
	if r, err = c.RequestHeaders(ctx, wafEvent("w2", "GET", "/index.html")); err != nil || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("index: %+v %v", r, err)
	}
	if r, err = c.RequestHeaders(ctx, wafEvent("w3", "POST", "/login", "content-type", "application/x-www-form-urlencoded", "content-length", "20")); err != nil || !r.NeedsMore {
		t.Fatalf("body headers: %+v %v", r, err)
	}
	r, err = c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "w3", Data: []byte("user=admin'--&pass=x"), IsLast: true})
	if err != nil || r.Decision.Kind != agentwire.DecisionBlock || r.NeedsMore {
		t.Fatalf("body: %+v %v", r, err)
	}
	// A body chunk the WAF cannot inspect (no transaction) fails closed.
	r, err = c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "nobody", Data: []byte("x=1"), IsLast: true})
	if err != nil || r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 500 {
		t.Fatalf("stray chunk: %+v %v", r, err)
	}
	if _, err := c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: "w2", Status: 200}); err == nil {
		t.Fatal("response headers sent to an agent that did not ask for them")
	}
}

// TestServeWAFFlags: --paranoia, --detection-only, --rules and
// --inspect-response reach the agent (over gRPC).
func TestServeWAFFlags(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "site.conf")
	if err := os.WriteFile(rules, []byte(`SecRule REQUEST_URI "@beginsWith /from-rules-file" "id:5001,phase:1,deny,status:451,log,msg:'site rule'"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startServe(t, "--listen", "127.0.0.1:0", "--agent", "waf", "--paranoia", "2", "--detection-only",
		"--rules", rules, "--inspect-response", "--max-transactions", "100", "--transaction-ttl", "5s")
	c, ctx := dialWAF(t, addr)
	if ev := c.Capabilities().SupportedEvents; !slices.Contains(ev, agentwire.EventResponseHeaders) || !slices.Contains(ev, agentwire.EventResponseBodyChunk) {
		t.Fatalf("events %v", ev)
	}
	// Blocked from paranoia level 2 only; reported, not blocked.
	r, err := c.RequestHeaders(ctx, wafEvent("f1", "GET", "/?id=1%20or%201"))
	if err != nil || r.Decision.Kind != agentwire.DecisionAllow || !slices.Contains(r.Audit.RuleIDs, "942390") || !slices.Contains(r.Audit.Tags, waf.TagWouldBlock) {
		t.Fatalf("paranoia 2: %+v %v", r, err)
	}
	r, err = c.RequestHeaders(ctx, wafEvent("f2", "GET", "/from-rules-file"))
	if err != nil || r.Decision.Kind != agentwire.DecisionAllow || !slices.Contains(r.Audit.RuleIDs, "5001") || !strings.Contains(string(r.Audit.Custom[waf.CustomKey]), `"status":451`) {
		t.Fatalf("rules file: %+v %v", r, err)
	}
	if r, err = c.ResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{CorrelationID: "f2", Status: 204}); err != nil || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("response: %+v %v", r, err)
	}
}

// TestServeWAFDial: serve --dial --agent waf registers on a proxy's
// reverse listener and blocks there too.
func TestServeWAFDial(t *testing.T) {
	addr, res := startProbeAccept(t, "--accept", shortSocketPath(t, "rw.sock"), "--json", "--uri", "/?id=1'%20OR%20'1'='1")
	startDial(t, "--dial", strings.TrimPrefix(addr, "unix://"), "--agent-id", "rev-waf", "--agent", "waf")
	r := waitResult(t, res)
	if r.code != 0 {
		t.Fatalf("probe --accept exit %d; stderr: %s", r.code, r.stderr)
	}
	if got := normLines(r.stdout); len(got) != 1 || got[0] != denyLine {
		t.Fatalf("got %q, want %q", got, denyLine)
	}
}

// TestServeWAFUsage: bad WAF flags are usage errors (exit 2) found before
// the rules are built; a rules file that does not load fails the command
// (exit 1).
func TestServeWAFUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--agent", "waf", "--paranoia", "5"}, "--paranoia 5: want 1 to 4"},
		{[]string{"--agent", "echo", "--paranoia", "2"}, "--paranoia applies to --agent waf only"},
		{[]string{"--agent", "deny", "--rules", "x.conf"}, "--rules applies to --agent waf only"},
		{[]string{"--agent", "waf", "--max-transactions", "0"}, "--max-transactions"},
		{[]string{"--agent", "waf", "--transaction-ttl", "1ms"}, "--transaction-ttl"},
	} {
		r := runCLI(t, append([]string{"serve", "--listen", "127.0.0.1:0"}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q (want 2 and %q)", c.args, r.code, r.stderr, c.want)
		}
	}
	r := runCLI(t, "serve", "--listen", "127.0.0.1:0", "--agent", "waf", "--rules", filepath.Join(t.TempDir(), "missing.conf"))
	if r.code != exitFail || !strings.Contains(r.stderr, "agentwire serve: waf: rules:") {
		t.Errorf("missing rules file: exit %d, stderr %q", r.code, r.stderr)
	}
}
