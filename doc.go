// Package agentwire is the data model of the Zentinel agent protocol v2:
// the events a proxy sends to its agents, the replies and decisions agents
// send back, header operations, and the handshake and control messages.
//
// It holds plain data, constructors and small helpers only, and imports no
// wire codec. The transports live elsewhere:
//
//   - engine: the proxy side (Dial an agent, send events, enforce decisions
//     under a failure policy);
//   - agent: the agent side (implement a handler, serve it);
//   - codec/payload: the JSON and MessagePack encodings, for tools that need
//     the wire bytes themselves.
//
// # A request in events
//
// A proxy sends RequestHeadersEvent when a request arrives, then
// BodyChunk events for its body, ResponseHeadersEvent and response
// BodyChunk events, and RequestCompleteEvent at the end. All events of one
// request share Metadata.CorrelationID. An agent answers each with an
// AgentResponse whose Decision is Allow (the zero value), Block, Redirect or
// Challenge, optionally with header operations and audit data.
//
//	ev := &agentwire.RequestHeadersEvent{
//		Metadata: agentwire.RequestMetadata{CorrelationID: "req-1", ClientIP: "192.0.2.7"},
//		Method:   "GET",
//		URI:      "/admin",
//	}
//	ev.Headers.Add("host", "example.com")
//
//	var r agentwire.AgentResponse
//	r.Decision = agentwire.Block(403)
//
// # Header names
//
// Header names travel in lower case, as the Rust proxy sends them.
// Headers.Add stores names in lower case, and Headers.Get, Values and Del
// match names without regard to ASCII case.
//
// # Wire rules the codecs keep
//
//   - Field names, enum spellings and shapes follow the Rust serde types.
//   - Empty lists and maps are written as [] and {}, never null.
//   - Body bytes travel as standard padded base64 in JSON.
//   - Opt is Rust's Option: the zero value is None.
//
// # Concurrency
//
// Values are plain data: safe to share read-only, not safe for concurrent
// mutation.
package agentwire
