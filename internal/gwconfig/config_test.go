package gwconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/httpguard"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// summary is a stable, readable form of a Config for golden files.
func summary(c *Config) any {
	type ep struct {
		Transport, Address, Target string
		Weight                     int
		TLS                        *TLS `json:",omitempty"`
		Line                       int
	}
	type agent struct {
		ID, Type                          string
		Line                              int
		Endpoints                         []ep
		Connections                       int
		LoadBalance, Events, Timeout      string
		FailureMode                       string
		CircuitBreaker                    string
		MaxRequestBodyBytes               int64
		MaxResponseBodyBytes              int64
		RequestBodyMode, ResponseBodyMode string
		ChunkTimeout                      string
		Config                            json.RawMessage
		MaxConcurrentCalls                int
	}
	var out struct {
		Agents            []agent
		Ignored, Warnings []string
	}
	for _, a := range c.Agents {
		s := agent{ID: a.ID, Type: a.Type, Line: a.Line, Connections: a.Connections, LoadBalance: a.LoadBalance.String(),
			Events: a.Events.String(), Timeout: a.Timeout.String(), FailureMode: a.FailureMode.String(),
			CircuitBreaker: breakerString(a.CircuitBreaker), MaxRequestBodyBytes: a.MaxRequestBodyBytes,
			MaxResponseBodyBytes: a.MaxResponseBodyBytes, RequestBodyMode: a.RequestBodyMode.String(),
			ResponseBodyMode: a.ResponseBodyMode.String(), ChunkTimeout: a.ChunkTimeout.String(), Config: a.Config,
			MaxConcurrentCalls: a.MaxConcurrentCalls}
		for _, e := range a.Endpoints {
			s.Endpoints = append(s.Endpoints, ep{e.Transport.String(), e.Address, e.Target(), e.Weight, e.TLS, e.Line})
		}
		out.Agents = append(out.Agents, s)
	}
	out.Ignored, out.Warnings = c.Ignored, c.Warnings
	return out
}

