package httpguard

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/codec/payload"
)

var fixedTime = time.Date(2026, 6, 12, 9, 27, 43, 123456789, time.UTC)

func fixedBuilder(t testing.TB, opts ...Option) *Builder {
	t.Helper()
	base := []Option{WithClock(func() time.Time { return fixedTime }), WithIDGenerator(func() string { return "cid-1" })}
	b, err := NewBuilder(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// headerMap turns an event's headers into a map for comparison, failing on
// a repeated name.
func headerMap(t *testing.T, h agentwire.Headers) map[string][]string {
	t.Helper()
	m := make(map[string][]string, len(h))
	for _, e := range h {
		if _, dup := m[e.Name]; dup {
			t.Fatalf("name %q appears twice in %v", e.Name, h)
		}
		if e.Name != strings.ToLower(e.Name) {
			t.Fatalf("name %q is not lower case", e.Name)
		}
		m[e.Name] = e.Values
	}
	return m
}

func TestRequestHeadersEvent(t *testing.T) {
	r := httptest.NewRequest("GET", "/api/x?y=1&z=%20", nil)
	r.Host = "example.com:8443"
	r.RemoteAddr = "10.0.0.7:51514"
	r.Header.Add("Accept", "text/html")
	r.Header.Add("X-Forwarded-For", "1.1.1.1")
	r.Header.Add("X-Forwarded-For", "2.2.2.2")
	r.Header.Add("X-Custom-Thing", "v")
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")

	var dst RequestHeaders
	fixedBuilder(t, WithRouteID("api")).RequestHeaders(r, &dst)
	ev := &dst.Event

	if ev.Method != "GET" || ev.URI != "/api/x?y=1&z=%20" {
		t.Errorf("method %q uri %q", ev.Method, ev.URI)
	}
	got := headerMap(t, ev.Headers)
	want := map[string][]string{
		"host":            {"example.com:8443"},
		"accept":          {"text/html"},
		"x-forwarded-for": {"1.1.1.1", "2.2.2.2"},
		"x-custom-thing":  {"v"},
		"traceparent":     {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
	if len(got) != len(want) {
		t.Errorf("headers %v, want %v", got, want)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("header %q = %q, want %q", k, got[k], v)
		}
	}
	m := ev.Metadata
	wantMeta := agentwire.RequestMetadata{
		CorrelationID: "cid-1",
		RequestID:     "cid-1",
		ClientIP:      "10.0.0.7",
		ClientPort:    51514,
		ServerName:    agentwire.Some("example.com"),
		Protocol:      "HTTP/1.1",
		RouteID:       agentwire.Some("api"),
		Timestamp:     fixedTime,
		Traceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	if m != wantMeta {
		t.Errorf("metadata\n got %+v\nwant %+v", m, wantMeta)
	}

	// The event encodes to the JSON the Rust proxy sends (SPEC 6.4).
	b, err := payload.Append(nil, payload.JSON, frame.TypeRequestHeaders, ev)
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatal(err)
	}
	meta := js["metadata"].(map[string]any)
	if meta["protocol"] != "HTTP/1.1" || meta["client_port"] != 51514.0 || meta["tls_version"] != nil || meta["server_name"] != "example.com" {
		t.Errorf("encoded metadata %v", meta)
	}
	if js["uri"] != "/api/x?y=1&z=%20" {
		t.Errorf("encoded uri %v", js["uri"])
	}
}

func TestRequestHeadersMetadataCases(t *testing.T) {
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		name  string
		setup func(r *http.Request)
		opts  []Option
		check func(t *testing.T, ev *agentwire.RequestHeadersEvent)
	}{
		{"ipv6 client", func(r *http.Request) { r.RemoteAddr = "[2001:db8::1]:443" }, nil,
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.Metadata.ClientIP != "2001:db8::1" || ev.Metadata.ClientPort != 443 {
					t.Errorf("client %q %d", ev.Metadata.ClientIP, ev.Metadata.ClientPort)
				}
			}},
		{"ipv6 zone", func(r *http.Request) { r.RemoteAddr = "[fe80::1%eth0]:8080" }, nil,
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.Metadata.ClientIP != "fe80::1%eth0" || ev.Metadata.ClientPort != 8080 {
					t.Errorf("client %q %d", ev.Metadata.ClientIP, ev.Metadata.ClientPort)
				}
			}},
		{"unix listener", func(r *http.Request) { r.RemoteAddr = "@" }, nil,
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.Metadata.ClientIP != "@" || ev.Metadata.ClientPort != 0 {
					t.Errorf("client %q %d", ev.Metadata.ClientIP, ev.Metadata.ClientPort)
				}
			}},
		{"tls", func(r *http.Request) {
			r.TLS = &tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ServerName: "sni.example"}
			r.Host = "other.example"
		}, nil, func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
			m := ev.Metadata
			if m.TLSVersion != agentwire.Some("TLSv1.2") || m.TLSCipher != agentwire.Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") || m.ServerName != agentwire.Some("sni.example") {
				t.Errorf("tls metadata %+v", m)
			}
		}},
		{"tls without sni", func(r *http.Request) {
			r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
			r.Host = "[2001:db8::2]:8443"
		}, nil, func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
			m := ev.Metadata
			if m.TLSVersion != agentwire.Some("TLSv1.3") || m.ServerName != agentwire.Some("2001:db8::2") {
				t.Errorf("tls metadata %+v", m)
			}
		}},
		{"http2", func(r *http.Request) { r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0 }, nil,
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.Metadata.Protocol != "HTTP/2.0" {
					t.Errorf("protocol %q", ev.Metadata.Protocol)
				}
			}},
		{"http1.0", func(r *http.Request) { r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0 }, nil,
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.Metadata.Protocol != "HTTP/1.0" {
					t.Errorf("protocol %q", ev.Metadata.Protocol)
				}
			}},
		{"two traceparents dropped", func(r *http.Request) {
			r.Header.Add("Traceparent", tp)
			r.Header.Add("Traceparent", tp)
		}, nil, func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
			if ev.Metadata.Traceparent != "" {
				t.Errorf("traceparent %q", ev.Metadata.Traceparent)
			}
		}},
		{"bad traceparent dropped", func(r *http.Request) { r.Header.Set("Traceparent", "00-XYZ") }, nil,
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.Metadata.Traceparent != "" {
					t.Errorf("traceparent %q", ev.Metadata.Traceparent)
				}
			}},
		{"correlation header", func(r *http.Request) {
			r.Header.Set("X-Request-Id", "abc-123")
			r.Header.Set("X-Trace", "t-9")
		}, []Option{WithCorrelationHeader("x-trace"), WithRequestIDHeader("X-Request-ID")},
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.Metadata.CorrelationID != "t-9" || ev.Metadata.RequestID != "abc-123" {
					t.Errorf("ids %q %q", ev.Metadata.CorrelationID, ev.Metadata.RequestID)
				}
			}},
		{"unusable correlation header", func(r *http.Request) {
			r.Header.Set("X-Trace", "has space")
			r.Header.Set("X-Request-Id", strings.Repeat("a", MaxIDLength+1))
		}, []Option{WithCorrelationHeader("x-trace"), WithRequestIDHeader("x-request-id")},
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.Metadata.CorrelationID != "cid-1" || ev.Metadata.RequestID != "cid-1" {
					t.Errorf("ids %q %q", ev.Metadata.CorrelationID, ev.Metadata.RequestID)
				}
			}},
		{"absolute-form target", func(r *http.Request) {
			r.RequestURI = "http://example.com/a/b?c=d"
		}, nil, func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
			if ev.URI != "/a/b?c=d" {
				t.Errorf("uri %q", ev.URI)
			}
		}},
		{"client-built request", func(r *http.Request) { r.RequestURI = "" }, nil,
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if ev.URI != "/a/b?c=d" {
					t.Errorf("uri %q", ev.URI)
				}
			}},
		{"host header key not doubled", func(r *http.Request) { r.Header.Set("Host", "spoof.example") }, nil,
			func(t *testing.T, ev *agentwire.RequestHeadersEvent) {
				if h := ev.Headers.Values("host"); len(h) != 1 || h[0] != "example.com" {
					t.Errorf("host %q", h)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://example.com/a/b?c=d", nil)
			r.RequestURI = "/a/b?c=d"
			tc.setup(r)
			var dst RequestHeaders
			fixedBuilder(t, tc.opts...).RequestHeaders(r, &dst)
			headerMap(t, dst.Event.Headers)
			tc.check(t, &dst.Event)
		})
	}
}

