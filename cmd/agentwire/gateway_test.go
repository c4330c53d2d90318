package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// proc is a process of the built binary whose output the test reads.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	err            error
}

// startProc starts the binary with args; the cleanup kills it if the test
// did not stop it.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary(t), args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends sig and waits for the exit; it returns the exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%v did not exit; stderr:\n%s", p.cmd.Args, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

var gatewayListeningRE = regexp.MustCompile(`^listening on (http://127\.0\.0\.1:\d+)\n`)

// startAgentProc runs "agentwire serve --listen unix://path --agent kind"
// and waits until it listens.
func startAgentProc(t *testing.T, path, kind string) *proc {
	t.Helper()
	p := startProc(t, "serve", "--listen", "unix://"+path, "--agent", kind)
	waitMatch(t, &p.stderr, listeningRE, 15*time.Second)
	return p
}

// upstreamRecorder is the service behind the gateway: it answers 200
// "upstream" and records the X-Agent-Processed header of each request.
type upstreamRecorder struct {
	mu        sync.Mutex
	processed []string
}

func (u *upstreamRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.processed = append(u.processed, r.Header.Get("X-Agent-Processed"))
	u.mu.Unlock()
	io.WriteString(w, "upstream "+r.URL.Path)
}

func (u *upstreamRecorder) last() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.processed) == 0 {
		return "<none>"
	}
	return u.processed[len(u.processed)-1]
}