func breakerString(b CircuitBreaker) string {
	return strings.Join([]string{
		"failures=" + itoa(int64(b.FailureThreshold)), "successes=" + itoa(int64(b.SuccessThreshold)),
		"open=" + b.Timeout.String(), "probes=" + itoa(int64(b.HalfOpenMaxRequests)),
	}, " ")
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// TestParseGolden parses the example file and compares every field with
// the golden summary (go test -run TestParseGolden -update rewrites it).
func TestParseGolden(t *testing.T) {
	path := filepath.Join("testdata", "agents.kdl")
	c, err := ParseFile(path, Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(summary(c), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "agents.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("summary differs from %s:\n%s", golden, got)
	}
}

func parseOne(t *testing.T, src string, d Defaults) *Agent {
	t.Helper()
	c, err := Parse("t.kdl", []byte(src), d)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Agents) != 1 {
		t.Fatalf("%d agents", len(c.Agents))
	}
	return &c.Agents[0]
}

// TestDefaults: an agent with only a transport gets Zentinel's defaults,
// and the failure mode and timeout of the Defaults given.
func TestDefaults(t *testing.T) {
	src := `agent "a" { unix-socket "/tmp/a.sock" }`
	a := parseOne(t, src, Defaults{})
	want := Agent{
		ID: "a", Line: 1,
		Endpoints:   []Endpoint{{Transport: TransportUnixSocket, Address: "/tmp/a.sock", Weight: 1, Line: 1}},
		Connections: 4, LoadBalance: BalanceRoundRobin,
		Events: Events(EventRequestHeaders), Timeout: time.Second, FailureMode: engine.FailClosed,
		CircuitBreaker:      CircuitBreaker{FailureThreshold: 5, SuccessThreshold: 2, Timeout: 30 * time.Second, HalfOpenMaxRequests: 1},
		MaxRequestBodyBytes: 1 << 20, MaxResponseBodyBytes: 1 << 20,
		RequestBodyMode: BodyMode{Mode: httpguard.ModeBuffer}, ResponseBodyMode: BodyMode{Mode: httpguard.ModeBuffer},
		ChunkTimeout: 5 * time.Second, MaxConcurrentCalls: 100,
	}
	gotJSON, _ := json.Marshal(a)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("defaults\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if a := parseOne(t, src, ZentinelDefaults); a.FailureMode != engine.FailOpen || a.Timeout != time.Second {
		t.Errorf("Zentinel defaults: %v %v", a.FailureMode, a.Timeout)
	}
	if a := parseOne(t, src, Defaults{FailureMode: engine.FailOpen, Timeout: 3 * time.Second}); a.FailureMode != engine.FailOpen || a.Timeout != 3*time.Second {
		t.Errorf("command-line defaults: %v %v", a.FailureMode, a.Timeout)
	}
	// The file wins over the defaults.
	a = parseOne(t, `agent "a" { unix-socket "/a.sock"; failure-mode "closed"; timeout-ms 20 }`, Defaults{FailureMode: engine.FailOpen, Timeout: 3 * time.Second})
	if a.FailureMode != engine.FailClosed || a.Timeout != 20*time.Millisecond {
		t.Errorf("file over defaults: %v %v", a.FailureMode, a.Timeout)
	}
}

func TestParseSpellings(t *testing.T) {
	for _, tc := range []struct {
		src   string
		check func(a *Agent) bool
	}{
		{`agent "a" { unix-socket path="/p.sock" }`, func(a *Agent) bool {
			return a.Endpoints[0].Address == "/p.sock" && a.Endpoints[0].Target() == "unix:/p.sock"
		}},
		{`agent "a" { unix-socket "rel/p" }`, func(a *Agent) bool { return a.Endpoints[0].Target() == "unix:rel/p" }},
		{`agent "a" { grpc address="http://localhost:50051" }`, func(a *Agent) bool {
			return a.Endpoints[0].Transport == TransportGRPC && a.Endpoints[0].Target() == "http://localhost:50051"
		}},
		{`agent "a" { grpc "[::1]:9" { tls-insecure } }`, func(a *Agent) bool { return a.Endpoints[0].TLS != nil && a.Endpoints[0].TLS.InsecureSkipVerify }},
		{`agent "a" { grpc "h:9" { tls } }`, func(a *Agent) bool { return a.Endpoints[0].TLS != nil && !a.Endpoints[0].TLS.InsecureSkipVerify }},
		{`agent "a" { grpc "h:9" }`, func(a *Agent) bool { return a.Endpoints[0].TLS == nil }},
		{`agent "a" { unix-socket "/a"; events "request-headers" "request_body" "response-headers" "response_body" "request-complete" "web-socket-frame" "guardrail" }`,
			func(a *Agent) bool { return a.Events == 127 }},
		{`agent "a" { unix-socket "/a"; events "websocket_frame" "web_socket_frame" "websocket-frame" "log" "request_complete" }`,
			func(a *Agent) bool { return a.Events == Events(EventWebSocketFrame|EventRequestComplete) }},
		{`agent "a" { unix-socket "/a"; failure-mode "fail_open" }`, func(a *Agent) bool { return a.FailureMode == engine.FailOpen }},
		{`agent "a" { unix-socket "/a"; failure-mode "open" }`, func(a *Agent) bool { return a.FailureMode == engine.FailOpen }},
		{`agent "a" { unix-socket "/a"; failure-mode "fail-open" }`, func(a *Agent) bool { return a.FailureMode == engine.FailOpen }},
		{`agent "a" { unix-socket "/a"; failure-mode "fail_closed" }`, func(a *Agent) bool { return a.FailureMode == engine.FailClosed }},
		{`agent "a" { unix-socket "/a"; failure-mode closed }`, func(a *Agent) bool { return a.FailureMode == engine.FailClosed }}, // KDL 2 bare string
		{`agent "a" { unix-socket "/a"; request-body-mode "hybrid" }`, func(a *Agent) bool { return a.RequestBodyMode == BodyMode{httpguard.ModeHybrid, 65536} }},
		{`agent "a" { unix-socket "/a"; response-body-mode "hybrid:100" }`, func(a *Agent) bool { return a.ResponseBodyMode == BodyMode{httpguard.ModeHybrid, 100} }},
		{`agent "a" { unix-socket "/a"; load-balance "p2c" }`, func(a *Agent) bool { return a.LoadBalance == BalancePowerOfTwo }},
		{`agent "a" { unix-socket "/a"; load-balance "least_connections" }`, func(a *Agent) bool { return a.LoadBalance == BalanceLeastInFlight }},
		{`agent "a" { unix-socket "/a"; load-balance "random" }`, func(a *Agent) bool { return a.LoadBalance == BalanceRandom }},
		{`agent "a" { unix-socket "/a"; max-request-body-bytes 0 }`, func(a *Agent) bool { return a.MaxRequestBodyBytes == 0 }},
		{`agent "a" { unix-socket "/a"; max-response-body-bytes 0x10_0000 }`, func(a *Agent) bool { return a.MaxResponseBodyBytes == 1<<20 }},
		{`agent "a" { unix-socket "/a"; circuit-breaker { timeout-seconds 5 } }`, func(a *Agent) bool {
			return a.CircuitBreaker == CircuitBreaker{5, 2, 5 * time.Second, 1}
		}},
		{`agent "a" { unix-socket "/a"; config }`, func(a *Agent) bool { return string(a.Config) == "{}" }},
		{`agent "a" { unix-socket "/a"; config {} }`, func(a *Agent) bool { return string(a.Config) == "{}" }},
		{`agent "a" { unix-socket "/a" }`, func(a *Agent) bool { return a.Config == nil }},
		{`agents { agent "a" { type "custom"; unix-socket "/a" } }`, func(a *Agent) bool { return a.Type == "custom" }},
		{`(note)agent "a" { unix-socket (path)"/a"; timeout-ms (ms)5 }`, func(a *Agent) bool { return a.Timeout == 5*time.Millisecond }},
	} {
		c, err := Parse("t.kdl", []byte(tc.src), Defaults{})
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		if !tc.check(&c.Agents[0]) {
			b, _ := json.Marshal(c.Agents[0])
			t.Errorf("%s: %s", tc.src, b)
		}
	}
}

// TestConfigBlockJSON: a config block becomes the JSON Zentinel's
// kdl_to_json makes of it.
func TestConfigBlockJSON(t *testing.T) {
	src := `agent "a" {
    unix-socket "/a"
    config {
        flag
        one 1
        many 1 "two" #false null
        obj k="v" n=2
        nested { deeper { x 1.5 } }
        merged k="prop" { k "child"; c 3 }
        dup 1
        dup 2
        inf #inf
        infs #inf 1
        empty-block {}
        neg -7
        str "\u{1F600}\t"
    }
}`
	a := parseOne(t, src, Defaults{})
	var got, want any
	if err := json.Unmarshal(a.Config, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(`{
		"flag": true, "one": 1, "many": [1, "two", false, null], "obj": {"k": "v", "n": 2},
		"nested": {"deeper": {"x": 1.5}}, "merged": {"k": "child", "c": 3}, "dup": 2,
		"inf": true, "infs": 1, "empty-block": true, "neg": -7, "str": "\ud83d\ude00\t"}`), &want)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("config\n got %s\nwant %s", gb, wb)
	}
}

