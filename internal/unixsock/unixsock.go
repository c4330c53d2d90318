// Package unixsock binds Unix-domain listening sockets safely: a stale
// socket file left by a dead process is replaced, a live one or any other
// kind of file is never touched, and the socket has its permission bits
// before it appears under its path.
package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrInUse reports that another process accepts connections on the path.
var ErrInUse = errors.New("agentwire: socket path is in use by a live listener")

// maxSunPath bounds a socket path so that it fits sockaddr_un (108 bytes on
// Linux, 104 on the BSDs) with room for the terminator.
const maxSunPath = 100

// Listen binds a Unix socket at path with permission bits mode. The socket
// is bound in a fresh private directory next to path, chmod-ed there and
// hard-linked to path, so it never appears with looser permissions (the
// link fails if path was created meanwhile). When no such directory can be
// used (not writable, or the path would be too long) it binds in place and
// chmods at once. The listener does not unlink path on Close: the caller
// removes it.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	if err := RemoveStale(path); err != nil {
		return nil, err
	}
	if dir, err := os.MkdirTemp(filepath.Dir(path), ".aw"); err == nil {
		defer os.RemoveAll(dir)
		if tmp := filepath.Join(dir, "s"); len(tmp) < maxSunPath {
			ln, err := net.Listen("unix", tmp)
			if err != nil {
				return nil, fmt.Errorf("agentwire: listen on %s: %w", path, err)
			}
			ln.(*net.UnixListener).SetUnlinkOnClose(false)
			if err := os.Chmod(tmp, mode); err != nil {
				ln.Close()
				return nil, fmt.Errorf("agentwire: chmod socket: %w", err)
			}
			if err := os.Link(tmp, path); err != nil {
				ln.Close()
				if errors.Is(err, os.ErrExist) {
					return nil, fmt.Errorf("agentwire: %s was created by someone else while binding: %w", path, err)
				}
				return nil, fmt.Errorf("agentwire: publish socket at %s: %w", path, err)
			}
			return ln, nil
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("agentwire: listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("agentwire: chmod socket: %w", err)
	}
	return ln, nil
}

// RemoveStale removes path if it is a socket nobody accepts on. A missing
// path is fine; a live socket fails with an error wrapping ErrInUse; any
// other kind of file fails and is left alone.
func RemoveStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("agentwire: inspect socket path %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("agentwire: %s exists and is not a socket (%v); refusing to remove it", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("agentwire: %s: %w", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("agentwire: probing existing socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agentwire: remove stale socket %s: %w", path, err)
	}
	return nil
}
