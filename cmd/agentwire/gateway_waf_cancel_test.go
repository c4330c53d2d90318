package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGatewayWAFAgentHeadersOnlyBodies is the WAF engineer's report, with
// the built binaries: `agentwire serve --agent waf --max-transactions 2`
// behind `agentwire gateway --agent unix://…`. An agent given with
// --agent gets request headers only; the WAF agent answers a request with
// a body needs_more and keeps its transaction open for the body, which
// never comes. The gateway cancels the request at the agent when it ends,
// which closes the transaction: 5 POSTs with small benign bodies, then a
// GET, all get 200 (without the cancel the third POST got the agent's
// overflow 503, the transactions staying open until their expiry).
// --agent means one connection to the agent, which orders the cancel of a
// request before the next request's headers (see the test below).
func TestGatewayWAFAgentHeadersOnlyBodies(t *testing.T) {
	sock := shortSocketPath(t, "waf.sock")
	agentProc := startProc(t, "serve", "--listen", "unix://"+sock, "--agent", "waf", "--max-transactions", "2")
	waitMatch(t, &agentProc.stderr, listeningRE, 30*time.Second)
	up := &upstreamRecorder{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	metrics := deadTCPAddr(t)
	gw := startProc(t, "gateway", "--listen", "127.0.0.1:0", "--upstream", upSrv.URL, "--agent", "unix://"+sock, "--metrics-listen", metrics)
	base := waitMatch(t, &gw.stdout, gatewayListeningRE, 15*time.Second)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	const form = "application/x-www-form-urlencoded"

	for i := range 5 {
		st, body := do(t, c, http.MethodPost, base+"/signup", form, "name=Ada+Lovelace&email=ada%40example.com")
		if st != http.StatusOK || body != "upstream /signup" {
			t.Fatalf("POST %d: %d %q, want 200 from the upstream; agent stderr:\n%s", i, st, body, agentProc.stderr.String())
		}
	}
	if st, body := get(t, c, base+benignTarget); st != http.StatusOK || !strings.HasPrefix(body, "upstream ") {
		t.Fatalf("GET after the POSTs: %d %q, want 200", st, body)
	}
	if n := up.count(); n != 6 {
		t.Fatalf("upstream got %d requests, want 6", n)
	}
	// The five cancels are counted on /metrics (the GET asked for nothing
	// more and gets none).
	if _, m := get(t, c, "http://"+metrics+"/metrics"); !strings.Contains(m, `agentwire_gateway_events_total{event="waiting_cancel"} 5`+"\n") {
		t.Fatalf("metrics lack 5 waiting cancels:\n%s", m)
	}
	if code := gw.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("gateway exit %d; stderr:\n%s", code, gw.stderr.String())
	}
	if code := agentProc.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("agent exit %d; stderr:\n%s", code, agentProc.stderr.String())
	}
}

// TestGatewayWAFAgentOversizedNoComplete: the same with a --config agent
// block that gives the WAF agent request bodies but not request_complete:
// a body over the gateway's limit is answered 413 without being sent, and
// the agent, which asked for it, is cancelled when the request ends. With
// room for 2 open transactions, 4 such requests and then a GET all get
// their answer (413, then 200), not the agent's overflow 503. The block
// has one connection, as --agent has: the cancel, fire and forget, goes
// out before the request's response, and the agent reads it (and closes
// the transaction, on its reader) before the next request's headers on
// the same connection, so that the outcome does not depend on timing.
// With the block's default 4 connections it may: the cancel and the next
// request then race on two connections (seen in 2 of about 60 runs on the
// shared machine).
func TestGatewayWAFAgentOversizedNoComplete(t *testing.T) {
	agentProc, cfg := startWAFWithConfig(t, `"request_headers" "request_body"`, "    connections 1\n")
	up := &upstreamRecorder{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	gw := startProc(t, "gateway", "--listen", "127.0.0.1:0", "--upstream", upSrv.URL, "--config", cfg)
	base := waitMatch(t, &gw.stdout, gatewayListeningRE, 15*time.Second)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	const form = "application/x-www-form-urlencoded"

	big := "text=" + strings.Repeat("a", 4096)
	for i := range 4 {
		if st, body := do(t, c, http.MethodPost, base+"/notes", form, big); st != http.StatusRequestEntityTooLarge {
			t.Fatalf("oversized POST %d: %d %q, want 413", i, st, body)
		}
	}
	if st, body := get(t, c, base+benignTarget); st != http.StatusOK || body != "upstream "+benignTarget {
		t.Fatalf("GET after the oversized POSTs: %d %q, want 200", st, body)
	}
	if n := up.count(); n != 1 {
		t.Fatalf("upstream got %d requests, want 1 (the GET)", n)
	}
	if code := gw.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("gateway exit %d; stderr:\n%s", code, gw.stderr.String())
	}
	if code := agentProc.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("agent exit %d; stderr:\n%s", code, agentProc.stderr.String())
	}
}
