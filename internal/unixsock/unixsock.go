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
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// ErrInUse reports that another process accepts connections on the path.
var ErrInUse = errors.New("agentwire: socket path is in use by a live listener")

// ErrLockBusy reports that the lock on the socket's directory, which
// Listen and RemoveStale take for a moment, was held by another process
// for longer than they wait (10 seconds on Unix).
var ErrLockBusy = errors.New("agentwire: directory lock held by another process")

// maxSunPath bounds a socket path so that it fits sockaddr_un (108 bytes on
// Linux, 104 on the BSDs) with room for the terminator.
const maxSunPath = 100

// Listen binds a Unix socket at path with permission bits mode. The socket
// is bound in a fresh private directory next to path, chmod-ed there and
// hard-linked to path, so it never appears with looser permissions (the
// link fails if path was created meanwhile). When the private directory's
// path is too long for sockaddr_un, the socket is bound through
// /proc/self/fd (Linux); it is never bound in place and chmod-ed
// afterwards. The listener does not unlink path on Close: the caller
// removes it.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	// Concurrent Listens on one directory (several processes starting at
	// once) are serialised, so that one cannot remove the socket another
	// has just published after both found the same stale file.
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("agentwire: listen on %s: lock directory: %w", path, err)
	}
	defer unlock()
	if err := removeStale(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".aw")
	if err != nil {
		return nil, fmt.Errorf("agentwire: listen on %s: private directory: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	bindAt, done, err := shortPath(dir, "s")
	if err != nil {
		return nil, fmt.Errorf("agentwire: listen on %s: %w", path, err)
	}
	ln, err := net.Listen("unix", bindAt)
	done()
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

// shortPath returns a name for dir/name that fits sockaddr_un: the path
// itself, or on Linux /proc/self/fd/N/name through an open descriptor of
// dir. done releases the descriptor (after bind or connect).
func shortPath(dir, name string) (p string, done func(), err error) {
	full := filepath.Join(dir, name)
	if len(full) < maxSunPath {
		return full, func() {}, nil
	}
	if runtime.GOOS != "linux" {
		return "", nil, fmt.Errorf("socket path %s is too long", full)
	}
	f, err := os.Open(dir)
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) + "/" + name, func() { f.Close() }, nil
}

// RemoveStale removes path if it is a socket nobody accepts on. A missing
// path is fine; a live socket fails with an error wrapping ErrInUse; any
// other kind of file fails and is left alone.
//
// The removal is atomic with respect to the check: the file is first moved
// into a private directory and checked there again (same file, still a
// socket, still nobody accepting), so a live socket another process
// published at path after the first probe is never deleted; it is put
// back and RemoveStale fails with ErrInUse. It holds the same directory
// lock as Listen.
func RemoveStale(path string) error {
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("agentwire: remove stale socket %s: lock directory: %w", path, err)
	}
	defer unlock()
	return removeStale(path)
}

func removeStale(path string) error {
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
	if err := probeStale(path); err != nil {
		return fmt.Errorf("agentwire: %s: %w", path, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".aw")
	if err != nil {
		return fmt.Errorf("agentwire: remove stale socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir) // deletes the stale socket once it is moved there
	moved := filepath.Join(dir, "stale")
	if err := os.Rename(path, moved); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // someone else removed it meanwhile
		}
		return fmt.Errorf("agentwire: remove stale socket %s: %w", path, err)
	}
	cur, err := os.Lstat(moved)
	if err == nil && os.SameFile(fi, cur) && cur.Mode()&os.ModeSocket != 0 {
		name, done, perr := shortPath(dir, "stale")
		if perr == nil {
			perr = probeStale(name)
			done()
		}
		if perr == nil {
			return nil
		}
	}
	// Not the stale socket we probed: put it back where it was.
	if err := os.Link(moved, path); err != nil {
		return fmt.Errorf("agentwire: %s was replaced while removing a stale socket, and could not be restored: %w", path, err)
	}
	return fmt.Errorf("agentwire: %s was replaced while removing a stale socket: %w", path, ErrInUse)
}

// probeStale returns nil if nobody accepts on the socket at path, an error
// wrapping ErrInUse if somebody does, or the probe's error.
func probeStale(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return ErrInUse
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("probing existing socket: %w", err)
	}
	return nil
}
