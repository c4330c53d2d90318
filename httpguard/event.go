package httpguard

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
)

// Builder turns an *http.Request into the events agents receive. Build
// one with NewBuilder and share it: it is immutable and safe for
// concurrent use.
type Builder struct {
	correlationHeader string // canonical form; "" = always generate
	requestIDHeader   string // canonical form; "" = the correlation id
	routeID           agentwire.Opt[string]
	upstreamID        agentwire.Opt[string]
	newID             func() string
	now               func() time.Time
}

// Option configures a Builder (NewBuilder validates it).
type Option func(*Builder) error

// WithCorrelationHeader takes each request's correlation id from the
// named request header when the request carries exactly one value of it
// that is 1 to MaxIDLength visible ASCII characters; otherwise an id is
// generated. Default: always generated.
//
// Use it only with a header that a trusted front proxy sets (and strips
// from client requests): an agent connection refuses a second in-flight
// request with the same correlation id, so a client that picks ids could
// make its requests collide with others.
func WithCorrelationHeader(name string) Option {
	return func(b *Builder) error {
		if !isToken(name) {
			return fmt.Errorf("%w: correlation header %q is not a valid header name", ErrInvalidOption, name)
		}
		b.correlationHeader = http.CanonicalHeaderKey(name)
		return nil
	}
}

// WithRequestIDHeader takes each request's metadata.request_id from the
// named request header under the same conditions as
// WithCorrelationHeader. Default (and when the header is absent or
// invalid): the request id is the correlation id, the same in every
// phase (the Rust proxy sends a fresh UUID per phase, REFERENCE-DEFECTS
// B-X13).
func WithRequestIDHeader(name string) Option {
	return func(b *Builder) error {
		if !isToken(name) {
			return fmt.Errorf("%w: request id header %q is not a valid header name", ErrInvalidOption, name)
		}
		b.requestIDHeader = http.CanonicalHeaderKey(name)
		return nil
	}
}

// WithRouteID sets metadata.route_id of every request-headers event
// (default: absent).
func WithRouteID(id string) Option {
	return func(b *Builder) error { b.routeID = agentwire.Some(id); return nil }
}

// WithUpstreamID sets metadata.upstream_id of every request-headers event
// (default: absent).
func WithUpstreamID(id string) Option {
	return func(b *Builder) error { b.upstreamID = agentwire.Some(id); return nil }
}

// WithIDGenerator replaces the correlation id generator (default:
// NewCorrelationID). f must be safe for concurrent use and return ids
// that are unique among the requests in flight.
func WithIDGenerator(f func() string) Option {
	return func(b *Builder) error {
		if f == nil {
			return fmt.Errorf("%w: nil id generator", ErrInvalidOption)
		}
		b.newID = f
		return nil
	}
}

// WithClock replaces time.Now for metadata.timestamp (tests use it).
func WithClock(now func() time.Time) Option {
	return func(b *Builder) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		b.now = now
		return nil
	}
}

