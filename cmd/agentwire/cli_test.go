package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

const (
	echoLine = `{"event":"request_headers","decision":"allow","request_headers":[{"op":"set","name":"X-Agent-Processed","value":"true"}],"response_headers":[],"latency_us":0}`
	denyLine = `{"event":"request_headers","decision":"block","status":403,"request_headers":[],"response_headers":[],"latency_us":0}`
	bodyLine = `{"event":"request_body_chunk","decision":"allow","request_headers":[],"response_headers":[],"latency_us":0}`
	respLine = `{"event":"response_headers","decision":"allow","request_headers":[],"response_headers":[],"latency_us":0}`
)

// checkProbeJSON runs probe --json against addr and compares the lines
// (latencies normalised) with want.
func checkProbeJSON(t *testing.T, addr string, extra []string, want ...string) {
	t.Helper()
	args := append([]string{"probe", "--agent", addr, "--json"}, extra...)
	r := runCLI(t, args...)
	if r.code != 0 {
		t.Fatalf("probe exit %d; stderr: %s", r.code, r.stderr)
	}
	got := normLines(r.stdout)
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), r.stdout)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d:\n got  %s\n want %s", i, got[i], want[i])
		}
	}
	// Every line is one JSON object with a non-negative latency.
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s: %v", l, err)
		}
		if v, ok := m["latency_us"].(float64); !ok || v < 0 {
			t.Errorf("latency_us in %s", l)
		}
	}
}

func testServeProbe(t *testing.T, listen string) {
	t.Run("echo", func(t *testing.T) {
		addr := startServe(t, "--listen", listen, "--agent", "echo")
		checkProbeJSON(t, addr, []string{"--uri", "/admin/x"}, echoLine)
		checkProbeJSON(t, addr, []string{"--method", "POST", "--uri", "/x", "-H", "Content-Type: text/plain", "--body", "hello", "--response-status", "200"},
			echoLine, bodyLine, respLine)
	})
	if strings.HasPrefix(listen, "/") || strings.HasPrefix(listen, "unix") {
		// The socket path can be served by one agent at a time.
		listen = filepath.Join(filepath.Dir(strings.TrimPrefix(listen, "unix://")), "deny.sock")
	}
	t.Run("deny", func(t *testing.T) {
		addr := startServe(t, "--listen", listen, "--agent", "deny")
		checkProbeJSON(t, addr, []string{"--uri", "/admin/users"}, denyLine)
		checkProbeJSON(t, addr, []string{"--uri", "/public"}, echoLine)
	})
	t.Run("deny-prefix", func(t *testing.T) {
		if strings.Contains(listen, "/") {
			listen = filepath.Join(filepath.Dir(strings.TrimPrefix(listen, "unix://")), "deny2.sock")
		}
		addr := startServe(t, "--listen", listen, "--agent", "deny", "--deny-prefix", "/private")
		checkProbeJSON(t, addr, []string{"--uri", "/private/x"}, denyLine)
		checkProbeJSON(t, addr, []string{"--uri", "/admin"}, echoLine)
	})
}

func TestServeProbeGRPC(t *testing.T) {
	testServeProbe(t, "127.0.0.1:0")
}

func TestServeProbeGRPCScheme(t *testing.T) {
	addr := startServe(t, "--listen", "grpc://127.0.0.1:0", "--agent", "echo")
	if !strings.HasPrefix(addr, "grpc://127.0.0.1:") {
		t.Fatalf("listening on %q", addr)
	}
	checkProbeJSON(t, strings.TrimPrefix(addr, "grpc://"), nil, echoLine)
}

func TestServeProbeGRPCUnix(t *testing.T) {
	p := shortSocketPath(t, "g.sock")
	addr := startServe(t, "--listen", "grpc+unix://"+p, "--agent", "deny")
	checkProbeJSON(t, addr, []string{"--uri", "/admin"}, denyLine)
}

func TestServeProbeUDS(t *testing.T) {
	p := shortSocketPath(t, "a.sock")
	t.Run("path", func(t *testing.T) { testServeProbe(t, p) })
	t.Run("scheme", func(t *testing.T) {
		addr := startServe(t, "--listen", "unix://"+shortSocketPath(t, "b.sock"), "--agent", "deny")
		for _, enc := range []string{"json", "msgpack"} {
			checkProbeJSON(t, addr, []string{"--uri", "/admin", "--encoding", enc}, denyLine)
			checkProbeJSON(t, addr, []string{"--uri", "/", "--encoding", enc}, echoLine)
		}
	})
}

