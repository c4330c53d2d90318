package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The two requests (issue 16, "tried as a new user would"), with
// the port of the gateway in front.
const (
	sqliTarget   = "/?id=1'%20OR%20'1'='1"
	benignTarget = "/index.html"
)

// count returns how many requests the upstream got.
func (u *upstreamRecorder) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.processed)
}

// do sends one request and returns the status and the body.
func do(t *testing.T, c *http.Client, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestGatewayWAFInProcess: with --waf-inprocess the gateway runs Coraza
// with the WAF agent's CRS configuration in front of the upstream: the
// issue's SQLi query and an SQLi form body get 403 without reaching the
// upstream, /index.html and a benign form pass.
func TestGatewayWAFInProcess(t *testing.T) {
	up := &upstreamRecorder{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	base, _ := startGateway(t, "--listen", "127.0.0.1:0", "--upstream", upSrv.URL, "--waf-inprocess", "--paranoia", "1")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	const form = "application/x-www-form-urlencoded"

	if st, body := get(t, c, base+sqliTarget); st != http.StatusForbidden {
		t.Fatalf("%s: %d %q, want 403", sqliTarget, st, body)
	}
	if st, body := do(t, c, http.MethodPost, base+"/login", form, "user=admin&pass=1'+OR+'1'='1"); st != http.StatusForbidden {
		t.Fatalf("POST /login with an SQLi body: %d %q, want 403", st, body)
	}
	if n := up.count(); n != 0 {
		t.Fatalf("blocked requests reached the upstream (%d)", n)
	}
	if st, body := get(t, c, base+benignTarget); st != http.StatusOK || body != "upstream /index.html" {
		t.Fatalf("%s: %d %q", benignTarget, st, body)
	}
	if st, body := do(t, c, http.MethodPost, base+"/signup", form, "name=Ada+Lovelace&email=ada%40example.com"); st != http.StatusOK || body != "upstream /signup" {
		t.Fatalf("POST /signup: %d %q", st, body)
	}
	if n := up.count(); n != 2 {
		t.Fatalf("upstream got %d requests, want 2", n)
	}
}

// TestGatewayWAFUsage: --paranoia belongs to --waf-inprocess and is 1 to
// 4; the help describes the mode.
func TestGatewayWAFUsage(t *testing.T) {
	up := "http://127.0.0.1:9"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--paranoia", "2"}, "--paranoia applies to --waf-inprocess only"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--waf-inprocess", "--paranoia", "5"}, "--paranoia 5: want 1 to 4"},
		{[]string{"--listen", "127.0.0.1:0", "--upstream", up, "--waf-inprocess", "--paranoia", "0"}, "--paranoia 0: want 1 to 4"},
	} {
		r := runCLI(t, append([]string{"gateway"}, tc.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit 2 mentioning %q", tc.args, r.code, r.stderr, r.stdout, tc.want)
		}
	}
	r := runCLI(t, "gateway", "-h")
	for _, want := range []string{"[--waf-inprocess [--paranoia 1-4]]", "benchmark and comparison mode", "-waf-inprocess"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("gateway -h lacks %q:\n%s", want, r.stderr)
		}
	}
}