// NewBuilder returns a Builder with the options applied. It fails with an
// error satisfying errors.Is(err, ErrInvalidOption) when an option is
// invalid.
func NewBuilder(opts ...Option) (*Builder, error) {
	b := &Builder{newID: NewCorrelationID, now: time.Now}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// MaxIDLength is the longest correlation or request id taken from a
// request header.
const MaxIDLength = 128

// RequestHeaders is one request's request-headers event together with the
// storage that building it reuses. The zero value is ready; reuse one per
// request (a sync.Pool of them, or a field of a larger per-request
// struct) so that building allocates nothing beyond a generated
// correlation id. (A header name is lowered once per process and then
// remembered, up to 4096 names beyond the common ones; keys of a
// hand-built header that differ only in case are merged into new slices.)
//
// Event aliases the request: its header value slices are the request's own
// (r.Header's), and its strings are the request's. Do not change r.Header
// while the event is being sent, and do not keep the event after the
// request ended. A RequestHeaders must not be copied after first use and
// is not safe for concurrent use.
type RequestHeaders struct {
	// Event is the event to send.
	Event agentwire.RequestHeadersEvent

	host  [1]string      // the host entry's value storage
	index map[string]int // name → position, while merging colliding names
}

// RequestHeaders fills dst with the request-headers event of r (SPEC 2.1,
// 2.2), reusing dst's storage:
//
//   - headers: every header of r under its lower-case name, repeated values
//     kept in order, plus "host" (r.Host, as HTTP/1.1 sends it and as the
//     Rust proxy passes it on; for HTTP/2 it is the :authority). Keys that
//     differ only in case (possible only in a hand-built http.Header) are
//     merged into one name.
//   - method; uri = path and query as the client sent them (r.RequestURI;
//     for an absolute-form request-target, its path and query).
//   - metadata: the correlation id (WithCorrelationHeader, else
//     generated), the request id (WithRequestIDHeader, else the
//     correlation id), client address and port from r.RemoteAddr (IPv6
//     without brackets; a RemoteAddr without a port, as on Unix-socket
//     listeners, becomes the address with port 0), the protocol as the
//     Rust proxy spells it ("HTTP/1.0", "HTTP/1.1", "HTTP/2.0",
//     "HTTP/3.0"), for TLS connections the version ("TLSv1.2",
//     "TLSv1.3", OpenSSL's spelling, which Rust proxies built on OpenSSL
//     report) and the cipher suite's IANA name, the server name (the TLS
//     SNI when there is one, else the host of r.Host without its port),
//     the route and upstream ids of the Builder, the current time, and the
//     incoming traceparent header when the request carries exactly one
//     well-formed W3C value.
//
// The Rust proxy sends protocol "HTTP/1.1", no TLS version and usually no
// server name whatever the request (REFERENCE-DEFECTS B-X13); this
// function reports what the request really is.
func (b *Builder) RequestHeaders(r *http.Request, dst *RequestHeaders) {
	ev := &dst.Event
	m := &ev.Metadata

	cid := b.headerID(r.Header, b.correlationHeader)
	if cid == "" {
		cid = b.newID()
	}
	m.CorrelationID = cid
	m.RequestID = cid
	if id := b.headerID(r.Header, b.requestIDHeader); id != "" {
		m.RequestID = id
	}
	m.ClientIP, m.ClientPort = splitRemoteAddr(r.RemoteAddr)
	m.Protocol = protocolName(r)
	m.TLSVersion, m.TLSCipher = agentwire.Opt[string]{}, agentwire.Opt[string]{}
	m.ServerName = agentwire.Opt[string]{}
	if r.TLS != nil {
		m.TLSVersion = agentwire.Some(TLSVersionName(r.TLS.Version))
		m.TLSCipher = agentwire.Some(CipherSuiteName(r.TLS.CipherSuite))
		if r.TLS.ServerName != "" {
			m.ServerName = agentwire.Some(r.TLS.ServerName)
		}
	}
	if !m.ServerName.Valid {
		if h := hostOnly(r.Host); h != "" {
			m.ServerName = agentwire.Some(h)
		}
	}
	m.RouteID = b.routeID
	m.UpstreamID = b.upstreamID
	m.Timestamp = b.now()
	m.Traceparent = ""
	if v := r.Header["Traceparent"]; len(v) == 1 && ValidTraceparent(v[0]) {
		m.Traceparent = v[0]
	}

	ev.Method = r.Method
	ev.URI = requestURI(r)

	h := ev.Headers[:0]
	if r.Host != "" {
		dst.host[0] = r.Host
		h = append(h, agentwire.Header{Name: "host", Values: dst.host[:]})
	}
	ev.Headers = dst.appendHeaders(h, r.Header, r.Host != "")
}

// headerID returns the single value of the canonical header key when it
// is a usable id (1 to MaxIDLength visible ASCII characters), else "".
func (b *Builder) headerID(h http.Header, key string) string {
	if key == "" {
		return ""
	}
	v := h[key]
	if len(v) != 1 || len(v[0]) == 0 || len(v[0]) > MaxIDLength {
		return ""
	}
	for i := 0; i < len(v[0]); i++ {
		if c := v[0][i]; c <= ' ' || c >= 0x7f {
			return ""
		}
	}
	return v[0]
}

// appendHeaders appends every header of src to h (lower-case names,
// values aliased) and returns h. With skipHost, keys naming Host are left
// out (h already holds the request's host). Names that collide once
// lowered are merged, their values in the order the keys were met.
func (dst *RequestHeaders) appendHeaders(h agentwire.Headers, src http.Header, skipHost bool) agentwire.Headers {
	merge := false
	for k, vs := range src {
		if len(vs) == 0 {
			continue
		}
		name, canonical := lowerName(k)
		if skipHost && name == "host" {
			continue
		}
		if !canonical {
			merge = true
		}
		h = append(h, agentwire.Header{Name: name, Values: vs})
	}
	if merge {
		h = mergeNames(h, &dst.index)
	}
	return h
}

// mergeNames merges the entries of h whose names are equal into the first
// of them; the merged values are a fresh slice, so no caller's slice is
// written to. *index is a reusable scratch map.
func mergeNames(h agentwire.Headers, index *map[string]int) agentwire.Headers {
	if *index == nil {
		*index = make(map[string]int)
	}
	idx := *index
	clear(idx)
	out := 0
	for i := range h {
		if j, ok := idx[h[i].Name]; ok {
			vs := h[j].Values
			h[j].Values = append(vs[:len(vs):len(vs)], h[i].Values...)
			continue
		}
		idx[h[i].Name] = out
		h[out] = h[i]
		out++
	}
	for i := out; i < len(h); i++ {
		h[i] = agentwire.Header{}
	}
	return h[:out]
}

// ResponseHeaders fills dst with the response-headers event of a response
// (SPEC 2.2): the correlation id, the status and every header of h under
// its lower-case name with repeated values kept in order, reusing dst's
// header storage. The values alias h's slices: do not change h while the
// event is being sent. Keys that differ only in case are merged.
func ResponseHeaders(dst *agentwire.ResponseHeadersEvent, correlationID string, status int, h http.Header) {
	dst.CorrelationID = correlationID
	dst.Status = clampStatus(status)
	out := dst.Headers[:0]
	merge := false
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		name, canonical := lowerName(k)
		if !canonical {
			merge = true
		}
		out = append(out, agentwire.Header{Name: name, Values: vs})
	}
	if merge {
		var idx map[string]int
		out = mergeNames(out, &idx)
	}
	dst.Headers = out
}

