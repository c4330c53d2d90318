package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ProcessRSS returns the resident memory (VmRSS) of process pid in KiB,
// read from /proc (Linux only); pid 0 means this process. It is safe for
// concurrent use.
func ProcessRSS(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("agentwire: bench: resident memory: %w", err)
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 2 && string(f[1]) == "kB" {
			if kib, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
				return kib, nil
			}
		}
		break
	}
	return 0, fmt.Errorf("agentwire: bench: no VmRSS line in %s", path)
}
