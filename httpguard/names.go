package httpguard

import (
	"net/textproto"
	"strings"
	"sync/atomic"

	"github.com/puzpuzpuz/xsync/v4"
)

// commonHeaders are the header names a request or response usually
// carries, in net/http's canonical form. Their lower-case and canonical
// spellings are looked up in read-only tables, so turning them from one
// form into the other allocates nothing.
var commonHeaders = [...]string{
	"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
	"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Origin",
	"Access-Control-Expose-Headers", "Access-Control-Max-Age",
	"Access-Control-Request-Headers", "Access-Control-Request-Method",
	"Age", "Allow", "Alt-Svc", "Authorization", "Cache-Control", "Cdn-Loop", "Connection",
	"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
	"Content-Location", "Content-Range", "Content-Security-Policy", "Content-Type",
	"Cookie", "Date", "Dnt", "Early-Data", "Etag", "Expect", "Expires", "Forwarded", "From",
	"Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
	"If-Unmodified-Since", "Keep-Alive", "Last-Modified", "Link", "Location",
	"Max-Forwards", "Origin", "Pragma", "Priority", "Proxy-Authenticate",
	"Proxy-Authorization", "Proxy-Connection", "Range", "Referer", "Referrer-Policy",
	"Refresh", "Retry-After", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform",
	"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User",
	"Sec-Websocket-Accept", "Sec-Websocket-Extensions", "Sec-Websocket-Key",
	"Sec-Websocket-Protocol", "Sec-Websocket-Version", "Server", "Server-Timing",
	"Set-Cookie", "Strict-Transport-Security", "Te", "Timing-Allow-Origin", "Trailer",
	"Transfer-Encoding", "Traceparent", "Tracestate", "Upgrade",
	"Upgrade-Insecure-Requests", "User-Agent", "Vary", "Via", "Warning",
	"Www-Authenticate", "X-Agent-Processed", "X-Amzn-Trace-Id", "X-B3-Sampled",
	"X-B3-Spanid", "X-B3-Traceid", "X-Content-Type-Options", "X-Correlation-Id",
	"X-Csrf-Token", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Port",
	"X-Forwarded-Proto", "X-Frame-Options", "X-Real-Ip", "X-Request-Id",
	"X-Requested-With", "X-Xss-Protection",
}

var (
	// lowerOf maps a canonical name to its lower-case form; canonOf the
	// other way. Both are filled once by init and only read afterwards.
	lowerOf = make(map[string]string, len(commonHeaders))
	canonOf = make(map[string]string, len(commonHeaders))
)

func init() {
	for _, c := range commonHeaders {
		l := strings.ToLower(c)
		lowerOf[c] = l
		canonOf[l] = c
	}
}

// maxLearnedNames bounds the names learned at run time: a client that
// sends a new header name with every request must not grow memory without
// bound, so past this many names the uncommon ones are lowered afresh on
// every use (one small allocation each).
const maxLearnedNames = 4096

// learned caches the lower-case form of header names outside
// commonHeaders that were already seen (canonical name → lower case).
var (
	learned      = xsync.NewMap[string, string]()
	learnedCount atomic.Int32
)

// lowerName returns the lower-case form of the header key k (as net/http
// stores keys, normally canonical) and whether k is in net/http's
// canonical form, which guarantees that no other canonical key lowers to
// the same name. Common and already-seen names cost no allocation.
func lowerName(k string) (lower string, canonical bool) {
	if l, ok := lowerOf[k]; ok {
		return l, true
	}
	if l, ok := learned.Load(k); ok {
		return l, true
	}
	canonical = isCanonical(k)
	lower = lowerASCII(k)
	if canonical && learnedCount.Load() < maxLearnedNames {
		if _, loaded := learned.LoadOrStore(k, lower); !loaded {
			learnedCount.Add(1)
		}
	}
	return lower, canonical
}

// canonicalName returns net/http's canonical form of an agent-supplied
// header name (agents send lower-case names). Common names cost no
// allocation. The name must already be a valid field name.
func canonicalName(name string) string {
	if c, ok := canonOf[name]; ok {
		return c
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// isCanonical reports whether k is exactly what
// textproto.CanonicalMIMEHeaderKey makes of it: a valid token whose first
// letter and every letter after a hyphen are upper case and all other
// letters lower case.
func isCanonical(k string) bool {
	if k == "" {
		return false
	}
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !isTokenChar(c) {
			return false
		}
		if upper && 'a' <= c && c <= 'z' {
			return false
		}
		if !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// lowerASCII returns s with ASCII upper-case letters lowered; s itself
// when it has none (no allocation).
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110
// section 5.6.2): a header name or an authentication scheme.
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// isToken reports whether s is a non-empty HTTP token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}
