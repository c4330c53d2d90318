//go:build unix

package unixsock

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A directory lock held by something else fails Listen after lockWait
// with ErrLockBusy instead of hanging; once it is released, Listen works.
func TestListenLockHeldElsewhere(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Another open file description conflicts as another process's would.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	old := lockWait
	lockWait = 100 * time.Millisecond
	defer func() { lockWait = old }()

	path := filepath.Join(dir, "a.sock")
	start := time.Now()
	ln, err := Listen(path, 0o600)
	if err == nil {
		ln.Close()
		t.Fatal("Listen succeeded while the directory lock was held")
	}
	if !errors.Is(err, ErrLockBusy) {
		t.Fatalf("err = %v, want ErrLockBusy", err)
	}
	if took := time.Since(start); took < lockWait || took > lockWait+5*time.Second {
		t.Fatalf("Listen gave up after %v (lockWait %v)", took, lockWait)
	}
	if err := RemoveStale(path); !errors.Is(err, ErrLockBusy) {
		t.Fatalf("RemoveStale err = %v, want ErrLockBusy", err)
	}

	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	ln, err = Listen(path, 0o600)
	if err != nil {
		t.Fatalf("Listen after the lock's release: %v", err)
	}
	ln.Close()
}
