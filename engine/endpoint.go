package engine

import (
	"net"
	"strings"
)

// endpoint is a parsed Dial target.
type endpoint struct {
	target string // grpc target ("dns:///host:port" or "unix:///path")
	tls    bool   // the scheme asks for TLS
	plain  bool   // the scheme is explicitly plaintext (grpc://, http://)
	unix   bool   // gRPC over a Unix socket
	// udsPath is set for the binary Unix-socket protocol (SPEC 6): the
	// socket path; target is then empty.
	udsPath string
}

// parseEndpoint understands:
//
//	grpc://host:port, http://host:port, host:port   gRPC over TCP (plaintext needs WithInsecure)
//	grpcs://host:port, https://host:port            gRPC over TCP with TLS
//	grpc+unix:///path                               gRPC over a Unix socket
//	unix:/path, unix:///path, /path, *.sock          the binary Unix-socket protocol (SPEC 6)
func parseEndpoint(s string) (endpoint, error) {
	if s == "" {
		return endpoint{}, configErr("empty endpoint")
	}
	switch {
	case strings.HasPrefix(s, "grpc+unix://"):
		path := strings.TrimPrefix(s, "grpc+unix://")
		if !strings.HasPrefix(path, "/") {
			return endpoint{}, configErr("endpoint %q: grpc+unix needs an absolute path (grpc+unix:///path)", s)
		}
		return endpoint{target: "unix://" + path, unix: true}, nil
	case strings.HasPrefix(s, "unix:"), strings.HasPrefix(s, "/"), strings.HasSuffix(s, ".sock"):
		return parseUDSEndpoint(s)
	}
	var e endpoint
	hostport := s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme := s[:i]
		hostport = s[i+3:]
		switch scheme {
		case "grpc", "http":
			e.plain = true
		case "grpcs", "https":
			e.tls = true
		default:
			return endpoint{}, configErr("endpoint %q: unknown scheme %q", s, scheme)
		}
		hostport = strings.TrimSuffix(hostport, "/")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port == "" {
		return endpoint{}, configErr("endpoint %q: want host:port", s)
	}
	if host == "" {
		host = "localhost"
	}
	e.target = "dns:///" + net.JoinHostPort(host, port)
	return e, nil
}
