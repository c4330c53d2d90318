//go:build unix

package unixsock

import (
	"os"
	"syscall"
)

// lockDir takes an exclusive advisory lock (flock) on dir and returns its
// release. It serialises binding sockets in one directory across the
// processes that use this package.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing the descriptor releases the lock
}