// TestRequestHeadersReuse: a RequestHeaders reused for another request
// keeps nothing of the previous one.
func TestRequestHeadersReuse(t *testing.T) {
	b := fixedBuilder(t)
	r1 := httptest.NewRequest("POST", "/one", nil)
	r1.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, ServerName: "a.example"}
	for i := range 20 {
		r1.Header.Set("X-H"+strconv.Itoa(i), "v")
	}
	r1.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	var dst RequestHeaders
	b.RequestHeaders(r1, &dst)

	r2 := httptest.NewRequest("GET", "/two", nil)
	r2.Host = ""
	r2.Header.Set("Accept", "*/*")
	b.RequestHeaders(r2, &dst)
	m := dst.Event.Metadata
	if m.TLSVersion.Valid || m.TLSCipher.Valid || m.ServerName.Valid || m.Traceparent != "" {
		t.Errorf("metadata kept from the first request: %+v", m)
	}
	if got := headerMap(t, dst.Event.Headers); len(got) != 1 || got["accept"][0] != "*/*" {
		t.Errorf("headers %v", got)
	}
	if dst.Event.Method != "GET" || dst.Event.URI != "/two" {
		t.Errorf("%q %q", dst.Event.Method, dst.Event.URI)
	}
}

// TestRequestHeadersMergesCaseVariants: keys of a hand-built header that
// differ only in case become one name, and the request's own value
// slices are not written to.
func TestRequestHeadersMergesCaseVariants(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	a := make([]string, 1, 8) // spare capacity: an append in place would show
	a[0] = "1"
	r.Header["X-A"] = a
	r.Header["x-a"] = []string{"2"}
	r.Header["X-a"] = []string{"3"}
	r.Header["Content-Type"] = []string{"text/plain"}
	var dst RequestHeaders
	fixedBuilder(t).RequestHeaders(r, &dst)
	got := headerMap(t, dst.Event.Headers)
	vals := slices.Clone(got["x-a"])
	slices.Sort(vals)
	if !slices.Equal(vals, []string{"1", "2", "3"}) {
		t.Errorf("x-a = %q", got["x-a"])
	}
	if a[:cap(a)][1] != "" || len(r.Header["X-A"]) != 1 {
		t.Errorf("the request's value slice was written to: %q", a[:cap(a)])
	}
	if len(got) != 3 {
		t.Errorf("headers %v", got)
	}
}

