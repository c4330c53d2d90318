//go:build !(amd64 || arm64 || riscv64 || loong64 || ppc64le || mips64le)

package payload

// fastWriters is false on 32-bit and big-endian targets: see fastpath_on.go.
const fastWriters = false