func TestServeProbeMTLS(t *testing.T) {
	pki := newTestPKI(t)
	addr := startServe(t, "--listen", "grpcs://127.0.0.1:0", "--agent", "echo",
		"--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-ca", pki.ca)
	if !strings.HasPrefix(addr, "grpcs://") {
		t.Fatalf("listening on %q", addr)
	}
	checkProbeJSON(t, addr, []string{"--tls-ca", pki.ca, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey}, echoLine)

	// Without a client certificate the server refuses the connection.
	r := runCLI(t, "probe", "--agent", addr, "--json", "--timeout", "2s", "--tls-ca", pki.ca)
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("probe without client certificate: exit %d, stdout %q", r.code, r.stdout)
	}
	// Without the CA the server certificate does not verify.
	r = runCLI(t, "probe", "--agent", addr, "--timeout", "2s", "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey)
	if r.code == 0 {
		t.Fatal("probe with an unknown server CA succeeded")
	}
}

func TestServeTLSNeedsCert(t *testing.T) {
	r := runCLI(t, "serve", "--listen", "grpcs://127.0.0.1:0")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--tls-cert") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestProbeHumanOutput(t *testing.T) {
	addr := startServe(t, "--listen", "127.0.0.1:0", "--agent", "deny")
	r := runCLI(t, "probe", "--agent", addr, "--uri", "/admin", "--response-status", "204")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{`agent "agentwire-deny"`, "protobuf payloads", "request_headers    block 403", "response_headers   allow"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, "probe", "--agent", addr, "--uri", "/ok")
	if !strings.Contains(r.stdout, "request header  set    X-Agent-Processed: true") {
		t.Errorf("output:\n%s", r.stdout)
	}
}