// TestRequestHeadersOverRealServers builds events inside real servers and
// compares them with what the client really did: its port, HTTP/2 over
// TLS with SNI, and HTTP/1.1 over plain TCP.
func TestRequestHeadersOverRealServers(t *testing.T) {
	b, err := NewBuilder()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got agentwire.RequestHeadersEvent
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var dst RequestHeaders
		b.RequestHeaders(r, &dst)
		mu.Lock()
		got = dst.Event
		got.Headers = slices.Clone(got.Headers)
		mu.Unlock()
	})

	for _, tc := range []struct {
		name    string
		tls     bool
		proto   string
		version string
	}{{"http1", false, "HTTP/1.1", ""}, {"http2-tls", true, "HTTP/2.0", "TLSv1.3"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(h)
			var client *http.Client
			if tc.tls {
				srv.EnableHTTP2 = true
				srv.StartTLS()
				client = srv.Client()
			} else {
				srv.Start()
				client = &http.Client{Transport: &http.Transport{}}
			}
			defer srv.Close()
			defer client.CloseIdleConnections()

			var localPort int
			tr := client.Transport.(*http.Transport)
			dial := &net.Dialer{}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dial.DialContext(ctx, network, addr)
				if err == nil {
					localPort = c.LocalAddr().(*net.TCPAddr).Port
				}
				return c, err
			}
			if tc.tls {
				tr.DialTLSContext = nil
				tr.TLSClientConfig.ServerName = "example.com"
			}
			req, _ := http.NewRequestWithContext(testCtx(t), "GET", srv.URL+"/p?q=1", nil)
			req.Header.Add("X-Multi", "a")
			req.Header.Add("X-Multi", "b")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()

			mu.Lock()
			defer mu.Unlock()
			m := got.Metadata
			if m.Protocol != tc.proto || m.ClientIP != "127.0.0.1" || int(m.ClientPort) != localPort {
				t.Errorf("protocol %q client %s:%d (client port %d)", m.Protocol, m.ClientIP, m.ClientPort, localPort)
			}
			if tc.tls && (m.TLSVersion != agentwire.Some(tc.version) || !m.TLSCipher.Valid || m.ServerName != agentwire.Some("example.com")) {
				t.Errorf("tls metadata %+v", m)
			}
			if got.URI != "/p?q=1" || !slices.Equal(got.Headers.Values("x-multi"), []string{"a", "b"}) {
				t.Errorf("uri %q x-multi %q", got.URI, got.Headers.Values("x-multi"))
			}
			if host := got.Headers.Values("host"); len(host) != 1 || !strings.HasPrefix(host[0], "127.0.0.1:") {
				t.Errorf("host %q", host)
			}
			if m.CorrelationID == "" || m.RequestID != m.CorrelationID {
				t.Errorf("ids %q %q", m.CorrelationID, m.RequestID)
			}
		})
	}
}

func TestSplitRemoteAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ip   string
		port uint16
	}{
		{"1.2.3.4:80", "1.2.3.4", 80},
		{"[::1]:65535", "::1", 65535},
		{"[::ffff:1.2.3.4]:1", "::ffff:1.2.3.4", 1},
		{"::1", "::1", 0},
		{"1.2.3.4", "1.2.3.4", 0},
		{"1.2.3.4:99999", "1.2.3.4:99999", 0},
		{"1.2.3.4:", "1.2.3.4:", 0},
		{"", "", 0},
		{"@", "@", 0},
	} {
		ip, port := splitRemoteAddr(tc.in)
		if ip != tc.ip || port != tc.port {
			t.Errorf("splitRemoteAddr(%q) = %q, %d; want %q, %d", tc.in, ip, port, tc.ip, tc.port)
		}
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"example.com": "example.com", "example.com:80": "example.com", "[::1]:80": "::1",
		"[::1]": "::1", "::1": "::1", "": "", "[broken": "[broken",
	} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidTraceparent(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"", false},
	} {
		if got := ValidTraceparent(tc.in); got != tc.ok {
			t.Errorf("ValidTraceparent(%q) = %v", tc.in, got)
		}
	}
}

func TestNewCorrelationIDUnique(t *testing.T) {
	const workers, each = 8, 5000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				ids[w] = append(ids[w], NewCorrelationID())
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, l := range ids {
		for _, id := range l {
			if seen[id] {
				t.Fatalf("duplicate id %q", id)
			}
			if len(id) < 18 || id[16] != '-' || len(id) > MaxIDLength {
				t.Fatalf("malformed id %q", id)
			}
			seen[id] = true
		}
	}
}

func TestBuilderOptions(t *testing.T) {
	for _, o := range []Option{WithCorrelationHeader("bad header"), WithRequestIDHeader(""), WithIDGenerator(nil), WithClock(nil)} {
		if _, err := NewBuilder(o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("NewBuilder: %v, want ErrInvalidOption", err)
		}
	}
}

func TestResponseHeadersEvent(t *testing.T) {
	h := http.Header{}
	h.Add("Set-Cookie", "a=1")
	h.Add("Set-Cookie", "b=2")
	h.Set("Content-Type", "text/html")
	h["x-odd"] = []string{"1"}
	h["X-Odd"] = []string{"2"}
	h["X-Empty"] = nil
	var ev agentwire.ResponseHeadersEvent
	ResponseHeaders(&ev, "c1", 201, h)
	if ev.CorrelationID != "c1" || ev.Status != 201 {
		t.Errorf("%+v", ev)
	}
	got := headerMap(t, ev.Headers)
	if !slices.Equal(got["set-cookie"], []string{"a=1", "b=2"}) || got["content-type"][0] != "text/html" || len(got["x-odd"]) != 2 || len(got) != 3 {
		t.Errorf("headers %v", got)
	}
	// Reuse: nothing left over.
	ResponseHeaders(&ev, "c2", 204, http.Header{"Etag": {"x"}})
	if got := headerMap(t, ev.Headers); len(got) != 1 || ev.Status != 204 {
		t.Errorf("reused: %v %d", got, ev.Status)
	}
}

func TestRequestCompleteEvent(t *testing.T) {
	var ev agentwire.RequestCompleteEvent
	RequestComplete(&ev, "c", Completion{Status: 200, RequestBodySize: 10, ResponseBodySize: 20, Duration: 1500 * time.Microsecond, UpstreamAttempts: 1})
	want := agentwire.RequestCompleteEvent{CorrelationID: "c", Status: 200, DurationMS: 1, RequestBodySize: 10, ResponseBodySize: 20, UpstreamAttempts: 1}
	if ev != want {
		t.Errorf("%+v", ev)
	}
	RequestComplete(&ev, "c", Completion{Status: -1, RequestBodySize: -5, Duration: -time.Second, Err: errors.New("client gone")})
	if ev.Status != 0 || ev.RequestBodySize != 0 || ev.DurationMS != 0 || ev.Error != agentwire.Some("client gone") {
		t.Errorf("%+v", ev)
	}
}
