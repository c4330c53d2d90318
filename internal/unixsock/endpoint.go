package unixsock

import (
	"fmt"
	"net"
	"strings"
)

// SplitEndpoint maps a reverse-connection endpoint to a network and an
// address: "unix://PATH", "unix:PATH", or a path starting with "/" or "."
// or ending in ".sock" is a Unix socket; "tcp://HOST:PORT" or "HOST:PORT"
// is TCP. An empty address or a TCP address without a port fails.
func SplitEndpoint(ep string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(ep, "unix://"):
		network, addr = "unix", strings.TrimPrefix(ep, "unix://")
	case strings.HasPrefix(ep, "unix:"):
		network, addr = "unix", strings.TrimPrefix(ep, "unix:")
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
