package payload

import (
	"encoding/json"
	"time"
)

// Shared fixtures for the JSON allocation tests and benchmarks.

// jsonFixtureRequestHeaders returns a typical request-headers event with 15
// header names (one of them repeated), as the Rust proxy would send it.
func jsonFixtureRequestHeaders() *RequestHeadersEvent {
	return &RequestHeadersEvent{
		Metadata: RequestMetadata{
			CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
			RequestID:     "6f1c0f3e-6a3b-4c7e-9a53-3f0e8b5b2d10",
			ClientIP:      "192.0.2.10",
			ClientPort:    51514,
			Protocol:      "HTTP/1.1",
			RouteID:       Some("api"),
			UpstreamID:    Some("backend-pool"),
			Timestamp:     time.Date(2026, 6, 12, 9, 27, 43, 123456789, time.UTC),
			Traceparent:   "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
		Method: "POST",
		URI:    "/api/items?id=7&sort=asc",
		Headers: Headers{
			{Name: "host", Values: []string{"api.example.com"}},
			{Name: "user-agent", Values: []string{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"}},
			{Name: "accept", Values: []string{"application/json, text/plain, */*"}},
			{Name: "accept-language", Values: []string{"en-US,en;q=0.9"}},
			{Name: "accept-encoding", Values: []string{"gzip, deflate, br"}},
			{Name: "content-type", Values: []string{"application/json"}},
			{Name: "content-length", Values: []string{"36"}},
			{Name: "cookie", Values: []string{`session=abc123; theme="dark"`}},
			{Name: "authorization", Values: []string{"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig"}},
			{Name: "x-forwarded-for", Values: []string{"203.0.113.5", "198.51.100.7"}},
			{Name: "x-forwarded-proto", Values: []string{"https"}},
			{Name: "x-request-id", Values: []string{"b7ad6b7169203331"}},
			{Name: "origin", Values: []string{"https://app.example.com"}},
			{Name: "referer", Values: []string{"https://app.example.com/items"}},
			{Name: "cache-control", Values: []string{"no-cache"}},
		},
	}
}

// jsonFixtureStdRequestHeaders is the same event in the encoding/json mirror.
func jsonFixtureStdRequestHeaders() *jsonStdRequestHeaders {
	ev := jsonFixtureRequestHeaders()
	m := ev.Metadata
	route, upstream, tp := m.RouteID.Value, m.UpstreamID.Value, m.Traceparent
	h := map[string][]string{}
	for _, x := range ev.Headers {
		h[x.Name] = x.Values
	}
	return &jsonStdRequestHeaders{
		CorrelationID: m.CorrelationID,
		Metadata: jsonStdMetadata{
			CorrelationID: m.CorrelationID, RequestID: m.RequestID, ClientIP: m.ClientIP, ClientPort: m.ClientPort,
			Protocol: m.Protocol, RouteID: &route, UpstreamID: &upstream,
			Timestamp: m.Timestamp.Format(time.RFC3339Nano), Traceparent: &tp,
		},
		Method: ev.Method, URI: ev.URI, Headers: h,
	}
}

// jsonFixtureAllowReply is the Rust SDK's allow reply (all ten fields).
const jsonFixtureAllowReply = `{"version":2,"decision":"allow","request_headers":[],"response_headers":[],"routing_metadata":{},"audit":{"tags":[],"rule_ids":[],"confidence":null,"reason_codes":[],"custom":{"correlation_id":"5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7"}},"needs_more":false,"request_body_mutation":null,"response_body_mutation":null,"websocket_decision":null}`

// jsonFixtureBlockReply returns a block decision with header ops and audit data.
func jsonFixtureBlockReply() *AgentResponse {
	return &AgentResponse{
		CorrelationID: "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7",
		Decision:      Decision{Kind: DecisionBlock, Status: 403, Body: Some("Forbidden: rule 942100 matched"), BlockHeaders: map[string]string{"content-type": "text/plain"}},
		RequestHeaders: []HeaderOp{
			{Kind: HeaderSet, Name: "x-waf-score", Value: "87"},
			{Kind: HeaderRemove, Name: "cookie"},
		},
		RoutingMetadata: map[string]string{"upstream": "quarantine"},
		Audit: AuditMetadata{
			Tags:        []string{"sqli", "owasp-crs"},
			RuleIDs:     []string{"942100"},
			Confidence:  Some[float32](0.95),
			ReasonCodes: []string{"SQL_INJECTION"},
			Custom:      map[string]json.RawMessage{"score": json.RawMessage(`87`)},
		},
	}
}
