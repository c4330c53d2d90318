package httpguard

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
)

func set(n, v string) agentwire.HeaderOp {
	return agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: n, Value: v}
}
func add(n, v string) agentwire.HeaderOp {
	return agentwire.HeaderOp{Kind: agentwire.HeaderAdd, Name: n, Value: v}
}
func del(n string) agentwire.HeaderOp {
	return agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: n}
}

func TestApplyHeaderOps(t *testing.T) {
	h := http.Header{}
	h.Add("X-Multi", "1")
	h.Add("X-Multi", "2")
	h.Set("Authorization", "Bearer x")
	h.Set("Cookie", "a=1")
	err := ApplyHeaderOps(h, []agentwire.HeaderOp{
		set("x-multi", "only"),         // replace every value
		add("x-agent-processed", "a"),  // new name, canonicalised
		add("X-AGENT-PROCESSED", "b"),  // any case
		del("authorization"),           // delete
		add("set-cookie", "s=1"),       //
		add("set-cookie", "t=2"),       // append keeps order
		set("x-weird_name.v2", "ok"),   // a token with unusual characters
		del("x-not-there"),             // no effect, no error
		set("x-empty", ""),             // empty value is valid
		add("cookie", "b=2"),           // appended
		set("x-tab", "a\tb"),           // tab is allowed in values
		set("x-obs", "caf\xc3\xa9"),    // obs-text is allowed
		set("x-then-removed", "v"),     //
		del("X-Then-Removed"),          // order matters
		add("x-then-set", "1"),         //
		set("x-then-set", "2"),         //
		set("x-multi-case", "1"),       //
		add("x-Multi-Case", "2"),       //
		set("accept-encoding", "gzip"), //
	})
	if err != nil {
		t.Fatalf("ApplyHeaderOps: %v", err)
	}
	want := http.Header{
		"X-Multi":           {"only"},
		"X-Agent-Processed": {"a", "b"},
		"Set-Cookie":        {"s=1", "t=2"},
		"X-Weird_name.v2":   {"ok"},
		"X-Empty":           {""},
		"Cookie":            {"a=1", "b=2"},
		"X-Tab":             {"a\tb"},
		"X-Obs":             {"caf\xc3\xa9"},
		"X-Then-Set":        {"2"},
		"X-Multi-Case":      {"1", "2"},
		"Accept-Encoding":   {"gzip"},
	}
	if len(h) != len(want) {
		t.Errorf("got %v\nwant %v", h, want)
	}
	for k, v := range want {
		if !slices.Equal(h[k], v) {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
}

func TestApplyHeaderOpsRefused(t *testing.T) {
	for _, tc := range []struct {
		op     agentwire.HeaderOp
		reason string
	}{
		{set("x-a", "1\r\nX-Injected: 1"), "invalid value"},
		{add("x-a", "1\nx"), "invalid value"},
		{set("x-a", "nul\x00"), "invalid value"},
		{set("x a", "1"), "invalid name"},
		{set("x-a:", "1"), "invalid name"},
		{set(":path", "/admin"), "invalid name"},
		{set("", "1"), "invalid name"},
		{del("x\r\na"), "invalid name"},
		{set("content-length", "0"), "protected"},
		{del("content-length"), "protected"},
		{add("transfer-encoding", "chunked"), "protected"},
		{set("connection", "close"), "protected"},
		{set("keep-alive", "timeout=5"), "protected"},
		{set("proxy-connection", "x"), "protected"},
		{set("te", "trailers"), "protected"},
		{set("trailer", "x"), "protected"},
		{set("upgrade", "websocket"), "protected"},
		{set("host", "evil.example"), "protected"},
		{agentwire.HeaderOp{Kind: 9, Name: "x-a", Value: "1"}, "unknown operation"},
	} {
		h := http.Header{"Content-Length": {"5"}, "X-Keep": {"k"}}
		ops := []agentwire.HeaderOp{set("x-before", "1"), tc.op, set("x-after", "2")}
		err := ApplyHeaderOps(h, ops)
		var he *HeaderError
		if !errors.Is(err, ErrHeaderRefused) || !errors.As(err, &he) || he.Reason != tc.reason || he.Name != tc.op.Name || he.Refused != 1 {
			t.Errorf("%+v: err %v, want refused %q", tc.op, err, tc.reason)
			continue
		}
		// The valid operations around the refused one still apply, and the
		// refused one changed nothing.
		if h.Get("X-Before") != "1" || h.Get("X-After") != "2" || h.Get("Content-Length") != "5" || h.Get("X-Keep") != "k" || len(h) != 4 {
			t.Errorf("%+v: header after: %v", tc.op, h)
		}
	}
	err := ApplyHeaderOps(http.Header{}, []agentwire.HeaderOp{set("content-length", "1"), set("x y", "1"), set("x-ok", "1")})
	var he *HeaderError
	if !errors.As(err, &he) || he.Refused != 2 || he.Name != "content-length" {
		t.Errorf("two refused: %v", err)
	}
	if err.Error() != `agentwire: header operation refused: set "content-length": protected (and 1 more)` {
		t.Errorf("message %q", err.Error())
	}
}

func TestApplyRequestHeaderOpsHost(t *testing.T) {
	r := httptest.NewRequest("GET", "http://a.example/", nil)
	if err := ApplyRequestHeaderOps(r, []agentwire.HeaderOp{set("host", "b.example:8080"), set("x-a", "1")}); err != nil {
		t.Fatal(err)
	}
	if r.Host != "b.example:8080" || r.Header.Get("X-A") != "1" || r.Header.Get("Host") != "" {
		t.Errorf("host %q header %v", r.Host, r.Header)
	}
	for _, op := range []agentwire.HeaderOp{del("host"), set("host", ""), set("host", "bad host/")} {
		if err := ApplyRequestHeaderOps(r, []agentwire.HeaderOp{op}); !errors.Is(err, ErrHeaderRefused) {
			t.Errorf("%+v: %v", op, err)
		}
	}
	if r.Host != "b.example:8080" {
		t.Errorf("host changed to %q", r.Host)
	}
}

// TestHeaderOpsBeforeReverseProxy: whatever operations an agent sends, the
// request still goes through httputil.ReverseProxy to the upstream (no
// 502 from a header the transport refuses), with the valid operations
// applied and the framing intact.
func TestHeaderOpsBeforeReverseProxy(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Agent", r.Header.Get("X-Agent-Processed"))
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Body", string(body))
		w.Header().Set("X-Seen-Auth", r.Header.Get("Authorization"))
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	rp.Transport = tr
	hostile := []agentwire.HeaderOp{
		set("x-agent-processed", "true"),
		del("authorization"),
		set("content-length", "1"),
		set("transfer-encoding", "chunked"),
		set("x-split", "a\r\nContent-Length: 0"),
		set("bad name", "x"),
		set("connection", "upgrade"),
		set("host", "rewritten.example"),
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := ApplyRequestHeaderOps(r, hostile)
		var he *HeaderError
		if !errors.As(err, &he) || he.Refused != 5 {
			t.Errorf("ApplyRequestHeaderOps: %v", err)
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()

	req, _ := http.NewRequestWithContext(testCtx(t), "POST", front.URL+"/x", strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	defer front.Client().CloseIdleConnections()
	if resp.StatusCode != 200 || resp.Header.Get("X-Seen-Agent") != "true" || resp.Header.Get("X-Seen-Body") != "hello" ||
		resp.Header.Get("X-Seen-Host") != "rewritten.example" || resp.Header.Get("X-Seen-Auth") != "" {
		t.Errorf("status %d headers %v", resp.StatusCode, resp.Header)
	}
}

func TestApplyRequestHeaderOpsNilHeader(t *testing.T) {
	r := &http.Request{Host: "a"}
	if err := ApplyRequestHeaderOps(r, []agentwire.HeaderOp{set("x-a", "1")}); err != nil || r.Header.Get("X-A") != "1" {
		t.Errorf("%v %v", err, r.Header)
	}
}
