package bench

import (
	"time"

	"github.com/agentwire/agentwire"
)

// SampleHeaders returns the 15 typical request headers used by every load
// run (the same set as the baseline's), names lower-case.
func SampleHeaders() agentwire.Headers {
	one := func(n, v string) agentwire.Header { return agentwire.Header{Name: n, Values: []string{v}} }
	return agentwire.Headers{
		one("host", "api.example.com"),
		one("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"),
		one("accept", "application/json, text/plain, */*"),
		one("accept-encoding", "gzip, deflate, br"),
		one("accept-language", "en-US,en;q=0.9"),
		one("cookie", "session=3f1a9c2b7e8d4f6a9b0c1d2e3f4a5b6c; theme=dark; _ga=GA1.2.123456789.1700000000"),
		one("x-forwarded-for", "203.0.113.7, 10.0.0.12"),
		one("x-request-id", "a1b2c3d4-e5f6-7890-abcd-ef1234567890"),
		one("content-type", "application/json"),
		one("content-length", "512"),
		one("authorization", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc"),
		one("referer", "https://www.example.com/app/dashboard"),
		one("cache-control", "no-cache"),
		one("connection", "keep-alive"),
		one("sec-ch-ua", "\"Chromium\";v=\"120\", \"Not?A_Brand\";v=\"24\""),
	}
}

// SampleRequestHeaders returns the request-headers event of the load runs,
// with the given correlation id (also used as request id).
func SampleRequestHeaders(id string) agentwire.RequestHeadersEvent {
	return agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: id,
			RequestID:     id,
			ClientIP:      "203.0.113.7",
			ClientPort:    54321,
			ServerName:    agentwire.Some("api.example.com"),
			Protocol:      "HTTP/1.1",
			TLSVersion:    agentwire.Some("TLSv1.3"),
			RouteID:       agentwire.Some("api-v1"),
			UpstreamID:    agentwire.Some("backend-pool-1"),
			Timestamp:     time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
			Traceparent:   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
		Method:  "POST",
		URI:     "/api/v1/orders?customer=12345&expand=items",
		Headers: SampleHeaders(),
	}
}

// AppendID appends a correlation id unique per (worker, seq) to dst without
// allocating: 8 hex digits of worker, '-', then seq in hex.
func AppendID(dst []byte, worker int, seq uint64) []byte {
	const hex = "0123456789abcdef"
	for s := 28; s >= 0; s -= 4 {
		dst = append(dst, hex[(uint32(worker)>>uint(s))&0xf])
	}
	dst = append(dst, '-')
	if seq == 0 {
		return append(dst, '0')
	}
	var tmp [16]byte
	i := len(tmp)
	for seq > 0 {
		i--
		tmp[i] = hex[seq&0xf]
		seq >>= 4
	}
	return append(dst, tmp[i:]...)
}