// get is curl: it returns the status and the body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestGatewayScenario is the manual scenario with the built
// binary: `agentwire serve --listen unix:///…/waf.sock --agent deny` and
// `agentwire gateway --listen 127.0.0.1:0 --upstream URL --agent
// unix:///…/waf.sock` print their lines; /admin gives 403 and /x
// reaches the upstream with x-agent-processed: true; killing the agent
// gives 503 (closed) or passes through (open); restarting it restores
// service without touching the gateway; SIGTERM stops the gateway with
// exit 0 after exactly one line on stdout.
func TestGatewayScenario(t *testing.T) {
	for _, mode := range []string{"closed", "open"} {
		t.Run(mode, func(t *testing.T) {
			sock := shortSocketPath(t, "waf.sock")
			agentProc := startAgentProc(t, sock, "deny")
			up := &upstreamRecorder{}
			upSrv := httptest.NewServer(up)
			defer upSrv.Close()
			gw := startProc(t, "gateway", "--listen", "127.0.0.1:0", "--upstream", upSrv.URL, "--agent", "unix://"+sock, "--failure-mode", mode)
			base := waitMatch(t, &gw.stdout, gatewayListeningRE, 15*time.Second)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

			if st, body := get(t, c, base+"/admin"); st != 403 {
				t.Fatalf("/admin: %d %q", st, body)
			}
			if st, body := get(t, c, base+"/x"); st != 200 || body != "upstream /x" || up.last() != "true" {
				t.Fatalf("/x: %d %q, upstream saw x-agent-processed %q", st, body, up.last())
			}

			// Kill the agent: the gateway answers the policy.
			agentProc.stop(t, syscall.SIGKILL)
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, body := get(t, c, base+"/x")
				if mode == "closed" && st == 503 {
					break
				}
				if mode == "open" && st == 200 && up.last() == "" {
					break
				}
				if st != 200 || up.last() != "true" {
					t.Fatalf("agent killed, %s: %d %q (upstream saw x-agent-processed %q)", mode, st, body, up.last())
				}
				if time.Now().After(deadline) {
					t.Fatalf("agent killed, %s: still served through the agent after 10s", mode)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Restart it: service comes back without touching the gateway.
			startAgentProc(t, sock, "deny")
			deadline = time.Now().Add(15 * time.Second)
			for {
				st, _ := get(t, c, base+"/x")
				if st == 200 && up.last() == "true" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("agent restarted: last answer %d, upstream saw x-agent-processed %q", st, up.last())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if st, _ := get(t, c, base+"/admin"); st != 403 {
				t.Fatalf("/admin after the restart: %d", st)
			}
			tr.CloseIdleConnections()
			if code := gw.stop(t, syscall.SIGTERM); code != 0 {
				t.Fatalf("gateway exit %d after SIGTERM; stderr:\n%s", code, gw.stderr.String())
			}
			if out := gw.stdout.String(); strings.Count(out, "\n") != 1 || !gatewayListeningRE.MatchString(out) {
				t.Fatalf("stdout %q, want exactly one listening line", out)
			}
		})
	}
}

// startGateway runs "gateway args..." in-process until the test ends and
// returns its base URL and stderr; the cleanup stops it and checks that it
// exited 0.
func startGateway(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	return startCommand(t, "gateway", gatewayListeningRE, false, args...)
}

// TestGatewayPlainProxy: without --agent the gateway is a plain reverse
// proxy (the overhead benchmark's reference).
func TestGatewayPlainProxy(t *testing.T) {
	up := &upstreamRecorder{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	base, _ := startGateway(t, "--listen", "127.0.0.1:0", "--upstream", upSrv.URL)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	if st, body := get(t, &http.Client{Transport: tr}, base+"/admin"); st != 200 || body != "upstream /admin" || up.last() != "" {
		t.Fatalf("%d %q %q", st, body, up.last())
	}
}

// TestGatewayConfig: --config reads Zentinel agent blocks: an agent that
// takes request headers and response headers (here the deny agent, whose
// events the block lists), with the block's failure mode and timeout;
// /metrics serves the guard's and the agents' statistics.
func TestGatewayConfig(t *testing.T) {
	agentAddr := startServe(t, "--listen", "unix://"+shortSocketPath(t, "cfg.sock"), "--agent", "deny")
	sock := strings.TrimPrefix(agentAddr, "unix://")
	cfg := filepath.Join(t.TempDir(), "agents.kdl")
	src := fmt.Sprintf(`
// A Zentinel configuration: only the agents section is read.
server { worker-threads 2 }
agents {
    agent "waf" type="waf" {
        unix-socket %q
        events "request_headers" "response_headers" "request_complete"
        timeout-ms 500
        failure-mode "closed"
        connections 1
    }
}
`, sock)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	up := &upstreamRecorder{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	metrics := deadTCPAddr(t)
	base, _ := startGateway(t, "--listen", "127.0.0.1:0", "--upstream", upSrv.URL, "--config", cfg, "--metrics-listen", metrics)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	if st, _ := get(t, c, base+"/admin/x"); st != 403 {
		t.Fatalf("/admin/x: %d", st)
	}
	if st, body := get(t, c, base+"/ok"); st != 200 || body != "upstream /ok" || up.last() != "true" {
		t.Fatalf("/ok: %d %q %q", st, body, up.last())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Request-complete events go out after the responses.
		_, m := get(t, c, "http://"+metrics+"/metrics")
		for _, want := range []string{
			"agentwire_gateway_requests_total 2\n",
			`agentwire_gateway_blocked_total{phase="request_headers"} 1` + "\n",
			`agentwire_agent_requests_total{agent="waf",decision="block",event="request_headers"} 1` + "\n",
			`agentwire_agent_requests_total{agent="waf",decision="allow",event="request_headers"} 1` + "\n",
			`agentwire_agent_request_duration_seconds_bucket{agent="waf",event="request_headers",le="+Inf"} 2` + "\n",
		} {
			if !strings.Contains(m, want) {
				t.Fatalf("metrics lack %q:\n%s", want, m)
			}
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(m))
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		for _, name := range []string{"agentwire_agent_requests_total", "agentwire_agent_errors_total", "agentwire_agent_request_duration_seconds",
			"agentwire_agent_in_flight", "agentwire_agent_breaker_state", "agentwire_agent_connections", "agentwire_agent_health",
			"agentwire_agent_synthetic_decisions_total", "agentwire_gateway_events_total"} {
			if fams[name] == nil {
				t.Fatalf("family %s missing:\n%s", name, m)
			}
		}
		// Every call is counted once: 2 request headers + 1 response
		// headers + 2 request complete.
		var total float64
		for _, mt := range fams["agentwire_agent_requests_total"].GetMetric() {
			total += mt.GetCounter().GetValue()
		}
		if total == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls never reached 5 (%v):\n%s", total, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGatewayUsageErrors: a bad command line or configuration exits 2
// with a message; a configuration error names its file and line.
func TestGatewayUsageErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.kdl")
	if err := os.WriteFile(bad, []byte("agent \"waf\" {\n  unix-socket \"/run/waf.sock\"\n  timeout-ms 0\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(t.TempDir(), "zero.kdl")
	if err := os.WriteFile(zero, []byte("agent \"waf\" {\n  unix-socket \"/run/waf.sock\"\n  max-request-body-bytes 0\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := "http://127.0.0.1:9"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--upstream", up}, "--listen"},
		{[]string{"--listen", "127.0.0.1:0"}, "--upstream"},
		{[]string{"--listen", "nope", "--upstream", up}, "--listen"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", "ftp://x"}, "--upstream"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--failure-mode", "maybe"}, "--failure-mode"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--timeout", "0s"}, "--timeout"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--agent", "ftp://x"}, "unknown scheme"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--agent", "/a.sock", "--agent", "/a.sock"}, "twice"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--config", bad}, "bad.kdl:3: timeout-ms 0"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--config", zero}, "zero.kdl:1: agent \"waf\": a body limit of 0"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--config", filepath.Join(t.TempDir(), "missing.kdl")}, "missing.kdl"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "extra"}, "unexpected argument"},
	} {
		r := runCLI(t, append([]string{"gateway"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 2 mentioning %q", tc.args, r.code, r.stderr, r.stdout, tc.want)
		}
	}
}
