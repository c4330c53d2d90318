package unixsock

import (
	"fmt"
	"net"
	"strings"
)

// PathFromURL returns the socket path of a "unix:" endpoint the way the
// Rust proxy's pool reads it: only the literal "unix:" prefix is removed,
// and the kernel reads a path starting with "//" as absolute. So
// "unix:///run/a.sock", "unix://run/a.sock" and "unix:/run/a.sock" all
// name /run/a.sock, and "unix:a.sock" the relative a.sock. ok is false
// when s does not start with "unix:"; the path is "" when none is given.
func PathFromURL(s string) (path string, ok bool) {
	rest, ok := strings.CutPrefix(s, "unix:")
	if !ok {
		return "", false
	}
	if strings.HasPrefix(rest, "//") {
		if trimmed := strings.TrimLeft(rest, "/"); trimmed != "" {
			return "/" + trimmed, true
		}
		return "", true // "unix://": no path
	}
	return rest, true
}

// SplitEndpoint maps a reverse-connection endpoint to a network and an
// address: "unix:" followed by a path (see PathFromURL), or a path starting with "/" or "."
// or ending in ".sock" is a Unix socket; "tcp://HOST:PORT" or "HOST:PORT"
// is TCP. An empty address or a TCP address without a port fails.
func SplitEndpoint(ep string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(ep, "unix:"):
		network = "unix"
		addr, _ = PathFromURL(ep)
	case strings.HasPrefix(ep, "tcp://"):
		network, addr = "tcp", strings.TrimPrefix(ep, "tcp://")
	case strings.HasPrefix(ep, "/"), strings.HasPrefix(ep, "."), strings.HasSuffix(ep, ".sock"):
		network, addr = "unix", ep
	default:
		network, addr = "tcp", ep
	}
	if addr == "" {
		return "", "", fmt.Errorf("agentwire: reverse endpoint %q: empty address", ep)
	}
	if network == "tcp" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", "", fmt.Errorf("agentwire: reverse endpoint %q: %w", ep, err)
		}
	}
	return network, addr, nil
}
