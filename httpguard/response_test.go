package httpguard

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
)

// testHooks applies header ops, may replace the response, and runs the
// body through a Planner with an upper-casing "mutation".
type testHooks struct {
	ops      []agentwire.HeaderOp
	replace  *agentwire.Decision
	mode     BodyMode
	upper    bool
	failBody error

	planner  Planner
	statuses []int
	bodyCall int
	ended    int
}

func (h *testHooks) Headers(status int, hdr http.Header) *Response {
	h.statuses = append(h.statuses, status)
	if h.replace != nil {
		var r Response
		DecisionResponse(h.replace, &r)
		return &r
	}
	_ = ApplyHeaderOps(hdr, h.ops)
	if h.upper || h.mode != ModeStream {
		hdr.Del("Content-Length")
	}
	_ = h.planner.Reset(h.mode, 0, NoLimit, -1)
	return nil
}

func (h *testHooks) Body(p []byte) ([]byte, error) {
	h.bodyCall++
	if h.failBody != nil {
		return nil, h.failBody
	}
	chunk, _, send, err := h.planner.Feed(p, false)
	if err != nil || !send {
		return nil, err
	}
	return h.mutate(chunk), nil
}

func (h *testHooks) End() ([]byte, error) {
	h.ended++
	chunk, _, send, err := h.planner.Feed(nil, true)
	if err != nil || !send {
		return nil, err
	}
	return h.mutate(chunk), nil
}

func (h *testHooks) mutate(b []byte) []byte {
	if h.upper {
		return bytes.ToUpper(b)
	}
	return b
}

// serveWith runs handler behind a ResponseInterceptor with hooks on a real
// server and returns the client's response and body.
func serveWith(t *testing.T, hooks ResponseHooks, handler http.Handler) (*http.Response, string, *ResponseInterceptor) {
	t.Helper()
	var ri *ResponseInterceptor
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri = NewResponseInterceptor(w, hooks)
		handler.ServeHTTP(ri, r)
		_ = ri.Finish()
	}))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", srv.URL, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	srv.Client().CloseIdleConnections()
	return resp, string(body), ri
}

func TestResponseInterceptorHeaderOps(t *testing.T) {
	hooks := &testHooks{mode: ModeStream, ops: []agentwire.HeaderOp{
		{Kind: agentwire.HeaderSet, Name: "x-agent", Value: "seen"},
		{Kind: agentwire.HeaderRemove, Name: "server"},
	}}
	resp, body, ri := serveWith(t, hooks, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "secret/1.0")
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(201)
		_, _ = io.WriteString(w, "he")
		_, _ = io.WriteString(w, "llo")
	}))
	if resp.StatusCode != 201 || body != "hello" || resp.Header.Get("X-Agent") != "seen" || resp.Header.Get("Server") != "" || resp.ContentLength != 5 {
		t.Errorf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	if in, out := ri.BodySizes(); in != 5 || out != 5 || ri.Status() != 201 || len(hooks.statuses) != 1 || hooks.ended != 1 {
		t.Errorf("sizes %d %d status %d hooks %+v", in, out, ri.Status(), hooks)
	}
}

// TestResponseInterceptorReplace: a response-phase block replaces the
// handler's status, headers and body (the Rust proxy ignores it,
// REFERENCE-DEFECTS B-X6).
func TestResponseInterceptorReplace(t *testing.T) {
	d := agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 502, Body: agentwire.Some("upstream leaked data")}
	hooks := &testHooks{replace: &d}
	resp, body, ri := serveWith(t, hooks, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream-Secret", "s3cr3t")
		w.Header().Set("Content-Length", "11")
		_, _ = io.WriteString(w, "secret body")
	}))
	if resp.StatusCode != 502 || body != "upstream leaked data" || resp.Header.Get("X-Upstream-Secret") != "" {
		t.Errorf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
	if in, out := ri.BodySizes(); in != 11 || out != int64(len("upstream leaked data")) || !ri.Replaced() || hooks.bodyCall != 0 || hooks.ended != 0 {
		t.Errorf("sizes %d %d replaced %v hooks %+v", in, out, ri.Replaced(), hooks)
	}
}