func TestProbeDeadEndpoint(t *testing.T) {
	cases := map[string]string{
		"tcp":  deadTCPAddr(t),
		"grpc": "grpc://" + deadTCPAddr(t),
		"uds":  "unix://" + shortSocketPath(t, "none.sock"),
	}
	for name, ep := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			r := runCLI(t, "probe", "--agent", ep, "--json", "--timeout", "2s")
			if r.code == 0 {
				t.Fatalf("exit 0 against a dead endpoint; stdout %q", r.stdout)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
			if !strings.HasPrefix(r.stderr, "agentwire probe: ") || len(r.stderr) < 30 {
				t.Errorf("stderr: %q", r.stderr)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"serve"}, "exactly one of --listen and --dial"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--agent", "allow"}, "want echo, deny or waf"},
		{[]string{"serve", "--dial", "/tmp/x.sock"}, "--agent-id"},
		{[]string{"serve", "--listen", "ftp://x:1"}, "unknown scheme"},
		{[]string{"serve", "--listen", "/tmp/x.sock", "--encodings", "msgpack"}, "must include json"},
		{[]string{"serve", "--listen", "/tmp/x.sock", "--encodings", "json,xml"}, "unknown encoding"},
		{[]string{"probe"}, "exactly one of --agent and --accept"},
		{[]string{"probe", "--agent", "127.0.0.1:1", "-H", "novalue"}, "invalid arguments"},
		{[]string{"probe", "--agent", "127.0.0.1:1", "--encoding", "msgpack"}, "unix-socket endpoints only"},
		{[]string{"probe", "--agent", "127.0.0.1:1", "extra"}, "unexpected argument"},
		{[]string{"bench"}, "--agent is required"},
		{[]string{"bench", "--agent", "127.0.0.1:1", "--encoding", "xml"}, "want json or msgpack"},
		{[]string{"demo", "--transport", "carrier-pigeon"}, "want auto, grpc or uds"},
	}
	for _, c := range cases {
		r := runCLI(t, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q (want 2 and %q)", c.args, r.code, r.stderr, c.want)
		}
	}
	if r := runCLI(t); r.code != exitUsage || !strings.Contains(r.stderr, "Usage:") {
		t.Errorf("no args: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "probe", "-h"); r.code != exitOK || !strings.Contains(r.stderr, "latency_us") {
		t.Errorf("probe -h: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestHeaderFlags(t *testing.T) {
	var h headerFlags
	for _, s := range []string{"Host: example.com", "X-Multi: a", "x-multi:b ", "Empty:"} {
		if err := h.Set(s); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
	}
	want := agentwire.Headers{
		{Name: "host", Values: []string{"example.com"}},
		{Name: "x-multi", Values: []string{"a", "b"}},
		{Name: "empty", Values: []string{""}},
	}
	if len(h) != len(want) {
		t.Fatalf("got %+v", h)
	}
	for i := range want {
		if h[i].Name != want[i].Name || strings.Join(h[i].Values, "|") != strings.Join(want[i].Values, "|") {
			t.Errorf("header %d: got %+v want %+v", i, h[i], want[i])
		}
	}
	for _, bad := range []string{"nocolon", ": v", "bad name: v", "a: b\r\nc: d"} {
		if err := h.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	cases := []struct {
		in   string
		kind endpointKind
		addr string
		ok   bool
	}{
		{"127.0.0.1:50051", epGRPC, "127.0.0.1:50051", true},
		{"grpc://localhost:1/", epGRPC, "localhost:1", true},
		{"grpcs://a.example:443", epGRPCS, "a.example:443", true},
		{"grpc+unix:///run/a.sock", epGRPCUnix, "/run/a.sock", true},
		{"unix:///run/a.sock", epUnix, "/run/a.sock", true},
		{"unix:/run/a.sock", epUnix, "/run/a.sock", true},
		{"/run/a.sock", epUnix, "/run/a.sock", true},
		{"", 0, "", false},
		{"localhost", 0, "", false},
		{"grpc://host:", 0, "", false},
		{"unix://run/a.sock", epUnix, "/run/a.sock", true}, // as the Rust pool reads it
		{"unix:relative.sock", 0, "", false},
		{"unix://", 0, "", false},
		{"http://x:1", 0, "", false},
	}
	for _, c := range cases {
		e, err := parseEndpoint(c.in)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v", c.in, err)
			continue
		}
		if c.ok && (e.kind != c.kind || e.addr != c.addr) {
			t.Errorf("%q: got kind %d addr %q", c.in, e.kind, e.addr)
		}
	}
}

func TestBenchJSON(t *testing.T) {
	addr := startServe(t, "--listen", "127.0.0.1:0", "--agent", "echo")
	r := runCLI(t, "bench", "--agent", addr, "--concurrency", "4", "--conns", "2", "--duration", "300ms", "--warmup", "50ms", "--body-size", "100", "--json",
		"--agent-pid", strconv.Itoa(os.Getpid())) // the in-process agent

	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.Count(strings.TrimSpace(r.stdout), "\n") != 0 {
		t.Fatalf("want one line, got:\n%s", r.stdout)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	for _, k := range []string{"requests_per_sec", "p50_us", "p90_us", "p99_us", "p999_us", "allocs_per_request", "cpu_us_per_request", "errors", "requests", "concurrency", "agent_cpu_us_per_request"} {
		if _, ok := m[k].(float64); !ok {
			t.Errorf("key %q missing or not a number in %s", k, r.stdout)
		}
	}
	if m["requests_per_sec"].(float64) <= 0 || m["errors"].(float64) != 0 || m["concurrency"].(float64) != 4 ||
		m["conns"].(float64) != 2 || m["body_size"].(float64) != 100 || m["transport"] != "grpc" || m["encoding"] != "protobuf" {
		t.Errorf("implausible report %s", r.stdout)
	}
}

// TestBenchRawBodies: --raw-bodies sends MessagePack body data as bin (the
// agent answers every chunk) and says so in the report.
func TestBenchRawBodies(t *testing.T) {
	addr := startServe(t, "--listen", "unix://"+shortSocketPath(t, "raw.sock"), "--agent", "echo")
	r := runCLI(t, "bench", "--agent", addr, "--encoding", "msgpack", "--raw-bodies", "--body-size", "100000",
		"--concurrency", "2", "--duration", "200ms", "--warmup", "0s", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if m["raw_bodies"] != true || m["errors"].(float64) != 0 || m["requests"].(float64) <= 0 || m["body_size"].(float64) != 100000 {
		t.Errorf("implausible report %s", r.stdout)
	}
}

// TestBenchReportsNegotiatedEncoding: the report names the encoding the
// handshake chose, also when --encoding is not given (the engine's default
// offer, json only).
func TestBenchReportsNegotiatedEncoding(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ serve, ask, want string }{
		{"json,msgpack", "", "json"},
		{"json", "", "json"},
		{"json,msgpack", "msgpack", "msgpack"},
		{"json,msgpack", "json", "json"},
	} {
		sock := filepath.Join(dir, strings.ReplaceAll(c.serve, ",", "-")+c.ask+".sock")
		addr := startServe(t, "--listen", "unix://"+sock, "--agent", "echo", "--encodings", c.serve)
		args := []string{"bench", "--agent", addr, "--concurrency", "2", "--duration", "100ms", "--warmup", "0s", "--json"}
		if c.ask != "" {
			args = append(args, "--encoding", c.ask)
		}
		r := runCLI(t, args...)
		if r.code != 0 {
			t.Fatalf("%+v: exit %d: %s", c, r.code, r.stderr)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		if m["encoding"] != c.want || m["transport"] != "uds" {
			t.Errorf("agent offering %s, bench asking %q: report %s, want encoding %q", c.serve, c.ask, r.stdout, c.want)
		}
	}
}

func TestBenchHumanAndProfiles(t *testing.T) {
	addr := startServe(t, "--listen", "127.0.0.1:0", "--agent", "echo")
	dir := t.TempDir()
	cpu, mem, mu := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "allocs.pprof"), filepath.Join(dir, "mutex.pprof")
	r := runCLI(t, "bench", "--agent", addr, "--concurrency", "2", "--duration", "200ms", "--warmup", "0",
		"--cpuprofile", cpu, "--memprofile", mem, "--mutexprofile", mu)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"requests/s", "latency p50", "latency p99.9", "allocs/req", "CPU/req", "errors           0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, p := range []string{cpu, mem, mu} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", p, err)
		}
	}
}

func TestBenchDeadEndpoint(t *testing.T) {
	r := runCLI(t, "bench", "--agent", deadTCPAddr(t), "--duration", "100ms", "--json")
	if r.code != exitFail || r.stdout != "" || !strings.Contains(r.stderr, "connect") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestDemo(t *testing.T) {
	for tr, want := range map[string]string{"auto": "uds (unix://", "grpc": "grpc (grpc://127.0.0.1:"} {
		t.Run(tr, func(t *testing.T) { testDemo(t, tr, want) })
	}
}

func testDemo(t *testing.T, transport, wantTransport string) {
	r := runCLI(t, "demo", "--duration", "300ms", "--concurrency", "8", "--transport", transport)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"transport        " + wantTransport, "decision check   allow, set X-Agent-Processed: true", "requests/s", "errors           0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	// stderr is not a terminal here: no progress bar.
	if strings.Contains(r.stderr, "\r") || strings.Contains(r.stderr, "requests,") {
		t.Errorf("progress bar on a non-terminal: %q", r.stderr)
	}
}

// startBinary starts the built command and returns it with a reader of its
// stderr lines.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	// An io.Writer, not StderrPipe: Wait returns only after everything the
	// process wrote was copied here, so a test that reads the buffer after
	// waitExit sees the last lines (with a pipe, Wait closed it while a
	// reader goroutine could still be behind: a flake that lost
	// "draining\nstopped").
	var buf syncBuffer
	cmd.Stderr = &buf
	cmd.WaitDelay = 5 * time.Second // a child holding stderr open cannot stall Wait
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &buf
}

// waitExit waits for cmd and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("process did not exit within %v", d)
		return -1
	}
}

