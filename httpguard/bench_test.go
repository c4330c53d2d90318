package httpguard

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agentwire/agentwire"
)

// BenchmarkRequestHeaders measures building the request-headers event of
// a typical browser request (benchRequest) into a reused RequestHeaders,
// with a generated correlation id (one allocation) and with one taken from
// a header (none).
func BenchmarkRequestHeaders(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"generated-id", nil}, {"header-id", []Option{WithCorrelationHeader("X-Request-Id")}}} {
		b.Run(bc.name, func(b *testing.B) {
			bl, err := NewBuilder(bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			r := benchRequest()
			r.Header.Set("X-Request-Id", "req-77")
			var dst RequestHeaders
			b.ReportAllocs()
			for b.Loop() {
				bl.RequestHeaders(r, &dst)
			}
		})
	}
}

// BenchmarkResponseHeaders measures the response-headers event of six
// common headers into a reused event.
func BenchmarkResponseHeaders(b *testing.B) {
	h := http.Header{}
	h.Set("Content-Type", "text/html")
	h.Set("Cache-Control", "no-cache")
	h.Add("Set-Cookie", "a=1")
	h.Add("Set-Cookie", "b=2")
	h.Set("Etag", `"x"`)
	h.Set("Date", "Mon, 01 Jan 2026 00:00:00 GMT")
	var ev agentwire.ResponseHeadersEvent
	b.ReportAllocs()
	for b.Loop() {
		ResponseHeaders(&ev, "c", 200, h)
	}
}

// BenchmarkApplyHeaderOps measures the typical reply of an agent that
// allows a request: one set and one remove.
func BenchmarkApplyHeaderOps(b *testing.B) {
	h := http.Header{}
	h.Set("Authorization", "Bearer x")
	ops := []agentwire.HeaderOp{
		{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"},
		{Kind: agentwire.HeaderRemove, Name: "authorization"},
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = ApplyHeaderOps(h, ops)
	}
}

// BenchmarkNewCorrelationID measures the default id generator in parallel.
func BenchmarkNewCorrelationID(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = NewCorrelationID()
		}
	})
}

// benchRequest is a typical browser request over TLS: 14 headers, one of
// them repeated, one uncommon name, a traceparent.
func benchRequest() *http.Request {
	r := httptest.NewRequest("GET", "/api/v1/items?page=2&sort=desc", nil)
	r.Host = "shop.example.com"
	r.RemoteAddr = "[2001:db8::7]:51514"
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256, ServerName: "shop.example.com"}
	h := r.Header
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
	h.Set("Accept", "text/html,application/xhtml+xml")
	h.Set("Accept-Language", "en-US,en;q=0.9")
	h.Set("Accept-Encoding", "gzip, deflate, br")
	h.Set("Cookie", "session=abc; theme=dark")
	h.Set("Referer", "https://shop.example.com/")
	h.Set("Sec-Fetch-Dest", "document")
	h.Set("Sec-Fetch-Mode", "navigate")
	h.Set("Sec-Fetch-Site", "same-origin")
	h.Set("Upgrade-Insecure-Requests", "1")
	h.Add("X-Forwarded-For", "198.51.100.1")
	h.Add("X-Forwarded-For", "203.0.113.9")
	h.Set("X-Shop-Tenant", "acme")
	h.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	return r
}
