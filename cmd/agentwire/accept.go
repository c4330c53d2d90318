package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/internal/unixsock"
)

// acceptAgent listens for reverse connections at f.accept (engine.ListenReverse),
// prints "listening on ENDPOINT" to stderr, and returns the first agent that
// registers (with f.token, when set) within f.acceptTimeout. release closes
// the connection and the listener.
func acceptAgent(ctx context.Context, f *probeFlags, stderr io.Writer) (conn *engine.Conn, release func(), where string, err error) {
	var opts []engine.ReverseOption
	if f.token != "" {
		opts = append(opts, engine.WithAuthToken(f.token))
	}
	l, err := engine.ListenReverse(ctx, f.accept, opts...)
	if err != nil {
		return nil, nil, "", fmt.Errorf("listen on %s: %w", f.accept, err)
	}
	// A Unix socket is shown under the path asked for (the listener binds
	// under a temporary name and links it there); TCP with its real port.
	shown := l.Addr().String()
	if l.Addr().Network() == "unix" {
		p := f.accept
		if u, ok := unixsock.PathFromURL(p); ok {
			p = u
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		shown = "unix://" + p
	}
	fmt.Fprintf(stderr, "listening on %s\n", shown)

	actx, cancel := context.WithTimeout(ctx, f.acceptTimeout)
	defer cancel()
	conn, err = l.Accept(actx)
	if err != nil {
		st := l.Stats()
		l.Close()
		if errors.Is(err, engine.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			msg := fmt.Sprintf("%v within %v on %s", errNoAgent, f.acceptTimeout, shown)
			if st.Rejected > 0 {
				msg += fmt.Sprintf(" (%d registration(s) rejected", st.Rejected)
				if f.token != "" {
					msg += "; check --token"
				}
				msg += ")"
			}
			return nil, nil, "", errors.New(msg)
		}
		return nil, nil, "", fmt.Errorf("accept on %s: %w", shown, err)
	}
	return conn, func() { l.Close() }, shown + " (reverse)", nil
}
