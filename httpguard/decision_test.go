package httpguard

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

func TestDecisionResponse(t *testing.T) {
	cases := []struct {
		name    string
		d       agentwire.Decision
		status  int
		body    string
		headers map[string]string // expected on the recorder ("" = absent)
		refused bool
	}{
		{name: "block default", d: agentwire.Block(0), status: 403, body: "Forbidden\n",
			headers: map[string]string{"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff", "Content-Length": "10"}},
		{name: "block with status and body", d: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 429, Body: agentwire.Some("slow down")},
			status: 429, body: "slow down", headers: map[string]string{"Content-Length": "9"}},
		{name: "block explicit empty body", d: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 403, Body: agentwire.Some("")},
			status: 403, body: "", headers: map[string]string{"Content-Length": "0"}},
		{name: "block headers applied", d: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 451,
			Body: agentwire.Some(`{"error":"legal"}`), BlockHeaders: map[string]string{"content-type": "application/json", "x-block-reason": "geo", "retry-after": "60"}},
			status: 451, body: `{"error":"legal"}`, headers: map[string]string{"Content-Type": "application/json", "X-Block-Reason": "geo", "Retry-After": "60"}},
		{name: "block protected and invalid headers refused", d: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 403,
			BlockHeaders: map[string]string{"content-length": "999", "transfer-encoding": "chunked", "x-bad": "a\r\nb", "bad name": "x", "x-ok": "1"}},
			status: 403, body: "Forbidden\n", headers: map[string]string{"Content-Length": "10", "Transfer-Encoding": "", "X-Ok": "1", "X-Bad": ""}, refused: true},
		{name: "block status 1xx", d: agentwire.Block(101), status: 403, body: "Forbidden\n"},
		{name: "block status 1000", d: agentwire.Block(1000), status: 403, body: "Forbidden\n"},
		{name: "block status 600", d: agentwire.Block(600), status: 403, body: "Forbidden\n"},
		{name: "block 204 has no body", d: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 204, Body: agentwire.Some("x")},
			status: 204, body: "", headers: map[string]string{"Content-Length": ""}},
		{name: "block 200 serves the agent's page", d: agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 200, Body: agentwire.Some("maintenance")},
			status: 200, body: "maintenance"},
		{name: "redirect", d: agentwire.Redirect("https://login.example/?next=%2Fx", 0), status: 302, body: "",
			headers: map[string]string{"Location": "https://login.example/?next=%2Fx", "Content-Length": "0"}},
		{name: "redirect 301", d: agentwire.Redirect("/new", 301), status: 301, headers: map[string]string{"Location": "/new"}},
		{name: "redirect 303", d: agentwire.Redirect("/new", 303), status: 303},
		{name: "redirect 307", d: agentwire.Redirect("/new", 307), status: 307},
		{name: "redirect 308", d: agentwire.Redirect("/new", 308), status: 308},
		{name: "redirect 200 becomes 302", d: agentwire.Redirect("/new", 200), status: 302, headers: map[string]string{"Location": "/new"}},
		{name: "redirect 500 becomes 302", d: agentwire.Redirect("/new", 500), status: 302},
		{name: "redirect 304 becomes 302", d: agentwire.Redirect("/new", 304), status: 302},
		{name: "redirect without url blocks", d: agentwire.Redirect("", 302), status: 403, body: "Forbidden\n", headers: map[string]string{"Location": ""}},
		{name: "redirect with CRLF blocks", d: agentwire.Redirect("/x\r\nSet-Cookie: a=1", 302), status: 403, headers: map[string]string{"Location": "", "Set-Cookie": ""}},
		{name: "challenge", d: agentwire.Challenge("captcha", map[string]string{"site_key": "k1", "url": `https://c.example/?a="b"\`}),
			status: 401, body: "Unauthorized\n",
			headers: map[string]string{"Www-Authenticate": `captcha site_key="k1", url="https://c.example/?a=\"b\"\\"`, "Cache-Control": "no-store"}},
		{name: "challenge without params", d: agentwire.Challenge("js", nil), status: 401,
			headers: map[string]string{"Www-Authenticate": "js"}},
		{name: "challenge bad params left out", d: agentwire.Challenge("pow", map[string]string{"bad key": "1", "v": "a\nb", "difficulty": "20"}),
			status: 401, headers: map[string]string{"Www-Authenticate": `pow difficulty="20"`}, refused: true},
		{name: "challenge type not a token blocks", d: agentwire.Challenge("two words", nil), status: 403, headers: map[string]string{"Www-Authenticate": ""}},
		{name: "unknown kind blocks", d: agentwire.Decision{Kind: 42}, status: 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp Response
			if !DecisionResponse(&tc.d, &resp) {
				t.Fatal("no response")
			}
			if (resp.Err != nil) != tc.refused || (tc.refused && !errors.Is(resp.Err, ErrHeaderRefused)) {
				t.Errorf("Err = %v, refused %v", resp.Err, tc.refused)
			}
			rec := httptest.NewRecorder()
			if !WriteDecision(rec, &tc.d) {
				t.Fatal("WriteDecision wrote nothing")
			}
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.body != "" || tc.status == 204 || tc.status/100 == 3 {
				if got := rec.Body.String(); got != tc.body {
					t.Errorf("body %q, want %q", got, tc.body)
				}
			}
			for k, v := range tc.headers {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestDecisionResponseAllow(t *testing.T) {
	var resp Response
	resp.Status = 403
	resp.Header = append(resp.Header, Field{"X", "y"})
	d := agentwire.Allow()
	if DecisionResponse(&d, &resp) || resp.Status != 0 || len(resp.Header) != 0 {
		t.Errorf("allow: %+v", resp)
	}
	rec := httptest.NewRecorder()
	if WriteDecision(rec, &d) || rec.Body.Len() != 0 || len(rec.Header()) != 0 {
		t.Error("allow wrote a response")
	}
}

// TestVerdictResponse: synthetic verdicts answer with their status and
// the status text only; the agent's name, the reason and the error never
// reach the client.
func TestVerdictResponse(t *testing.T) {
	secret := errors.New("dial unix /run/secret-waf.sock: connection refused")
	closed := engine.FailurePolicy{}
	cases := []struct {
		v      engine.Verdict
		status int
		body   string
	}{
		{closed.Synthetic("waf-internal", engine.ReasonError, secret), 503, "Service Unavailable\n"},
		{closed.Synthetic("waf-internal", engine.ReasonTimeout, secret), 504, "Gateway Timeout\n"},
		{closed.Synthetic("waf-internal", engine.ReasonBreakerOpen, secret), 503, "Service Unavailable\n"},
		{closed.Synthetic("waf-internal", engine.ReasonBodyTooLarge, secret), 413, "Request Entity Too Large\n"},
		{engine.FailurePolicy{ErrorStatus: 502}.Synthetic("waf-internal", engine.ReasonError, secret), 502, "Bad Gateway\n"},
		{engine.FailurePolicy{ErrorStatus: 200}.Synthetic("waf-internal", engine.ReasonError, secret), 503, "Service Unavailable\n"},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		if !WriteVerdict(rec, &tc.v) {
			t.Fatalf("%v: nothing written", tc.v.Reason)
		}
		if rec.Code != tc.status || rec.Body.String() != tc.body || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%v: %d %q %v", tc.v.Reason, rec.Code, rec.Body.String(), rec.Header())
		}
		dump := rec.Body.String()
		for k, v := range rec.Header() {
			dump += k + strings.Join(v, "")
		}
		for _, leak := range []string{"waf-internal", "secret", "refused", "breaker", "body-too-large", "dial"} {
			if strings.Contains(strings.ToLower(dump), leak) {
				t.Errorf("%v: response reveals %q: %s", tc.v.Reason, leak, dump)
			}
		}
	}
	// Fail-open and not-subscribed verdicts let the request through.
	for _, v := range []engine.Verdict{
		engine.FailurePolicy{Mode: engine.FailOpen}.Synthetic("w", engine.ReasonTimeout, secret),
		closed.Synthetic("w", engine.ReasonNotSubscribed, nil),
	} {
		var resp Response
		if VerdictResponse(&v, &resp) {
			t.Errorf("%v: %+v", v.Reason, resp)
		}
	}
	// An agent's own decision inside a verdict is answered as a decision.
	reply := &agentwire.AgentResponse{Decision: agentwire.Redirect("/login", 307)}
	v := closed.Decide("w", reply, nil)
	rec := httptest.NewRecorder()
	if !WriteVerdict(rec, &v) || rec.Code != 307 || rec.Header().Get("Location") != "/login" {
		t.Errorf("agent redirect: %d %v", rec.Code, rec.Header())
	}
}

// TestDecisionsOverRealServer sends each kind of decision through a real
// server and client: net/http accepts every response (no panic on a bad
// status, no broken framing), and a redirect is followed, never a 5xx.
func TestDecisionsOverRealServer(t *testing.T) {
	decisions := map[string]agentwire.Decision{
		"/block":     {Kind: agentwire.DecisionBlock, Status: 65535, Body: agentwire.Some("x"), BlockHeaders: map[string]string{"content-length": "1000"}},
		"/redirect":  agentwire.Redirect("/landed", 0),
		"/challenge": agentwire.Challenge("captcha", map[string]string{"k": "v"}),
		"/empty":     {Kind: agentwire.DecisionBlock, Status: 304, Body: agentwire.Some("not allowed here")},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/landed" {
			_, _ = io.WriteString(w, "landed")
			return
		}
		d := decisions[r.URL.Path]
		WriteDecision(w, &d)
	}))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	for path, want := range map[string]struct {
		status int
		body   string
	}{"/block": {403, "x"}, "/redirect": {200, "landed"}, "/challenge": {401, "Unauthorized\n"}, "/empty": {304, ""}} {
		req, _ := http.NewRequestWithContext(testCtx(t), "GET", srv.URL+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != want.status || string(body) != want.body {
			t.Errorf("%s: %d %q %v, want %d %q", path, resp.StatusCode, body, err, want.status, want.body)
		}
	}
}