// curlGet sends target to addr with exactly the bytes curl 8 sends for
// `curl http://ADDR/TARGET` (request line as given, Host, User-Agent,
// Accept) and returns the response's status and body.
func curlGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: "+addr+"\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestGatewayWAFAgentAsNewUser is the "tried as a new user would",
// with the built binary: `agentwire serve --listen unix://…/waf.sock
// --agent waf` and `agentwire gateway --listen 127.0.0.1:0 --upstream URL
// --agent unix://…/waf.sock` in front of an upstream; then
// curl "http://ADDR/?id=1'%20OR%20'1'='1" gets 403 without reaching the
// upstream and curl http://ADDR/index.html gets the upstream's page. The
// requests go out as curl's bytes on the wire, and through curl itself
// when it is installed.
func TestGatewayWAFAgentAsNewUser(t *testing.T) {
	sock := shortSocketPath(t, "waf.sock")
	agentProc := startProc(t, "serve", "--listen", "unix://"+sock, "--agent", "waf")
	waitMatch(t, &agentProc.stderr, listeningRE, 30*time.Second)
	up := &upstreamRecorder{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	gw := startProc(t, "gateway", "--listen", "127.0.0.1:0", "--upstream", upSrv.URL, "--agent", "unix://"+sock)
	base := waitMatch(t, &gw.stdout, gatewayListeningRE, 15*time.Second)
	addr := strings.TrimPrefix(base, "http://")

	if st, body := curlGet(t, addr, sqliTarget); st != http.StatusForbidden {
		t.Fatalf("curl %q: %d %q, want 403", base+sqliTarget, st, body)
	}
	if n := up.count(); n != 0 {
		t.Fatalf("the SQLi request reached the upstream")
	}
	if st, body := curlGet(t, addr, benignTarget); st != http.StatusOK || body != "upstream /index.html" {
		t.Fatalf("curl %s: %d %q, want 200 from the upstream", base+benignTarget, st, body)
	}

	if curl, err := exec.LookPath("curl"); err != nil {
		t.Log("curl is not installed: checked with its request bytes only")
	} else {
		run := func(url string) string {
			out, err := exec.Command(curl, "-sS", "--max-time", "20", "-w", " %{http_code}", url).Output()
			if err != nil {
				t.Fatalf("curl %s: %v", url, err)
			}
			return string(out)
		}
		if out := run(base + sqliTarget); !strings.HasSuffix(out, " 403") {
			t.Fatalf("curl %q: %q, want status 403", base+sqliTarget, out)
		}
		if out := run(base + benignTarget); out != "upstream /index.html 200" {
			t.Fatalf("curl %s: %q, want the upstream's page and 200", base+benignTarget, out)
		}
		if n := up.count(); n != 2 {
			t.Fatalf("upstream got %d requests, want 2 (/index.html twice)", n)
		}
	}
	if code := gw.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("gateway exit %d; stderr:\n%s", code, gw.stderr.String())
	}
	if code := agentProc.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("agent exit %d; stderr:\n%s", code, agentProc.stderr.String())
	}
}

// TestGatewayWAFAgentBodies is docs/waf-gateway.md's body inspection: a
// gateway whose agent block gives the WAF agent request_headers,
// request_body and request_complete blocks an SQLi form body with 403 and
// passes a benign one; a body over the gateway's limit gets 413 and the
// agent's transaction for it is closed by request_complete (with room for
// 2 open transactions, 4 such requests leave the next request allowed,
// not refused with the agent's overflow 503).
func TestGatewayWAFAgentBodies(t *testing.T) {
	_, cfg := startWAFWithConfig(t, `"request_headers" "request_body" "request_complete"`, "")
	up := &upstreamRecorder{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	base, _ := startGateway(t, "--listen", "127.0.0.1:0", "--upstream", upSrv.URL, "--config", cfg)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	const form = "application/x-www-form-urlencoded"

	if st, body := do(t, c, http.MethodPost, base+"/login", form, "user=admin'--&pass=x"); st != http.StatusForbidden {
		t.Fatalf("POST /login with an SQLi body: %d %q, want 403", st, body)
	}
	if st, body := do(t, c, http.MethodPost, base+"/signup", form, "name=Ada+Lovelace&email=ada%40example.com"); st != http.StatusOK || body != "upstream /signup" {
		t.Fatalf("POST /signup: %d %q", st, body)
	}
	big := "text=" + strings.Repeat("a", 4096)
	for i := range 4 {
		if st, body := do(t, c, http.MethodPost, base+"/notes", form, big); st != http.StatusRequestEntityTooLarge {
			t.Fatalf("oversized POST %d: %d %q, want 413", i, st, body)
		}
		// request_complete goes out after the response: wait until the
		// agent has closed the transaction (an allowed GET opens and
		// closes one of its own), so that the next request finds room.
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, _ := get(t, c, base+benignTarget)
			if st == http.StatusOK {
				break
			}
			if st != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("GET %s after oversized POST %d: %d (the agent's transactions were not closed)", benignTarget, i, st)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if n := up.count(); n != 5 {
		t.Fatalf("upstream got %d requests, want 5 (the benign POST and 4 GETs)", n)
	}
}

// startWAFWithConfig starts `serve --agent waf --max-transactions 2` on a
// Unix socket and writes a gateway config with one agent block for it:
// the given events, fail-closed, a request body limit of 1024 bytes, and
// the extra lines, if any. It returns the agent process and the config's
// path.
func startWAFWithConfig(t *testing.T, events, extra string) (*proc, string) {
	t.Helper()
	sock := shortSocketPath(t, "waf.sock")
	agentProc := startProc(t, "serve", "--listen", "unix://"+sock, "--agent", "waf", "--max-transactions", "2")
	waitMatch(t, &agentProc.stderr, listeningRE, 30*time.Second)
	cfg := filepath.Join(t.TempDir(), "waf.kdl")
	src := fmt.Sprintf("agent \"waf\" {\n    unix-socket %q\n    events %s\n    failure-mode \"closed\"\n    max-request-body-bytes 1024\n%s}\n", sock, events, extra)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return agentProc, cfg
}
