package httpguard

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// Default statuses of decisions that carry none, or an unusable one.
const (
	// DefaultBlockStatus answers a block whose status is 0 or outside
	// 200-599 (net/http cannot send a final status outside 100-999, and a
	// 1xx is not a final response).
	DefaultBlockStatus = http.StatusForbidden
	// DefaultRedirectStatus answers a redirect whose status is 0 or not a
	// redirection status (301, 302, 303, 307, 308).
	DefaultRedirectStatus = http.StatusFound
	// ChallengeStatus answers a challenge (see DecisionResponse).
	ChallengeStatus = http.StatusUnauthorized
)

// Field is one response header: a canonical name and a value.
type Field struct {
	Name, Value string
}

// Response is the answer a decision (or a synthetic verdict) gives the
// client in place of the upstream's: the status, header fields to set (in
// order; later ones replace earlier ones of the same name) and the body.
// Proxies that do not use http.ResponseWriter read its fields; the others
// call Write. The zero value is empty; reuse one across requests to keep
// its Header storage. Not safe for concurrent use.
type Response struct {
	// Status is the HTTP status, 200-599.
	Status int
	// Header lists the fields to set: the content type and
	// X-Content-Type-Options of the body, then the decision's own fields.
	// Content-Length is not listed: it is the length of Body.
	Header []Field
	// Body is the response body ("" for statuses that have none).
	Body string
	// Err is non-nil when some of the decision's headers or challenge
	// parameters were refused (errors.Is(Err, ErrHeaderRefused)); the
	// response is still complete and safe to send.
	Err error
}

// DecisionResponse fills dst with the response a decision gives and
// reports whether there is one: false for allow (the request goes on).
//
//   - block: the decision's status (DefaultBlockStatus when it is 0 or
//     outside 200-599), its body (default: the status text, e.g.
//     "Forbidden"), served as text/plain unless the decision's headers say
//     otherwise, and its headers (the Rust proxy drops them,
//     REFERENCE-DEFECTS B-X5). A block header that is not valid HTTP or is
//     a ProtectedHeader is refused (dst.Err says which).
//   - redirect: a Location of the decision's URL with its status
//     (DefaultRedirectStatus unless the status is 301, 302, 303, 307 or
//     308), and no body. The Rust proxy answers a redirect with 500
//     (B-X5); a redirect is never a 5xx here. A URL that is empty or not
//     a valid header value cannot be redirected to: the request is then
//     blocked with DefaultBlockStatus (the agent did ask to stop it).
//   - challenge: the Rust proxy lets a challenged request through as if it
//     had been allowed (B-X5), so an agent's challenge has no effect there.
//     Here it stops the request with 401 Unauthorized and the challenge in
//     the standard HTTP form (RFC 9110 section 11.6.1):
//     "WWW-Authenticate: <challenge_type> <name>="<value>", ..." with the
//     params sorted by name as quoted strings, plus Cache-Control:
//     no-store. A client learns what to solve from that header (as with
//     any HTTP authentication scheme) and retries. A challenge type that
//     is not a token cannot be written as a scheme: the request is then
//     blocked with DefaultBlockStatus; a parameter whose name is not a
//     token or whose value is not a valid field value is left out
//     (dst.Err).
func DecisionResponse(d *agentwire.Decision, dst *Response) bool {
	dst.Header = dst.Header[:0]
	dst.Body = ""
	dst.Err = nil
	switch d.Kind {
	case agentwire.DecisionAllow:
		dst.Status = 0
		return false
	case agentwire.DecisionRedirect:
		if d.URL == "" || !httpguts.ValidHeaderFieldValue(d.URL) {
			blockResponse(dst, DefaultBlockStatus, agentwire.Opt[string]{}, nil)
			return true
		}
		dst.Status = redirectStatus(d.Status)
		dst.Header = append(dst.Header, Field{"Location", d.URL})
		return true
	case agentwire.DecisionChallenge:
		if !isToken(d.ChallengeType) {
			blockResponse(dst, DefaultBlockStatus, agentwire.Opt[string]{}, nil)
			return true
		}
		textBody(dst, ChallengeStatus)
		dst.Header = append(dst.Header,
			Field{"Www-Authenticate", challengeValue(d.ChallengeType, d.Params, dst)},
			Field{"Cache-Control", "no-store"})
		return true
	}
	// Block, and any kind this package does not know: stop the request.
	blockResponse(dst, d.Status, d.Body, d.BlockHeaders)
	return true
}

// VerdictResponse fills dst with the response a verdict gives and reports
// whether there is one (false when the verdict allows the request). An
// agent's own decision is answered as DecisionResponse says. A synthetic
// verdict (the failure policy's 503, 504 or 413, or a breaker refusal) is
// answered with its status, "Cache-Control: no-store" and the status text
// as a text/plain body: never the agent's name, the reason or the error,
// which stay in the Verdict for logs and metrics.
func VerdictResponse(v *engine.Verdict, dst *Response) bool {
	if !v.Synthetic {
		return DecisionResponse(&v.Decision, dst)
	}
	dst.Header = dst.Header[:0]
	dst.Body = ""
	dst.Err = nil
	if v.Allowed() {
		dst.Status = 0
		return false
	}
	status := int(v.Decision.Status)
	if status < 400 || status > 599 {
		status = engine.DefaultErrorStatus
	}
	textBody(dst, status)
	dst.Header = append(dst.Header, Field{"Cache-Control", "no-store"})
	return true
}

