//go:build linux

package unixsock

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// longDir returns a fresh directory whose path is so long that a private
// temporary directory next to a socket in it would exceed the sockaddr_un
// limit, while the socket path itself still fits.
func longDir(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	pad := 88 - len(base) - 1
	if pad < 1 {
		t.Skipf("temp dir %q too long for this test", base)
	}
	dir := filepath.Join(base, strings.Repeat("d", pad))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestListenLongPathNeverLooserThanMode: with a permissive umask, a socket
// whose path is too long for the private-directory route must still never
// be visible under its path with permissions looser than requested.
func TestListenLongPathNeverLooserThanMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(longDir(t), "a.sock")
	if len(path) >= 104 {
		t.Fatalf("path %d bytes", len(path))
	}
	var stop atomic.Bool
	var loose atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 && fi.Mode().Perm() != 0o600 {
				loose.Store(fi.Mode().Perm())
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 3000 && time.Now().Before(deadline) && loose.Load() == nil; i++ {
		ln, err := Listen(path, 0o600)
		if err != nil {
			stop.Store(true)
			<-done
			t.Fatalf("Listen: %v", err)
		}
		ln.Close()
		os.Remove(path)
	}
	stop.Store(true)
	<-done
	if m := loose.Load(); m != nil {
		t.Fatalf("socket visible at its path with mode %v before chmod to 0600", m)
	}
}

// TestListenConcurrentStaleReplacement: several processes (here:
// goroutines) starting at once on a path holding a stale socket. At most
// one may end up owning the path; none may remove the live socket another
// one has just published and then report success itself (leaving the
// first listener orphaned).
func TestListenConcurrentStaleReplacement(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	deadline := time.Now().Add(3 * time.Second)
	for round := 0; round < 200 && time.Now().Before(deadline); round++ {
		// A stale socket: bound, then closed without unlinking.
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()

		const n = 6
		var wg sync.WaitGroup
		var start sync.WaitGroup
		start.Add(1)
		lns := make([]net.Listener, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				lns[i], _ = Listen(path, 0o600)
			}()
		}
		start.Done()
		wg.Wait()
		var ok []net.Listener
		for _, l := range lns {
			if l != nil {
				ok = append(ok, l)
			}
		}
		for _, l := range ok {
			l.Close()
		}
		os.Remove(path)
		if len(ok) > 1 {
			t.Fatalf("round %d: %d concurrent Listens succeeded on one path (all but one orphaned)", round, len(ok))
		}
	}
}

// TestRemoveStaleNeverRemovesReplacement: a stale socket replaced by a
// regular file (by a process that does not use this package) between the
// check and the removal must not be deleted.
func TestRemoveStaleNeverRemovesReplacement(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	deadline := time.Now().Add(2 * time.Second)
	for round := 0; round < 2000 && time.Now().Before(deadline); round++ {
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		victim := filepath.Join(dir, "victim")
		if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
		replaced := make(chan struct{})
		go func() {
			defer close(replaced)
			// Replace the socket with the regular file while RemoveStale
			// is probing (the probe takes some microseconds).
			for i := 0; i < round%40; i++ {
				runtime.Gosched()
			}
			os.Rename(victim, path)
		}()
		RemoveStale(path)
		<-replaced
		if _, err := os.Lstat(victim); err == nil {
			os.Remove(victim) // the rename came too late or failed
		} else if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("round %d: RemoveStale deleted a regular file that replaced the stale socket (%v)", round, err)
		}
		os.Remove(path)
	}
}
