//go:build !unix

package engine

const directSupported = false

func (t *udsTransport) rawWrite(uintptr) bool { return true }