// Completion is how a request ended, for the request-complete event.
type Completion struct {
	// Status is the status the client received (0 when none was sent).
	Status int
	// RequestBodySize and ResponseBodySize are the body bytes read from
	// the client and written to it.
	RequestBodySize, ResponseBodySize int64
	// Duration is the time from the request's arrival to its end.
	Duration time.Duration
	// UpstreamAttempts is the number of upstream attempts (0 when the
	// request never reached the upstream, for example when it was
	// blocked).
	UpstreamAttempts int
	// Err is why the request failed, if it did (the client went away, the
	// upstream failed); its text goes to the agents.
	Err error
}

// RequestComplete fills dst with the request-complete event (SPEC 2.2)
// that the Rust proxy never sends (REFERENCE-DEFECTS B-X3). Negative sizes
// and durations count as 0; the duration is in whole milliseconds.
func RequestComplete(dst *agentwire.RequestCompleteEvent, correlationID string, c Completion) {
	*dst = agentwire.RequestCompleteEvent{
		CorrelationID:    correlationID,
		Status:           clampStatus(c.Status),
		DurationMS:       uint64(max(c.Duration, 0) / time.Millisecond),
		RequestBodySize:  uint64(max(c.RequestBodySize, 0)),
		ResponseBodySize: uint64(max(c.ResponseBodySize, 0)),
		UpstreamAttempts: uint32(min(int64(max(c.UpstreamAttempts, 0)), math.MaxUint32)),
	}
	if c.Err != nil {
		dst.Error = agentwire.Some(c.Err.Error())
	}
}

func clampStatus(s int) uint16 { return uint16(min(max(s, 0), 65535)) }

// requestURI returns the path and query of r as the client sent them.
func requestURI(r *http.Request) string {
	u := r.RequestURI
	if u != "" && (u[0] == '/' || u == "*" || r.Method == http.MethodConnect) {
		return u
	}
	if r.URL == nil {
		return u
	}
	// Absolute-form request-target, or a request built by a client.
	return r.URL.RequestURI()
}