func TestServeBinarySIGTERM(t *testing.T) {
	listens := []string{"127.0.0.1:0", "unix://" + shortSocketPath(t, "term.sock"), shortSocketPath(t, "term2.sock")}
	for _, listen := range listens {
		t.Run(listen, func(t *testing.T) {
			cmd, stderr := startBinary(t, "serve", "--listen", listen, "--agent", "deny")
			addr := waitMatch(t, stderr, listeningRE, 20*time.Second)
			isUnix := strings.HasPrefix(addr, "unix://")
			path := strings.TrimPrefix(addr, "unix://")
			if isUnix {
				if fi, err := os.Stat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
					t.Fatalf("socket %s: %v", path, err)
				}
			}
			checkProbeJSON(t, addr, []string{"--uri", "/admin"}, denyLine)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := waitExit(t, cmd, 20*time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, stderr.String())
			}
			if !regexp.MustCompile(`draining\nstopped\n`).MatchString(stderr.String()) {
				t.Errorf("stderr:\n%s", stderr.String())
			}
			if isUnix {
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Errorf("socket file left behind: %v", err)
				}
			}
		})
	}
}

func TestServeBinarySIGINT(t *testing.T) {
	cmd, stderr := startBinary(t, "serve", "--listen", "127.0.0.1:0")
	waitMatch(t, stderr, listeningRE, 20*time.Second)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT; stderr:\n%s", code, stderr.String())
	}
}

func TestServeListenFailure(t *testing.T) {
	// A port already in use: serve fails at once with a message.
	addr := startServe(t, "--listen", "127.0.0.1:0")
	r := runCLI(t, "serve", "--listen", addr)
	if r.code != exitFail || !strings.Contains(r.stderr, "address already in use") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
