package engine

import (
	"log/slog"
)

// Logging: see the package documentation (Logging). The Conn's logger is
// WithLogger's with the endpoint as attribute "agent"; the lines are the
// connection's life cycle only, never one per request.

// discardLogger is the default logger: its handler is enabled at no level,
// so that nothing is even formatted.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// connLogger returns the logger of a Conn for endpoint.
func connLogger(l *slog.Logger, endpoint string) *slog.Logger {
	if endpoint == "" {
		return l
	}
	return l.With(slog.String("agent", endpoint))
}

// transportEncoding names the payload encoding of t (for the logs).
func transportEncoding(t transport) string {
	switch t := t.(type) {
	case *udsTransport:
		if t.msgpack {
			return "msgpack"
		}
		return "json"
	case *grpcTransport:
		return EncodingProtobuf
	}
	return ""
}

// errText is err's text, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