// WriteDecision writes the response of d to w and reports whether it did
// (false for allow: nothing is written). See DecisionResponse.
func WriteDecision(w http.ResponseWriter, d *agentwire.Decision) bool {
	var r Response
	if !DecisionResponse(d, &r) {
		return false
	}
	r.Write(w)
	return true
}

// WriteVerdict writes the response of v to w and reports whether it did
// (false when v allows the request). See VerdictResponse.
func WriteVerdict(w http.ResponseWriter, v *engine.Verdict) bool {
	var r Response
	if !VerdictResponse(v, &r) {
		return false
	}
	r.Write(w)
	return true
}

// Write sends r on w: its fields are set on w.Header() (replacing values
// of the same names; other headers already there stay), then the status,
// a Content-Length and the body. It must be called before anything else
// was written to w.
func (r *Response) Write(w http.ResponseWriter) {
	h := w.Header()
	for _, f := range r.Header {
		h[f.Name] = []string{f.Value}
	}
	if bodyAllowed(r.Status) {
		h["Content-Length"] = []string{strconv.Itoa(len(r.Body))}
	} else {
		delete(h, "Content-Length")
	}
	w.WriteHeader(r.Status)
	if r.Body != "" && bodyAllowed(r.Status) {
		_, _ = io.WriteString(w, r.Body)
	}
}

// blockResponse fills dst for a block with the given status, body and
// headers.
func blockResponse(dst *Response, status uint16, body agentwire.Opt[string], headers map[string]string) {
	st := int(status)
	if st < 200 || st > 599 {
		st = DefaultBlockStatus
	}
	textBody(dst, st)
	if body.Valid && bodyAllowed(st) {
		dst.Body = body.Value
	}
	if len(headers) == 0 {
		return
	}
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	slices.Sort(names) // a deterministic result when names differ only in case
	var herr *HeaderError
	for _, k := range names {
		v := headers[k]
		switch {
		case !httpguts.ValidHeaderFieldName(k):
			herr = refuse(herr, "block", k, "invalid name")
		case !httpguts.ValidHeaderFieldValue(v):
			herr = refuse(herr, "block", k, "invalid value")
		default:
			name := canonicalName(k)
			if ProtectedHeader(name) {
				herr = refuse(herr, "block", k, "protected")
				continue
			}
			dst.Header = append(dst.Header, Field{name, v})
		}
	}
	if herr != nil {
		dst.Err = herr
	}
}

// textBody sets dst's status and a text/plain body holding the status
// text (e.g. "Forbidden\n").
func textBody(dst *Response, status int) {
	dst.Status = status
	if !bodyAllowed(status) {
		return
	}
	body := statusBody(status)
	dst.Body = body
	dst.Header = append(dst.Header,
		Field{"Content-Type", "text/plain; charset=utf-8"},
		Field{"X-Content-Type-Options", "nosniff"})
}

// redirectStatus returns s when it is a redirection status that carries a
// Location, else DefaultRedirectStatus.
func redirectStatus(s uint16) int {
	switch s {
	case 301, 302, 303, 307, 308:
		return int(s)
	}
	return DefaultRedirectStatus
}

// bodyAllowed reports whether a response with this status may carry a
// body (RFC 9110 sections 15.2, 15.3.5, 15.4.5).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// challengeValue writes a WWW-Authenticate challenge: the scheme and the
// params sorted by name as auth-params with quoted-string values. Params
// that cannot be written are left out and recorded in dst.Err.
func challengeValue(scheme string, params map[string]string, dst *Response) string {
	if len(params) == 0 {
		return scheme
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString(scheme)
	var herr *HeaderError
	first := true
	for _, k := range names {
		v := params[k]
		if !isToken(k) {
			herr = refuse(herr, "challenge", k, "invalid name")
			continue
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			herr = refuse(herr, "challenge", k, "invalid value")
			continue
		}
		if first {
			b.WriteByte(' ')
			first = false
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(`="`)
		for i := 0; i < len(v); i++ {
			if v[i] == '"' || v[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[i])
		}
		b.WriteByte('"')
	}
	if herr != nil {
		dst.Err = herr
	}
	return b.String()
}

// statusBody returns the status text and a newline; common statuses cost
// no allocation.
func statusBody(status int) string {
	switch status {
	case 401:
		return "Unauthorized\n"
	case 403:
		return "Forbidden\n"
	case 413:
		return "Request Entity Too Large\n"
	case 429:
		return "Too Many Requests\n"
	case 503:
		return "Service Unavailable\n"
	case 504:
		return "Gateway Timeout\n"
	}
	if t := http.StatusText(status); t != "" {
		return t + "\n"
	}
	return "Status " + strconv.Itoa(status) + "\n"
}
