package agent

import (
	"errors"
	"net"
	"os"
	"sync"
)

// ListenUDS binds a Unix socket at path exactly as ListenAndServeUDS does
// (a stale socket file is replaced, a live one fails with an error wrapping
// ErrSocketInUse, any other file is never touched; the socket has the
// permission bits of WithSocketMode before it appears under path) and
// returns its listener without serving it. Pass the listener to ServeUDS.
//
// The socket accepts connections as soon as ListenUDS returns: a proxy
// that connects before ServeUDS runs waits in the kernel's backlog and is
// served (handshake first) once ServeUDS accepts it. So a caller can bind,
// announce readiness (sd_notify, a readiness file, a log line), then serve:
//
//	ln, err := srv.ListenUDS(path)
//	if err != nil {
//		return err
//	}
//	notifyReady()
//	return srv.ServeUDS(ln)
//
// Closing the returned listener (ServeUDS does when it returns, and at
// Shutdown or Close) also removes the socket file, unless another file has
// replaced it at path meanwhile. Close is idempotent. A listener that is
// never handed to ServeUDS must be closed by the caller.
//
// It returns ErrServerClosed after Shutdown or Close, and an error
// satisfying errors.Is(err, ErrInvalidConfig) for an empty path. Safe for
// concurrent use.
func (s *Server) ListenUDS(path string) (net.Listener, error) {
	if path == "" {
		return nil, invalidConfig(errors.New("agentwire: empty unix socket path"))
	}
	if s.closed() {
		return nil, ErrServerClosed
	}
	ln, err := listenUnix(path, s.cfg.uds.mode())
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		// Removed by somebody else already: nothing of ours to remove later.
		fi = nil
	}
	return &socketListener{Listener: ln, path: path, fi: fi}, nil
}

// socketListener is a listener whose Close also removes the socket file it
// published (if that file is still the one at path).
type socketListener struct {
	net.Listener
	path string
	fi   os.FileInfo // the published socket file; nil: nothing to remove
	once sync.Once
	err  error // the first Close's result
}

// Close closes the listener, then removes the socket file. Concurrent and
// repeated calls return the first call's result after it completed.
func (l *socketListener) Close() error {
	l.once.Do(func() {
		l.err = l.Listener.Close()
		if l.fi == nil {
			return
		}
		if cur, err := os.Lstat(l.path); err == nil && os.SameFile(l.fi, cur) {
			os.Remove(l.path)
		}
	})
	return l.err
}
