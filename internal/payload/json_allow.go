package payload

// The canonical allow reply. Most replies an agent sends say "allow" and
// nothing else, and every conforming agent writes that reply in JSON with
// the same bytes apart from the correlation id: the Rust SDK's agents
// (serde_json over AgentResponse::default_allow() with the id put in
// audit.custom; golden vector allow_default) and agentwire's agents
// (AppendAgentResponseJSON). Such a reply is recognised by comparing its
// bytes with the two fixed parts, instead of decoding it field by field.
const (
	allowJSONHead = `{"version":2,"decision":"allow","request_headers":[],"response_headers":[],"routing_metadata":{},"audit":{"tags":[],"rule_ids":[],"confidence":null,"reason_codes":[],"custom":{"correlation_id":"`
	allowJSONTail = `"}},"needs_more":false,"request_body_mutation":null,"response_body_mutation":null,"websocket_decision":null}`
)

// AllowReplyJSON reports whether the 0x20 payload p is the canonical
// JSON allow reply (see above) and returns its correlation id, a view of
// p's bytes. It accepts only an id of printable ASCII without a quote or a
// backslash (one that needs no unescaping), not empty; any other payload,
// including every other way of writing an allow reply, is for
// DecodeAgentResponseJSON. When it reports true, DecodeAgentResponseJSON
// would decode p into what ResetAllowReply leaves, with CorrelationID the
// returned id. It does not allocate. Safe for concurrent use.
func AllowReplyJSON(p []byte) (id []byte, ok bool) {
	if len(p) <= len(allowJSONHead)+len(allowJSONTail) ||
		string(p[:len(allowJSONHead)]) != allowJSONHead ||
		string(p[len(p)-len(allowJSONTail):]) != allowJSONTail {
		return nil, false
	}
	id = p[len(allowJSONHead) : len(p)-len(allowJSONTail)]
	for _, c := range id {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return nil, false
		}
	}
	return id, true
}

// ResetAllowReply sets r to the allow reply that AllowReplyJSON
// recognises, as DecodeAgentResponseJSON would decode it, reusing r's
// storage as the decoder does, except CorrelationID, which is left empty
// for the caller to set. Safe for concurrent use with distinct r.
func ResetAllowReply(r *AgentResponse) {
	jsonResetAgentResponse(r)
	r.Decision.BlockHeaders, r.Decision.Params = nil, nil
	r.Version = ProtocolVersion
}
