//go:build amd64 || arm64 || riscv64 || loong64 || ppc64le || mips64le

package payload

// fastWriters enables the request-headers fast writers (msgpack_reqput.go,
// reqput_unsorted.go, fast_write.go). They read header names as
// little-endian words for their order keys, and they sum string lengths
// into an int that cannot wrap only with 64 bits: elsewhere the general
// encoders write every event (the same bytes, more slowly).
const fastWriters = true
