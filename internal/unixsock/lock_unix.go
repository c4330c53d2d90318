//go:build unix

package unixsock

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockWait bounds how long lockDir waits for another holder of the
// directory lock. Holders in this package keep it for a bind or a removal
// (microseconds); a lock held for seconds belongs to something else, and
// Listen fails with ErrLockBusy instead of hanging. A variable for tests.
var lockWait = 10 * time.Second

// lockDir takes an exclusive advisory lock (flock) on dir and returns its
// release. It serialises binding sockets in one directory across the
// processes that use this package. It polls a non-blocking flock, backing
// off from 1 ms to 50 ms, for at most lockWait.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockWait)
	pause := time.Millisecond
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the descriptor releases the lock
		}
		if err == syscall.EINTR {
			continue
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w for more than %v", ErrLockBusy, lockWait)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}
