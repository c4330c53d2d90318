// Package refagents holds the reference agents used by tests, examples and
// benchmarks: Echo allows everything and marks requests it saw; Deny blocks
// requests under a path prefix.
//
// Both are stateless, safe for concurrent use, and usable as zero values.
package refagents

import (
	"context"
	"strings"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// ProcessedHeader is the request header Echo and Deny set on every request
// they allow in the request-headers phase.
const ProcessedHeader = "X-Agent-Processed"

// DefaultDenyPrefix is the prefix Deny blocks when its Prefix is empty.
const DefaultDenyPrefix = "/admin"

// DenyStatus is the HTTP status Deny blocks with.
const DenyStatus = 403

// Echo allows every event. In the request-headers phase it adds the request
// header operation set X-Agent-Processed: true. Every other phase answers a
// plain allow.
type Echo struct{ agent.BaseHandler }

// OnRequestHeaders allows and sets X-Agent-Processed: true.
func (Echo) OnRequestHeaders(_ context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	markProcessed(r)
	return nil
}

func markProcessed(r *agentwire.AgentResponse) {
	r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: ProcessedHeader, Value: "true"})
}

// Deny blocks (403) every request whose URI starts with Prefix
// (DefaultDenyPrefix when empty) and otherwise behaves like Echo.
type Deny struct {
	agent.BaseHandler
	Prefix string
}

// OnRequestHeaders blocks URIs under the prefix and marks the others.
func (d Deny) OnRequestHeaders(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	p := d.Prefix
	if p == "" {
		p = DefaultDenyPrefix
	}
	if strings.HasPrefix(ev.URI, p) {
		r.Decision = agentwire.Block(DenyStatus)
		return nil
	}
	markProcessed(r)
	return nil
}

var (
	_ agent.Handler = Echo{}
	_ agent.Handler = Deny{}
)