// TestResponseInterceptorMutationThroughReverseProxy: an upstream
// response with a Content-Length goes through httputil.ReverseProxy and a
// mutating agent; the client gets the mutated body with consistent
// framing, buffered or streamed.
func TestResponseInterceptorMutationThroughReverseProxy(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, strings.Repeat("card 4111-1111 ", 1000))
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	rp.Transport = tr
	for _, mode := range []BodyMode{ModeBuffer, ModeStream, ModeHybrid} {
		hooks := &testHooks{mode: mode, upper: true}
		resp, body, ri := serveWith(t, hooks, rp)
		if resp.StatusCode != 200 || body != strings.Repeat("CARD 4111-1111 ", 1000) {
			t.Errorf("%v: %d body of %d bytes %q...", mode, resp.StatusCode, len(body), body[:min(len(body), 20)])
		}
		if in, out := ri.BodySizes(); in != 15000 || out != 15000 {
			t.Errorf("%v: sizes %d %d", mode, in, out)
		}
	}
}

// TestResponseInterceptorAbort: an error from Body stops the response;
// the handler's writes fail with it.
func TestResponseInterceptorAbort(t *testing.T) {
	boom := errors.New("agent blocked the body")
	hooks := &testHooks{mode: ModeStream, failBody: boom}
	var writeErr error
	rec := httptest.NewRecorder()
	ri := NewResponseInterceptor(rec, hooks)
	_, _ = io.WriteString(ri, "a")
	_, writeErr = io.WriteString(ri, "b")
	if !errors.Is(writeErr, boom) || !errors.Is(ri.Finish(), boom) || !errors.Is(ri.Err(), boom) || rec.Body.Len() != 0 || hooks.ended != 0 {
		t.Errorf("write %v finish %v body %q ended %d", writeErr, ri.Err(), rec.Body.String(), hooks.ended)
	}
}

// TestResponseInterceptorImplicit200AndInformational: a handler that
// writes nothing still goes through Headers; 1xx responses pass through
// without consuming the final status.
func TestResponseInterceptorImplicit200AndInformational(t *testing.T) {
	hooks := &testHooks{mode: ModeStream}
	rec := httptest.NewRecorder()
	ri := NewResponseInterceptor(rec, hooks)
	ri.WriteHeader(http.StatusEarlyHints)
	if len(hooks.statuses) != 0 {
		t.Fatal("Headers called for a 1xx")
	}
	if err := ri.Finish(); err != nil {
		t.Fatal(err)
	}
	if len(hooks.statuses) != 1 || hooks.statuses[0] != 200 || ri.Status() != 200 || hooks.ended != 1 {
		t.Errorf("statuses %v status %d", hooks.statuses, ri.Status())
	}
	ri.WriteHeader(500) // superfluous
	if err := ri.Finish(); err != nil || hooks.ended != 1 || len(hooks.statuses) != 1 {
		t.Errorf("second Finish ran hooks again")
	}
}

// TestResponseInterceptorFlush: Flush reaches the client through the
// interceptor (streaming responses keep streaming), and headers go
// through Headers first.
func TestResponseInterceptorFlush(t *testing.T) {
	hooks := &testHooks{mode: ModeStream, ops: []agentwire.HeaderOp{{Kind: agentwire.HeaderSet, Name: "x-agent", Value: "1"}}}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := NewResponseInterceptor(w, hooks)
		_, _ = io.WriteString(ri, "event: 1\n\n")
		if err := http.NewResponseController(ri).Flush(); err != nil {
			t.Error(err)
		}
		<-release
		_, _ = io.WriteString(ri, "event: 2\n\n")
		_ = ri.Finish()
	}))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", srv.URL, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Agent") != "1" {
		t.Errorf("headers %v", resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "event: 1\n" {
		t.Fatalf("first event before the handler finished: %q %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\nevent: 2\n\n" {
		t.Errorf("rest %q", rest)
	}
}

// TestResponseInterceptorHijack: hijacking through the interceptor (as
// httputil.ReverseProxy does for upgrades) works, and the interceptor
// then stays out of the way.
func TestResponseInterceptorHijack(t *testing.T) {
	hooks := &testHooks{mode: ModeStream}
	done := make(chan *ResponseInterceptor, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := NewResponseInterceptor(w, hooks)
		c, brw, err := http.NewResponseController(ri).Hijack()
		if err != nil {
			t.Error(err)
			done <- ri
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nraw")
		_ = brw.Flush()
		c.Close()
		if _, err := ri.Write([]byte("x")); !errors.Is(err, http.ErrHijacked) {
			t.Errorf("write after hijack: %v", err)
		}
		_ = ri.Finish()
		done <- ri
	}))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "x")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ri := <-done
	if resp.StatusCode != 101 || !ri.Hijacked() || len(hooks.statuses) != 0 || hooks.ended != 0 {
		t.Errorf("%d hijacked %v hooks %+v", resp.StatusCode, ri.Hijacked(), hooks)
	}
}
