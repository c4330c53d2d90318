//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package spinread

const supported = false

func (r *Reader) read(uintptr) bool { return true }

// SpinAgain never spins here.
func (r *Reader) SpinAgain() bool { return false }

// SpinGot has nothing to book here.
func (r *Reader) SpinGot() {}