// protocolName spells r's protocol version as the Rust http crate does.
func protocolName(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		return "HTTP/1.1"
	case r.ProtoMajor == 2:
		return "HTTP/2.0"
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return "HTTP/1.0"
	case r.ProtoMajor == 3:
		return "HTTP/3.0"
	case r.ProtoMajor == 0 && r.ProtoMinor == 9:
		return "HTTP/0.9"
	case r.Proto != "":
		return r.Proto
	}
	return "HTTP/1.1"
}

// TLSVersionName spells a TLS protocol version as OpenSSL does ("TLSv1.3",
// "TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3"); an unknown version is written
// as "0x" and four hex digits.
func TLSVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	case 0x0300:
		return "SSLv3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// cipherNames holds the IANA names of the cipher suites crypto/tls knows,
// secure and insecure (tls.CipherSuiteName builds its list on every call).
var cipherNames = func() map[uint16]string {
	m := make(map[uint16]string)
	for _, l := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, c := range l {
			m[c.ID] = c.Name
		}
	}
	return m
}()

// CipherSuiteName returns the IANA name of a TLS cipher suite (for example
// "TLS_AES_128_GCM_SHA256"), as tls.CipherSuiteName does but without
// allocating for the suites crypto/tls implements; others are written as
// "0x" and four hex digits.
func CipherSuiteName(id uint16) string {
	if n, ok := cipherNames[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id)
}

// splitRemoteAddr splits "ip:port" or "[ipv6]:port" without allocating. An
// address without a port is returned whole with port 0.
func splitRemoteAddr(a string) (string, uint16) {
	i := len(a) - 1
	for i >= 0 && a[i] != ':' {
		i--
	}
	if i < 0 {
		return a, 0
	}
	host, ps := a[:i], a[i+1:]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	} else if containsByte(host, ':') {
		// A bare IPv6 address without a port.
		return a, 0
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return a, 0
	}
	return host, uint16(p)
}

// hostOnly returns the host of a Host header value, without its port and
// IPv6 brackets.
func hostOnly(h string) string {
	if h == "" {
		return ""
	}
	if h[0] == '[' {
		for i := 1; i < len(h); i++ {
			if h[i] == ']' {
				return h[1:i]
			}
		}
		return h
	}
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] == ':' {
			if containsByte(h[:i], ':') {
				return h // a bare IPv6 address
			}
			return h[:i]
		}
	}
	return h
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// ValidTraceparent reports whether s is a W3C trace-context traceparent
// value this package passes on: version 00 in exactly the form
// "00-<32 hex>-<16 hex>-<2 hex>", or a later version (not ff) that starts
// with that form followed by "-"; lower-case hex, trace id and parent id
// not all zero.
func ValidTraceparent(s string) bool {
	if len(s) < 55 {
		return false
	}
	if !isLowerHex(s[0:2]) || s[0:2] == "ff" || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	if s[0:2] == "00" && len(s) != 55 {
		return false
	}
	if len(s) > 55 && s[55] != '-' {
		return false
	}
	trace, parent, flags := s[3:35], s[36:52], s[53:55]
	return isLowerHex(trace) && isLowerHex(parent) && isLowerHex(flags) && !allZero(trace) && !allZero(parent)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// idPrefix is this process's random correlation-id prefix (16 hex
// digits), so that ids stay unique across restarts; idCounter numbers the
// ids of this process.
var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() [17]byte {
	var raw [8]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	var p [17]byte
	hex.Encode(p[:16], raw[:])
	p[16] = '-'
	return p
}

// NewCorrelationID returns a new correlation id: this process's random
// 64-bit prefix in hex, "-", and a per-process counter in hex (for example
// "9f2c4e1a0b3d5f67-1a"). Ids are unique within the process and, with
// overwhelming probability, across processes. It costs one allocation (the
// string) and is safe for concurrent use.
func NewCorrelationID() string {
	n := idCounter.Add(1)
	var b [17 + 16]byte
	copy(b[:], idPrefix[:])
	return string(strconv.AppendUint(b[:17], n, 16))
}