// TestParseErrors: every problem is an error naming its line.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
		msg  string
	}{
		{"", 0, "no agent definitions"},
		{"server { }\n", 0, "no agent definitions"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  timout-ms 5\n}", 3, `unknown key "timout-ms"`},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  timeout-ms 0\n}", 3, "timeout-ms 0 out of range (1 to 3600000)"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  timeout-ms -5\n}", 3, "out of range"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  timeout-ms 3600001\n}", 3, "out of range"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  timeout-ms \"100\"\n}", 3, "timeout-ms must be an integer, not a string"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  timeout-ms 1.5\n}", 3, "must be an integer, not a number"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  timeout-ms 1 2\n}", 3, "takes exactly one value"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  timeout-ms 1\n  timeout-ms 2\n}", 4, "timeout-ms given twice (first on line 3)"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  failure-mode \"sometimes\"\n}", 3, `unknown failure-mode "sometimes"`},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  events\n}", 3, "events lists at least one event"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  events \"request_headers\"\n     \"bogus\"\n}", 4, `unknown key "bogus"`}, // a newline ends the node
		{"agent \"a\" {\n  unix-socket \"/a\"\n  events \"request_headers\" \\\n     \"bogus\"\n}", 4, `unknown event "bogus"`},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  events 1\n}", 3, "each event is a string"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  circuit-breaker {\n    failure-threshold 0\n  }\n}", 4, "failure-threshold 0 out of range"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  circuit-breaker {\n    failure-threshold 4294967296\n  }\n}", 4, "out of range"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  circuit-breaker {\n    half-open 1\n  }\n}", 4, `circuit-breaker: unknown key "half-open"`},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  circuit-breaker 5\n}", 3, "circuit-breaker takes a block"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  max-request-body-bytes -1\n}", 3, "out of range"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  max-request-body-bytes 99999999999999999999\n}", 3, "integer 99999999999999999999 out of range"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  request-body-mode \"hybrid:x\"\n}", 3, "invalid hybrid threshold"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  request-body-mode \"chunked\"\n}", 3, `unknown request-body-mode "chunked"`},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  max-concurrent-calls 0\n}", 3, "out of range"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  connections 2000\n}", 3, "connections 2000 out of range (1 to 1024)"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  load-balance \"health_based\"\n}", 3, `unknown load-balance "health_based"`},
		{"agent \"a\" {\n  unix-socket \"/a\"\n  config \"x\"\n}", 3, "config takes a block"},
		{"agent \"a\" {\n  events \"request_headers\"\n}", 1, `agent "a" has no transport`},
		{"agent \"a\" {\n  http \"http://x\"\n}", 2, "http transport is not supported"},
		{"agent \"a\" {\n  unix-socket\n}", 2, "unix-socket needs a path"},
		{"agent \"a\" {\n  unix-socket \"\"\n}", 2, "non-empty string"},
		{"agent \"a\" {\n  unix-socket \"/a\" \"/b\"\n}", 2, "takes one path"},
		{"agent \"a\" {\n  unix-socket \"/a\" path=\"/b\"\n}", 2, "path given twice"},
		{"agent \"a\" {\n  unix-socket \"/a\" weight=0\n}", 2, "weight 0 out of range"},
		{"agent \"a\" {\n  unix-socket \"/a\" mode=1\n}", 2, `unknown property "mode"`},
		{"agent \"a\" {\n  grpc \"ftp://h:1\"\n}", 2, `unknown scheme "ftp"`},
		{"agent \"a\" {\n  grpc \"justahost\"\n}", 2, "want host:port"},
		{"agent \"a\" {\n  grpc \"h:0\"\n}", 2, "invalid port"},
		{"agent \"a\" {\n  grpc \"h:1\" {\n    client-cert \"/c\"\n  }\n}", 2, "client-cert and client-key go together"},
		{"agent \"a\" {\n  grpc \"h:1\" {\n    tls-please\n  }\n}", 3, `grpc: unknown key "tls-please"`},
		{"agent {\n  unix-socket \"/a\"\n}", 1, "agent needs one argument, its id"},
		{"agent \"a\"\n", 1, `agent "a" needs a block`},
		{"agent \"a\" kind=\"x\" {\n  unix-socket \"/a\"\n}", 1, `unknown property "kind"`},
		{"agent \"a\" { unix-socket \"/a\" }\nagent \"a\" { unix-socket \"/b\" }\n", 2, `agent "a" defined twice (first on line 1)`},
		{"agents {\n  agnet \"a\" { unix-socket \"/a\" }\n}", 2, `unknown node "agnet" in agents`},
		{"agents \"x\" {\n}", 1, "agents takes no arguments"},
		// Syntax errors.
		{"agent \"a\" {\n  unix-socket \"/a\"\n", 1, "{ is never closed"},
		{"agent \"a\" {\n  unix-socket \"/a\n}\n", 2, "unterminated string"},
		{"agent \"a\" {\n  unix-socket \"/a\"\n}\n}\n", 4, "} without a matching {"},
		{"/* open\nagent \"a\" {}\n", 1, "unterminated /* comment"},
		{"agent \"a\" {\n  timeout-ms 1x\n}", 2, `invalid number "1x"`},
		{"agent \"a\" {\n  x \"\\q\"\n}", 2, `invalid escape \q`},
		{"agent \"a\" {\n  x \"\\u{D800}\"\n}", 2, `invalid \u{...} escape`},
		{"agent \"a\" {\n  x \"\"\"\n  y\n  \"\"\"\n}", 2, "multi-line strings"},
		{"agent \"a\" {\n  x #maybe\n}", 2, "unknown keyword"},
		{"agent \"a\" {\n  x \\ y\n}", 2, "line continuation"},
		{"agent \"a\" {\n  x {} 1\n}", 2, "unexpected text after a children block"},
		{"agent \"a\" {\n  x {} {}\n}", 2, "unexpected text after a children block"},
		{"agent \"a\" {\n  x \"a\"\"b\"\n}", 2, "expected a space"},
		{"agent \"a\" {\n  \xff\n}", 2, "invalid UTF-8"},
		{"agent \"a\" {\n  true 1\n}", 2, `"true" cannot be a name`},
		{strings.Repeat("a {", 70) + strings.Repeat("}", 70), 1, "nested deeper than 64"},
		{"agent \"a\" {\r\n  unix-socket \"/a\"\r\n  bad-key 1\r\n}", 3, `unknown key "bad-key"`},
		{"agent \"a\" {\r  unix-socket \"/a\"\r  bad-key 1\r}", 3, `unknown key "bad-key"`},
		{"// c\n/* a\n b */ agent \"a\" {\n  unix-socket \"/a\"; bad-key 1\n}", 4, `unknown key "bad-key"`},
		{"agent \"a\" {\n  x r#\"never closed\n}\n", 2, "unterminated raw string"},
	} {
		_, err := Parse("t.kdl", []byte(tc.src), Defaults{})
		var ce *Error
		if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
			t.Errorf("%q: %v, want an *Error", tc.src, err)
			continue
		}
		if ce.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) {
			t.Errorf("%q:\n got line %d: %s\nwant line %d: ...%s...", tc.src, ce.Line, ce.Msg, tc.line, tc.msg)
		}
		if ce.Line > 0 && !strings.HasPrefix(err.Error(), "agentwire: config t.kdl:"+itoa(int64(tc.line))+": ") {
			t.Errorf("%q: message %q", tc.src, err.Error())
		}
	}
}

func TestParseFileErrors(t *testing.T) {
	if _, err := ParseFile(filepath.Join(t.TempDir(), "missing.kdl"), Defaults{}); !errors.Is(err, ErrConfig) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.kdl")
	if err := os.WriteFile(big, make([]byte, MaxSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(big, Defaults{}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

func TestWarningsAndIgnored(t *testing.T) {
	c, err := Parse("t.kdl", []byte("server {}\nagent \"a\" {\n unix-socket \"/a\"\n protocol-version 2\n}\nroutes {}\n"), Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ignored) != 2 || c.Ignored[0] != "server (line 1)" || c.Ignored[1] != "routes (line 6)" {
		t.Errorf("ignored %q", c.Ignored)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "line 4") {
		t.Errorf("warnings %q", c.Warnings)
	}
	if a, ok := c.Agent("a"); !ok || a.ID != "a" {
		t.Error("Agent lookup")
	}
	if _, ok := c.Agent("b"); ok {
		t.Error("Agent lookup of a missing id")
	}
}

func readGolden() ([]byte, error) { return os.ReadFile(filepath.Join("testdata", "agents.kdl")) }

// allocatedBytes returns the bytes of heap fn allocated.
func allocatedBytes(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
