package engine

import "testing"

// Endpoint text of the binary Unix-socket transport.
//
// Reference: crates/agent-protocol/src/v2/pool.rs, create_connection
// (line 1855 at mirror HEAD) takes the socket path as the endpoint with the
// literal prefix "unix:" stripped and nothing else (is_uds_endpoint, line
// 2031, selects the transport). So "unix://agents/waf.sock" is the path
// "//agents/waf.sock", which the kernel resolves as "/agents/waf.sock"; it
// is not the relative path "agents/waf.sock". A Go proxy given the same
// endpoint text must dial the same socket.
func TestUDSEndpointLikeRustPool(t *testing.T) {
	for in, want := range map[string]string{
		"unix:/var/run/waf.sock":   "/var/run/waf.sock", // what the Rust proxy builds (unix:<path>)
		"unix:///var/run/waf.sock": "/var/run/waf.sock", // Rust: "///var/run/waf.sock"
		"unix://var/run/waf.sock":  "/var/run/waf.sock", // Rust: "//var/run/waf.sock"
		"unix:waf.sock":            "waf.sock",          // relative in both
		"/var/run/waf.sock":        "/var/run/waf.sock",
		"waf.sock":                 "waf.sock",
	} {
		ep, err := parseEndpoint(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if ep.udsPath != want {
			t.Errorf("%s: socket path %q, want %q (the Rust pool's path)", in, ep.udsPath, want)
		}
	}
}
